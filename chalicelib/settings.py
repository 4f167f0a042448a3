"""One frozen settings object, read once from the environment.

`.chalice/config.json` sets these per stage; the local stack sets them for its
process. A misspelt `SLIPWAY_*` variable fails loudly instead of being ignored.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache

from . import secrets
from .grip import keys as keys_
from .grip.errors import ConfigError
from .grip.limits import (
    CONNECTION_TTL,
    MAX_CHANNELS,
    MAX_PUBLISH,
    MAX_UPLOAD,
    ORDERED_HOLD_MS,
    QUEUE_MESSAGE,
)
from .grip.token import BACKEND_ISSUERS


class SettingsError(ConfigError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    target_url: str
    keys: keys_.Keys  # the first signs, any verifies (docs/security.md#key-rotation)
    table: str
    queue_url: str
    bucket: str | None
    connections_endpoint: str | None
    control_iss: str | None
    max_channels: int
    connection_ttl: int
    backend_connect_timeout: float
    backend_read_timeout: float
    backend_attempts: int
    open_delivery_deadline: int
    queue_message_limit: int
    fanout_page: int
    fanout_concurrency: int
    envelope_all: bool
    upload_expiry: int
    download_expiry: int
    max_upload: int
    max_publish: int
    history_seconds: int
    history_items: int
    ordered_queue_url: str | None
    ordered_all: bool
    ordered_hold_ms: int
    resume_any_position: bool = False
    key_ttl: int = secrets.KEY_TTL

    @property
    def key(self) -> str | None:
        """The key that signs (Grip-Sig, upload refs, resume floors): the first."""
        return keys_.signing(self.keys)

    @property
    def history(self) -> bool:
        """Whether channels keep history for resume (docs/resume.md)."""
        return self.history_seconds > 0 and self.history_items > 0


def flag(raw: str) -> bool:
    """`1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`, in any case."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


# variable name -> (field, default, converter); a name in _REQUIRED has no default.
_VARS: dict[str, tuple[str, object, Callable[[str], object]]] = {
    "TARGET_URL": ("target_url", None, str),
    # One key, one per line, or a JSON array (grip/keys.py); or kept in SSM or
    # Secrets Manager (secrets.py): read again every SLIPWAY_KEY_TTL seconds.
    "SLIPWAY_KEY": ("keys", (), keys_.parse),
    "SLIPWAY_KEY_TTL": ("key_ttl", secrets.KEY_TTL, int),
    "SLIPWAY_TABLE": ("table", None, str),
    "SLIPWAY_QUEUE_URL": ("queue_url", None, str),
    "SLIPWAY_BUCKET": ("bucket", None, str),
    "SLIPWAY_CONNECTIONS_ENDPOINT": ("connections_endpoint", None, str),
    "SLIPWAY_CONTROL_ISS": ("control_iss", None, str),
    "SLIPWAY_MAX_CHANNELS": ("max_channels", MAX_CHANNELS, int),
    # API Gateway's 2 h lifetime plus a margin: a safety net for missed $disconnects.
    "SLIPWAY_CONNECTION_TTL": ("connection_ttl", CONNECTION_TTL, int),
    "SLIPWAY_BACKEND_CONNECT_TIMEOUT": ("backend_connect_timeout", 3.0, float),
    "SLIPWAY_BACKEND_READ_TIMEOUT": ("backend_read_timeout", 8.0, float),
    "SLIPWAY_BACKEND_ATTEMPTS": ("backend_attempts", 3, int),
    "SLIPWAY_OPEN_DELIVERY_DEADLINE": ("open_delivery_deadline", 60, int),
    # SQS's classic limit; accounts with the 1 MiB limit may raise it.
    "SLIPWAY_QUEUE_MESSAGE_LIMIT": ("queue_message_limit", QUEUE_MESSAGE, int),
    "SLIPWAY_FANOUT_PAGE": ("fanout_page", 1000, int),
    "SLIPWAY_FANOUT_CONCURRENCY": ("fanout_concurrency", 32, int),
    # Envelope mode (docs/envelope.md) for every connection, not only those asking with ?envelope=1.
    "SLIPWAY_ENVELOPE_ALL": ("envelope_all", False, flag),
    # Seconds a presigned upload URL (PUT) and download URL (GET) stay valid.
    "SLIPWAY_UPLOAD_EXPIRY": ("upload_expiry", 300, int),
    "SLIPWAY_DOWNLOAD_EXPIRY": ("download_expiry", 3600, int),
    # The largest message a client may upload, in bytes.
    "SLIPWAY_MAX_UPLOAD_BYTES": ("max_upload", MAX_UPLOAD, int),
    # The largest message a backend may upload and publish by reference (POST /uploads).
    "SLIPWAY_MAX_PUBLISH_BYTES": ("max_publish", MAX_PUBLISH, int),
    # Channel history for resume after reconnect (docs/resume.md): how long a
    # message is kept, and how many per channel; 0 turns history off.
    "SLIPWAY_HISTORY_SECONDS": ("history_seconds", 600, int),
    "SLIPWAY_HISTORY_ITEMS": ("history_items", 1000, int),
    # Honour any position a client presents, even from before it first joined the
    # channel (docs/resume.md#who-may-recover-what): off, a client recovers only from
    # positions it was handed, after its first subscribe.
    "SLIPWAY_RESUME_ANY_POSITION": ("resume_any_position", False, flag),
    # Ordered delivery (docs/ordered.md): its FIFO queue, and the mode for every connection
    # rather than only those asking with ?ordered=1.
    "SLIPWAY_ORDERED_QUEUE_URL": ("ordered_queue_url", None, str),
    "SLIPWAY_ORDERED_ALL": ("ordered_all", False, flag),
    # How long the forwarder waits for $default invocations that started earlier to
    # write their events: longer than the spread of $default's run times.
    "SLIPWAY_ORDERED_HOLD_MS": ("ordered_hold_ms", ORDERED_HOLD_MS, int),
}
_OFF_AT_ZERO = {"SLIPWAY_HISTORY_SECONDS", "SLIPWAY_HISTORY_ITEMS"}
_REQUIRED = {"TARGET_URL", "SLIPWAY_TABLE", "SLIPWAY_QUEUE_URL"}
# Read by the deployment tooling or the local stack, not by the handlers.
_KNOWN_ELSEWHERE = {
    "SLIPWAY_QUEUE_NAME",
    "SLIPWAY_QUEUE_ARN",
    "SLIPWAY_ORDERED_QUEUE_NAME",
    "SLIPWAY_STAGE",
    "SLIPWAY_LOG_LEVEL",
    secrets.PARAMETER,  # the key from SSM Parameter Store ...
    secrets.SECRET,  # ... or Secrets Manager, fetched in current()
}


def load(env: Mapping[str, str]) -> Settings:
    unknown = sorted(
        name
        for name in env
        if name.startswith("SLIPWAY_") and name not in _VARS and name not in _KNOWN_ELSEWHERE
    )
    if unknown:
        raise SettingsError(
            f"unknown setting {', '.join(unknown)}; known: {', '.join(sorted(_VARS))}"
        )
    try:
        secrets.source(env)  # at most one of SLIPWAY_KEY, _KEY_PARAMETER, _KEY_SECRET
    except secrets.SecretError as exc:
        raise SettingsError(str(exc)) from None
    values: dict[str, object] = {}
    for name, (field, default, convert) in _VARS.items():
        raw = env.get(name, "")
        if raw == "":
            if name in _REQUIRED:
                raise SettingsError(f"{name} is not set; set it in .chalice/config.json")
            values[field] = default
            continue
        try:
            values[field] = convert(raw)
        except keys_.KeyListError as exc:  # said without the value: it holds keys
            raise SettingsError(f"{name}: {exc}") from None
        except ValueError:
            kind = "flag (1/0, true/false)" if convert is flag else convert.__name__
            raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None
    for name, (field, _, convert) in _VARS.items():
        # Every number is a count, a size or a duration: zero or less is a typo,
        # except where zero turns something off.
        if convert in (int, float) and name in _OFF_AT_ZERO:
            if values[field] < 0:  # type: ignore[operator]
                raise SettingsError(f"{name} must be 0 (off) or more")
        elif convert in (int, float) and values[field] <= 0:  # type: ignore[operator]
            raise SettingsError(f"{name} must be greater than 0")
        if convert is float and not math.isfinite(values[field]):  # type: ignore[arg-type]
            raise SettingsError(f"{name} must be a finite number, not {env.get(name)!r}")
    if values["control_iss"] in BACKEND_ISSUERS:
        raise SettingsError(
            f"SLIPWAY_CONTROL_ISS={values['control_iss']!r} is the issuer of Grip-Sig tokens "
            "toward backends, which the control API refuses: choose another "
            "(docs/security.md#token-confusion)"
        )
    if values["ordered_all"] and not values["ordered_queue_url"]:
        raise SettingsError("SLIPWAY_ORDERED_ALL needs SLIPWAY_ORDERED_QUEUE_URL (docs/ordered.md)")
    assert set(values) == {f.name for f in fields(Settings)}
    return Settings(**values)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def current() -> Settings:
    """The settings of this Lambda container, read at the first event; keys kept
    in SSM or Secrets Manager are fetched then (and again by `keyed`)."""
    return keyed(load(os.environ))


def keyed(cfg: Settings) -> Settings:
    """`cfg` with the keys the store named by the environment holds now, read
    again once SLIPWAY_KEY_TTL seconds have passed; `cfg` itself when they are
    the same, or when the keys are SLIPWAY_KEY's."""
    stored = secrets.keys(os.environ, cfg.key_ttl)
    if stored is None or stored == cfg.keys:
        return cfg
    return replace(cfg, keys=stored)
