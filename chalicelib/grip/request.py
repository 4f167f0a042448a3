"""What the gateway sends the backend: the request headers (docs/backend-protocol.md)
and the query string of a connection. Pure."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from . import codec
from .meta import sendable

# Hop-by-hop headers, and what the gateway sets itself.
_DROP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-type",
        "accept",
        "connection-id",
    }
)
# A client must never be able to forge meta or a signature.
_FORBIDDEN_PREFIXES = ("meta-", "grip-", "set-meta-")
# The handshake's own mechanics (key, version, extensions...): only the
# subprotocol means something to the backend.
_HANDSHAKE_PREFIX = "sec-websocket-"
_KEPT_HANDSHAKE = "sec-websocket-protocol"


def handshake_headers(
    multi: Mapping[str, list[str]] | None, single: Mapping[str, str] | None
) -> dict[str, str]:
    """The client's handshake headers worth replaying, from an API Gateway event."""
    out: dict[str, str] = {}
    if multi:
        for name, values in multi.items():
            sep = "; " if name.lower() == "cookie" else ", "
            out[name] = sep.join(values)
    elif single:
        out.update(single)
    return {name: value for name, value in out.items() if _replayed(name.lower())}


def _replayed(name: str) -> bool:
    # WSGI servers (and so django-grip) read `Meta_User` as `Meta-User`: both are meta.
    name = name.replace("_", "-").strip()
    if name in _DROP or name.startswith(_FORBIDDEN_PREFIXES):
        return False
    return not name.startswith(_HANDSHAKE_PREFIX) or name == _KEPT_HANDSHAKE


def backend_headers(
    handshake: Mapping[str, str],
    connection_id: str,
    meta: Mapping[str, str],
    grip_sig: str | None,
) -> dict[str, str]:
    headers = dict(handshake)
    headers.update(
        {
            "Content-Type": codec.CONTENT_TYPE,
            "Accept": codec.CONTENT_TYPE,
            "Connection-Id": connection_id,
            "Sec-WebSocket-Extensions": "grip",
        }
    )
    for name, value in sendable(meta).items():
        headers[f"Meta-{name}"] = value
    if grip_sig is not None:
        headers["Grip-Sig"] = grip_sig
    return headers


def query_string(multi: Mapping[str, list[str]] | None, single: Mapping[str, str] | None) -> str:
    """The client's query string from an API Gateway event, for the backend URL."""
    if multi:
        return urlencode([(k, v) for k, vs in multi.items() for v in vs])
    return urlencode(single or {})


def wants_envelope(envelope_all: bool, query: Mapping[str, str] | None) -> bool:
    """Envelope mode: for every connection, or for one that asks with `?envelope=1`."""
    return envelope_all or _asks(query, "envelope")


def wants_ordered(ordered_all: bool, query: Mapping[str, str] | None) -> bool:
    """Ordered delivery: for every connection, or for one that asks with `?ordered=1`."""
    return ordered_all or _asks(query, "ordered")


def _asks(query: Mapping[str, str] | None, name: str) -> bool:
    return str((query or {}).get(name, "")).lower() in ("1", "true")


def frame_bytes(body: str, base64_encoded: bool) -> bytes:
    """A client frame's content as API Gateway hands it over: base64 for a binary
    frame, the text itself for a text frame."""
    return base64.b64decode(body) if base64_encoded else body.encode("utf-8")


def disconnect_status(ctx: Mapping[str, Any]) -> tuple[int | None, str]:
    """The close code and reason of a `$disconnect`'s request context (None: no code)."""
    status = ctx.get("disconnectStatusCode")
    return (int(status) if status is not None else None), str(ctx.get("disconnectReason") or "")
