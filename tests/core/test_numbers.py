"""Numbers read from callers are finite and bounded (issue 24): a query's limit and
offset, a client's resume offsets and envelope frame ids, the settings' durations.
Each is refused with an error naming it, never turned into a 500 or stored. Pure.
Token `exp` and keep-alive `timeout` are in tests/test_token.py and test_decisions.py."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.grip import envelope as env
from chalicelib.grip import history, introspection
from chalicelib.grip.envelope import Code, FrameRefused
from chalicelib.grip.errors import BadRequest
from chalicelib.grip.limits import MAX_SAFE_INTEGER
from chalicelib.settings import SettingsError, load

# Digit strings that str.isdigit() passes and int() refuses or reads oddly, and
# integers too long for int() to read (Python's 4,300-digit limit).
ODD_DIGITS = ["²", "¹⁰", "١٢", "１０", "9" * 5000, "1" + "0" * 40, " 5", "5 ", "+5", "5.0", "1e3"]


@pytest.mark.parametrize("raw", ODD_DIGITS)
def test_a_page_limit_that_is_not_plain_ascii_digits_is_a_400(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        introspection.page_limit(raw)
    assert "limit" in caught.value.body()["error"] or "limit" in json.dumps(caught.value.body())


@pytest.mark.parametrize("raw", ODD_DIGITS)
def test_an_items_offset_that_is_not_plain_ascii_digits_is_a_400(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        history.items_query({"after": raw})
    assert "after" in json.dumps(caught.value.body())
    with pytest.raises(BadRequest):
        history.items_query({"limit": raw})


@settings(max_examples=200)
@given(st.text(max_size=30) | st.integers().map(str))
def test_any_query_number_is_refused_or_within_bounds(raw: str) -> None:
    try:
        query = history.items_query({"after": raw, "limit": raw})
    except BadRequest:
        return
    assert 0 <= query.after <= history.MAX_OFFSET
    assert 1 <= query.limit <= introspection.MAX_PAGE


def test_leading_zeros_and_the_bounds_themselves_are_read() -> None:
    assert introspection.page_limit("0007") == 7
    assert introspection.page_limit(str(introspection.MAX_PAGE)) == introspection.MAX_PAGE
    assert history.items_query({"after": str(MAX_SAFE_INTEGER)}).after == MAX_SAFE_INTEGER
    with pytest.raises(BadRequest):
        history.items_query({"after": str(MAX_SAFE_INTEGER + 1)})


def _resume(positions: object) -> str:
    raw = json.dumps(positions).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("offset", [MAX_SAFE_INTEGER + 1, 10**40, 10**400])
def test_a_resume_offset_past_javascripts_integers_is_refused(offset: int) -> None:
    with pytest.raises(history.ResumeError, match="resume"):
        history.parse_resume(_resume({"lobby": ["e", offset]}))
    assert history.parse_resume(_resume({"lobby": ["e", MAX_SAFE_INTEGER]}))


@pytest.mark.parametrize("mid", [MAX_SAFE_INTEGER + 1, -(MAX_SAFE_INTEGER + 1), 10**400])
def test_an_envelope_frame_id_past_javascripts_integers_is_an_invalid_frame(mid: int) -> None:
    for frame in ([1, mid, "x"], [2, mid], [4, mid, "https://x/y"]):
        with pytest.raises(FrameRefused) as caught:
            env.read(json.dumps(frame))
        assert caught.value.code == Code.INVALID_FRAME
        assert caught.value.id == env.PUSH_ID  # not echoed back
    assert env.read(json.dumps([1, MAX_SAFE_INTEGER, "x"])) == env.Text(MAX_SAFE_INTEGER, b"x")


REQUIRED = {"TARGET_URL": "http://b", "SLIPWAY_TABLE": "t", "SLIPWAY_QUEUE_URL": "http://q"}


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
def test_a_duration_setting_must_be_finite(raw: str) -> None:
    with pytest.raises(SettingsError, match="SLIPWAY_BACKEND_READ_TIMEOUT"):
        load({**REQUIRED, "SLIPWAY_BACKEND_READ_TIMEOUT": raw})


any_json_number = (
    st.integers()
    | st.integers(min_value=10**20, max_value=10**300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.sampled_from([999, 1000, 4999, 5000, 1000.0, 1000.5])
)


@settings(max_examples=200)
@given(any_json_number)
def test_any_close_code_is_refused_naming_it_or_a_close_code(code: object) -> None:
    """The control API's close of a connection, and a publish's close action."""
    from chalicelib.grip.publish import PublishError, parse_close, parse_publish

    body = json.dumps({"code": code, "reason": "bye"})
    try:
        got, _ = parse_close(body)
    except PublishError as exc:
        assert "code" in json.dumps(exc.body())
    else:
        assert type(got) is int and 1000 <= got <= 4999
    item = {"channel": "c", "formats": {"ws-message": {"action": "close", "code": code}}}
    try:
        (published,) = parse_publish(json.dumps({"items": [item]}))
    except PublishError as exc:
        assert "code" in json.dumps(exc.body())
    else:
        assert type(published.action.code) is int and 1000 <= published.action.code <= 4999
