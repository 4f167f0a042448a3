"""A connection's end: an ordered one's waits in its inbox behind its messages
(docs/ordered.md); otherwise its rows are removed and the backend is told how
it closed (a detached one is not). Carried out for the executor's `Ended`,
`Forget` and `Inbox` effects: the one place that knows the ordered rule."""

from __future__ import annotations

import logging
import time

from . import services
from .aws.queue import Message
from .backend import BackendUnreachable
from .grip import codec
from .grip import effects as fx
from .grip import ordered as o
from .grip.errors import ConfigError
from .grip.model import Connection

log = logging.getLogger("slipway.farewell")


class NotConfigured(ConfigError):
    """Ordered delivery was asked for, but the deployment has no ordered queue."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def inbox(svc: services.Services, job: o.Job, message_id: str) -> None:
    """Write an ordered connection's event to its inbox and wake the forwarder."""
    queue = svc.ordered_queue
    if queue is None:
        raise NotConfigured("ordered delivery needs SLIPWAY_ORDERED_QUEUE_URL (docs/ordered.md)")
    svc.inbox.put(job, message_id)
    wake = o.Wake(job.connection_id, job.received_ms, _now_ms())
    queue.send(Message(o.encode_wake(wake), o.group(job.connection_id)))


def _ordered(svc: services.Services, cid: str) -> bool:
    """Whether the connection's end must wait in its inbox, behind its messages
    (the forwarder needs its row until then)."""
    if not svc.settings.ordered_queue_url:
        return False
    kept = svc.store.get_connection(cid)
    return kept is not None and kept.ordered


def ended(svc: services.Services, effect: fx.Ended) -> None:
    """The connection closed with a status and reason (API Gateway's): remove its
    rows and tell the backend, with the code a control API close gave, if one did."""
    cid = effect.connection_id
    if not effect.final and _ordered(svc, cid):
        received = effect.received_ms or _now_ms()
        job = o.Ended(cid, received, effect.status, effect.reason)
        inbox(svc, job, "~end")  # after any message of the same millisecond
        return
    conn = svc.store.remove_connection(cid)
    if conn is None or conn.detached:
        return  # told already (a post found it gone, then $disconnect came), or detached
    if conn.close_code is not None:  # closed through the control API, with a code
        event = codec.closing_event(conn.close_code, conn.close_reason)
    else:
        event = codec.closing_event(effect.status, effect.reason)
    _farewell(svc, conn, event)


def forget(svc: services.Services, cid: str) -> None:
    """A post found the connection gone (410) outside any event of its own: remove
    its rows now and tell the backend, which may otherwise never hear of it."""
    if _ordered(svc, cid):  # an ordered connection's DISCONNECT waits for its messages
        inbox(svc, o.Ended(cid, _now_ms()), "~end")
        return
    conn = svc.store.remove_connection(cid)
    if conn is not None and not conn.detached:
        _farewell(svc, conn, codec.Event("DISCONNECT"))


def _farewell(svc: services.Services, conn: Connection, event: codec.Event) -> None:
    """Send the backend a connection's CLOSE or DISCONNECT: one attempt, and what
    it answers has no one to reach."""
    try:
        svc.backend.call(conn, [event], retry=False)
    except BackendUnreachable as exc:
        log.warning("could not tell the backend that %s closed: %s", conn.id, exc)
