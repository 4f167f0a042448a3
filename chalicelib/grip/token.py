"""HS256 JWTs: Grip-Sig for the backend, bearer tokens for the control API.

Written out rather than imported: it is thirty lines, HS256 only, and keeps a
dependency (and its import time) out of every Lambda.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

_HEADER = b'{"alg":"HS256","typ":"JWT"}'


class TokenError(ValueError):
    """A token is malformed, forged, expired or from the wrong issuer."""


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, TypeError):
        raise TokenError("token is not base64url") from None


def _key(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def sign(claims: dict[str, Any], key: str | bytes) -> str:
    body = _b64(_HEADER) + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(_key(key), body, hashlib.sha256).digest()
    return (body + b"." + _b64(mac)).decode("ascii")


def grip_sig(key: str | bytes, now: float | None = None) -> str:
    """The Grip-Sig header value: fresh for every request, valid one hour."""
    now = time.time() if now is None else now
    return sign({"iss": "slipway", "exp": int(now) + 3600}, key)


def verify(
    token: str,
    key: str | bytes,
    iss: str | None = None,
    now: float | None = None,
    max_lifetime: float | None = None,
) -> dict[str, Any]:
    """The claims of a valid token; TokenError saying why otherwise. `exp` is required,
    and at most `max_lifetime` seconds ahead when that is given (a token that
    never expires would be as good as the key if it leaked)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token is not a JWT (expected three dot-separated parts)")
    try:
        header = json.loads(_unb64(parts[0]))
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise TokenError("token header is not JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("token algorithm must be HS256")
    expected = hmac.new(_key(key), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64(parts[2])):
        raise TokenError("token signature does not match the key")
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, RecursionError):
        raise TokenError("token claims are not JSON") from None
    if not isinstance(claims, dict):
        raise TokenError("token claims are not an object")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenError("token has no exp claim")
    now = time.time() if now is None else now
    if now >= exp:
        raise TokenError("token has expired")
    if max_lifetime is not None and exp > now + max_lifetime:
        raise TokenError(
            f"token expires too far ahead: exp may be at most {max_lifetime:.0f} s from now"
        )
    if iss is not None and claims.get("iss") != iss:
        raise TokenError("token issuer does not match")
    return claims
