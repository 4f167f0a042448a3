"""Envelope frames between client and gateway (docs/envelope.md), as in
`@casual-simulation/aux-websocket-aws`. Pure: no I/O.

| frame                              | meaning                                         |
|------------------------------------|-------------------------------------------------|
| `[1, id, data]`                    | a message; `data` is any JSON value             |
| `[2, id]`                          | client asks where to upload message `id`        |
| `[3, id, url, method, headers]`    | gateway: upload there                           |
| `[4, id, url, method, headers]`    | the message is at `url` (both directions)       |
| `[5, id, {"success": false, ...}]` | gateway: request `id` failed                    |
| `[6, 0, {"channel", "recovery", ...}]` | gateway: a subscribe's recovery (resume.py) |

A channel message from the gateway carries its position in the channel as a
trailing element (`[1, 0, data, {"channel", "epoch", "offset"}]`, and the same
after a `[4]`'s headers): `Message.stamp` / `Download.stamp` (docs/resume.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import EnvelopeError
from .resume import RECOVERY, Recovery, Stamp, read_recovery, read_stamp

MESSAGE, UPLOAD_REQUEST, UPLOAD_TARGET, DOWNLOAD, FAILURE = 1, 2, 3, 4, 5
# Over this many characters a message goes through an upload instead of a frame.
MAX_INLINE_LENGTH = 32_000

__all__ = [
    "MAX_INLINE_LENGTH",
    "Download",
    "EnvelopeError",
    "Failure",
    "Frame",
    "Message",
    "Recovery",
    "Stamp",
    "UploadRequest",
    "UploadTarget",
    "decode",
    "dumps",
    "encode",
    "fits_inline",
    "strip_query",
]


@dataclass(frozen=True)
class Message:
    """`[1, id, data]`, or `[1, id, data, stamp]` for a channel message from the gateway."""

    id: int
    data: Any
    stamp: Stamp | None = None


@dataclass(frozen=True)
class UploadRequest:
    """`[2, id]`."""

    id: int


@dataclass(frozen=True)
class UploadTarget:
    """`[3, id, url, method, headers]`."""

    id: int
    url: str
    method: str = "PUT"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Download:
    """`[4, id, url, method, headers]`, or `[4, ..., headers, stamp]` (a channel message)."""

    id: int
    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    stamp: Stamp | None = None


@dataclass(frozen=True)
class Failure:
    """`[5, id, {"success": false, "errorCode": ..., "errorMessage": ...}]`."""

    id: int
    code: str
    message: str


Frame = Message | UploadRequest | UploadTarget | Download | Failure | Recovery


def dumps(value: Any) -> str:
    """JSON text as JavaScript's `JSON.stringify` writes it: no spaces, no escaping
    of non-ASCII. Raises TypeError for what JSON cannot carry."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(frame: Frame) -> str:
    """The text of one frame."""
    match frame:
        case Message(id=mid, data=data, stamp=stamp):
            return dumps([MESSAGE, mid, data, *_trailer(stamp)])
        case UploadRequest(id=mid):
            return dumps([UPLOAD_REQUEST, mid])
        case UploadTarget(id=mid, url=url, method=method, headers=headers):
            return dumps([UPLOAD_TARGET, mid, url, method, headers])
        case Download(id=mid, url=url, method=method, headers=headers, stamp=stamp):
            return dumps([DOWNLOAD, mid, url, method, headers, *_trailer(stamp)])
        case Failure(id=mid, code=code, message=message):
            error = {"success": False, "errorCode": code, "errorMessage": message}
            return dumps([FAILURE, mid, error])
        case Recovery():
            return dumps([RECOVERY, 0, frame.to_json()])
    raise TypeError(f"not an envelope frame: {frame!r}")


def _trailer(stamp: Stamp | None) -> list[dict[str, Any]]:
    return [] if stamp is None else [stamp.to_json()]


def fits_inline(frame_text: str) -> bool:
    """Whether a `[1, id, data]` frame may go as it is.

    The limit is counted in UTF-8 bytes, which for ASCII is the aux client's
    character count and for other text keeps the frame under API Gateway's
    32 KB frame limit, which is in bytes.
    """
    if len(frame_text) > MAX_INLINE_LENGTH:
        return False
    return len(frame_text.encode("utf-8")) <= MAX_INLINE_LENGTH


def strip_query(url: str) -> str:
    """`url` without its query string and fragment (what `[4]` reports after an upload)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def decode(text: str | bytes) -> Frame:
    """The frame in `text`; `EnvelopeError` saying what is wrong otherwise."""
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError(f"frame is not JSON: {_snippet(text)}") from None
    if not isinstance(value, list) or len(value) < 2:
        raise EnvelopeError(f"frame is not a [kind, id, ...] array: {_snippet(text)}")
    kind, mid = value[0], value[1]
    if not _is_int(kind) or not _is_int(mid):
        raise EnvelopeError(f"frame kind and id must be integers: {_snippet(text)}")
    rest = value[2:]
    if kind == MESSAGE:
        if len(rest) not in (1, 2):
            raise EnvelopeError("a [1] frame is [1, id, data] or [1, id, data, position]")
        return Message(mid, rest[0], read_stamp(rest[1]) if len(rest) == 2 else None)
    if kind == UPLOAD_REQUEST:
        if rest:
            raise EnvelopeError("a [2] frame is [2, id]")
        return UploadRequest(mid)
    if kind == UPLOAD_TARGET:
        return UploadTarget(mid, *_location(kind, rest))
    if kind == DOWNLOAD:
        stamp = read_stamp(rest.pop()) if len(rest) == 4 else None
        return Download(mid, *_location(kind, rest), stamp=stamp)
    if kind == FAILURE:
        if len(rest) != 1 or not isinstance(rest[0], dict):
            raise EnvelopeError("a [5] frame is [5, id, {errorCode, errorMessage}]")
        error = rest[0]
        return Failure(mid, str(error.get("errorCode", "")), str(error.get("errorMessage", "")))
    if kind == RECOVERY:
        if len(rest) != 1:
            raise EnvelopeError("a [6] frame is [6, 0, {channel, epoch, offset, recovery, ...}]")
        return read_recovery(rest[0])
    raise EnvelopeError(f"unknown frame kind {kind}")


def _location(kind: int, rest: list[Any]) -> tuple[str, str, dict[str, str]]:
    if len(rest) not in (2, 3):
        raise EnvelopeError(f"a [{kind}] frame is [{kind}, id, url, method, headers]")
    url, method = rest[0], rest[1]
    headers = rest[2] if len(rest) == 3 else {}
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise EnvelopeError(f"[{kind}] frame: url must be an http(s) URL")
    if not isinstance(method, str) or not method:
        raise EnvelopeError(f"[{kind}] frame: method must be a string")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise EnvelopeError(f"[{kind}] frame: headers must be an object of strings")
    return url, method.upper(), dict(headers)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _snippet(text: str | bytes) -> str:
    return repr(text[:80]) + ("…" if len(text) > 80 else "")
