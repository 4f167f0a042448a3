"""The SQS worker: deliveries deferred from $connect (and, later, publishes)."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from . import services
from .aws.sockets import Gone

log = logging.getLogger("slipway.fanout")

# How long one invocation keeps trying a connection that is not open yet before
# handing the message back to SQS for a later attempt.
_OPEN_WAIT = 3.0


def handle_batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Lambda's partial batch response: only the failed records come back."""
    svc = services.current()
    failures = []
    for record in records:
        try:
            body = json.loads(record["body"])
            done = _handle(svc, body)
        except Exception:
            log.exception("message %s failed", record.get("messageId"))
            done = False
        if not done:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def _handle(svc: services.Services, body: dict[str, Any]) -> bool:
    kind = body.get("kind")
    if kind == "deliver":
        return _deliver(svc, body)
    log.error("dropping a queue message of unknown kind %r", kind)
    return True


def decode_frame(frame: dict[str, str]) -> bytes | str:
    if "content-bin" in frame:
        return base64.b64decode(frame["content-bin"])
    return frame["content"]


def _deliver(svc: services.Services, body: dict[str, Any]) -> bool:
    """Deliver what a backend's OPEN response held, once the connection is open."""
    cid, endpoint, frames = body["connection"], body["endpoint"], body["frames"]
    waited = 0.0
    sent = 0
    while True:
        try:
            for frame in frames[sent:]:
                svc.sockets.send(endpoint, cid, decode_frame(frame))
                sent += 1
            if body.get("close"):
                svc.sockets.close(endpoint, cid)
            return True
        except Gone:
            if sent:  # it was open, and now it is gone
                svc.store.remove_connection(cid)
                return True
            if time.time() >= body["deadline"] or svc.store.get_connection(cid) is None:
                log.warning("connection %s never opened: dropping %d frames", cid, len(frames))
                return True
            if waited >= _OPEN_WAIT:
                return False  # SQS redelivers after the visibility timeout
            time.sleep(0.05)
            waited += 0.05
