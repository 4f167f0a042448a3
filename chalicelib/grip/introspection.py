"""Channels and connections through the control API: what a request names, checked,
and the opaque cursors of the listings. Pure.

The listings page over rows sorted by connection id: a channel's member rows
(`chan#<channel>`), and for every open connection the sharded index rows
(`conns#<shard>`, docs/control-api.md#channels-and-connections). A cursor says
where the last page stopped: the shard and the last connection id returned.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from typing import Any

from . import meta, text
from .errors import BadRequest
from .limits import MAX_CHANNEL_LENGTH

# The rows that list every open connection are spread over this many partitions
# (a partition takes 1,000 writes a second; connects are limited to 500 a second
# per account by API Gateway, and every connect and disconnect writes one row).
CONNECTION_SHARDS = 16
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_META_CHANGES = 32  # names changed by one PATCH /connections/{id}/meta


def shard_of(connection_id: str) -> int:
    """The index partition of a connection: stable across processes and versions."""
    return zlib.crc32(connection_id.encode("utf-8")) % CONNECTION_SHARDS


def channel_name(channel: str) -> str:
    """A channel named in a path: 1 to 512 characters, as a publish takes it."""
    if not channel or len(channel) > MAX_CHANNEL_LENGTH:
        raise BadRequest({"channel": [f"a channel is 1 to {MAX_CHANNEL_LENGTH} characters"]})
    if not text.is_text(channel):
        raise BadRequest({"channel": [text.PROBLEM]})
    return channel


def decimal(raw: str, low: int, high: int) -> int | None:
    """A query parameter's whole number from `low` to `high`, or None. ASCII digits
    only: str.isdigit also passes "²" and "١٢", which int() refuses or reads, and a
    string of thousands of digits is refused before int() is asked to read it."""
    digits = raw.lstrip("0") or "0"
    if not raw.isascii() or not raw.isdigit() or len(digits) > len(str(high)):
        return None
    value = int(digits)
    return value if low <= value <= high else None


def page_limit(raw: str | None) -> int:
    """`?limit=`: 1 to MAX_PAGE, DEFAULT_PAGE when absent."""
    if raw is None or raw == "":
        return DEFAULT_PAGE
    limit = decimal(raw, 1, MAX_PAGE)
    if limit is None:
        raise BadRequest({"limit": [f"an integer from 1 to {MAX_PAGE}"]})
    return limit


def encode_cursor(shard: int, after: str) -> str:
    """The cursor after connection `after` of `shard` (0 for a channel's members)."""
    raw = json.dumps([shard, after], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(raw: str | None, shards: int = 1) -> tuple[int, str | None]:
    """`?cursor=` as (shard, last id returned, None for the shard's start); (0, None)
    for the first page.
    A cursor this API did not give is a 400 naming `cursor`."""
    if raw is None or raw == "":
        return 0, None
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        data = None
    if (
        not isinstance(data, list)
        or len(data) != 2
        or not isinstance(data[0], int)
        or isinstance(data[0], bool)
        or not 0 <= data[0] < shards
        or not isinstance(data[1], str)
        or not text.is_text(data[1])
    ):
        raise BadRequest({"cursor": ["not a cursor from this API: pass the last answer's cursor"]})
    return data[0], data[1] or None  # "": from the start of that shard


def meta_changes(body: Any, current: Mapping[str, str]) -> dict[str, str | None]:
    """A PATCH body `{"name": "value" | null, ...}`: names lowercased (meta names are
    header names), None to clear. Each name and value follows grip/meta.py, and the
    connection's `current` meta with the changes stays within its limits.
    Raises BadRequest naming each bad field."""
    if not isinstance(body, Mapping) or not body:
        raise BadRequest({"body": ['a JSON object {"name": "value" or null, ...}, not empty']})
    if len(body) > MAX_META_CHANGES:
        raise BadRequest({"body": [f"at most {MAX_META_CHANGES} names at once"]})
    errors: dict[str, list[str]] = {}
    changes: dict[str, str | None] = {}
    for name, value in body.items():
        if isinstance(name, str) and not text.is_text(name):
            errors[name.encode("utf-8", "backslashreplace").decode()] = [text.PROBLEM]
        elif (problem := meta.name_problem(name)) is not None:
            errors[str(name)] = [problem]
        elif value is not None and (problem := meta.value_problem(value)) is not None:
            errors[name] = [problem + ", or null to clear"]
        elif name.lower() in changes:
            errors[name] = ["named twice (meta names are case-insensitive)"]
        else:
            changes[name.lower()] = value or None
    if not errors and (problem := meta.size_problem(meta.applied(current, changes))):
        errors["body"] = [problem]
    if errors:
        raise BadRequest(errors)
    return changes
