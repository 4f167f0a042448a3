"""The one executor: carries out the effects the core plans (`grip.effects`)
through the adapters, in the order given.

Nothing else in the gateway writes to the store, posts to @connections, writes
S3 objects for clients or queues jobs on the way out; the handlers, the worker
and the control routes read their input, ask the core, and hand the effects
here. This module owns:

- the form each connection gets a message in (`grip.plan`, per mode), and the
  rule that a large message is written to S3 once for all its recipients;
- what a failure means: a reply that cannot be posted now is handed to the
  worker (`defer`); a connection found gone is forgotten, or waited for
  (`when_open`); a store change refused is logged, or raised (`strict`, the
  control routes' 4xx);
- the ordered-delivery rule: an ordered connection's end waits in its inbox;
- the backend's answer to forwarded events, planned (`grip.answer`) and
  carried out here too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from . import farewell, services
from .aws.queue import Message
from .aws.sockets import SocketError
from .backend import BackendUnreachable
from .grip import answer, codec, envelope, jobs, plan
from .grip import decisions as d
from .grip import effects as fx
from .grip.errors import Gone, SlipwayError, TooLarge, UnknownConnection
from .grip.model import Connection, Member
from .grip.payload import Payload
from .outgoing import Outgoing

log = logging.getLogger("slipway.executor")

# How often a connection that is not open yet is tried again, while waiting.
_OPEN_POLL = 0.05


@dataclass
class Outcome:
    """What `execute` did: `done` effects carried out (a message too large for
    its connection counts as done: no retry can help), connection ids found gone,
    failed, or too large; `stopped`: a connection was gone or refused, and the
    effects after it were not carried out."""

    done: int = 0
    gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    stopped: bool = False


def rules(svc: services.Services) -> answer.Rules:
    cfg = svc.settings
    return answer.Rules(bool(cfg.history), cfg.open_delivery_deadline)


def execute(
    svc: services.Services,
    effects: Sequence[fx.Effect],
    *,
    strict: bool = False,
    defer: bool = False,
) -> Outcome:
    """Carry out `effects` in order.

    `strict`: a refusal (a message too large, a connection gone, a store change
    over a limit) is raised, for a control route to answer with; otherwise it is
    logged and, for a connection gone or unknown, stops the rest. `defer`: when a
    post to one connection fails after the retries (throttled, failing), its
    remaining messages and close go to the worker as a `Deliver` job, with SQS's
    retries, rather than be lost."""
    return _Run(svc, strict, defer).all(effects)


class Opened(Enum):
    DONE = "done"  # sent (or the connection left part way, and is forgotten)
    NOT_OPEN = "not open"  # 410 from the start, after the wait


def when_open(
    svc: services.Services,
    effects: Sequence[fx.Effect],
    wait: float,
    give_up: Callable[[], bool] = lambda: False,
) -> Opened:
    """Carry out one connection's effects in order, waiting up to `wait` seconds
    for a connection whose `$connect` may not have returned (410 from the first
    post), unless `give_up` says not to. A connection that leaves part way is
    forgotten (it was open: nothing else would tell the backend)."""
    waited = 0.0
    done = 0
    while True:
        outcome = execute(svc, effects[done:])
        done += outcome.done
        if not outcome.gone:
            return Opened.DONE
        if done:  # it was open, and now it is gone
            execute(svc, [fx.Forget(outcome.gone[0])])
            return Opened.DONE
        if waited >= wait or give_up():
            return Opened.NOT_OPEN
        time.sleep(_OPEN_POLL)
        waited += _OPEN_POLL


def close_quietly(svc: services.Services, endpoint: str, cid: str) -> None:
    """Close a connection known only by its id (no row: nothing else to plan)."""
    execute(svc, [fx.Close(Member(cid, endpoint))])


def queue_message(job: jobs.Job, dedup: str | None = None) -> Message:
    return Message(jobs.encode(job), jobs.group(job), dedup)


class _Run:
    def __init__(self, svc: services.Services, strict: bool, defer: bool) -> None:
        self.svc = svc
        self.strict = strict
        self.defer = defer
        self.outcome = Outcome()
        self.outgoing: dict[int, Outgoing] = {}
        self.written: set[str] = set()

    def all(self, effects: Sequence[fx.Effect]) -> Outcome:
        index = 0
        while index < len(effects):
            effect = effects[index]
            if isinstance(effect, fx.Enqueue):  # consecutive jobs: one batch
                end = index
                while end < len(effects) and isinstance(effects[end], fx.Enqueue):
                    end += 1
                batch = [e for e in effects[index:end] if isinstance(e, fx.Enqueue)]
                self.svc.queue.send_all([queue_message(e.job, e.dedup) for e in batch])
                self.outcome.done += len(batch)
                index = end
                continue
            try:
                carried = self.one(effect)
            except SocketError as exc:
                if not self.defer or not isinstance(effect, fx.Send | fx.Post | fx.Close):
                    raise
                self._hand_over(effect.to, effects[index:], exc)
                self.outcome.stopped = True
                return self.outcome
            if not carried:
                self.outcome.stopped = True
                return self.outcome
            self.outcome.done += 1
            index += 1
        return self.outcome

    # -- one effect ---------------------------------------------------------------

    def one(self, effect: fx.Effect) -> bool:
        """Carry out one effect; False when the rest must not follow."""
        if isinstance(effect, fx.Log):
            log.log(effect.level, "%s", effect.text)
            return True
        if isinstance(effect, fx.STORE_CHANGES):
            return self._store(effect)
        if isinstance(effect, fx.Send | fx.Post):
            return self._send(effect)
        if isinstance(effect, fx.SendAll):
            self._send_all(effect.to, self._outgoing(effect.message))
            return True
        if isinstance(effect, fx.Close):
            try:
                self.svc.sockets.close(effect.to.endpoint, effect.to.connection_id)
            except Gone:
                if self.strict:
                    raise
                # Closed already ($disconnect cleans up), or not open yet (`when_open`).
                self.outcome.gone.append(effect.to.connection_id)
                return False
            return True
        if isinstance(effect, fx.CloseAll):
            targets = [(m.endpoint, m.connection_id) for m in effect.to]
            done = self.svc.sockets.send_many(targets, None, self.svc.settings.fanout_concurrency)
            self._gone_and_failed(done.gone, done.failed)
            return True
        if isinstance(effect, fx.Delivered):
            if not self.outcome.failed and not self.outcome.too_large:
                self.svc.store.delivered(effect.channel, effect.at)
            return True
        if isinstance(effect, fx.PutObject):
            self._put_object(effect.key, effect.payload)
            return True
        if isinstance(effect, fx.Enqueue):
            self.svc.queue.send(queue_message(effect.job, effect.dedup))
            return True
        if isinstance(effect, fx.Inbox):
            farewell.inbox(self.svc, effect.job, effect.message_id)
            return True
        if isinstance(effect, fx.Forward):
            self._forward(effect.connection, list(effect.events))
            return True
        if isinstance(effect, fx.Ended):
            farewell.ended(self.svc, effect)
            return True
        farewell.forget(self.svc, effect.connection_id)
        return True

    # -- store changes ----------------------------------------------------------------

    def _store(self, effect: fx.Effect) -> bool:
        store = self.svc.store
        try:
            if isinstance(effect, fx.PutConnection):
                store.put_connection(effect.connection)
            elif isinstance(effect, fx.Subscribe):
                self._subscribe(effect)
            elif isinstance(effect, fx.Unsubscribe):
                store.unsubscribe(effect.connection_id, effect.channel)
                log.info("unsubscribe %s from %r", effect.connection_id, effect.channel)
            elif isinstance(effect, fx.SetMeta):
                store.set_meta(effect.connection_id, effect.name, effect.value)
            elif isinstance(effect, fx.Detach):
                store.set_detached(effect.connection_id)
            elif isinstance(effect, fx.SetKeepAlive):
                store.set_keep_alive(effect.connection_id, effect.settings)
            elif isinstance(effect, fx.Rephase):
                store.rephase(effect.connection_id, effect.old, effect.new)
            elif isinstance(effect, fx.Joined):
                store.joined(effect.channel, effect.connection_id)
                used = effect.channel if effect.position_used else None
                store.join_done(effect.connection_id, used)
            elif isinstance(effect, fx.SetClose):
                store.set_close(effect.connection_id, effect.code, effect.reason)
        except UnknownConnection:
            if self.strict:
                raise
            log.info("connection %s vanished while applying decisions", _cid(effect))
            return False
        except SlipwayError as exc:  # over a limit: TooManyChannels, TooManyJoins, ...
            if self.strict:
                raise
            log.warning("connection %s: %s refused: %s", _cid(effect), _what(effect), exc)
        return True

    def _subscribe(self, effect: fx.Subscribe) -> None:
        store, member, join = self.svc.store, effect.member, effect.join
        new = store.subscribe(
            member.connection_id,
            effect.channel,
            member.endpoint,
            member.envelope,
            resume=member.resume,
            joining=join is not None,
        )
        log.info("subscribe %s to %r", member.connection_id, effect.channel)
        if join is None or not new:
            return  # a repeat subscribe queues nothing: the member's first Join serves it
        try:
            self.svc.queue.send(queue_message(join))
        except Exception:
            # Live messages at least, rather than none.
            self._store(fx.Joined(effect.channel, member.connection_id))
            raise

    # -- messages out -------------------------------------------------------------------

    def _outgoing(self, message: fx.Message) -> Outgoing:
        found = self.outgoing.get(id(message))
        if found is None or found.message is not message:
            found = Outgoing(self.svc, message, self._put_object)
            self.outgoing[id(message)] = found
        return found

    def _send(self, effect: fx.Send | fx.Post) -> bool:
        to = effect.to
        if isinstance(effect, fx.Post):
            body: bytes | plan.Undeliverable = effect.body
        else:
            body = self._outgoing(effect.message).body_for(to.envelope, to.resume)
        if isinstance(body, plan.Undeliverable):
            if self.strict:
                raise TooLarge(body.explain())
            log.warning("connection %s: message not sent: %s", to.connection_id, body.explain())
            self.outcome.too_large.append(to.connection_id)
            return True
        try:
            self.svc.sockets.send(to.endpoint, to.connection_id, body)
        except Gone:
            if self.strict:
                raise
            # The client left: its $disconnect is on the way (or the caller waits).
            log.info("connection %s is gone", to.connection_id)
            self.outcome.gone.append(to.connection_id)
            return False
        return True

    def _send_all(self, members: Sequence[Member], outgoing: Outgoing) -> None:
        """Every member at once, in the form each mode needs."""
        too_large: list[str] = []
        for envelope_mode, tracked in ((False, False), (True, False), (True, True)):
            group = [
                (m.endpoint, m.connection_id)
                for m in members
                if m.envelope == envelope_mode and (m.envelope and m.resume) == tracked
            ]
            if not group:
                continue
            body = outgoing.body_for(envelope_mode, tracked)
            if isinstance(body, plan.Undeliverable):
                too_large += [cid for _, cid in group]
                continue
            done = self.svc.sockets.send_many(group, body, self.svc.settings.fanout_concurrency)
            too_large += done.too_large
            self._gone_and_failed(done.gone, done.failed)
        if too_large:
            # Over API Gateway's 128 KB (raw), or no bucket (envelope): documented,
            # and a retry cannot help.
            log.warning(
                "publish: message too large for %d connection(s): not sent to them",
                len(too_large),
            )
            self.outcome.too_large += too_large

    def _gone_and_failed(self, gone: list[str], failed: list[str]) -> None:
        for cid in gone:
            farewell.forget(self.svc, cid)
        self.outcome.gone += gone
        self.outcome.failed += failed

    def _hand_over(self, to: Member, rest: Sequence[fx.Effect], exc: Exception) -> None:
        """A reply that cannot be posted now: its messages and close, from the one
        that failed, to the worker."""
        log.warning("connection %s: reply handed to the worker: %s", to.connection_id, exc)
        payloads: list[Payload] = []
        close = False
        for effect in rest:
            if isinstance(effect, fx.Send) and effect.to == to:
                payloads.append(self._outgoing(effect.message).payload)
            elif isinstance(effect, fx.Post) and effect.to == to:
                payloads.append(Payload.of_bytes(effect.body, False))
            elif isinstance(effect, fx.Close) and effect.to == to:
                close = True
        deadline = int(time.time()) + self.svc.settings.open_delivery_deadline
        conn = Connection(to.connection_id, to.endpoint, envelope=to.envelope)
        job = answer.deferred(conn, payloads, close, deadline)
        self.svc.queue.send(queue_message(job))

    # -- objects ----------------------------------------------------------------------------

    def _put_object(self, key: str, payload: Payload) -> None:
        """Write a message's one S3 object, once in this run however many ask."""
        if key in self.written:
            return
        blobs = self.svc.blobs
        if blobs is None:
            raise TooLarge(plan.Undeliverable(plan.Why.NO_BUCKET).explain())
        blobs.put(key, envelope.download_form(payload.text))
        self.written.add(key)

    # -- ordered delivery, the backend -------------------------------------------------------

    def _forward(self, conn: Connection, events: list[codec.Event]) -> None:
        """Events of an open connection to the backend; its answer planned and
        carried out, in a run of its own (a reply is deferred, not lost)."""
        svc = self.svc
        to = fx.member_of(conn)
        try:
            reply = svc.backend.call(conn, events)
        except BackendUnreachable as exc:
            log.error("closing %s: backend unreachable: %s", conn.id, exc)
            execute(svc, [fx.Close(to)])
            return
        try:
            decided = d.read_response(
                reply.status,
                reply.headers,
                reply.body,
                opening=False,
                grip_prefix=conn.grip_prefix,
            )
        except d.ResponseError as exc:
            log.error("closing %s: %s; body starts %r", conn.id, exc, reply.body[:200])
            execute(svc, [fx.Close(to)])
            return
        execute(svc, answer.answer(conn, decided, time.time(), rules(svc)), defer=True)


def _cid(effect: fx.Effect) -> str:
    if isinstance(effect, fx.PutConnection):
        return effect.connection.id
    if isinstance(effect, fx.Subscribe):
        return effect.member.connection_id
    return str(getattr(effect, "connection_id", "?"))


def _what(effect: fx.Effect) -> str:
    if isinstance(effect, fx.Subscribe):
        return f"subscribe {effect.channel!r}"
    if isinstance(effect, fx.SetKeepAlive):
        return "keep-alive"
    return type(effect).__name__


def _now_ms() -> int:
    return int(time.time() * 1000)
