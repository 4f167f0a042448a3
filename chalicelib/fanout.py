"""The SQS worker: publishes fanned out to channel members, and deliveries
deferred from $connect.

Queue messages (JSON), all on one FIFO queue:
- `publish` {item | blob}: group `chan#<channel>`. A channel that fits in one page
  is delivered right here; a larger one is split into `part`s, one per page.
- `part` {item | blob, targets, wrapped}: group `chan#<channel>#p<k>`, delivered by
  any worker. `targets` and `wrapped` map an endpoint to its raw and envelope-mode
  members.
- `deliver` {connection, endpoint, frames, envelope, close, deadline}: group `conn#<id>`.

A `blob` {channel, blob, binary} stands for an item kept in S3, in the form an
envelope client downloads: every such recipient is sent `[4, -1, url]` for that
one object.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from . import handlers, services
from .aws.queue import Message
from .aws.sockets import Gone, Outcome
from .aws.store import Member
from .grip.envelope import as_text, download_form, from_download_form
from .grip.frames import from_frame
from .transfers import Outgoing

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
        wrapped = body.get("wrapped", {})
        targets += [Member(cid, ep, True) for ep, ids in wrapped.items() for cid in ids]
        return deliver(svc, _item(svc, body), targets, stored=body.get("blob"))
    if kind == "deliver":
        return _deliver_open(svc, body, message_id)
    log.error("dropping a queue message of unknown kind %r", kind)
    return True


# -- publishes ----------------------------------------------------------------


def publish_message(svc: services.Services, item: dict[str, Any]) -> Message:
    """The queue message for one publish item; a body over the queue's limit rides in S3."""
    body: dict[str, Any] = {"kind": "publish", "item": item}
    if len(json.dumps(body).encode()) > svc.settings.queue_message_limit - 1024:
        body = {"kind": "publish", **_store_blob(svc, item)}
    return Message(body, group=f"chan#{item['channel']}")


def _store_blob(svc: services.Services, item: dict[str, Any]) -> dict[str, Any]:
    """Store a message to send in S3, in the form an envelope client downloads, so
    that the same object serves every recipient; what the queue carries instead."""
    if svc.blobs is None:
        raise TooLarge(
            f"a publish item over the queue's {svc.settings.queue_message_limit} bytes "
            "needs SLIPWAY_BUCKET, and none is configured"
        )
    key = f"{_BLOB_PREFIX}{uuid.uuid4().hex}.json"
    svc.blobs.put(key, download_form(as_text(from_frame(item))))
    return {"channel": item["channel"], "blob": key, "binary": "content-bin" in item}


def _item(svc: services.Services, body: dict[str, Any]) -> dict[str, Any]:
    if "blob" in body:
        assert svc.blobs is not None, "a blob reference needs SLIPWAY_BUCKET"
        text = from_download_form(svc.blobs.get(body["blob"]))
        content = {"content-bin": text} if body["binary"] else {"content": text}
        return {"channel": body["channel"], "action": "send", **content}
    return body["item"]


def _publish(svc: services.Services, body: dict[str, Any], message_id: str) -> bool:
    channel = body["item"]["channel"] if "item" in body else body["channel"]
    page_size = svc.settings.fanout_page
    members, cursor = svc.store.members(channel, limit=page_size)
    if cursor is None:
        return deliver(svc, _item(svc, body), members, message_id, body.get("blob"))
    # Large channel: one part per page, delivered by parallel invocations.
    pages = [members]
    while cursor is not None:
        members, cursor = svc.store.members(channel, start=cursor, limit=page_size)
        if members:
            pages.append(members)
    ref = {k: v for k, v in body.items() if k != "kind"}
    item = ref.get("item")
    if item and item.get("action") != "close" and any(m.envelope for p in pages for m in p):
        # Stored here if it must be: once for the publish, not once a part.
        message = Outgoing(svc, from_frame(item), message_id)
        if message.enveloped() and message.key:
            ref = {"channel": channel, "blob": message.key, "binary": message.binary}
    parts = []
    for k, page in enumerate(pages):
        part = {"kind": "part", **ref, **_targets(page)}
        if "item" in ref and len(json.dumps(part).encode()) > svc.settings.queue_message_limit:
            ref = _store_blob(svc, ref["item"])
            part = {"kind": "part", **ref, **_targets(page)}
        # The dedup id makes a retried split enqueue each part only once.
        parts.append(Message(part, group=f"chan#{channel}#p{k}", dedup=f"{message_id}-{k}"))
    svc.queue.send_all(parts)
    return True


def _targets(page: list[Member]) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = {"targets": {}, "wrapped": {}}
    for m in page:
        found["wrapped" if m.envelope else "targets"].setdefault(m.endpoint, []).append(
            m.connection_id
        )
    return found


def deliver(
    svc: services.Services,
    item: dict[str, Any],
    members: list[Member],
    name: str | None = None,
    stored: str | None = None,
) -> bool:
    """Send (or close) to every member concurrently, to each in the form its
    connection needs; False if any needs a retry."""
    if not members:
        return True
    concurrency = svc.settings.fanout_concurrency
    if item.get("action") == "close":
        targets = [(m.endpoint, m.connection_id) for m in members]
        outcome = svc.sockets.send_many(targets, None, concurrency)
    else:
        message = Outgoing(svc, from_frame(item), name, stored)
        outcome = Outcome()
        for envelope in (False, True):
            group = [(m.endpoint, m.connection_id) for m in members if m.envelope == envelope]
            if not group:
                continue
            data = message.to(envelope)
            if data is None:
                outcome.too_large += [cid for _, cid in group]
                continue
            done = svc.sockets.send_many(group, data, concurrency)
            outcome.gone += done.gone
            outcome.failed += done.failed
            outcome.too_large += done.too_large
    for cid in outcome.gone:
        handlers.forget(svc, cid)
    if outcome.too_large:
        # Over API Gateway's 128 KB (raw), or no bucket (envelope): a retry cannot help.
        log.error(
            "publish to %s: message too large for %d connection(s): not sent to them",
            item.get("channel"),
            len(outcome.too_large),
        )
    return not outcome.failed


# -- deliveries deferred from $connect ------------------------------------------


def _deliver_open(svc: services.Services, body: dict[str, Any], message_id: str) -> bool:
    """Deliver what a backend's OPEN response held, once the connection is open."""
    cid, endpoint, frames = body["connection"], body["endpoint"], body["frames"]
    envelope = bool(body.get("envelope"))
    waited = 0.0
    sent = 0
    while True:
        try:
            for k, frame in enumerate(frames[sent:], start=sent):
                data = Outgoing(svc, from_frame(frame), f"{message_id}-{k}").to(envelope)
                if data is None:
                    log.warning("connection %s: message too large for it, not sent", cid)
                else:
                    svc.sockets.send(endpoint, cid, data)
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
