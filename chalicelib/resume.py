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
from enum import Enum

from . import farewell, metrics, services
from .aws.queue import Message
from .grip import envelope, history, jobs
from .grip.errors import Gone, TooLarge
from .grip.limits import HISTORY_HEAD_EXTRA, HISTORY_INLINE
from .grip.model import Connection
from .grip.payload import Payload
from .outbound import Outbound, send

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
    message: Outbound,
    item_id: str | None = None,
    prev_id: str | None = None,
) -> tuple[history.Position, Callable[[], None]] | None:
    """A publish's position in its channel's history, and the write that keeps it
    (the caller may run it beside the delivery: it only has to be done before the
    job is); None when history is off."""
    cfg = svc.settings
    if not cfg.history:
        return None
    content: Payload | jobs.Stored = message.payload
    if message.stored is not None or not message.payload.at_most(HISTORY_INLINE):
        content = message.store()  # the object envelope members are sent too
    keep = cfg.history_seconds
    position = svc.store.take_offset(channel, message_id, keep, secrets.token_hex(4))
    return position, lambda: svc.store.keep_entry(
        channel, position, content, keep, item_id, prev_id
    )


# -- subscribe side -------------------------------------------------------------------


def subscribe(
    svc: services.Services,
    conn: Connection,
    channel: str,
    prev_id: str | None = None,
    opened: bool = False,
) -> None:
    """Subscribe `conn` to `channel`; when it follows the channel's history (it
    tracks positions, presented one, or the backend gave `prev_id`) and was not a
    member yet, queue the `Join` job that replays what it missed. `opened`: the
    connection is known to be open (the subscribe answers one of its messages).
    Raises TooManyJoins when the connection has the most joins queued it may."""
    since = conn.since.get(channel)
    joins = svc.settings.history and (conn.resume or since is not None or prev_id is not None)
    new = svc.store.subscribe(
        conn.id, channel, conn.endpoint, conn.envelope, resume=conn.resume, joining=joins
    )
    if not joins or not new:
        return  # a repeat subscribe queues nothing: the member's first Join serves it
    job = jobs.Join(
        channel,
        conn.id,
        conn.endpoint,
        conn.envelope,
        conn.resume,
        since,
        prev_id,
        int(time.time()) + svc.settings.open_delivery_deadline,
        opened or jobs.surely_open(conn.created_at, time.time()),
        conn.floors.get(channel),
    )
    try:
        svc.queue.send(Message(jobs.encode(job), jobs.group(job)))
    except Exception:
        svc.store.joined(channel, conn.id)  # live messages at least, rather than none
        svc.store.join_done(conn.id)
        raise


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
    conn = Connection(job.connection, job.endpoint, envelope=job.envelope, resume=job.resume)
    messages: list[Outbound | bytes] = [_outbound(svc, channel, head.epoch, e) for e in replay]
    if job.resume and job.envelope:
        token = None
        if svc.settings.key is not None:
            recovered = recovery is history.Recovery.RECOVERED
            floor_at = history.next_floor(recovered, job.floor, since, head)
            token = history.floor_token(svc.settings.key, channel, head.epoch, floor_at)
        report = history.report(channel, head, recovery, len(replay), reason, token)
        messages.append(envelope.position(report).encode("utf-8"))
    if reason is not None:
        log.info("connection %s: recovery in %r failed: %s", conn.id, channel, reason)
    metrics.recovery(recovery, reason)
    sent = _send_when_open(svc, conn, messages, wait=not job.opened)
    if sent is _Sent.GONE:
        # Open when it subscribed, gone now: its $disconnect, on the way, removes its
        # rows and tells the backend how it closed (a forget here would say
        # DISCONNECT instead). Nothing to wait for, nothing to queue again.
        log.info("connection %s is gone: its join to %r dropped", conn.id, channel)
        return True
    if sent is _Sent.NOT_OPEN:
        if time.time() >= job.deadline:
            log.warning("connection %s never opened: no recovery in %r", conn.id, channel)
        elif store.get_connection(conn.id) is None:
            log.info("connection %s is gone: its join to %r dropped", conn.id, channel)
            return True
        else:
            # Behind the publishes queued since: they pass the member by, and this
            # job replays them when it comes round again.
            log.info("connection %s not open yet: its join to %r queued again", conn.id, channel)
            svc.queue.send(Message(jobs.encode(job), jobs.group(job)))
            return True
    store.joined(channel, conn.id)
    store.join_done(conn.id, channel if job.since is not None else None)
    return True


def _new_head(svc: services.Services, channel: str) -> history.Head:
    """A channel without history yet: its epoch now, so that a client that joins
    before the first publish has a position to come back with."""
    return svc.store.start_history(
        channel, secrets.token_hex(4), svc.settings.history_seconds + HISTORY_HEAD_EXTRA
    )


def _outbound(svc: services.Services, channel: str, epoch: str, entry: history.Entry) -> Outbound:
    trailer = history.trailer(channel, history.Position(epoch, entry.offset))
    if entry.stored is not None:
        return Outbound(svc, None, stored=jobs.Stored(entry.stored, entry.binary), trailer=trailer)
    return Outbound(svc, entry.payload, trailer=trailer)


class _Sent(Enum):
    DONE = "done"  # sent (or the connection left part way, and is forgotten)
    NOT_OPEN = "not open"  # 410 from the start: its $connect may not have returned
    GONE = "gone"  # 410 from the start, and it was open before: it has left


def _send_when_open(
    svc: services.Services, conn: Connection, messages: list[Outbound | bytes], wait: bool
) -> _Sent:
    """Send in order; with `wait`, waiting a moment for a connection whose
    $connect may not have returned. A connection that leaves part way is
    forgotten (its $disconnect is on the way)."""
    waited = 0.0
    sent = 0
    while True:
        try:
            for message in messages[sent:]:
                if isinstance(message, bytes):
                    svc.sockets.send(conn.endpoint, conn.id, message)
                else:
                    try:
                        send(svc, conn, message)
                    except TooLarge as exc:
                        log.warning("connection %s: replayed message not sent: %s", conn.id, exc)
                sent += 1
            return _Sent.DONE
        except Gone:
            if sent:  # it was open, and now it is gone
                farewell.forget(svc, conn.id)
                return _Sent.DONE
            if not wait:
                return _Sent.GONE
            if waited >= _OPEN_WAIT:
                return _Sent.NOT_OPEN
            time.sleep(0.05)
            waited += 0.05
