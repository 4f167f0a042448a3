"""Backend uploads (docs/control-api.md#large-messages): the refs `POST /uploads`
issues, and the checks a `content-ref` / `content-bin-ref` must pass. Pure.

A ref is the object's key, `backend-uploads/<expires>-<nonce>-<mac>.json`: the
MAC (HMAC-SHA256 over the rest, with the deployment key) says this deployment
issued it, so checking one needs no table, and a ref of another deployment (another
key), a client's envelope upload, or any other key is foreign. The object holds
the message as an envelope client downloads it (the JSON text of its data), so
the one uploaded object is what every envelope recipient fetches.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple

from . import envelope, keys, text
from .errors import SlipwayError
from .limits import MAX_INLINE
from .payload import Payload, PayloadError

PREFIX = "backend-uploads/"
# The PUT is signed for this Content-Type: the object is JSON.
HEADERS = {"Content-Type": "application/json"}
# An object of at most this many bytes goes to envelope clients inline: `[1,0,` + it + `]`.
MAX_INLINE_OBJECT = MAX_INLINE - len("[1,0,]")
_KEY = re.compile(
    re.escape(PREFIX)
    + r"(?P<expires>[0-9]{1,12})-(?P<nonce>[0-9a-f]{16,64})-(?P<mac>[0-9a-f]{32})\.json"
)


class Why(StrEnum):
    """Why a ref is refused (each a 400 naming the item)."""

    FOREIGN = "foreign"
    EXPIRED = "expired"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    INVALID = "invalid"


class RefRefused(SlipwayError):
    """A backend's upload ref cannot stand for content: expired, not found, too
    large or invalid (`why`). The control routes answer it as a 400 naming the field."""

    status = 400

    def __init__(self, why: Why, message: str) -> None:
        super().__init__(f"{why}: {message}")
        self.why = why
        self.message = message


class Issued(NamedTuple):
    key: str
    expires_at: int


def _mac(secret: str, body: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"slipway-upload:{body}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def issue(secret: str, expires_at: int, nonce: str) -> Issued:
    """The key of one upload, valid until `expires_at` (epoch seconds)."""
    body = f"{PREFIX}{expires_at}-{nonce}"
    key = f"{body}-{_mac(secret, body)}.json"
    if _KEY.fullmatch(key) is None:
        raise ValueError("a nonce is 16 to 64 lowercase hex digits")
    return Issued(key, expires_at)


def check(ref: str, secret: str | Iterable[str], now: float) -> int:
    """The expiry of a ref this deployment issued, signed with any of its keys (a
    ref issued before a rotation stays good until it expires); `RefRefused` for a
    foreign or an expired one."""
    match = _KEY.fullmatch(ref)
    if match is None:
        raise RefRefused(
            Why.FOREIGN,
            f"not an upload ref of this deployment (they look like {PREFIX}...; "
            "POST /uploads issues them)",
        )
    body = ref[: match.start("mac") - 1]
    if not any(hmac.compare_digest(_mac(k, body), match["mac"]) for k in keys.of(secret)):
        raise RefRefused(
            Why.FOREIGN, "this deployment did not issue that ref (another key signed it)"
        )
    expires = int(match["expires"])
    if now > expires:
        raise RefRefused(Why.EXPIRED, "the ref expired; upload again (POST /uploads)")
    return expires


def check_size(size: int, limit: int) -> None:
    """The object's size, as S3 says it (a presigned PUT cannot bound it).

    (Its time needs no check: the ref is refused once expired, and an object is
    always uploaded before it is published.)"""
    if size > limit:
        raise RefRefused(
            Why.TOO_LARGE,
            f"the object is {size} bytes; the limit is {limit} (SLIPWAY_MAX_PUBLISH_BYTES)",
        )


def check_start(first: bytes, binary: bool) -> None:
    """A large object is checked by its first byte: a JSON string (text, or for
    binary its base64), object or array; it is served to clients as it is."""
    allowed = (b'"',) if binary else (b'"', b"{", b"[")
    if first[:1] not in allowed:
        raise RefRefused(Why.INVALID, _shape(binary))


def content(data: bytes, binary: bool) -> Payload:
    """The message a small object holds, checked whole."""
    check_start(data, binary)
    try:
        value = envelope.loads(data)
    except ValueError:
        raise RefRefused(Why.INVALID, "the object is not JSON. " + _shape(binary)) from None
    if text.unpaired_at(value) is not None:
        raise RefRefused(Why.INVALID, f"the object {text.PROBLEM}")
    if binary:
        if not isinstance(value, str):
            raise RefRefused(Why.INVALID, _shape(binary))
        try:
            return Payload.from_base64(value)
        except PayloadError:
            raise RefRefused(Why.INVALID, "the JSON string is not valid base64") from None
    if isinstance(value, str):
        return Payload.of_text(value)
    # An object or array is the message's text, byte for byte (as `wrap` embeds it).
    return Payload.of_bytes(data, binary=False)


def _shape(binary: bool) -> str:
    if binary:
        return "content-bin-ref names an object holding a JSON string: the base64 of the bytes"
    return "content-ref names an object holding JSON: a string (the text), an object or an array"
