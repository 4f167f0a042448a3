"""The worker's jobs: every kind of queue message, as an immutable class. Pure.

(NamedTuples rather than frozen dataclasses: a sixth of the import time, which
every cold start pays.)

A job is turned into JSON only at the SQS edge (`encode`, `decode`); the rest
of the code passes the typed value. Every body carries a version `v`, so that a
deploy can drain the messages an older one queued: `decode` reads the current
version and the unversioned bodies that came before it.

- `Publish`: one GRIP publish item, group `chan#<channel>`. A channel that fits
  in one page of members is delivered by the worker that takes it; a larger one
  is split into `Part`s.
- `Part`: one page of a channel's members for a publish, group
  `chan#<channel>#p<page>`, so parts are delivered in parallel.
- `Deliver`: what a backend's OPEN response held for its connection, group
  `conn#<id>`: API Gateway refuses posts until `$connect` has returned.
- `KeepAlive`: keep-alives due at one second, for a chunk of connections, each
  with its own content; group `ka#<second>#<chunk>`, so chunks go in parallel.
- `Join`: a connection just subscribed to a channel whose history it follows:
  replay what it missed, tell it where it is (docs/resume.md). Group
  `chan#<channel>`, the channel's own, so it falls between two publishes.

What a publish does to each member is its `action`: send a payload carried in
the job (`Inline`), send a message kept in S3 because it was too large for the
queue (`Stored`: its key, in the form envelope clients download), or close the
member (`CloseAll`).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from . import text as _text
from .errors import ParseError
from .history import Position
from .limits import INTEGRATION_TIMEOUT
from .model import Member
from .payload import Payload, PayloadError

VERSION = 1


class JobError(ParseError):
    """A queue body is not a job this code can read, and never will be."""

    status = 500


class NewerJob(JobError):
    """A job of a later version: a worker of the deploy that queued it can read it."""


class PermanentJobError(JobError):
    """A job that no attempt can ever carry out (a deterministic failure, such as
    text with no UTF-8 form): the worker moves it aside at once instead of letting
    it hold its FIFO group through every retry (docs/reliability.md)."""

    def __init__(self, message: str, channel: str | None = None) -> None:
        super().__init__(message)
        self.channel = channel


class Inline(NamedTuple):
    payload: Payload


class Stored(NamedTuple):
    key: str
    binary: bool


class CloseAll(NamedTuple):
    code: int | None = None
    reason: str = ""


Action = Inline | Stored | CloseAll


class Publish(NamedTuple):
    channel: str
    action: Action
    id: str | None = None  # the GRIP item's id and prev-id, kept in the history
    prev_id: str | None = None


class Part(NamedTuple):
    channel: str
    action: Action
    page: int
    members: tuple[Member, ...]
    position: Position | None = None  # the publish's place in the channel's history


class Deliver(NamedTuple):
    connection: str
    endpoint: str
    envelope: bool
    payloads: tuple[Payload, ...]
    close: bool
    deadline: int  # epoch seconds: after it, a connection that never opened is given up


class KeepAlive(NamedTuple):
    second: int
    chunk: int
    targets: tuple[tuple[Member, Payload], ...]


class Join(NamedTuple):
    channel: str
    connection: str
    endpoint: str
    envelope: bool
    resume: bool  # tracks positions: sent them, and a [6] frame at the end
    since: Position | None  # the client's position, if it presented one
    after_id: str | None  # the backend's prev-id, if it gave one
    deadline: int  # epoch seconds: after it, a connection that never opened is given up
    # The connection was open when it subscribed (a subscribe in answer to one of its
    # messages): a 410 then means it is gone, not that its $connect has not returned.
    opened: bool = False
    # The offset of the client's first subscribe to the channel, checked from its
    # floor token: it recovers nothing before it (None: no floor presented).
    floor: int | None = None


Job = Publish | Part | Deliver | KeepAlive | Join


def surely_open(created_at_ms: int, now: float) -> bool:
    """Whether a connection that started at `created_at_ms` (API Gateway's
    connectedAt) is past its $connect for sure: API Gateway gives $connect at most
    its integration timeout, so a 410 after that means it has left."""
    return created_at_ms > 0 and now - created_at_ms / 1000 > INTEGRATION_TIMEOUT


def group(job: Job) -> str:
    """The FIFO message group: what must keep its order shares one."""
    if isinstance(job, Publish | Join):
        return f"chan#{job.channel}"
    if isinstance(job, Part):
        return f"chan#{job.channel}#p{job.page}"
    if isinstance(job, KeepAlive):
        return f"ka#{job.second}#{job.chunk}"
    return f"conn#{job.connection}"


# -- to JSON --------------------------------------------------------------------


def encode(job: Job) -> str:
    """The queue body: ASCII JSON, so its length is its size in bytes."""
    body: dict[str, Any]
    if isinstance(job, Publish):
        body = {"v": VERSION, "job": "publish", "channel": job.channel, **_action(job.action)}
        if job.id is not None:
            body["id"] = job.id
        if job.prev_id is not None:
            body["prev-id"] = job.prev_id
    elif isinstance(job, Part):
        body = {
            "v": VERSION,
            "job": "part",
            "channel": job.channel,
            "page": job.page,
            **_action(job.action),
            **_members(job.members),
        }
        if job.position is not None:
            body["position"] = list(job.position)
    elif isinstance(job, Join):
        body = {
            "v": VERSION,
            "job": "join",
            "channel": job.channel,
            "connection": job.connection,
            "endpoint": job.endpoint,
            "envelope": job.envelope,
            "resume": job.resume,
            "since": None if job.since is None else list(job.since),
            "after-id": job.after_id,
            "deadline": job.deadline,
            "opened": job.opened,
            "floor": job.floor,
        }
    elif isinstance(job, KeepAlive):
        body = {
            "v": VERSION,
            "job": "keepalive",
            "second": job.second,
            "chunk": job.chunk,
            "targets": [
                [m.connection_id, m.endpoint, m.envelope, p.to_fields()] for m, p in job.targets
            ],
        }
    else:
        body = {
            "v": VERSION,
            "job": "deliver",
            "connection": job.connection,
            "endpoint": job.endpoint,
            "envelope": job.envelope,
            "messages": [p.to_fields() for p in job.payloads],
            "close": job.close,
            "deadline": job.deadline,
        }
    return json.dumps(body, separators=(",", ":"))


def _action(action: Action) -> dict[str, Any]:
    if isinstance(action, Inline):
        return action.payload.to_fields()
    if isinstance(action, Stored):
        return {"stored": action.key, "binary": action.binary}
    return {"close": {"code": action.code, "reason": action.reason}}


def _members(members: tuple[Member, ...]) -> dict[str, Any]:
    """Ids grouped by endpoint and mode: a page of 1,000 fits a queue message.
    Envelope members that track positions are listed again under `resume`."""
    found: dict[str, Any] = {"raw": {}, "envelope": {}}
    for m in members:
        found["envelope" if m.envelope else "raw"].setdefault(m.endpoint, []).append(
            m.connection_id
        )
    resume = [m.connection_id for m in members if m.envelope and m.resume]
    if resume:
        found["resume"] = resume
    return found


# -- from JSON ------------------------------------------------------------------


def decode(text: str | bytes) -> Job:
    try:
        body = json.loads(text)
    except ValueError:
        raise JobError("a queue body must be JSON") from None
    if not isinstance(body, dict):
        raise JobError("a queue body must be a JSON object")
    if "v" not in body:
        body = _from_unversioned(body)
    version = body.get("v")
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise NewerJob(f"job version {version} is newer than this worker's {VERSION}")
    if version != VERSION:
        raise JobError(f"unknown job version {version!r}")
    bad = _text.unpaired_at(body)
    if bad is not None:
        channel = body.get("channel")
        raise PermanentJobError(
            f"its {bad} {_text.PROBLEM}",
            channel if isinstance(channel, str) and _text.is_text(channel) else None,
        )
    try:
        return _job(body)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise JobError(f"a {body.get('job')!r} job is malformed: {exc!r}") from None


def _job(body: dict[str, Any]) -> Job:
    kind = body["job"]
    if kind == "publish":
        return Publish(
            body["channel"],
            _read_action(body),
            _str_or_none(body, "id"),
            _str_or_none(body, "prev-id"),
        )
    if kind == "part":
        resume = set(body.get("resume", ()))
        members = [
            Member(cid, endpoint, mode == "envelope", mode == "envelope" and cid in resume)
            for mode in ("raw", "envelope")
            for endpoint, ids in body.get(mode, {}).items()
            for cid in ids
        ]
        position = body.get("position")
        return Part(
            body["channel"],
            _read_action(body),
            int(body["page"]),
            tuple(members),
            None if position is None else _position(position),
        )
    if kind == "join":
        since = body.get("since")
        return Join(
            str(body["channel"]),
            str(body["connection"]),
            str(body["endpoint"]),
            bool(body["envelope"]),
            bool(body["resume"]),
            None if since is None else _position(since),
            _str_or_none(body, "after-id"),
            int(body["deadline"]),
            bool(body.get("opened", False)),
            None if body.get("floor") is None else int(body["floor"]),
        )
    if kind == "deliver":
        return Deliver(
            str(body["connection"]),
            str(body["endpoint"]),
            bool(body["envelope"]),
            tuple(Payload.from_fields(m) for m in body["messages"]),
            bool(body["close"]),
            int(body["deadline"]),
        )
    if kind == "keepalive":
        targets = tuple(
            (Member(str(cid), str(endpoint), bool(envelope)), Payload.from_fields(fields))
            for cid, endpoint, envelope, fields in body["targets"]
        )
        return KeepAlive(int(body["second"]), int(body["chunk"]), targets)
    raise JobError(f"unknown job {kind!r}")


def _str_or_none(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return None if value is None else str(value)


def _position(value: Any) -> Position:
    epoch, offset = value
    return Position(str(epoch), int(offset))


def _read_action(body: dict[str, Any]) -> Action:
    if "close" in body:
        close = body["close"]
        code = close.get("code")
        return CloseAll(int(code) if code is not None else None, str(close.get("reason") or ""))
    if "stored" in body:
        return Stored(str(body["stored"]), bool(body["binary"]))
    try:
        return Inline(Payload.from_fields(body))
    except PayloadError as exc:
        raise ValueError(str(exc)) from None


def _from_unversioned(body: dict[str, Any]) -> dict[str, Any]:
    """The bodies queued before jobs had versions (`kind`, `item`/`blob`,
    `targets`/`wrapped`, `frames`), in the current shape."""
    kind = body.get("kind")
    out: dict[str, Any] = {"v": VERSION, "job": kind}
    if kind in ("publish", "part"):
        if "blob" in body:
            out.update(channel=body["channel"], stored=body["blob"], binary=body["binary"])
        else:
            item = body["item"]
            out["channel"] = item["channel"]
            if item.get("action") == "close":
                out["close"] = {"code": item.get("code"), "reason": item.get("reason", "")}
            else:
                out.update({k: item[k] for k in ("content", "content-bin") if k in item})
        if kind == "part":
            out.update(page=0, raw=body.get("targets", {}), envelope=body.get("wrapped", {}))
        return out
    if kind == "deliver":
        out.update(
            {k: body[k] for k in ("connection", "endpoint", "close", "deadline")},
            envelope=bool(body.get("envelope")),
            messages=body["frames"],
        )
        return out
    raise JobError(f"unknown queue message kind {kind!r}")
