"""WebSocket-over-HTTP events (`application/websocket-events`, docs/backend-protocol.md). Pure.

Each event is `TYPE\\r\\n` or `TYPE <hex length>\\r\\n<bytes>\\r\\n`. Decoding is
strict: anything else raises `CodecError` saying where.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from .errors import CodecError

CONTENT_TYPE = "application/websocket-events"
EVENT_TYPES = frozenset({"OPEN", "TEXT", "BINARY", "PING", "PONG", "CLOSE", "DISCONNECT"})
_HEX = re.compile(rb"[0-9a-fA-F]{1,16}")

__all__ = ["CONTENT_TYPE", "EVENT_TYPES", "CodecError", "Event", "decode", "encode"]


@dataclass(frozen=True, slots=True)
class Event:
    """One event: its type and, for those that carry one, its content."""

    type: str
    content: bytes | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise CodecError(f"unknown event type {self.type!r}")
        if self.content is not None and not isinstance(self.content, bytes):
            raise CodecError(f"{self.type} content must be bytes, not {type(self.content)}")


def encode(events: list[Event]) -> bytes:
    """The body carrying `events`, in order."""
    out = bytearray()
    for event in events:
        out += event.type.encode("ascii")
        if event.content is not None:
            out += b" %x\r\n" % len(event.content)
            out += event.content
        out += b"\r\n"
    return bytes(out)


def decode(body: bytes | bytearray | memoryview) -> list[Event]:
    """The events of a body; `CodecError` saying where on any defect."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise CodecError(f"body must be bytes, not {type(body).__name__}")
    body = bytes(body)
    events: list[Event] = []
    pos, end = 0, len(body)
    while pos < end:
        eol = body.find(b"\r\n", pos)
        if eol == -1:
            raise CodecError(f"event at byte {pos}: type line has no CRLF")
        name, sep, size = body[pos:eol].partition(b" ")
        etype = name.decode("ascii", errors="replace")
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
                f"{etype} event: {end - pos} bytes left, header says {length} plus CRLF"
            )
        if body[pos + length : pos + length + 2] != b"\r\n":
            raise CodecError(f"{etype} event: content not followed by CRLF")
        events.append(Event(etype, body[pos : pos + length]))
        pos += length + 2
    return events


def close_content(code: int | None, reason: str = "") -> bytes | None:
    """Content of a CLOSE event: the 2-byte big-endian code, then the UTF-8 reason.

    Without a code there is no content (a bare `CLOSE`, and no reason), as Pushpin
    sends it: django-grip's code 0 for "no code" would reach the client as close
    code 0, which RFC 6455 does not allow. `parse_close` still reads 0 as no code.
    """
    if code is None:
        return None
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"close code {code} does not fit in two bytes")
    return struct.pack(">H", code) + reason.encode("utf-8")


def parse_close(content: bytes | None) -> tuple[int | None, str]:
    """(code, reason) of a CLOSE event; a missing code or code 0 reads as None."""
    if not content or len(content) < 2:
        return None, ""
    (code,) = struct.unpack(">H", content[:2])
    return (code or None), content[2:].decode("utf-8", errors="replace")
