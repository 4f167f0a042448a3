"""Envelope frames (docs/envelope.md), the gateway's side: what a client's frame asks for,
the frames the gateway answers with, and the S3 keys of uploads. Pure.

The frames are those of `@casual-simulation/aux-websocket-aws`:
`[1, id, data]` a message, `[2, id]` "where may I upload?", `[3, id, url, method,
headers]` "there", `[4, id, url, method, headers]` "the message is at url",
`[5, id, {"success": false, "errorCode", "errorMessage"}]` "request id failed".
slipway's own addition, for clients that track positions (docs/resume.md): a
channel message's position as a trailing element of `[1]` and `[4]`, and `[6, 0,
{...}]` "where you are in a channel, and what recovery did". The aux client
ignores trailing elements and frame types it does not know.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlsplit

from . import text as _text
from .errors import ParseError
from .limits import MAX_INLINE, MAX_SAFE_INTEGER, UTF8_MAX_BYTES_PER_CHAR

MESSAGE, UPLOAD_REQUEST, UPLOAD_TARGET, DOWNLOAD, FAILURE, POSITION = 1, 2, 3, 4, 5, 6
PUSH_ID = 0  # the id of a message the gateway sends
DOWNLOAD_ID = -1  # the id of a download the gateway announces
UPLOAD_PREFIX = "uploads/"
DOWNLOAD_PREFIX = "downloads/"
# What the aux client sends with its PUT; the presigned URL is signed for them.
UPLOAD_HEADERS = {"Content-Type": "application/json", "x-amz-acl": "bucket-owner-full-control"}


class Code(StrEnum):
    """The `errorCode` of a `[5]` frame."""

    NOT_AN_ARRAY = "not_an_array"  # not JSON, or not a [type, id, ...] array
    UNKNOWN_TYPE = "unknown_frame_type"
    INVALID_FRAME = "invalid_frame"  # a known type with the wrong fields
    UPLOAD_NOT_FOUND = "upload_not_found"
    UPLOAD_TAKEN = "upload_taken"  # announced already: an upload is taken once
    FOREIGN_KEY = "foreign_key"  # a key this connection was not given
    TOO_LARGE = "message_too_large"
    UPLOAD_EXPIRED = "upload_expired"
    INVALID_UPLOAD = "invalid_upload"  # the uploaded object is not JSON
    UNAVAILABLE = "uploads_unavailable"  # the deployment has no bucket
    GATEWAY_ERROR = "gateway_error"  # S3 failed: the client may try again


class FrameRefused(ParseError):
    """A client's frame or upload is refused: answer with `failure(id, code, message)`
    (a `[5]` frame; 400 is its status where an HTTP answer is wanted)."""

    def __init__(self, id: int, code: Code, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.id = id
        self.code = code
        self.message = message


class Text(NamedTuple):
    """`[1, id, data]`: forward `content` to the backend as one TEXT event."""

    id: int
    content: bytes


class UploadRequest(NamedTuple):
    """`[2, id]`."""

    id: int


class Uploaded(NamedTuple):
    """`[4, id, url, ...]`: the client has uploaded message `id` to `url`."""

    id: int
    url: str


ClientFrame = Text | UploadRequest | Uploaded


def dumps(value: Any) -> str:
    """JSON as JavaScript's `JSON.stringify` writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str | bytes) -> Any:
    """JSON as JavaScript's `JSON.parse` reads it: no NaN or Infinity. ValueError
    for JSON nested deeper than Python's recursion limit, as for any bad JSON."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read(text: str) -> ClientFrame:
    """What a client's text frame asks for; `FrameRefused` saying what is wrong otherwise."""
    try:
        value = loads(text)
    except ValueError:
        raise FrameRefused(PUSH_ID, Code.NOT_AN_ARRAY, "a frame must be a JSON array") from None
    if not isinstance(value, list) or len(value) < 2 or not _is_int(value[1]):
        raise FrameRefused(
            PUSH_ID, Code.NOT_AN_ARRAY, "a frame must be a JSON array [type, id, ...]"
        )
    if abs(value[1]) > MAX_SAFE_INTEGER:
        raise FrameRefused(
            PUSH_ID, Code.INVALID_FRAME, f"a frame id is an integer of at most {MAX_SAFE_INTEGER}"
        )
    kind, mid = value[0], value[1]
    bad = _text.unpaired_at(value[2:])
    if bad is not None:
        raise FrameRefused(mid, Code.INVALID_FRAME, f"the frame's data {_text.PROBLEM}")
    if not _is_int(kind):  # true == 1 and 1.0 == 1 in Python, not in a frame
        raise FrameRefused(
            mid, Code.UNKNOWN_TYPE, f"unknown frame type {kind!r}: expected 1, 2 or 4"
        )
    if kind == MESSAGE and len(value) == 3:
        return Text(mid, to_content(value[2]))
    if kind == UPLOAD_REQUEST and len(value) == 2:
        return UploadRequest(mid)
    if kind == DOWNLOAD and len(value) >= 3 and isinstance(value[2], str):
        return Uploaded(mid, value[2])
    if kind in (MESSAGE, UPLOAD_REQUEST, DOWNLOAD):
        shapes = {MESSAGE: "[1, id, data]", UPLOAD_REQUEST: "[2, id]", DOWNLOAD: "[4, id, url]"}
        raise FrameRefused(mid, Code.INVALID_FRAME, f"a [{kind}] frame is {shapes[kind]}")
    raise FrameRefused(mid, Code.UNKNOWN_TYPE, f"unknown frame type {kind!r}: expected 1, 2 or 4")


def to_content(data: Any) -> bytes:
    """A message's data as the backend gets it: a string as it is, any other
    JSON value as its JSON text."""
    return (data if isinstance(data, str) else dumps(data)).encode("utf-8")


def uploaded_content(id: int, body: bytes) -> bytes:
    """The TEXT content of an uploaded message (the JSON text of its data)."""
    try:
        data = loads(body)
    except ValueError:
        raise FrameRefused(id, Code.INVALID_UPLOAD, "the uploaded message is not JSON") from None
    if _text.unpaired_at(data) is not None:
        raise FrameRefused(id, Code.INVALID_UPLOAD, f"the uploaded message {_text.PROBLEM}")
    # Anything but a string goes on as it was uploaded, byte for byte.
    return data.encode("utf-8") if isinstance(data, str) else body


# -- gateway -> client ----------------------------------------------------------


def wrap(content: str, trailer: dict[str, Any] | None = None) -> str:
    """`[1, 0, data]` for a message to the client: a JSON object or array is
    embedded as JSON (byte for byte), anything else as a string. A `trailer`
    (a channel message's position) goes last: `[1, 0, data, trailer]`."""
    end = "]" if trailer is None else f",{dumps(trailer)}]"
    if content.lstrip()[:1] in ("{", "["):
        try:
            value = loads(content)
        except ValueError:
            pass
        else:
            if isinstance(value, dict | list):
                return f"[{MESSAGE},{PUSH_ID},{content}{end}"
    return dumps([MESSAGE, PUSH_ID, content])[:-1] + end


def unwrapped(frame: str) -> bytes:
    """The JSON text of a `wrap()`ped frame's data: what a download holds."""
    return frame[len(f"[{MESSAGE},{PUSH_ID},") : -1].encode("utf-8")


def download_form(text: str) -> bytes:
    """A message as an envelope client downloads it: the JSON text of its data."""
    return unwrapped(wrap(text))


def from_download_form(body: bytes) -> str:
    """The text `download_form` stored: a JSON string holds it quoted, a JSON
    object or array is the text itself."""
    text = body.decode("utf-8")
    return json.loads(text) if text.startswith('"') else text


def fits(frame: str) -> bool:
    """Whether a frame may go to the client as it is."""
    if len(frame) <= MAX_INLINE // UTF8_MAX_BYTES_PER_CHAR:
        return True
    return len(frame) <= MAX_INLINE and len(frame.encode("utf-8")) <= MAX_INLINE


def upload_target(id: int, url: str, headers: dict[str, str]) -> str:
    return dumps([UPLOAD_TARGET, id, url, "PUT", headers])


def download(url: str, id: int = DOWNLOAD_ID, trailer: dict[str, Any] | None = None) -> str:
    return dumps([DOWNLOAD, id, url, "GET", {}] + ([] if trailer is None else [trailer]))


def position(report: dict[str, Any]) -> str:
    """`[6, 0, report]`: a channel's position, and what recovery did (docs/resume.md)."""
    return dumps([POSITION, PUSH_ID, report])


def failure(id: int, code: Code, message: str) -> str:
    error = {"success": False, "errorCode": str(code), "errorMessage": message}
    return dumps([FAILURE, id, error])


# -- upload keys --------------------------------------------------------------------

_KEY = re.compile(r"(?P<expires>[0-9]{1,12})-(?P<id>-?[0-9]{1,20})-(?P<nonce>[0-9a-f]{8,64})\.json")


def upload_prefix(connection_id: str) -> str:
    """The only prefix a connection's uploads may be under."""
    return f"{UPLOAD_PREFIX}{quote(connection_id, safe='')}/"


def upload_key(connection_id: str, id: int, expires_at: int, nonce: str) -> str:
    """The key one upload may be PUT to; it carries its own expiry, so checking
    an announced upload needs no table lookup."""
    return f"{upload_prefix(connection_id)}{expires_at}-{id}-{nonce}.json"


def key_of(url: str, bucket: str) -> str:
    """The object key in an announced URL's path (path-style or virtual-hosted);
    the URL itself is never fetched."""
    path = unquote(urlsplit(url).path).lstrip("/")
    if path.startswith(f"{bucket}/"):
        path = path[len(bucket) + 1 :]
    return path


def check_upload_key(id: int, key: str, connection_id: str) -> int:
    """The expiry (epoch seconds) of an upload key issued to this connection;
    `FrameRefused` for any key outside its prefix or not of the issued shape."""
    prefix = upload_prefix(connection_id)
    # S3 keys are literal ("../" is no parent), so one level under the prefix is the rule.
    if not key.startswith(prefix) or "/" in key[len(prefix) :]:
        raise FrameRefused(id, Code.FOREIGN_KEY, "that upload does not belong to this connection")
    match = _KEY.fullmatch(key[len(prefix) :])
    if match is None:
        raise FrameRefused(id, Code.UPLOAD_NOT_FOUND, "no upload was issued under that key")
    return int(match["expires"])
