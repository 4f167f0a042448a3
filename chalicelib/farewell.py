"""Telling the backend that a connection ended."""

from __future__ import annotations

import logging

from . import services
from .backend import BackendUnreachable
from .grip import codec
from .grip.model import Connection

log = logging.getLogger("slipway.farewell")


def farewell(svc: services.Services, conn: Connection, event: codec.Event) -> None:
    """Send the backend a connection's CLOSE or DISCONNECT: one attempt, and what
    it answers has no one to reach."""
    try:
        svc.backend.call(conn, [event], retry=False)
    except BackendUnreachable as exc:
        log.warning("could not tell the backend that %s closed: %s", conn.id, exc)


def ended(svc: services.Services, cid: str, status: int | None, reason: str) -> None:
    """The connection closed with `status` and `reason` (API Gateway's): remove its
    rows and tell the backend, with the code a control API close gave, if one did."""
    conn = svc.store.remove_connection(cid)
    if conn is None or conn.detached:
        return  # told already (a post found it gone, then $disconnect came), or detached
    if conn.close_code is not None:  # closed through the control API, with a code
        event = codec.closing_event(conn.close_code, conn.close_reason)
    else:
        event = codec.closing_event(status, reason)
    farewell(svc, conn, event)


def forget(svc: services.Services, cid: str) -> None:
    """A post found the connection gone (410) outside any event of its own: remove
    its rows now and tell the backend, which may otherwise never hear of it."""
    if svc.settings.ordered_queue_url:
        from . import ordered  # an ordered connection's DISCONNECT waits for its messages

        kept = svc.store.get_connection(cid)
        if kept is not None and kept.ordered:
            ordered.enqueue_end(svc, cid, None)
            return
    conn = svc.store.remove_connection(cid)
    if conn is not None and not conn.detached:
        farewell(svc, conn, codec.Event("DISCONNECT"))
