"""A backend's answer, planned: decisions in, effects out. Pure.

`grip.decisions` reads the backend's response into decisions; this module says
what carrying them out takes, as effects (`grip.effects`), for the executor.
The answer is applied whole and in this order: what it changes of the
connection's state (meta, detach, subscriptions, keep-alive) first, then its
messages, then a close. So a client that has seen a reply never finds the
gateway in the state before it: a backend that answers `detached` and detaches
never hears of the frame the client sent on seeing it.

Anything after a close or a disconnect is ignored, as Pushpin does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import NamedTuple

from . import decisions as d
from . import effects as fx
from . import history, jobs, meta
from . import keepalive as ka
from .limits import MAX_INLINE
from .model import Connection
from .payload import Payload


class Rules(NamedTuple):
    """What of the deployment's settings an answer's plan depends on."""

    history: bool  # channels keep their history (SLIPWAY_HISTORY_SECONDS > 0)
    open_deadline: int  # seconds a queued delivery waits for a connection to open


def subscription(
    conn: Connection,
    channel: str,
    prev_id: str | None,
    opened: bool,
    now: float,
    rules: Rules,
) -> fx.Subscribe:
    """Subscribe `conn` to `channel`; when it follows the channel's history (it
    tracks positions, presented one, or the backend gave `prev_id`), with the
    `Join` job that replays what it missed if it was not a member yet. `opened`:
    the connection is known to be open (the subscribe answers one of its messages)."""
    since = conn.since.get(channel)
    joins = rules.history and (conn.resume or since is not None or prev_id is not None)
    join = None
    if joins:
        join = jobs.Join(
            channel,
            conn.id,
            conn.endpoint,
            conn.envelope,
            conn.resume,
            since,
            prev_id,
            int(now) + rules.open_deadline,
            opened or jobs.surely_open(conn.created_at, now),
            conn.floors.get(channel),
        )
    return fx.Subscribe(fx.member_of(conn), channel, join)


def _meta(conn: Connection, decision: d.SetMeta) -> tuple[dict[str, str], fx.Log | None]:
    """The connection's meta after the change, or as it was and why (grip/meta.py)."""
    after = meta.applied(conn.meta, {decision.name: decision.value})
    problem = meta.size_problem(after)
    if problem is not None:
        text = f"connection {conn.id}: meta {decision.name!r} not set: {problem}"
        return conn.meta, fx.Log(logging.WARNING, text)
    return after, None


def _keep_alive(conn: Connection, decision: d.KeepAlive, now: float) -> fx.Effect:
    """Replace the connection's keep-alive (docs/keepalive.md): a new one, or none."""
    if decision.control_frame is not None:
        return fx.Log(
            logging.WARNING,
            f"connection {conn.id}: keep-alive of message-type {decision.control_frame} "
            "turned off: @connections cannot send ping or pong frames (send text or binary "
            "content instead)",
        )
    if decision.content is None:
        return fx.SetKeepAlive(conn.id, None)
    payload = Payload.of_bytes(decision.content, decision.binary)
    if not payload.at_most(MAX_INLINE):
        text = f"connection {conn.id}: keep-alive refused: its content is over {MAX_INLINE} bytes"
        return fx.Log(logging.WARNING, text)
    return fx.SetKeepAlive(conn.id, ka.started(now, payload, decision.timeout, decision.mode))


def _split(
    decided: list[d.Decision],
) -> tuple[list[d.Decision], list[Payload], bool]:
    """The answer's state decisions, its messages and whether it closes, up to
    its first close or disconnect."""
    state: list[d.Decision] = []
    messages: list[Payload] = []
    for decision in decided:
        if isinstance(decision, d.Close | d.Disconnect):
            return state, messages, True
        if isinstance(decision, d.Send):
            messages.append(decision.payload)
        else:
            state.append(decision)
    return state, messages, False


def _state(
    conn: Connection, state: list[d.Decision], opened: bool, now: float, rules: Rules
) -> list[fx.Effect]:
    planned: list[fx.Effect] = []
    current = conn.meta
    for decision in state:
        if isinstance(decision, d.Subscribe):
            planned.append(
                subscription(conn, decision.channel, decision.prev_id, opened, now, rules)
            )
        elif isinstance(decision, d.Unsubscribe):
            planned.append(fx.Unsubscribe(conn.id, decision.channel))
        elif isinstance(decision, d.SetMeta):
            after, refused = _meta(replace(conn, meta=current), decision)
            if refused is not None:
                planned.append(refused)
            else:
                current = after
                planned.append(fx.SetMeta(conn.id, decision.name, decision.value))
        elif isinstance(decision, d.Detach):
            planned.append(fx.Detach(conn.id))
        elif isinstance(decision, d.KeepAlive):
            planned.append(_keep_alive(conn, decision, now))
        elif isinstance(decision, d.Dropped):
            planned.append(fx.Log(logging.INFO, f"connection {conn.id}: {decision.reason}"))
    return planned


def deferred(conn: Connection, payloads: list[Payload], close: bool, deadline: int) -> jobs.Deliver:
    """The job that delivers messages (and a close) once the connection is open."""
    return jobs.Deliver(conn.id, conn.endpoint, conn.envelope, tuple(payloads), close, deadline)


def answer(
    conn: Connection, decided: list[d.Decision], now: float, rules: Rules
) -> list[fx.Effect]:
    """The effects of an open connection's answer: its state, its messages, its close."""
    state, messages, close = _split(decided)
    planned = _state(conn, state, True, now, rules)
    to = fx.member_of(conn)
    planned += [fx.Send(to, fx.Message(payload)) for payload in messages]
    if close:
        # @connections DELETE carries no close code: the client sees 1000 or 1005.
        planned.append(fx.Close(to))
    return planned


def opening(
    conn: Connection,
    accept: d.Accept,
    rest: list[d.Decision],
    query: dict[str, str] | None,
    secret: str | Iterable[str] | None,
    now: float,
    rules: Rules,
) -> tuple[Connection, list[fx.Effect]]:
    """The effects of a backend's OPEN answer that accepts `conn`: its row, with
    the meta and detach the answer sets folded in, written in one put; its other
    state after; its messages (and close) queued as a `Deliver` job, since API
    Gateway refuses posts until `$connect` returns. Returns the connection as
    stored, too."""
    planned: list[fx.Effect] = []
    conn = replace(conn, grip_prefix=accept.grip_prefix)
    conn, noted = _positions(conn, query, secret)
    planned += noted
    state, messages, close = _split(rest)
    later: list[d.Decision] = []
    for decision in state:
        if isinstance(decision, d.SetMeta):
            after, refused = _meta(conn, decision)
            if refused is not None:
                planned.append(refused)
            conn = replace(conn, meta=dict(after))
        elif isinstance(decision, d.Detach):
            conn = replace(conn, detached=True)
        else:
            later.append(decision)
    planned.append(fx.PutConnection(conn))
    planned += _state(conn, later, False, now, rules)
    if messages or close:
        planned.append(fx.Enqueue(deferred(conn, messages, close, int(now) + rules.open_deadline)))
    return conn, planned


def _positions(
    conn: Connection, query: dict[str, str] | None, secret: str | Iterable[str] | None
) -> tuple[Connection, list[fx.Effect]]:
    """What a client that resumes presents (docs/resume.md): `resume=` opts an
    envelope connection in to positions, and may hold the ones it comes back with,
    each with the floor token of its first subscribe to the channel."""
    if not query or history.RESUME_PARAM not in query:
        return conn, []
    conn = replace(conn, resume=conn.envelope)
    try:
        presented = history.read_resume(query[history.RESUME_PARAM])
    except history.ResumeError as exc:
        return conn, [fx.Log(logging.WARNING, f"connection {conn.id}: positions ignored: {exc}")]
    floors = history.verified_floors(secret, presented.positions, presented.floors)
    return replace(conn, since=presented.positions, floors=floors), []
