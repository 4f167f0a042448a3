"""Resume after reconnect (docs/resume.md): each publish kept in its channel's
history, and the `Join` job that replays what a subscribing connection missed.

A connection that follows a channel's history is subscribed "joining": publishes
pass it by until its `Join` job, queued in the channel's own FIFO group, has
replayed the messages after its position and told it where it is. Every publish
before the job is in the history it reads; every publish after reaches the
member live. So nothing is missed and nothing comes twice.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from . import executor, metrics, services
from .grip import effects as fx
from .grip import envelope, history, jobs
from .grip.limits import HISTORY_HEAD_EXTRA
from .grip.model import Member
from .grip.payload import Payload

log = logging.getLogger("slipway.resume")

# How long a Join waits for a connection that is not open yet (its $connect has
# not returned) before it goes to the back of its channel's queue: it holds up
# the channel's publishes meanwhile.
_OPEN_WAIT = 0.5


# -- publish side -------------------------------------------------------------------


def record(
    svc: services.Services,
    channel: str,
    message_id: str,
    kept: jobs.Inline | jobs.Stored,
    item_id: str | None = None,
    prev_id: str | None = None,
) -> tuple[history.Position, Callable[[], None]]:
    """A publish's position in its channel's history, and the write that keeps it
    (the caller may run it beside the delivery: it only has to be done before the
    job is). `kept`: the message as the history keeps it (`grip.delivery.kept`)."""
    content: Payload | jobs.Stored = kept.payload if isinstance(kept, jobs.Inline) else kept
    keep = svc.settings.history_seconds
    position = svc.store.take_offset(channel, message_id, keep, secrets.token_hex(4))
    return position, lambda: svc.store.keep_entry(
        channel, position, content, keep, item_id, prev_id
    )


# Subscribing (and queueing the Join) is planned by `grip.answer.subscription`
# and carried out by the executor.


# -- the Join job ---------------------------------------------------------------------


def join(svc: services.Services, job: jobs.Join) -> bool:
    """Replay what the member missed, tell it where it is, then let live
    publishes reach it. A connection not open yet sends the job to the back of
    its channel's queue rather than hold the channel up; one that is gone (it was
    open when it subscribed, or its row is gone) drops it (True either way: an
    exception is what SQS retries)."""
    store, channel = svc.store, job.channel
    head = store.history_head(channel) or _new_head(svc, channel)
    since = job.since
    replay: list[history.Entry] = []
    recovery, reason = history.Recovery.NONE, None
    if job.after_id is not None:
        offset = store.history_offset_of(channel, head.epoch, job.after_id)
        if offset is None:
            recovery, reason = history.Recovery.FAILED, history.Reason.UNKNOWN_ID
        else:
            since = history.Position(head.epoch, offset)
    if since is not None and reason is None:
        # The backend's prev-id is its own decision; a position the client presents
        # is honoured from its first subscribe on, unless the deployment says otherwise.
        floor = 0 if job.after_id is not None or svc.settings.resume_any_position else job.floor
        decided = history.decide(since, head, svc.settings.history_items, floor)
        if isinstance(decided, history.Failed):
            recovery, reason = history.Recovery.FAILED, decided.reason
        else:
            replay = store.history(channel, head.epoch, decided.after, decided.upto)
            if history.complete([e.offset for e in replay], decided):
                recovery = history.Recovery.RECOVERED
                head = history.Head(head.epoch, decided.upto)
            else:
                replay, recovery, reason = [], history.Recovery.FAILED, history.Reason.TOO_OLD
    to = Member(job.connection, job.endpoint, job.envelope, job.resume)
    messages: list[fx.Effect] = [fx.Send(to, _message(channel, head.epoch, e)) for e in replay]
    if job.resume and job.envelope:
        token = None
        if svc.settings.key is not None:
            recovered = recovery is history.Recovery.RECOVERED
            floor_at = history.next_floor(recovered, job.floor, since, head)
            token = history.floor_token(svc.settings.key, channel, head.epoch, floor_at)
        report = history.report(channel, head, recovery, len(replay), reason, token)
        messages.append(fx.Post(to, envelope.position(report).encode("utf-8")))
    if reason is not None:
        log.info("connection %s: recovery in %r failed: %s", to.connection_id, channel, reason)
    metrics.recovery(recovery, reason)
    wait = 0.0 if job.opened else _OPEN_WAIT
    sent = executor.when_open(svc, messages, wait)
    if sent is executor.Opened.NOT_OPEN and job.opened:
        # Open when it subscribed, gone now: its $disconnect, on the way, removes its
        # rows and tells the backend how it closed (a forget here would say
        # DISCONNECT instead). Nothing to wait for, nothing to queue again.
        log.info("connection %s is gone: its join to %r dropped", to.connection_id, channel)
        return True
    if sent is executor.Opened.NOT_OPEN:
        if time.time() >= job.deadline:
            log.warning("connection %s never opened: no recovery in %r", to.connection_id, channel)
        elif store.get_connection(to.connection_id) is None:
            log.info("connection %s is gone: its join to %r dropped", to.connection_id, channel)
            return True
        else:
            # Behind the publishes queued since: they pass the member by, and this
            # job replays them when it comes round again.
            log.info(
                "connection %s not open yet: its join to %r queued again",
                to.connection_id,
                channel,
            )
            executor.execute(svc, [fx.Enqueue(job)])
            return True
    executor.execute(svc, [fx.Joined(channel, to.connection_id, job.since is not None)])
    return True


def _new_head(svc: services.Services, channel: str) -> history.Head:
    """A channel without history yet: its epoch now, so that a client that joins
    before the first publish has a position to come back with."""
    return svc.store.start_history(
        channel, secrets.token_hex(4), svc.settings.history_seconds + HISTORY_HEAD_EXTRA
    )


def _message(channel: str, epoch: str, entry: history.Entry) -> fx.Message:
    trailer = history.trailer(channel, history.Position(epoch, entry.offset))
    if entry.stored is not None:
        return fx.Message(stored=jobs.Stored(entry.stored, entry.binary), trailer=trailer)
    return fx.Message(entry.payload, trailer=trailer)
