"""chalicelib/settings.py: one frozen Settings read from the environment."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib import settings as settings_mod
from chalicelib.settings import Settings, SettingsError, load

REQUIRED = {
    "TARGET_URL": "http://backend.example/ws",
    "SLIPWAY_TABLE": "slipway-table",
    "SLIPWAY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/slipway",
}

INT_VARS = [
    "SLIPWAY_MAX_CHANNELS",
    "SLIPWAY_CONNECTION_TTL",
    "SLIPWAY_BACKEND_ATTEMPTS",
    "SLIPWAY_OPEN_DELIVERY_DEADLINE",
    "SLIPWAY_QUEUE_MESSAGE_LIMIT",
    "SLIPWAY_FANOUT_PAGE",
    "SLIPWAY_FANOUT_CONCURRENCY",
    "SLIPWAY_UPLOAD_EXPIRY",
    "SLIPWAY_DOWNLOAD_EXPIRY",
    "SLIPWAY_MAX_UPLOAD_BYTES",
    "SLIPWAY_MAX_PUBLISH_BYTES",
    "SLIPWAY_KEY_TTL",
]
FLOAT_VARS = ["SLIPWAY_BACKEND_CONNECT_TIMEOUT", "SLIPWAY_BACKEND_READ_TIMEOUT"]
POSITIVE = INT_VARS + FLOAT_VARS


def test_defaults() -> None:
    s = load(REQUIRED)
    assert s == Settings(
        target_url="http://backend.example/ws",
        keys=(),
        table="slipway-table",
        queue_url="https://sqs.us-east-1.amazonaws.com/1/slipway",
        bucket=None,
        connections_endpoint=None,
        control_iss=None,
        max_channels=20,
        connection_ttl=7800,
        backend_connect_timeout=3.0,
        backend_read_timeout=8.0,
        backend_attempts=3,
        open_delivery_deadline=60,
        queue_message_limit=262_144,
        fanout_page=1000,
        fanout_concurrency=32,
        envelope_all=False,
        upload_expiry=300,
        download_expiry=3600,
        max_upload=8 * 1024 * 1024,
        max_publish=32 * 1024 * 1024,
        history_seconds=600,
        history_items=1000,
        ordered_queue_url=None,
        ordered_all=False,
        ordered_hold_ms=250,
    )


def test_every_variable_set() -> None:
    env = {
        **REQUIRED,
        "SLIPWAY_KEY": "secret",
        "SLIPWAY_BUCKET": "bucket",
        "SLIPWAY_CONNECTIONS_ENDPOINT": "http://127.0.0.1:9/",
        "SLIPWAY_CONTROL_ISS": "my-app",
        "SLIPWAY_MAX_CHANNELS": "5",
        "SLIPWAY_CONNECTION_TTL": "100",
        "SLIPWAY_BACKEND_CONNECT_TIMEOUT": "0.5",
        "SLIPWAY_BACKEND_READ_TIMEOUT": "2",
        "SLIPWAY_BACKEND_ATTEMPTS": "1",
        "SLIPWAY_OPEN_DELIVERY_DEADLINE": "30",
        "SLIPWAY_QUEUE_MESSAGE_LIMIT": "1048576",
        "SLIPWAY_FANOUT_PAGE": "50",
        "SLIPWAY_FANOUT_CONCURRENCY": "4",
        "SLIPWAY_ENVELOPE_ALL": "true",
        "SLIPWAY_UPLOAD_EXPIRY": "60",
        "SLIPWAY_DOWNLOAD_EXPIRY": "120",
        "SLIPWAY_MAX_UPLOAD_BYTES": "1000",
    }
    s = load(env)
    assert (s.key, s.bucket, s.connections_endpoint, s.control_iss) == (
        "secret",
        "bucket",
        "http://127.0.0.1:9/",
        "my-app",
    )
    assert (s.max_channels, s.connection_ttl, s.backend_attempts) == (5, 100, 1)
    assert (s.backend_connect_timeout, s.backend_read_timeout) == (0.5, 2.0)
    assert (s.open_delivery_deadline, s.queue_message_limit) == (30, 1048576)
    assert (s.fanout_page, s.fanout_concurrency) == (50, 4)
    assert (s.envelope_all, s.upload_expiry, s.download_expiry, s.max_upload) == (
        True,
        60,
        120,
        1000,
    )
    assert isinstance(s.backend_read_timeout, float)
    assert isinstance(s.max_channels, int)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1", True), ("TRUE", True), ("yes", True), ("on", True), ("0", False), ("false", False)],
)
def test_flags(raw: str, value: bool) -> None:
    assert load({**REQUIRED, "SLIPWAY_ENVELOPE_ALL": raw}).envelope_all is value


def test_a_flag_that_is_neither_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"SLIPWAY_ENVELOPE_ALL='maybe' is not a valid flag"):
        load({**REQUIRED, "SLIPWAY_ENVELOPE_ALL": "maybe"})


def test_empty_optional_variables_read_as_defaults() -> None:
    s = load({**REQUIRED, "SLIPWAY_KEY": "", "SLIPWAY_MAX_CHANNELS": ""})
    assert s.key is None
    assert s.max_channels == 20


def test_settings_are_frozen() -> None:
    s = load(REQUIRED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.max_channels = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_each_required_variable_missing(name: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != name}
    with pytest.raises(SettingsError, match=name):
        load(env)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_each_required_variable_empty(name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load({**REQUIRED, name: ""})


def test_nothing_set_names_a_required_variable() -> None:
    with pytest.raises(SettingsError) as err:
        load({})
    assert any(name in str(err.value) for name in REQUIRED)


@pytest.mark.parametrize("name", INT_VARS)
@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "ten", "0x10"])
def test_bad_int(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name) as err:
        load({**REQUIRED, name: raw})
    assert "int" in str(err.value)


@pytest.mark.parametrize("name", FLOAT_VARS)
@pytest.mark.parametrize("raw", ["abc", "1,5", "3s"])
def test_bad_float(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name) as err:
        load({**REQUIRED, name: raw})
    assert "float" in str(err.value)


@pytest.mark.parametrize("name", POSITIVE)
@pytest.mark.parametrize("raw", ["0", "-1"])
def test_numbers_must_be_positive(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=f"{name} must be greater than 0"):
        load({**REQUIRED, name: raw})
    assert getattr(load({**REQUIRED, name: "1"}), settings_mod._VARS[name][0]) == 1


@pytest.mark.parametrize(
    "name",
    ["SLIPWAY_MAX_CHANNEL", "SLIPWAY_TARGET_URL", "SLIPWAY_", "SLIPWAY_key", "SLIPWAY_BUCKETS"],
)
def test_unknown_slipway_variable(name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load({**REQUIRED, name: "1"})


def test_every_unknown_variable_is_named() -> None:
    with pytest.raises(SettingsError) as err:
        load({**REQUIRED, "SLIPWAY_ONE": "1", "SLIPWAY_TWO": "2"})
    assert "SLIPWAY_ONE" in str(err.value)
    assert "SLIPWAY_TWO" in str(err.value)


def test_unknown_variable_is_reported_even_if_a_required_one_is_missing() -> None:
    with pytest.raises(SettingsError, match="SLIPWAY_TYPO"):
        load({"SLIPWAY_TYPO": "x"})


@pytest.mark.parametrize("name", ["SLIPWAY_QUEUE_NAME", "SLIPWAY_QUEUE_ARN", "SLIPWAY_STAGE"])
def test_variables_read_elsewhere_are_allowed(name: str) -> None:
    assert load({**REQUIRED, name: "x"}) == load(REQUIRED)


def test_other_variables_are_ignored() -> None:
    env = {
        **REQUIRED,
        "PATH": "/bin",
        "AWS_REGION": "us-east-1",
        "slipway_lower": "x",
        "XSLIPWAY_A": "1",
    }
    assert load(env) == load(REQUIRED)


def test_current_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SLIPWAY_"):
            monkeypatch.delenv(name)
    settings_mod.current.cache_clear()
    try:
        for name, value in REQUIRED.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("SLIPWAY_MAX_CHANNELS", "7")
        first = settings_mod.current()
        assert first.max_channels == 7
        monkeypatch.setenv("SLIPWAY_MAX_CHANNELS", "8")
        assert settings_mod.current() is first
    finally:
        settings_mod.current.cache_clear()


@pytest.mark.parametrize("name", ["SLIPWAY_HISTORY_SECONDS", "SLIPWAY_HISTORY_ITEMS"])
def test_history_is_off_at_zero_and_never_negative(name: str) -> None:
    assert load({**REQUIRED, name: "0"}).history is False
    assert load(REQUIRED).history is True
    with pytest.raises(SettingsError, match=name):
        load({**REQUIRED, name: "-1"})


def test_ordered_delivery_for_all_needs_its_queue() -> None:
    with pytest.raises(SettingsError, match="SLIPWAY_ORDERED_QUEUE_URL"):
        load({**REQUIRED, "SLIPWAY_ORDERED_ALL": "1"})
    queue = "https://sqs.us-east-1.amazonaws.com/1/slipway-ordered.fifo"
    s = load({**REQUIRED, "SLIPWAY_ORDERED_ALL": "1", "SLIPWAY_ORDERED_QUEUE_URL": queue})
    assert s.ordered_all and s.ordered_queue_url == queue
