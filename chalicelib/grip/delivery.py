"""A publish's way to its channel's members, planned: jobs and members in,
effects out. Pure.

- `queued`: a job's place in the queue; a payload over the queue's limit rides
  in one S3 object (in the form envelope clients download, so that one object
  serves every recipient) and the job carries its key.
- `kept`: the message as the channel's history keeps it (inline, or stored once).
- `split`: a channel of several pages becomes one `Part` job a page.
- `deliver`: one page of members sent the message (or closed).
- `tick`: the keep-alives due at one second, as `KeepAlive` jobs; those that
  wait for a later second moved to their new slot.
- `keep_alives` and `opened`: a `KeepAlive` job's sends; a `Deliver` job's, in order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from . import effects as fx
from . import envelope, history, jobs, plan
from . import keepalive as ka
from .errors import TooLarge
from .history import Position
from .limits import HISTORY_INLINE
from .model import Member
from .payload import Payload

# A KeepAlive job holds at most this many connections, and this much content.
KEEPALIVE_CHUNK = 200
KEEPALIVE_CHUNK_BYTES = 64 * 1024
# Where a job too large for the queue keeps its message (slipway_dev/policy.py
# grants the functions this prefix).
BLOB_PREFIX = "publish/"


def object_key(name: str, prefix: str = envelope.DOWNLOAD_PREFIX) -> str:
    """The key of the one S3 object a message named `name` is kept in."""
    return f"{prefix}{name}.json"


def queued(
    job: jobs.Publish | jobs.Part,
    limit: int,
    bucket: bool,
    name: str,
    dedup: str | None = None,
) -> list[fx.Effect]:
    """Queue `job`; over the queue's `limit`, its inline payload first goes to
    S3 under `name` (TooLarge without a bucket)."""
    if len(jobs.encode(job)) > limit and isinstance(job.action, jobs.Inline):
        if not bucket:
            raise TooLarge(
                f"a publish item over the queue's {limit} bytes needs SLIPWAY_BUCKET, "
                "and none is configured"
            )
        payload = job.action.payload
        key = object_key(name, BLOB_PREFIX)
        return [fx.PutObject(key, payload), fx.Enqueue(job._replace(action=_stored(key, payload)))]
    return [fx.Enqueue(job, dedup)]


def objects_first(planned: Iterable[fx.Effect]) -> list[fx.Effect]:
    """Every object written before any job is queued, so the jobs go in one batch."""
    effects = list(planned)
    objects = [e for e in effects if isinstance(e, fx.PutObject)]
    return objects + [e for e in effects if not isinstance(e, fx.PutObject)]


def _stored(key: str, payload: Payload) -> jobs.Stored:
    return jobs.Stored(key, payload.binary)


def kept(
    action: jobs.Inline | jobs.Stored, message_id: str
) -> tuple[jobs.Inline | jobs.Stored, list[fx.Effect]]:
    """The message as the channel's history keeps it: inline up to
    HISTORY_INLINE, else in the one object envelope members are sent too."""
    if isinstance(action, jobs.Stored) or action.payload.at_most(HISTORY_INLINE):
        return action, []
    key = object_key(message_id)
    return _stored(key, action.payload), [fx.PutObject(key, action.payload)]


def split(
    channel: str,
    action: jobs.Action,
    pages: Sequence[Sequence[Member]],
    position: Position | None,
    message_id: str,
    limit: int,
    bucket: bool,
) -> list[fx.Effect]:
    """A large channel: one `Part` job a page, delivered by parallel invocations.
    A message envelope members fetch from S3 is stored here, once for the
    publish, not once a part; the dedup ids make a retried split queue each
    part once."""
    planned: list[fx.Effect] = []
    if isinstance(action, jobs.Inline) and any(m.envelope for p in pages for m in p):
        if isinstance(plan.plan(action.payload, True, bucket), plan.ViaObject):
            key = object_key(message_id)
            planned.append(fx.PutObject(key, action.payload))
            action = _stored(key, action.payload)
    for k, page in enumerate(pages):
        part = jobs.Part(channel, action, k, tuple(page), position)
        name = f"{message_id}-{k}"
        fitted = queued(part, limit, bucket, name, dedup=f"{message_id}-{k}")
        for effect in fitted:
            if isinstance(effect, fx.Enqueue):
                assert isinstance(effect.job, jobs.Part)
                action = effect.job.action  # stored at most once, for every part
                planned.append(fx.Enqueue(effect.job, f"{message_id}-{k}"))
            else:
                planned.append(effect)
    return objects_first(planned)


def deliver(
    action: jobs.Action,
    members: Sequence[Member],
    name: str | None = None,
    channel: str | None = None,
    position: Position | None = None,
    whole: bool = True,
    now: float | None = None,
) -> list[fx.Effect]:
    """Send (or close) to every member at once, each in the form its connection
    needs. When every member of the `channel` (the `whole` of it) is sent the
    message, that is recorded for idle keep-alives. Members that track positions
    get the publish's `position`."""
    if not members:
        return []
    if isinstance(action, jobs.CloseAll):
        return [fx.CloseAll(tuple(members))]
    trailer = history.trailer(channel, position) if position and channel else None
    message = fx.of_action(action, name)
    if trailer is not None:
        message = fx.Message(message.payload, message.stored, name, trailer)
    planned: list[fx.Effect] = [fx.SendAll(tuple(members), message)]
    if whole and channel:
        planned.append(fx.Delivered(channel, time.time() if now is None else now))
    return planned


def tick(
    second: int, targets: Sequence[ka.Target], sent_at: dict[str, float]
) -> tuple[int, list[fx.Effect]]:
    """The keep-alives due at `second` among `targets` (`sent_at`: when each
    idle channel was last sent something), queued in chunks; a keep-alive whose
    connection was sent something since moves to its new phase's slot. Returns
    the number due, and the effects."""
    planned: list[fx.Effect] = []
    due: list[ka.Target] = []
    for target in targets:
        last = max((sent_at[c] for c in target.channels if c in sent_at), default=None)
        decided = ka.decide(target, second, last)
        if isinstance(decided, ka.Send):
            due.append(target)
        elif isinstance(decided, ka.Rephase):
            old, new = target.settings.slot(), ka.slot(target.settings.timeout, decided.phase)
            if new != old:
                planned.append(fx.Rephase(target.connection_id, old, new))
    planned += [fx.Enqueue(job) for job in _chunks(second, due)]
    return len(due), planned


def _chunks(second: int, due: list[ka.Target]) -> list[jobs.KeepAlive]:
    out: list[jobs.KeepAlive] = []
    chunk: list[tuple[Member, Payload]] = []
    size = 0
    for t in due:
        payload = t.settings.payload
        if chunk and (len(chunk) == KEEPALIVE_CHUNK or size + payload.size > KEEPALIVE_CHUNK_BYTES):
            out.append(jobs.KeepAlive(second, len(out), tuple(chunk)))
            chunk, size = [], 0
        chunk.append((Member(t.connection_id, t.endpoint, t.envelope), payload))
        size += payload.size
    if chunk:
        out.append(jobs.KeepAlive(second, len(out), tuple(chunk)))
    return out


def keep_alives(job: jobs.KeepAlive) -> list[fx.Effect]:
    """Each connection its keep-alive: one send to many per distinct content."""
    by_content: dict[Payload, list[Member]] = {}
    for member, payload in job.targets:
        by_content.setdefault(payload, []).append(member)
    return [fx.SendAll(tuple(ms), fx.Message(p)) for p, ms in by_content.items()]


def opened(job: jobs.Deliver, message_id: str) -> list[fx.Effect]:
    """What a backend's OPEN answer held, in order, for its connection."""
    to = Member(job.connection, job.endpoint, job.envelope)
    planned: list[fx.Effect] = [
        fx.Send(to, fx.Message(p, name=f"{message_id}-{k}")) for k, p in enumerate(job.payloads)
    ]
    if job.close:
        planned.append(fx.Close(to))
    return planned
