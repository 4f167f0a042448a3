"""Who may use the control API: `Authorization: Bearer <JWT or key>`. Pure."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

from . import keys as keys_
from . import token
from .errors import ControlDisabled, Unauthorized
from .limits import MAX_TOKEN_LIFETIME


def authorize(header: str | None, key: str | Iterable[str] | None, iss: str | None = None) -> None:
    """Pass if the header carries a deployment key; Unauthorized (401) if not,
    ControlDisabled (503) if no key is configured. Any key of the list will do
    (docs/security.md#key-rotation).

    Accepts `Bearer <JWT>` (HS256 over the key, `exp` required, finite and at most
    MAX_TOKEN_LIFETIME ahead, `iss` checked when configured; never a token made
    for backends, such as the gateway's own Grip-Sig) and `Bearer <key>`
    itself, which is what pubcontrol sends when it has a key but no issuer. With
    no key configured nothing is allowed. The key is read from this header only:
    a `?key=` in the URL (a GRIP URI pasted whole) authorizes nothing."""
    accepted = keys_.of(key)
    if not accepted:
        raise ControlDisabled("the control API is disabled: SLIPWAY_KEY is not configured")
    if not header:
        raise Unauthorized("missing Authorization header (expected: Bearer <token>)")
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("Authorization must be: Bearer <token>")
    # Every key compared, whichever matches: the time taken says nothing about which.
    if sum(hmac.compare_digest(credential.encode(), k.encode()) for k in accepted):
        return
    if credential.count(".") != 2:
        raise Unauthorized("wrong key")
    claims = _verified(credential, accepted, iss)
    # Whatever SLIPWAY_CONTROL_ISS says: a backend may log or echo its request headers.
    problem = token.meant_for_backends(claims)
    if problem is not None:
        raise Unauthorized(problem)


def _verified(credential: str, accepted: keys_.Keys, iss: str | None) -> dict[str, Any]:
    """The claims of a token signed with any of the keys; Unauthorized saying why
    not (the reason the key that signed it gives, when one did)."""
    problem = "token signature does not match the key"
    for k in accepted:
        try:
            return token.verify(credential, k, iss=iss, max_lifetime=MAX_TOKEN_LIFETIME)
        except token.BadSignature as exc:
            problem = str(exc)
        except token.TokenError as exc:
            raise Unauthorized(str(exc)) from None
    raise Unauthorized(problem if len(accepted) == 1 else "token signature matches no key")
