"""The SQS worker: publishes fanned out to channel members, and deliveries
deferred from $connect.

Queue messages (JSON), all on one FIFO queue:
- `publish` {item | blob}: group `chan#<channel>`. A channel that fits in one page
  is delivered right here; a larger one is split into `part`s, one per page.
- `part` {item | blob, targets}: group `chan#<channel>#p<k>`, delivered by any worker.
- `deliver` {connection, endpoint, frames, close, deadline}: group `conn#<id>`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from . import handlers, services
from .aws.queue import Message
from .aws.sockets import Gone
from .aws.store import Member
from .grip.frames import from_frame

log = logging.getLogger("slipway.fanout")

# How long one invocation keeps trying a connection that is not open yet before
# handing the message back to SQS for a later attempt.
_OPEN_WAIT = 3.0
_BLOB_PREFIX = "publish/"


class TooLarge(Exception):
    """A publish item is over the queue's limit and there is no bucket to carry it."""


def handle_batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Lambda's partial batch response: only the failed records come back.

    On a FIFO queue a failed record must not be overtaken by later ones of its
    group, so processing stops at the first failure and the rest go back too.
    """
    svc = services.current()
    for index, record in enumerate(records):
        try:
            done = _handle(svc, json.loads(record["body"]), record["messageId"])
        except Exception:
            log.exception("message %s failed", record.get("messageId"))
            done = False
        if not done:
            return {
                "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records[index:]]
            }
    return {"batchItemFailures": []}


def _handle(svc: services.Services, body: dict[str, Any], message_id: str) -> bool:
    kind = body.get("kind")
    if kind == "publish":
        return _publish(svc, body, message_id)
    if kind == "part":
        targets = [Member(cid, ep) for ep, ids in body["targets"].items() for cid in ids]
        return deliver(svc, _item(svc, body), targets)
    if kind == "deliver":
        return _deliver_open(svc, body)
    log.error("dropping a queue message of unknown kind %r", kind)
    return True


# -- publishes ----------------------------------------------------------------


def publish_message(svc: services.Services, item: dict[str, Any]) -> Message:
    """The queue message for one publish item; a body over the queue's limit rides in S3."""
    body: dict[str, Any] = {"kind": "publish", "item": item}
    if len(json.dumps(body).encode()) > svc.settings.queue_message_limit - 1024:
        body = {"kind": "publish", "channel": item["channel"], "blob": _store_blob(svc, item)}
    return Message(body, group=f"chan#{item['channel']}")


def _store_blob(svc: services.Services, item: dict[str, Any]) -> str:
    if svc.blobs is None:
        raise TooLarge(
            f"a publish item over the queue's {svc.settings.queue_message_limit} bytes "
            "needs SLIPWAY_BUCKET, and none is configured"
        )
    key = f"{_BLOB_PREFIX}{uuid.uuid4().hex}.json"
    svc.blobs.put(key, json.dumps(item).encode())
    return key


def _item(svc: services.Services, body: dict[str, Any]) -> dict[str, Any]:
    if "blob" in body:
        assert svc.blobs is not None, "a blob reference needs SLIPWAY_BUCKET"
        return json.loads(svc.blobs.get(body["blob"]))
    return body["item"]


def _publish(svc: services.Services, body: dict[str, Any], message_id: str) -> bool:
    channel = body["item"]["channel"] if "item" in body else body["channel"]
    page_size = svc.settings.fanout_page
    members, cursor = svc.store.members(channel, limit=page_size)
    if cursor is None:
        return deliver(svc, _item(svc, body), members)
    # Large channel: one part per page, delivered by parallel invocations.
    pages = [members]
    while cursor is not None:
        members, cursor = svc.store.members(channel, start=cursor, limit=page_size)
        if members:
            pages.append(members)
    ref = {"blob": body["blob"]} if "blob" in body else {"item": body["item"]}
    parts = []
    for k, page in enumerate(pages):
        targets: dict[str, list[str]] = {}
        for m in page:
            targets.setdefault(m.endpoint, []).append(m.connection_id)
        part = {"kind": "part", **ref, "targets": targets}
        if "item" in ref and len(json.dumps(part).encode()) > svc.settings.queue_message_limit:
            ref = {"blob": _store_blob(svc, body["item"])}
            part = {"kind": "part", **ref, "targets": targets}
        # The dedup id makes a retried split enqueue each part only once.
        parts.append(Message(part, group=f"chan#{channel}#p{k}", dedup=f"{message_id}-{k}"))
    svc.queue.send_all(parts)
    return True


def deliver(svc: services.Services, item: dict[str, Any], members: list[Member]) -> bool:
    """Send (or close) to every member concurrently; False if any needs a retry."""
    if not members:
        return True
    data = None if item.get("action") == "close" else from_frame(item)
    targets = [(m.endpoint, m.connection_id) for m in members]
    outcome = svc.sockets.send_many(targets, data, svc.settings.fanout_concurrency)
    for cid in outcome.gone:
        handlers.forget(svc, cid)
    if outcome.too_large:
        # Over API Gateway's 128 KB: retrying would only hold the channel's group.
        log.error("message too large for @connections: not sent to %d", len(outcome.too_large))
    return not outcome.failed


# -- deliveries deferred from $connect ------------------------------------------


def _deliver_open(svc: services.Services, body: dict[str, Any]) -> bool:
    """Deliver what a backend's OPEN response held, once the connection is open."""
    cid, endpoint, frames = body["connection"], body["endpoint"], body["frames"]
    waited = 0.0
    sent = 0
    while True:
        try:
            for frame in frames[sent:]:
                svc.sockets.send(endpoint, cid, from_frame(frame))
                sent += 1
            if body.get("close"):
                svc.sockets.close(endpoint, cid)
            return True
        except Gone:
            if sent:  # it was open, and now it is gone
                handlers.forget(svc, cid)
                return True
            if time.time() >= body["deadline"] or svc.store.get_connection(cid) is None:
                log.warning("connection %s never opened: dropping %d frames", cid, len(frames))
                return True
            if waited >= _OPEN_WAIT:
                return False  # SQS redelivers after the visibility timeout
            time.sleep(0.05)
            waited += 0.05
