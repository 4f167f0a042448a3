"""HS256 JSON Web Tokens, written out with hmac (no PyJWT dependency). Pure.

Used for `Grip-Sig` (gateway -> backend) and the control API's bearer token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from typing import Any

from .errors import GripSigError

_HEADER = b'{"alg":"HS256","typ":"JWT"}'


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, TypeError):
        raise GripSigError("token is not base64url") from None


def _key(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def _finite(value: Any) -> float | None:
    """A JSON number as a float, or None for a boolean, NaN, an infinity or an
    integer past float's range (NaN compares false with everything: it would
    never expire)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def sign(claims: dict[str, Any], key: str | bytes) -> str:
    """A compact HS256 JWT carrying `claims`."""
    body = _b64(_HEADER) + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(_key(key), body, hashlib.sha256).digest()
    return (body + b"." + _b64(mac)).decode("ascii")


def verify(
    token: str, key: str | bytes, *, iss: str | None = None, now: float | None = None
) -> dict[str, Any]:
    """The claims of a valid token, else `GripSigError` saying why.

    HS256 only; `exp` is required, a finite number and in the future; `iss` is
    checked when given.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise GripSigError("token is not a JWT (expected three dot-separated parts)")
    try:
        header = json.loads(_unb64(parts[0]))
    except ValueError:
        raise GripSigError("token header is not JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise GripSigError("token algorithm must be HS256")
    expected = hmac.new(_key(key), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64(parts[2])):
        raise GripSigError("token signature does not match the key")
    try:
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        raise GripSigError("token claims are not JSON") from None
    if not isinstance(claims, dict):
        raise GripSigError("token claims are not a JSON object")
    if "exp" not in claims:
        raise GripSigError("token has no exp claim")
    exp = _finite(claims["exp"])
    if exp is None:
        raise GripSigError("token exp must be a finite number of seconds since the epoch")
    if (time.time() if now is None else now) >= exp:
        raise GripSigError("token has expired")
    if iss is not None and claims.get("iss") != iss:
        raise GripSigError(f"token issuer {claims.get('iss')!r} is not {iss!r}")
    return claims
