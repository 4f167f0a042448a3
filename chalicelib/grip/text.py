"""Text that enters slipway, checked once at the edge for what the next hop can
carry. Pure.

JSON's `\\ud800`-style escapes (and Python's `surrogatepass` reading of bytes) can
make a string hold a lone UTF-16 surrogate: a code point that is not Unicode text,
has no UTF-8 form, and fails later in every hop that encodes it (the DynamoDB,
SQS and S3 clients, header building, @connections) -- long after the caller was
told the request was accepted. Paired surrogates never survive `json.loads` (it
joins them into one character), so any surrogate code point left is lone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
PROBLEM = (
    "holds a lone UTF-16 surrogate (such as \\udc80), which is not Unicode text "
    "and has no UTF-8 form: send valid text"
)


def is_text(value: str) -> bool:
    """True if `value` encodes to UTF-8 (holds no lone surrogate)."""
    return _SURROGATE.search(value) is None


def unpaired_at(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (an object's key or any value) in a
    parsed JSON `value` that is not text; None if every string is. The path is
    the caller's field names as written (`items.0.formats.ws-message.content`);
    a bad key is named by the path it would have had."""
    if isinstance(value, str):
        return None if is_text(value) else (path or "body")
    if isinstance(value, Mapping):
        for key, inner in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not is_text(key):
                return where
            found = unpaired_at(inner, where)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, inner in enumerate(value):
            found = unpaired_at(inner, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None
