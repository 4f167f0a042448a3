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

import logging
import time
from typing import Any

from . import executor, services, transfers
from .grip import codec
from .grip import effects as fx
from .grip import ordered as o
from .grip.limits import FIFO_BATCH
from .grip.model import Connection

log = logging.getLogger("slipway.ordered")

BATCH = FIFO_BATCH  # the forwarder's batch size (app.py)

# `$default` and `$disconnect` of an ordered connection write to its inbox
# (`grip.effects.Inbox`, carried out by the executor); this module is the reader.


def _now_ms() -> int:
    return int(time.time() * 1000)


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
        executor.execute(svc, [fx.Ended(end.connection_id, end.status, end.reason, final=True)])


def _send(svc: services.Services, conn: Connection, messages: list[o.Inbound]) -> None:
    if conn.detached:
        return
    events: list[codec.Event] = []
    for m in messages:
        event = transfers.event_of(svc, conn, m.body, m.binary)
        if event is not None:
            events.append(event)
    for number, request in enumerate(o.requests(events)):
        if number:  # the backend may have set meta, or detached, or closed
            fresh = svc.store.get_connection(conn.id)
            if fresh is None or fresh.detached:
                return
            conn = fresh
        executor.execute(svc, [fx.Forward(conn, tuple(request))])
