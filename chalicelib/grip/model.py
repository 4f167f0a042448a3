"""The gateway's domain types: a connection and a channel's member. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .history import Position


@dataclass
class Connection:
    """What the gateway keeps of one client connection (a row in the store)."""

    id: str
    endpoint: str  # the @connections API it is reached through
    headers: dict[str, str] = field(default_factory=dict)  # the handshake's, replayed
    query: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    grip_prefix: str | None = None  # None: GRIP mode off
    detached: bool = False
    created_at: int = 0  # epoch milliseconds
    channels: frozenset[str] = frozenset()
    keep_alive: dict[str, Any] | None = None
    close_code: int | None = None  # set by a control API close, for the backend's CLOSE
    close_reason: str = ""
    envelope: bool = False  # speaks envelope mode's frames (docs/envelope.md)
    resume: bool = False  # tracks positions: gets them, and [6] frames (docs/resume.md)
    since: dict[str, Position] = field(default_factory=dict)  # presented, not yet used
    ordered: bool = False  # events reach the backend in order, batched (docs/ordered.md)
    joins: int = 0  # its `Join` jobs queued and not yet run (docs/resume.md)
    # Per channel of `since`: the offset of the client's first subscribe there, from
    # a floor token it presented and the gateway checked (docs/resume.md).
    floors: dict[str, int] = field(default_factory=dict)


class Member(NamedTuple):
    """One connection of a channel, with what a sender needs to reach it."""

    connection_id: str
    endpoint: str
    envelope: bool = False
    resume: bool = False  # sent positions with channel messages
    joining: bool = False  # its recovery is queued: live messages wait for it
