"""One message to clients, from where it enters the gateway to the @connections
post: text or bytes. Pure.

A payload keeps whichever forms it was given and makes the others at most once:
a control route hands in text, a backend reply bytes, a queue job text or base64.
The raw post needs bytes, the envelope frame and the queue need text; each is
computed only if asked for, and so is the size.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .errors import ParseError
from .limits import UTF8_MAX_BYTES_PER_CHAR


class PayloadError(ParseError):
    """A serialised payload is not `{"content": text}` or `{"content-bin": base64}`."""

    status = 400


class Payload:
    """Text (`binary` False) or bytes (`binary` True). Treat as immutable."""

    __slots__ = ("binary", "_data", "_text", "_size")

    def __init__(self, data: bytes | None, binary: bool, text: str | None = None) -> None:
        if data is None and text is None:
            raise ValueError("a payload needs its bytes or its text")
        self.binary = binary
        self._data = data
        self._text = text  # UTF-8 decoded for text; base64 for binary
        self._size: int | None = None if data is None else len(data)

    @classmethod
    def of_text(cls, text: str) -> Payload:
        return cls(None, False, text)

    @classmethod
    def of_bytes(cls, data: bytes, binary: bool = True) -> Payload:
        """Binary, or with `binary` False the UTF-8 bytes of a text message."""
        return cls(data, binary)

    @property
    def data(self) -> bytes:
        """What @connections is posted."""
        if self._data is None:
            assert self._text is not None
            if self.binary:
                self._data = base64.b64decode(self._text)
            else:
                self._data = self._text.encode("utf-8", "replace")
            self._size = len(self._data)
        return self._data

    @property
    def text(self) -> str:
        """The message as text: itself for text (invalid UTF-8 replaced), base64
        for bytes (how envelope frames and JSON carry binary)."""
        if self._text is None:
            assert self._data is not None
            if self.binary:
                self._text = base64.b64encode(self._data).decode("ascii")
            else:
                self._text = self._data.decode("utf-8", "replace")
        return self._text

    @property
    def size(self) -> int:
        """Bytes on the wire of a raw post."""
        if self._size is None:
            self._size = len(self.data)
        return self._size

    def at_most(self, limit: int) -> bool:
        """Whether the raw post is at most `limit` bytes; a short text is known to
        fit without counting its UTF-8 bytes."""
        if self._size is None and not self.binary and self._text is not None:
            if len(self._text) * UTF8_MAX_BYTES_PER_CHAR <= limit:
                return True
            if len(self._text) > limit:
                return False
        return self.size <= limit

    # -- GRIP's ws-message shape, as queue jobs and keep-alive settings carry it ----

    def to_fields(self) -> dict[str, str]:
        """`{"content": text}` or `{"content-bin": base64}`."""
        return {"content-bin" if self.binary else "content": self.text}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Payload:
        if isinstance(fields.get("content-bin"), str):
            return cls(None, True, fields["content-bin"])
        if isinstance(fields.get("content"), str):
            return cls(None, False, fields["content"])
        raise PayloadError('expected {"content": text} or {"content-bin": base64}')

    @classmethod
    def from_base64(cls, text: str) -> Payload:
        """Binary content given as base64, checked now; the bytes are kept."""
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadError("not valid base64") from None
        return cls(data, True, text)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Payload):
            return NotImplemented
        return self.binary == other.binary and self.data == other.data

    def __hash__(self) -> int:
        return hash((self.binary, self.data))

    def __repr__(self) -> str:
        kind = "bytes" if self.binary else "text"
        shown = repr(self._text if self._text is not None else self._data)
        return f"Payload({kind}, {shown[:60]}{'...' if len(shown) > 60 else ''})"
