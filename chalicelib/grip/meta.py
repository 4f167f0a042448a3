"""Connection meta: the rules for its names and values, and its limits. Pure.

Meta comes from three places -- a backend's `Set-Meta-<Name>` response header, its
`set-meta` control message, and the control API's `PATCH /connections/{id}/meta`
-- and goes to one: a `Meta-<Name>` header on every later backend request. So a
name must be a header name, and a value a header value, before it is stored.

Pushpin (github:fastly/pushpin, `src/handler/wscontrolmessage.cpp`: set-meta needs a
non-empty string `name`, a string `value` or none to delete; and
`src/proxy/websocketoverhttp.cpp`: `Set-Meta-<name>` with an empty value deletes,
and every meta pair is sent back as `Meta-<name>`) takes its values as header
bytes, already checked by its HTTP parser, and bounds them only through that
parser (64 headers a request, `src/connmgr/connection.rs` HEADERS_MAX). slipway
takes values as JSON text too, so it states the header rules itself: a value is
visible ASCII with inner spaces or tabs (RFC 9110 field-value, without the
obsolete non-ASCII `obs-text`, whose meaning no two servers agree on), and the
limits in grip/limits.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .limits import MAX_META_BYTES, MAX_META_NAME, MAX_META_NAMES, MAX_META_VALUE

NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9-]{{0,{MAX_META_NAME - 1}}}")
# Visible ASCII, and spaces or tabs between (a header parser strips them at the ends).
_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?")

NAME_RULE = f"a meta name is 1 to {MAX_META_NAME} letters, digits and dashes"
VALUE_RULE = (
    f"a meta value is an HTTP header value: up to {MAX_META_VALUE} visible ASCII "
    "characters, spaces or tabs inside (none at either end); percent-encode or "
    "base64 other text"
)


def name_problem(name: object) -> str | None:
    """Why `name` cannot be a meta name; None if it can."""
    if isinstance(name, str) and NAME.fullmatch(name):
        return None
    return NAME_RULE


def value_problem(value: object) -> str | None:
    """Why `value` cannot be a meta value (the empty string clears, so passes);
    None if it can."""
    if not isinstance(value, str):
        return VALUE_RULE
    if value == "" or (len(value) <= MAX_META_VALUE and _VALUE.fullmatch(value)):
        return None
    return VALUE_RULE


def size_problem(meta: Mapping[str, str]) -> str | None:
    """Why a connection cannot hold `meta` as a whole; None if it can."""
    if len(meta) > MAX_META_NAMES:
        return f"a connection holds at most {MAX_META_NAMES} meta names; this would be {len(meta)}"
    total = sum(len(k) + len(v) for k, v in meta.items())
    if total > MAX_META_BYTES:
        return (
            f"a connection's meta names and values are at most {MAX_META_BYTES} bytes "
            f"together; this would be {total}"
        )
    return None


def applied(meta: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """`meta` after `changes` (a value sets, None or "" clears)."""
    out = dict(meta)
    for name, value in changes.items():
        if value:
            out[name] = value
        else:
            out.pop(name, None)
    return out


def sendable(meta: Mapping[str, str]) -> dict[str, str]:
    """The meta that can go out as headers: a row stored before these rules (or
    by hand) must not break every later request of its connection."""
    return {
        k: v for k, v in meta.items() if name_problem(k) is None and value_problem(v) is None and v
    }
