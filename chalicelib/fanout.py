"""The SQS worker: publishes fanned out to channel members, and deliveries
deferred from $connect. Each record is one job (`grip.jobs`), read at the edge
and dispatched on its type.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import farewell, outbound, resume, services
from .aws.queue import Message
from .grip import history, jobs
from .grip.errors import Gone, TooLarge
from .grip.history import Position
from .grip.model import Connection, Member
from .grip.payload import Payload
from .outbound import Outbound

log = logging.getLogger("slipway.fanout")

# How long one invocation keeps trying a connection that is not open yet before
# handing the message back to SQS for a later attempt.
_OPEN_WAIT = 3.0
_BLOB_PREFIX = "publish/"
# How much of a job moved aside is logged (a queue body is ASCII, at most 256 KB).
_LOGGED_BODY = 4096
_Queued = TypeVar("_Queued", jobs.Publish, jobs.Part)
# Writes that run beside a delivery (history rows); kept for the container's life.
_BACKGROUND = ThreadPoolExecutor(4, thread_name_prefix="slipway-history")


def handle_batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Lambda's partial batch response: only the failed records come back.

    On a FIFO queue a failed record must not be overtaken by later ones of its
    group, so processing stops at the first failure and the rest go back too.
    Consecutive `Join` jobs run at once: they commute with each other (only their
    place among publishes matters), and a reconnecting crowd's joins hold up their
    channel's publishes a tenth as long.
    """
    svc = services.current()
    read = [_read(r) for r in records]
    index = 0
    while index < len(records):
        end = index + 1
        while (
            isinstance(read[index], jobs.Join)
            and end < len(read)
            and isinstance(read[end], jobs.Join)
        ):
            end += 1
        if end - index > 1:
            with ThreadPoolExecutor(end - index) as pool:
                outcomes = list(
                    pool.map(lambda k: _attempt(svc, records[k], read[k]), range(index, end))
                )
        else:
            outcomes = [_attempt(svc, records[index], read[index])]
        for done in outcomes:
            if not done:
                return {
                    "batchItemFailures": [
                        {"itemIdentifier": r["messageId"]} for r in records[index:]
                    ]
                }
            index += 1
    return {"batchItemFailures": []}


def _read(record: dict[str, Any]) -> jobs.Job | jobs.JobError:
    """A record's job, or why no worker of this version can run it."""
    try:
        return jobs.decode(record["body"])
    except jobs.JobError as exc:
        return exc


def _attempt(svc: services.Services, record: dict[str, Any], job: jobs.Job | jobs.JobError) -> bool:
    """Run one record's job; False if it must go back to SQS."""
    message_id = record["messageId"]
    if isinstance(job, jobs.NewerJob):
        log.error("message %s: %s; leaving it for a worker that reads it", message_id, job)
        return False
    if isinstance(job, jobs.JobError):
        _aside(record, job, getattr(job, "channel", None))
        return True
    try:
        return run(svc, job, message_id)
    except (jobs.PermanentJobError, UnicodeError) as exc:
        # Deterministic: every retry would fail the same way while its FIFO group waits.
        _aside(record, exc, getattr(job, "channel", None))
        return True
    except Exception:
        log.exception("message %s failed", message_id)
        return False


def _aside(record: dict[str, Any], why: Exception, channel: str | None) -> None:
    """Move a job that can never succeed out of the queue at once: deleted (the
    batch reports it done), its body logged to recover it by hand. Not sent to the
    dead-letter queue: a redrive would only fail it again, and the queue's group
    is free either way (docs/reliability.md)."""
    log.error(
        "message %s moved aside (deleted), it can never succeed: %s; channel %r; body %s",
        record["messageId"],
        why,
        channel,
        str(record.get("body", ""))[:_LOGGED_BODY],
    )


def run(svc: services.Services, job: jobs.Job, message_id: str) -> bool:
    """Carry out one job; False if it must be retried."""
    if isinstance(job, jobs.Publish):
        return _publish(svc, job, message_id)
    if isinstance(job, jobs.Part):
        # Not recorded for idle keep-alives: another part may fail, and its members
        # must not count as sent (an extra keep-alive is harmless, a missing one not).
        return deliver(
            svc,
            job.action,
            list(job.members),
            channel=job.channel,
            position=job.position,
            whole=False,
        )
    if isinstance(job, jobs.KeepAlive):
        return _keep_alive(svc, job)
    if isinstance(job, jobs.Join):
        return resume.join(svc, job)
    return _deliver_open(svc, job, message_id)


# -- publishes ----------------------------------------------------------------


def queued(
    svc: services.Services, job: jobs.Publish | jobs.Part, dedup: str | None = None
) -> Message:
    """The queue message of a job."""
    body, job = _fitted(svc, job)
    return Message(body, jobs.group(job), dedup)


def _fitted(svc: services.Services, job: _Queued) -> tuple[str, _Queued]:
    """A job's queue body; a payload over the queue's limit rides in S3, in the
    form envelope clients download, so one object serves every recipient."""
    body = jobs.encode(job)
    if len(body) > svc.settings.queue_message_limit and isinstance(job.action, jobs.Inline):
        if svc.blobs is None:
            raise TooLarge(
                f"a publish item over the queue's {svc.settings.queue_message_limit} bytes "
                "needs SLIPWAY_BUCKET, and none is configured"
            )
        stored = Outbound(svc, job.action.payload).store(_BLOB_PREFIX)
        job = job._replace(action=stored)
        body = jobs.encode(job)
    return body, job


def _publish(svc: services.Services, job: jobs.Publish, message_id: str) -> bool:
    action = job.action
    if isinstance(action, jobs.CloseAll) or not svc.settings.history:
        return _fan_out(svc, job, action, message_id, None)
    # Its position first; its history row is written beside the delivery, and
    # before the job is done: a member joining later replays it from there.
    kept = _message(svc, action, message_id)
    recorded = resume.record(svc, job.channel, message_id, kept, job.id, job.prev_id)
    if recorded is None:
        return _fan_out(svc, job, action, message_id, None)
    position, write = recorded
    writing = _BACKGROUND.submit(write)
    try:
        return _fan_out(svc, job, kept.stored or action, message_id, position)
    finally:
        writing.result()  # a failed write fails the job: SQS hands it out again


def _fan_out(
    svc: services.Services,
    job: jobs.Publish,
    action: jobs.Action,
    message_id: str,
    position: Position | None,
) -> bool:
    page_size = svc.settings.fanout_page
    members, cursor = svc.store.members(job.channel, limit=page_size)
    if cursor is None:
        return deliver(
            svc, action, _live(members), message_id, channel=job.channel, position=position
        )
    # Large channel: one part per page, delivered by parallel invocations.
    pages = [_live(members)]
    while cursor is not None:
        members, cursor = svc.store.members(job.channel, start=cursor, limit=page_size)
        if members:
            pages.append(_live(members))
    if isinstance(action, jobs.Inline) and any(m.envelope for p in pages for m in p):
        # Stored here if envelope members need it: once for the publish, not once a part.
        message = Outbound(svc, action.payload, name=message_id)
        message.body(envelope_mode=True)
        action = message.stored or action
    parts = []
    for k, page in enumerate(pages):
        body, part = _fitted(svc, jobs.Part(job.channel, action, k, tuple(page), position))
        action = part.action  # stored at most once, for every part
        # The dedup id makes a retried split enqueue each part only once.
        parts.append(Message(body, jobs.group(part), dedup=f"{message_id}-{k}"))
    svc.queue.send_all(parts)
    return True


def _live(members: list[Member]) -> list[Member]:
    """The members a publish reaches now: not those whose `Join` job is queued
    (it replays the publish from the history)."""
    return [m for m in members if not m.joining]


def _message(
    svc: services.Services, action: jobs.Inline | jobs.Stored, name: str | None
) -> Outbound:
    if isinstance(action, jobs.Stored):
        return Outbound(svc, None, stored=action)
    return Outbound(svc, action.payload, name=name)


def deliver(
    svc: services.Services,
    action: jobs.Action,
    members: list[Member],
    name: str | None = None,
    channel: str | None = None,
    position: Position | None = None,
    whole: bool = True,
) -> bool:
    """Send (or close) to every member concurrently, to each in the form its
    connection needs; False if any needs a retry. When every member of the
    `channel` (the `whole` of it) was sent the message, that is recorded for
    idle keep-alives. Members that track positions get the publish's `position`."""
    if not members:
        return True
    if isinstance(action, jobs.CloseAll):
        targets = [(m.endpoint, m.connection_id) for m in members]
        outcome = svc.sockets.send_many(targets, None, svc.settings.fanout_concurrency)
    else:
        message = _message(svc, action, name)
        if position is not None and channel is not None:
            message.trailer = history.trailer(channel, position)
        outcome = outbound.send_many(svc, members, message)
    for cid in outcome.gone:
        farewell.forget(svc, cid)
    if outcome.too_large:
        # Over API Gateway's 128 KB (raw), or no bucket (envelope): documented, and a
        # retry cannot help.
        log.warning(
            "publish: message too large for %d connection(s): not sent to them",
            len(outcome.too_large),
        )
    elif whole and channel and not isinstance(action, jobs.CloseAll) and not outcome.failed:
        svc.store.delivered(channel, time.time())
    return not outcome.failed


def _keep_alive(svc: services.Services, job: jobs.KeepAlive) -> bool:
    """Send each connection its keep-alive: one concurrent send per distinct content."""
    by_content: dict[Payload, list[Member]] = {}
    for member, payload in job.targets:
        by_content.setdefault(payload, []).append(member)
    failed = False
    for payload, members in by_content.items():
        outcome = outbound.send_many(svc, members, Outbound(svc, payload))
        for cid in outcome.gone:
            farewell.forget(svc, cid)
        failed = failed or bool(outcome.failed)
    return not failed


# -- deliveries deferred from $connect ------------------------------------------


def _deliver_open(svc: services.Services, job: jobs.Deliver, message_id: str) -> bool:
    """Deliver what a backend's OPEN response held, once the connection is open."""
    cid, endpoint = job.connection, job.endpoint
    conn = Connection(cid, endpoint, envelope=job.envelope)
    waited = 0.0
    sent = 0
    while True:
        try:
            for k, payload in enumerate(job.payloads[sent:], start=sent):
                try:
                    outbound.send(svc, conn, Outbound(svc, payload, name=f"{message_id}-{k}"))
                except TooLarge as exc:
                    log.warning("connection %s: message not sent: %s", cid, exc)
                sent += 1
            if job.close:
                svc.sockets.close(endpoint, cid)
            return True
        except Gone:
            if sent:  # it was open, and now it is gone
                farewell.forget(svc, cid)
                return True
            if time.time() >= job.deadline or svc.store.get_connection(cid) is None:
                log.warning(
                    "connection %s never opened: dropping %d messages", cid, len(job.payloads)
                )
                return True
            if waited >= _OPEN_WAIT:
                return False  # SQS redelivers after the visibility timeout
            time.sleep(0.05)
            waited += 0.05
