"""Who may use the control API: `Authorization: Bearer <JWT or key>`. Pure."""

from __future__ import annotations

import hmac

from . import token


class AuthError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def authorize(header: str | None, key: str | None, iss: str | None = None) -> None:
    """Raise AuthError(401 or 503) unless the header carries the deployment key.

    Accepts `Bearer <JWT>` (HS256 over the key, `exp` required, `iss` checked when
    configured) and `Bearer <key>` itself, which is what pubcontrol sends when it
    has a key but no issuer. With no key configured nothing is allowed.
    """
    if not key:
        raise AuthError(503, "the control API is disabled: SLIPWAY_KEY is not configured")
    if not header:
        raise AuthError(401, "missing Authorization header (expected: Bearer <token>)")
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise AuthError(401, "Authorization must be: Bearer <token>")
    if hmac.compare_digest(credential.encode(), key.encode()):
        return
    if credential.count(".") != 2:
        raise AuthError(401, "wrong key")
    try:
        token.verify(credential, key, iss=iss)
    except token.TokenError as exc:
        raise AuthError(401, str(exc)) from None
