"""When keep-alives are due (chalicelib/grip/keepalive.py): pure, simulated
over time with Hypothesis against Pushpin's semantics and the precision we
promise (no earlier than 1 s before due, no later than 2 s after)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.grip import keepalive as ka
from chalicelib.grip.payload import Payload

CONTENT = Payload.of_text("ka")


def target(settings: ka.Settings, channels: frozenset[str] = frozenset({"c"})) -> ka.Target:
    return ka.Target("c1", "http://e", False, settings, channels)


def test_a_keep_alive_waits_one_period_then_is_due_at_its_phase() -> None:
    settings = ka.started(100.3, CONTENT, 10, ka.INTERVAL)
    assert (settings.since, settings.phase, settings.slot()) == (101, 1, "ka#10#1")
    assert ka.decide(target(settings), 101, None) == ka.Wait(target(settings))
    assert ka.decide(target(settings), 111, None) == ka.Send(target(settings))
    assert "ka#10#1" in ka.due_slots(111, [10, 7])
    assert ka.due_slots(111, [10, 7]) == ["ka#10#1", "ka#7#6"]


def test_interval_mode_ignores_other_messages_and_idle_mode_does_not() -> None:
    interval = target(ka.started(0, CONTENT, 10, ka.INTERVAL))
    assert ka.decide(interval, 20, last_sent=19.5) == ka.Send(interval)
    idle = target(ka.started(0, CONTENT, 10, ka.IDLE))
    assert ka.decide(idle, 20, last_sent=13.2) == ka.Rephase(idle, 4)  # due at 24 now
    assert ka.decide(idle, 20, last_sent=9.0) == ka.Send(idle)  # before the last start


def _simulate(start: float, timeout: int, mode: str, published: list[float], until: int):
    """Run the scheduler's seconds: each second d is handled at d - LEAD, seeing
    the publishes up to then. Returns when keep-alives were sent."""
    settings = ka.started(start, CONTENT, timeout, mode)
    sent = []
    for second in range(math.ceil(start), until):
        if second % timeout != settings.phase:
            continue
        now = second - ka.LEAD
        seen = [t for t in published if t <= now]
        decided = ka.decide(target(settings), second, max(seen, default=None))
        if isinstance(decided, ka.Send):
            sent.append(now)
        elif isinstance(decided, ka.Rephase):
            settings = settings._replace(phase=decided.phase)
    return sent


@given(st.floats(0, 1000), st.integers(2, 60))
def test_interval_keep_alives_are_on_time(start: float, timeout: int) -> None:
    sent = _simulate(start, timeout, ka.INTERVAL, [], int(start) + 10 * timeout)
    assert len(sent) >= 8
    for k, when in enumerate(sent, start=1):
        due = start + k * timeout
        assert due - 1 <= when <= due + 2


@given(
    st.floats(0, 100),
    st.integers(2, 30),
    st.lists(st.floats(0, 400), max_size=30).map(sorted),
)
def test_idle_keep_alives_follow_the_last_message_and_none_is_missing(
    start: float, timeout: int, publishes: list[float]
) -> None:
    publishes = [t for t in publishes if t > start]
    until = 500
    sent = _simulate(start, timeout, ka.IDLE, publishes, until)
    # Pushpin: a keep-alive `timeout` after the last message (or keep-alive) sent.
    messages = sorted([start, *publishes, *sent])
    for when in sent:
        before = max(t for t in messages if t < when)
        assert when >= before + timeout - 1, (when, before)
    end = until - timeout - 3  # later keep-alives fall outside the simulation
    timeline = [t for t in messages if t <= end]
    for a, b in zip(timeline, [*timeline[1:], end], strict=True):
        assert b - a <= timeout + 2, (a, b)
