"""How a message leaves for one kind of connection: the outbound planner. Pure.

Given a payload and a connection's mode, `plan` says what to post, and the
executor carries that out (`chalicelib/executor.py`):

- `Raw`: the payload as it is, to a raw connection;
- `Wrapped`: `[1, 0, data]`, to an envelope connection;
- `ViaObject`: `[4, -1, url]` pointing at one stored S3 object that holds the
  message in its download form (`envelope.download_form`), to an envelope
  connection, when the wrapped frame is over API Gateway's frame limit;
- `Undeliverable`: not sent, and why (a raw connection cannot take a message
  over 128 KB, and a message is never truncated; an envelope connection cannot
  be sent a large message without a bucket).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

from . import envelope
from .limits import MAX_INLINE, MAX_POST
from .payload import Payload

# A stored message (its download form: JSON) over this many bytes cannot hold one a
# raw connection takes: JSON writes a byte as at most 6 (`\u00XX`), plus 2 quotes.
# Over it, a raw connection is skipped without reading the object.
MAX_RAW_OBJECT = 6 * MAX_POST + 2


class Why(StrEnum):
    TOO_LARGE_FOR_RAW = "too_large_for_raw"
    NO_BUCKET = "no_bucket"


class Raw(NamedTuple):
    body: bytes


class Wrapped(NamedTuple):
    frame: bytes


class ViaObject(NamedTuple):
    """Post `envelope.download(url)` for the one object holding the message."""


class Undeliverable(NamedTuple):
    why: Why

    def explain(self) -> str:
        if self.why is Why.TOO_LARGE_FOR_RAW:
            return (
                f"the message is over API Gateway's {MAX_POST} bytes and the connection "
                "is not in envelope mode (?envelope=1)"
            )
        return "a message this large needs SLIPWAY_BUCKET, and none is configured"


Plan = Raw | Wrapped | ViaObject | Undeliverable


def plan(
    payload: Payload | None,
    envelope_mode: bool,
    bucket: bool,
    stored: bool = False,
    trailer: dict[str, Any] | None = None,
) -> Plan:
    """What to post a connection in `envelope_mode` (or raw) for `payload`.

    `bucket`: the deployment can store objects. `stored`: the message is in one
    already (a publish too large for the queue), so envelope connections fetch it
    there and need no `payload`; a raw connection always does. `trailer`: the
    last element of an envelope frame (a channel message's position, docs/resume.md).
    """
    if envelope_mode and stored:
        return ViaObject()
    if payload is None:
        raise ValueError("only a stored message to an envelope connection needs no payload")
    if not envelope_mode:
        if payload.at_most(MAX_POST):
            return Raw(payload.data)
        return Undeliverable(Why.TOO_LARGE_FOR_RAW)
    text = payload.text
    if len(text) <= MAX_INLINE:  # a longer one cannot fit, however wrapped
        frame = envelope.wrap(text, trailer)
        if envelope.fits(frame):
            return Wrapped(frame.encode("utf-8"))
    return ViaObject() if bucket else Undeliverable(Why.NO_BUCKET)
