"""GRIP keep-alive on a serverless footing: when each keep-alive is due. Pure.

A connection with keep-alive `timeout` T sits in the wheel slot
`ka#<T>#<phase>`, where `phase` is the second (mod T) its timer started: it is
due at every second d with d mod T == phase. Finding what is due at d is one
index query per timeout in use, and an interval keep-alive costs no write at
all: its slot never changes. An idle one moves to a new phase only when the
connection was sent something since its last keep-alive (one write then).

What counts as "sent something" for idle mode is a publish to one of the
connection's channels (the worker records when it delivered to a channel, one
write per publish): a message sent to one connection alone (a backend reply, a
control API send) does not restart the timer, so an extra keep-alive may follow
it. An extra keep-alive is harmless; a missing one never happens.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .payload import Payload

IDLE, INTERVAL = "idle", "interval"
DEFAULT_TIMEOUT = 55  # Pushpin's
# How long before its due second a keep-alive is handled: it may arrive up to
# this early, and the rest of the allowed 1 s early / 2 s late is for delivery.
LEAD = 0.5


class Settings(NamedTuple):
    """A connection's keep-alive, as the store keeps it."""

    payload: Payload
    timeout: int
    mode: str  # IDLE or INTERVAL
    phase: int  # the second (mod timeout) its timer started
    since: int  # the second it was set: the first one is due a timeout later

    def slot(self) -> str:
        return slot(self.timeout, self.phase)

    def to_fields(self) -> dict[str, object]:
        fields = {"timeout": self.timeout, "mode": self.mode, "since": self.since}
        return {**self.payload.to_fields(), **fields}


def slot(timeout: int, phase: int) -> str:
    return f"ka#{timeout}#{phase % timeout}"


def started(now: float, payload: Payload, timeout: int, mode: str) -> Settings:
    """A keep-alive set at `now`: first due one timeout later (never early: the
    start is rounded up to the second)."""
    since = math.ceil(now)
    return Settings(payload, timeout, mode, since % timeout, since)


def due_slots(second: int, timeouts: list[int]) -> list[str]:
    """The slots whose keep-alives are due at `second`."""
    return [slot(t, second % t) for t in timeouts]


class Target(NamedTuple):
    """A connection found in a due slot."""

    connection_id: str
    endpoint: str
    envelope: bool
    settings: Settings
    channels: frozenset[str]


class Send(NamedTuple):
    target: Target


class Wait(NamedTuple):
    """Its slot came round before its first period was over: nothing to do."""

    target: Target


class Rephase(NamedTuple):
    """Not due after all (it was sent something since): move it to the phase of
    its last activity, so it comes due one timeout after that."""

    target: Target
    phase: int


def decide(target: Target, second: int, last_sent: float | None) -> Send | Wait | Rephase:
    """Send the keep-alive due at `second`, unless it was set less than a timeout
    ago, or idle mode and the connection was sent something after its timer last
    started (`last_sent`: the latest delivery to one of its channels, epoch seconds)."""
    settings = target.settings
    if second < settings.since + settings.timeout:
        return Wait(target)
    if settings.mode != IDLE or last_sent is None:
        return Send(target)
    restarted = math.ceil(last_sent)
    if restarted <= second - settings.timeout:  # before the timer's last start
        return Send(target)
    return Rephase(target, restarted % settings.timeout)
