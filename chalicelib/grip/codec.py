"""WebSocket-over-HTTP event codec (Pushpin's `application/websocket-events`).

Each event is `TYPE\\r\\n` or `TYPE <hex length>\\r\\n<bytes>\\r\\n`. Pure: no I/O.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from .errors import ParseError
from .limits import FIRST_CLOSE_CODE, LAST_CLOSE_CODE, CloseCode

CONTENT_TYPE = "application/websocket-events"
EVENT_TYPES = frozenset({"OPEN", "TEXT", "BINARY", "PING", "PONG", "CLOSE", "DISCONNECT"})
_HEX = re.compile(rb"[0-9a-fA-F]{1,16}")
# Codes API Gateway reports for a connection that ended without a close frame.
_DROPPED = frozenset({CloseCode.ABNORMAL, CloseCode.TLS_FAILURE})


class CodecError(ParseError):
    """A body is not valid `application/websocket-events`."""

    status = 502


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    content: bytes | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise CodecError(f"unknown event type {self.type!r}")


def encode(events: list[Event]) -> bytes:
    out = bytearray()
    for event in events:
        out += event.type.encode("ascii")
        if event.content is not None:
            out += b" %x\r\n" % len(event.content)
            out += event.content
        out += b"\r\n"
    return bytes(out)


def decode(body: bytes) -> list[Event]:
    """Decode strictly; any defect raises CodecError saying where."""
    if not isinstance(body, bytes | bytearray):
        raise CodecError("body must be bytes")
    events: list[Event] = []
    pos, end = 0, len(body)
    while pos < end:
        eol = body.find(b"\r\n", pos)
        if eol == -1:
            raise CodecError(f"event at byte {pos}: type line has no CRLF")
        line = bytes(body[pos:eol])
        name, sep, size = line.partition(b" ")
        try:
            etype = name.decode("ascii")
        except UnicodeDecodeError:
            raise CodecError(f"event at byte {pos}: type is not ASCII") from None
        if etype not in EVENT_TYPES:
            raise CodecError(f"event at byte {pos}: unknown event type {etype[:32]!r}")
        pos = eol + 2
        if not sep:
            events.append(Event(etype))
            continue
        if not _HEX.fullmatch(size):
            raise CodecError(f"{etype} event: bad hex length {size[:32]!r}")
        length = int(size, 16)
        if pos + length + 2 > end:
            raise CodecError(
                f"{etype} event: content is {end - pos} bytes, header says {length} plus CRLF"
            )
        content = bytes(body[pos : pos + length])
        if body[pos + length : pos + length + 2] != b"\r\n":
            raise CodecError(f"{etype} event: content not followed by CRLF")
        events.append(Event(etype, content))
        pos += length + 2
    return events


def close_content(code: int | None, reason: str = "") -> bytes | None:
    """Content of a CLOSE event; None when there is no code to carry."""
    if code is None:
        return None
    return struct.pack(">H", code) + reason.encode("utf-8")


def parse_close(content: bytes | None) -> tuple[int | None, str]:
    """(code, reason) of a CLOSE event. Code 0 (django-grip's "no code") reads as None."""
    if not content or len(content) < 2:
        return None, ""
    (code,) = struct.unpack(">H", content[:2])
    reason = content[2:].decode("utf-8", errors="replace")
    return (code or None), reason


def closing_event(status: int | None, reason: str = "") -> Event:
    """What the backend is told of a client's close that API Gateway reported:
    CLOSE with the client's code, CLOSE without content for a close frame that
    carried none, DISCONNECT for a connection that dropped without one."""
    if status is None or status in _DROPPED or not FIRST_CLOSE_CODE <= status <= LAST_CLOSE_CODE:
        return Event("DISCONNECT")
    if status == CloseCode.NO_STATUS:
        return Event("CLOSE")
    return Event("CLOSE", close_content(status, reason))
