"""The SQS worker: publishes fanned out to channel members, and deliveries
deferred from $connect. Each record is one job (`grip.jobs`), read at the edge
and dispatched on its type.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import executor, resume, services
from .grip import delivery, jobs
from .grip.history import Position
from .grip.model import Member

log = logging.getLogger("slipway.fanout")

# How long one invocation keeps trying a connection that is not open yet before
# handing the message back to SQS for a later attempt.
_OPEN_WAIT = 3.0
# How much of a job moved aside is logged (a queue body is ASCII, at most 256 KB).
_LOGGED_BODY = 4096
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
        planned = delivery.deliver(
            job.action, job.members, channel=job.channel, position=job.position, whole=False
        )
        return not executor.execute(svc, planned).failed
    if isinstance(job, jobs.KeepAlive):
        return not executor.execute(svc, delivery.keep_alives(job)).failed
    if isinstance(job, jobs.Join):
        return resume.join(svc, job)
    return _deliver_open(svc, job, message_id)


# -- publishes ----------------------------------------------------------------


def _publish(svc: services.Services, job: jobs.Publish, message_id: str) -> bool:
    action = job.action
    if isinstance(action, jobs.CloseAll) or not svc.settings.history:
        return _fan_out(svc, job, action, message_id, None)
    # Its position first; its history row is written beside the delivery, and
    # before the job is done: a member joining later replays it from there.
    kept, store_it = delivery.kept(action, message_id)
    executor.execute(svc, store_it)
    position, write = resume.record(svc, job.channel, message_id, kept, job.id, job.prev_id)
    writing = _BACKGROUND.submit(write)
    try:
        return _fan_out(svc, job, kept, message_id, position)
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
        planned = delivery.deliver(
            action, _live(members), message_id, channel=job.channel, position=position
        )
        return not executor.execute(svc, planned).failed
    # Large channel: one part per page, delivered by parallel invocations.
    pages = [_live(members)]
    while cursor is not None:
        members, cursor = svc.store.members(job.channel, start=cursor, limit=page_size)
        if members:
            pages.append(_live(members))
    cfg = svc.settings
    planned = delivery.split(
        job.channel,
        action,
        pages,
        position,
        message_id,
        cfg.queue_message_limit,
        svc.blobs is not None,
    )
    executor.execute(svc, planned)
    return True


def _live(members: list[Member]) -> list[Member]:
    """The members a publish reaches now: not those whose `Join` job is queued
    (it replays the publish from the history)."""
    return [m for m in members if not m.joining]


# -- deliveries deferred from $connect ------------------------------------------


def _deliver_open(svc: services.Services, job: jobs.Deliver, message_id: str) -> bool:
    """Deliver what a backend's OPEN response held, once the connection is open;
    False hands it back to SQS for a later attempt."""

    def never_opened() -> bool:
        return time.time() >= job.deadline or svc.store.get_connection(job.connection) is None

    planned = delivery.opened(job, message_id)
    if executor.when_open(svc, planned, _OPEN_WAIT, never_opened) is executor.Opened.DONE:
        return True
    if never_opened():
        log.warning(
            "connection %s never opened: dropping %d messages", job.connection, len(job.payloads)
        )
        return True
    return False  # SQS redelivers after the visibility timeout
