"""Effects: what the gateway does, as values. Pure.

The core turns each input (a backend's answer, a publish, a join, a keep-alive
tick, a control request) into a list of effects, as `h11` turns events into
bytes; one executor (`chalicelib/executor.py`) carries them out through the
adapters, in order, and owns retries and "a large message is written to S3
once". Nothing here does I/O, so a planner's test compares lists of effects.

Store changes (one connection's row, or its channels):
  `PutConnection`, `Subscribe`, `Unsubscribe`, `SetMeta`, `Detach`,
  `SetKeepAlive`, `Rephase`, `Joined`, `SetClose`, `Delivered`.
Messages out (@connections):
  `Send` (one message to one connection, in order, answered one by one),
  `SendAll` (one message to many, at once), `Post` (a frame of the gateway's
  own), `Close`, `CloseAll`.
Objects, queues, the backend:
  `PutObject`, `Enqueue`, `Inbox` (ordered delivery's inbox, and its wake-up),
  `Forward` (events to the backend; its answer is planned and carried out),
  `Ended` (a connection closed), `Forget` (a post found it gone).
And `Log`: what the core has to say about its decision.

A planner puts an answer's store changes before its messages: a client that has
seen a reply never finds the gateway in the state before it (as Pushpin applies
an answer whole before it reads the client's next frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import codec, jobs
from . import keepalive as ka
from . import ordered as o
from .model import Connection, Member
from .payload import Payload


@dataclass(frozen=True)
class Message:
    """One message on its way to clients: its payload, or the S3 object that
    holds it in its download form (`stored`). `name` names the object written
    for it when an envelope connection needs one (a retried job overwrites it
    rather than writing another); `trailer` is the channel position sent with
    it to connections that track positions (docs/resume.md)."""

    payload: Payload | None = None
    stored: jobs.Stored | None = None
    name: str | None = None
    trailer: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.payload is None and self.stored is None:
            raise ValueError("a message needs its payload or its stored object")


def of_action(action: jobs.Inline | jobs.Stored, name: str | None = None) -> Message:
    """The message a job's action carries."""
    if isinstance(action, jobs.Stored):
        return Message(stored=action, name=name)
    return Message(action.payload, name=name)


def member_of(conn: Connection) -> Member:
    """Who a message to `conn` goes to, and in which form."""
    return Member(conn.id, conn.endpoint, conn.envelope, conn.resume)


# -- store changes -------------------------------------------------------------------


@dataclass(frozen=True)
class PutConnection:
    """Write a new connection's row (at $connect, with what its OPEN answer set)."""

    connection: Connection


@dataclass(frozen=True)
class Subscribe:
    """Make `member` a member of `channel`; when `join` is set and the
    connection was not a member yet, queue the `Join` that replays what it
    missed (docs/resume.md)."""

    member: Member
    channel: str
    join: jobs.Join | None = None


@dataclass(frozen=True)
class Unsubscribe:
    connection_id: str
    channel: str


@dataclass(frozen=True)
class SetMeta:
    connection_id: str
    name: str
    value: str  # "" deletes


@dataclass(frozen=True)
class Detach:
    """The backend hears nothing more of the connection."""

    connection_id: str


@dataclass(frozen=True)
class SetKeepAlive:
    """Replace the connection's keep-alive (None: no keep-alive)."""

    connection_id: str
    settings: ka.Settings | None


@dataclass(frozen=True)
class Rephase:
    """Move a keep-alive to the slot of its new phase, unless it was replaced meanwhile."""

    connection_id: str
    old: str
    new: str


@dataclass(frozen=True)
class Joined:
    """A member's `Join` has run: publishes reach it from now on, its count of
    joins queued goes down, and with `position_used` the position it presented
    for `channel` is spent (docs/resume.md)."""

    channel: str
    connection_id: str
    position_used: bool = False


@dataclass(frozen=True)
class SetClose:
    """The close code a control API close gave, for the backend's CLOSE."""

    connection_id: str
    code: int
    reason: str


@dataclass(frozen=True)
class Delivered:
    """Every member of `channel` was sent a message now (idle keep-alives):
    carried out only if every send before it in the list reached all its
    recipients."""

    channel: str
    at: float


# -- messages out ----------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Post one connection a message, in the form its mode needs."""

    to: Member
    message: Message


@dataclass(frozen=True)
class SendAll:
    """Post many connections one message at once, each in the form its mode
    needs; those found gone are forgotten."""

    to: tuple[Member, ...]
    message: Message


@dataclass(frozen=True)
class Post:
    """Post one connection a frame the gateway wrote itself, as it is."""

    to: Member
    body: bytes


@dataclass(frozen=True)
class Close:
    """Close one connection (@connections DELETE: no close code reaches the client)."""

    to: Member


@dataclass(frozen=True)
class CloseAll:
    to: tuple[Member, ...]


# -- objects, queues, the backend ---------------------------------------------------------


@dataclass(frozen=True)
class PutObject:
    """Store a message in S3, in the form envelope clients download."""

    key: str
    payload: Payload


@dataclass(frozen=True)
class Enqueue:
    """Queue a job for the worker; `dedup`: a retried step queues it once."""

    job: jobs.Job
    dedup: str | None = None


@dataclass(frozen=True)
class Inbox:
    """Ordered delivery: write the event to its connection's inbox and wake the
    forwarder (docs/ordered.md)."""

    job: o.Job
    message_id: str


@dataclass(frozen=True)
class Forward:
    """Send events of an open connection to the backend, and carry out its answer."""

    connection: Connection
    events: tuple[codec.Event, ...]


@dataclass(frozen=True)
class Ended:
    """The connection closed (`$disconnect`): an ordered one's end waits in its
    inbox behind its messages (`received_ms`); otherwise its rows are removed and
    the backend is told, unless the connection is detached. `final`: the
    forwarder took the end from the inbox."""

    connection_id: str
    status: int | None
    reason: str
    received_ms: int = 0
    final: bool = False


@dataclass(frozen=True)
class Forget:
    """A post found the connection gone outside any event of its own: remove it
    and tell the backend DISCONNECT (an ordered one: after its messages)."""

    connection_id: str


@dataclass(frozen=True)
class Log:
    level: int  # logging's levels
    text: str


Effect = (
    PutConnection
    | Subscribe
    | Unsubscribe
    | SetMeta
    | Detach
    | SetKeepAlive
    | Rephase
    | Joined
    | SetClose
    | Delivered
    | Send
    | SendAll
    | Post
    | Close
    | CloseAll
    | PutObject
    | Enqueue
    | Inbox
    | Forward
    | Ended
    | Forget
    | Log
)

STORE_CHANGES = (
    PutConnection,
    Subscribe,
    Unsubscribe,
    SetMeta,
    Detach,
    SetKeepAlive,
    Rephase,
    Joined,
    SetClose,
)
