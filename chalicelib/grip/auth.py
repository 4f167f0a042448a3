"""Who may use the control API: `Authorization: Bearer <JWT or key>`. Pure."""

from __future__ import annotations

import hmac

from . import token
from .errors import ControlDisabled, Unauthorized
from .limits import MAX_TOKEN_LIFETIME


def authorize(header: str | None, key: str | None, iss: str | None = None) -> None:
    """Pass if the header carries the deployment key; Unauthorized (401) if not,
    ControlDisabled (503) if no key is configured.

    Accepts `Bearer <JWT>` (HS256 over the key, `exp` required, finite and at most
    MAX_TOKEN_LIFETIME ahead, `iss` checked when configured; never a token made
    for backends, such as the gateway's own Grip-Sig) and `Bearer <key>`
    itself, which is what pubcontrol sends when it has a key but no issuer. With
    no key configured nothing is allowed. The key is read from this header only:
    a `?key=` in the URL (a GRIP URI pasted whole) authorizes nothing."""
    if not key:
        raise ControlDisabled("the control API is disabled: SLIPWAY_KEY is not configured")
    if not header:
        raise Unauthorized("missing Authorization header (expected: Bearer <token>)")
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("Authorization must be: Bearer <token>")
    if hmac.compare_digest(credential.encode(), key.encode()):
        return
    if credential.count(".") != 2:
        raise Unauthorized("wrong key")
    try:
        claims = token.verify(credential, key, iss=iss, max_lifetime=MAX_TOKEN_LIFETIME)
    except token.TokenError as exc:
        raise Unauthorized(str(exc)) from None
    # Whatever SLIPWAY_CONTROL_ISS says: a backend may log or echo its request headers.
    problem = token.meant_for_backends(claims)
    if problem is not None:
        raise Unauthorized(problem)
