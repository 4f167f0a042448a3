"""Ordered delivery (docs/ordered.md): a connection's events reach the backend one
request at a time, in the order API Gateway received them, batched.

API Gateway may run a connection's `$default` invocations at once, so the order
they finish in is not the order the client sent. Each one therefore writes its
event to the connection's inbox (a table row keyed by API Gateway's receipt time)
and wakes the forwarder through the connection's message group of a FIFO queue.
The forwarder (an SQS function, one batch per group at a time, so one request in
flight per connection) waits until the newest event it was woken for is
`SLIPWAY_ORDERED_HOLD_MS` old, so that every invocation that started before has
written its event, then takes everything in the inbox up to then, in receipt
order, and makes it one request (or a few, each at most `ORDERED_REQUEST_BYTES`),
as Pushpin batches what queued while a request was in flight. `$disconnect`
goes through the inbox too: CLOSE comes after every earlier message.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from . import farewell, handlers, services, transfers
from .aws.queue import Message
from .grip import codec
from .grip import ordered as o
from .grip.errors import ConfigError
from .grip.limits import FIFO_BATCH
from .grip.model import Connection

log = logging.getLogger("slipway.ordered")

BATCH = FIFO_BATCH  # the forwarder's batch size (app.py)


class NotConfigured(ConfigError):
    """Ordered delivery was asked for, but the deployment has no ordered queue."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _put(svc: services.Services, job: o.Job, message_id: str) -> None:
    queue = svc.ordered_queue
    if queue is None:
        raise NotConfigured("ordered delivery needs SLIPWAY_ORDERED_QUEUE_URL (docs/ordered.md)")
    svc.inbox.put(job, message_id)
    wake = o.Wake(job.connection_id, job.received_ms, _now_ms())
    queue.send(Message(o.encode_wake(wake), o.group(job.connection_id)))


def enqueue_message(svc: services.Services, conn: Connection, event: dict[str, Any]) -> None:
    """`$default` of an ordered connection: the frame as it came, read later in order."""
    ctx = event["requestContext"]
    body = event.get("body") or ""
    binary = bool(event.get("isBase64Encoded"))
    raw = base64.b64decode(body) if binary else body.encode("utf-8")
    received = int(ctx.get("requestTimeEpoch") or _now_ms())
    mid = str(ctx.get("messageId") or ctx.get("requestId") or f"{time.time_ns()}")
    _put(svc, o.Inbound(conn.id, received, raw, binary), mid)


def enqueue_end(svc: services.Services, cid: str, ctx: dict[str, Any] | None) -> None:
    """The connection ended (`$disconnect`, or a post found it gone: `ctx` None):
    the backend hears of it after every message received before."""
    if ctx is None:
        job = o.Ended(cid, _now_ms())
    else:
        status = ctx.get("disconnectStatusCode")
        received = int(ctx.get("requestTimeEpoch") or _now_ms())
        reason = ctx.get("disconnectReason") or ""
        job = o.Ended(cid, received, int(status) if status is not None else None, reason)
    _put(svc, job, "~end")  # after any message of the same millisecond


# -- the forwarder -------------------------------------------------------------


def handle_batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of wake-ups: each connection's inbox forwarded, in order. A failure
    before the inbox was taken leaves the group's wake-ups to SQS for a retry."""
    svc = services.current()
    groups: dict[str, list[o.Wake]] = {}
    ids: dict[str, list[str]] = {}
    for record in records:
        try:
            wake = o.decode_wake(record["body"])
        except o.OrderedJobError as exc:
            log.error("dropping a message of the ordered queue: %s", exc)
            continue
        groups.setdefault(wake.connection_id, []).append(wake)
        ids.setdefault(wake.connection_id, []).append(record["messageId"])
    failed: list[str] = []
    for cid, wakes in groups.items():
        try:
            forward(svc, cid, wakes)
        except Exception:
            log.exception("ordered delivery for %s failed; SQS retries it", cid)
            failed.extend(ids[cid])
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}


def forward(svc: services.Services, cid: str, wakes: list[o.Wake]) -> None:
    """Forward a connection's inbox up to the newest event it was woken for, once
    every invocation received before that one has had the hold time to write its
    own: API Gateway started them earlier, and they run about as long."""
    wait = max(w.written_ms for w in wakes) + svc.settings.ordered_hold_ms - _now_ms()
    if wait > 0:
        time.sleep(wait / 1000)
    jobs = svc.inbox.take(cid, max(w.received_ms for w in wakes))
    if not jobs:
        return  # taken with an earlier wake-up's
    messages, end = o.until_ended(jobs)
    if messages:
        conn = svc.store.get_connection(cid)
        if conn is None:
            log.info("ordered: %d messages of %s, which is gone, dropped", len(messages), cid)
        else:
            _send(svc, conn, messages)
    if end is not None:
        farewell.ended(svc, end.connection_id, end.status, end.reason)


def _send(svc: services.Services, conn: Connection, messages: list[o.Inbound]) -> None:
    if conn.detached:
        return
    events = [e for e in (_event(svc, conn, m) for m in messages) if e is not None]
    for number, request in enumerate(o.requests(events)):
        if number:  # the backend may have set meta, or detached, or closed
            fresh = svc.store.get_connection(conn.id)
            if fresh is None or fresh.detached:
                return
            conn = fresh
        handlers.handle_events(svc, conn, request)


def _event(svc: services.Services, conn: Connection, job: o.Inbound) -> codec.Event | None:
    if conn.envelope:
        return transfers.incoming(svc, conn, job.body.decode("utf-8", "replace"), job.binary)
    return codec.Event("BINARY" if job.binary else "TEXT", job.body)
