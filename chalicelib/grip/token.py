"""HS256 JWTs: Grip-Sig for the backend, bearer tokens for the control API.

Written out rather than imported: it is thirty lines, HS256 only, and keeps a
dependency (and its import time) out of every Lambda.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from typing import Any

from .errors import ParseError

_HEADER = b'{"alg":"HS256","typ":"JWT"}'

# Token confusion (docs/security.md#token-confusion): the same key signs what the
# gateway hands every backend request and what opens the control API, so each says
# what it is for. Grip-Sig carries `"use": "grip-sig"` (a private claim: gripcontrol's
# `validate_sig` and PyJWT ignore it, where an `aud` would make them refuse the
# token); the control API refuses any `use` but "control", and these issuers:
# slipway's own Grip-Sig, and Pushpin's (a backend behind both may share the key).
USE_CLAIM = "use"
GRIP_SIG_USE = "grip-sig"
CONTROL_USE = "control"
GRIP_SIG_ISSUER = "slipway"
BACKEND_ISSUERS = frozenset({GRIP_SIG_ISSUER, "pushpin"})
GRIP_SIG_LIFETIME = 3600


class TokenError(ParseError):
    """A token is malformed, forged, expired or from the wrong issuer."""

    status = 401


class BadSignature(TokenError):
    """A well-formed token that this key did not sign (another key may have)."""


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
    """The Grip-Sig header value: fresh for every request, valid one hour, and
    marked as meant for a backend (the control API refuses it)."""
    now = time.time() if now is None else now
    claims = {"iss": GRIP_SIG_ISSUER, "exp": int(now) + GRIP_SIG_LIFETIME, USE_CLAIM: GRIP_SIG_USE}
    return sign(claims, key)


def finite_seconds(value: Any) -> float | None:
    """A JSON number of seconds as a float, or None if it is not one a clock can
    reach: not a number, a boolean, NaN or an infinity (NaN compares false with
    everything, so it would never expire), or an integer past float's range."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return seconds if math.isfinite(seconds) else None


def meant_for_backends(claims: dict[str, Any]) -> str | None:
    """Why a verified token is not a control API token (it was made for a
    backend: a Grip-Sig, slipway's or Pushpin's), or None if it may be one."""
    use = claims.get(USE_CLAIM, CONTROL_USE)
    if use != CONTROL_USE:
        return (
            f"token is for use {use!r}, not the control API: a Grip-Sig proves a request "
            "came from the gateway and opens nothing (sign a control token with the key)"
        )
    iss = claims.get("iss")
    if isinstance(iss, str) and iss in BACKEND_ISSUERS:  # a list or object is unhashable
        return (
            f"token issuer {iss!r} signs Grip-Sig toward backends (slipway's or Pushpin's), "
            "not control tokens: a control token needs another iss (or none)"
        )
    return None


def verify(
    token: str,
    key: str | bytes,
    iss: str | None = None,
    now: float | None = None,
    max_lifetime: float | None = None,
) -> dict[str, Any]:
    """The claims of a valid token; TokenError saying why otherwise. `exp` is required,
    a finite number, and at most `max_lifetime` seconds ahead when that is given (a
    token that never expires would be as good as the key if it leaked). `nbf` and
    `iat` are not read."""
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
        raise BadSignature("token signature does not match the key")
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, RecursionError):
        raise TokenError("token claims are not JSON") from None
    if not isinstance(claims, dict):
        raise TokenError("token claims are not an object")
    if "exp" not in claims:
        raise TokenError("token has no exp claim")
    exp = finite_seconds(claims["exp"])
    if exp is None:
        raise TokenError("token exp must be a finite number of seconds since the epoch")
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
