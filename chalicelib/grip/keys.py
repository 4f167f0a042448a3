"""The deployment's keys (docs/security.md#key-rotation). Pure.

A deployment holds a list of keys so one can be rotated without downtime: the
first signs (Grip-Sig, upload refs, resume floors), any of them verifies (control
API tokens, and what the gateway signed earlier and reads back: refs, floors).

One stored value (SLIPWAY_KEY, the SSM parameter, the Secrets Manager secret)
holds the list as
- one key, as before rotation existed;
- one key per line (how `slipway rotate-key` writes an SSM parameter); blank
  lines and the spaces around a key are ignored;
- a JSON array of strings, `["new", "old"]`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from .errors import ParseError

Keys = tuple[str, ...]


class KeyListError(ParseError):
    """A stored value is not a list of keys. The message never holds a key."""

    status = 500


def parse(raw: str) -> Keys:
    """The keys one stored value holds, first (the signing key) first; duplicates
    dropped. `KeyListError` for a value holding no key."""
    text = raw.strip()
    if text.startswith("["):
        try:
            document = json.loads(text)
        except ValueError:
            document = None  # not JSON: a key that happens to start with "["
        if document is not None:
            return _checked(document, "a JSON array")
    # "\n" only: str.splitlines() also splits at \x0c, \x85, \u2028..., which a key may hold.
    return _checked([line.strip() for line in text.split("\n") if line.strip()], "the value")


def _checked(found: object, what: str) -> Keys:
    if not isinstance(found, list) or not all(isinstance(k, str) for k in found):
        raise KeyListError(f"{what} must hold strings only: one key each")
    stripped = [k.strip() for k in found]
    if not all(stripped):
        raise KeyListError(f"{what} holds an empty key")
    if not stripped:
        raise KeyListError(f"{what} holds no key")
    return tuple(dict.fromkeys(stripped))


def of(keys: str | Iterable[str] | None) -> Keys:
    """A key or a list of keys as the list verifiers try: one key is a list of one."""
    if keys is None:
        return ()
    if isinstance(keys, str):
        return (keys,) if keys else ()
    return tuple(k for k in keys if k)


def signing(keys: Keys) -> str | None:
    """The key that signs: the first."""
    return keys[0] if keys else None


def text(keys: Keys) -> str:
    """How `slipway rotate-key` stores a list: one key per line (`parse` reads it)."""
    if not keys or any(not k or k != k.strip() or "\n" in k for k in keys):
        raise KeyListError("a key is empty, or has spaces around it or a line break in it")
    return "\n".join(keys)


def rotated(current: Keys, new: str) -> Keys:
    """The list once `new` is added: first, so it signs; the others still verify.
    One rotation at a time: a list of more than one key is retired first."""
    if len(current) > 1:
        raise KeyListError(
            f"a rotation is under way ({len(current)} keys): finish it with --retire first"
        )
    if new in current:
        raise KeyListError("the new key is the current one: choose another")
    return text_checked((new, *current))


def retired(current: Keys) -> Keys:
    """The list once every key but the first (the signing one) is dropped."""
    if len(current) < 2:
        raise KeyListError("one key only: nothing to retire (rotate-key adds a new one first)")
    return current[:1]


def text_checked(keys: Keys) -> Keys:
    text(keys)  # a key that could not be stored and read back is refused here
    return keys


def fingerprint(key: str) -> str:
    """A short name for a key that gives nothing of it away (logs, the CLI)."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
