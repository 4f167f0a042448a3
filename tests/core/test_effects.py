"""The core's plans (chalicelib/grip/answer.py, delivery.py): inputs in, lists
of effects out, compared as values. Pure: nothing but chalicelib.grip, no AWS."""

from __future__ import annotations

import logging

import pytest

from chalicelib.grip import answer, delivery, history, jobs
from chalicelib.grip import decisions as d
from chalicelib.grip import effects as fx
from chalicelib.grip import keepalive as ka
from chalicelib.grip.errors import TooLarge
from chalicelib.grip.limits import MAX_INLINE, MAX_META_BYTES, QUEUE_MESSAGE
from chalicelib.grip.model import Connection, Member
from chalicelib.grip.payload import Payload

NOW = 1_700_000_000.0
RULES = answer.Rules(history=True, open_deadline=30)
CONN = Connection("c1", "https://api.example/prod", created_at=int(NOW * 1000))
TO = Member("c1", "https://api.example/prod")


def text(value: str) -> Payload:
    return Payload.of_text(value)


# -- a backend's answer ---------------------------------------------------------------


def test_an_answer_changes_state_before_it_sends() -> None:
    """A backend that answers `detached`, then detaches: the detach is stored
    before the client can see the message (and send its next frame)."""
    decided: list[d.Decision] = [d.Send(b"detached"), d.Detach()]
    assert answer.answer(CONN, decided, NOW, RULES) == [
        fx.Detach("c1"),
        fx.Send(TO, fx.Message(Payload.of_bytes(b"detached", False))),
    ]


def test_every_state_change_comes_first_in_the_answers_order() -> None:
    decided: list[d.Decision] = [
        d.Send(b"one"),
        d.Unsubscribe("a"),
        d.Send(b"two"),
        d.SetMeta("room", "blue"),
        d.KeepAlive(None),
    ]
    planned = answer.answer(CONN, decided, NOW, RULES)
    assert planned == [
        fx.Unsubscribe("c1", "a"),
        fx.SetMeta("c1", "room", "blue"),
        fx.SetKeepAlive("c1", None),
        fx.Send(TO, fx.Message(Payload.of_bytes(b"one", False))),
        fx.Send(TO, fx.Message(Payload.of_bytes(b"two", False))),
    ]


def test_a_close_comes_last_and_ends_the_answer() -> None:
    decided: list[d.Decision] = [d.Send(b"bye"), d.Close(4000), d.Send(b"late"), d.Detach()]
    assert answer.answer(CONN, decided, NOW, RULES) == [
        fx.Send(TO, fx.Message(Payload.of_bytes(b"bye", False))),
        fx.Close(TO),
    ]


def test_meta_over_its_limit_is_logged_not_set() -> None:
    big = "x" * MAX_META_BYTES
    decided: list[d.Decision] = [d.SetMeta("big", big), d.SetMeta("small", "ok")]
    planned = answer.answer(CONN, decided, NOW, RULES)
    refused, kept = planned
    assert isinstance(refused, fx.Log) and refused.level == logging.WARNING
    assert "meta 'big' not set" in refused.text
    assert kept == fx.SetMeta("c1", "small", "ok")


def test_a_keep_alive_is_started_now_or_refused_when_too_large() -> None:
    ok = answer.answer(CONN, [d.KeepAlive(b"ping", timeout=30)], NOW, RULES)
    assert ok == [fx.SetKeepAlive("c1", ka.started(NOW, text("ping"), 30, ka.IDLE))]
    refused = answer.answer(CONN, [d.KeepAlive(b"x" * (MAX_INLINE + 1))], NOW, RULES)
    assert [type(e) for e in refused] == [fx.Log]


def test_a_subscribe_queues_a_join_only_when_the_connection_follows_history() -> None:
    plain = answer.answer(CONN, [d.Subscribe("news")], NOW, RULES)
    assert plain == [fx.Subscribe(TO, "news", None)]
    with_id = answer.answer(CONN, [d.Subscribe("news", prev_id="i7")], NOW, RULES)
    join = jobs.Join("news", "c1", TO.endpoint, False, False, None, "i7", int(NOW) + 30, True)
    assert with_id == [fx.Subscribe(TO, "news", join)]
    off = answer.Rules(history=False, open_deadline=30)
    assert answer.answer(CONN, [d.Subscribe("news", "i7")], NOW, off) == plain


def test_an_open_answer_folds_meta_and_detach_into_the_row_and_queues_its_messages() -> None:
    accept = d.Accept({}, "m:")
    rest: list[d.Decision] = [
        d.SetMeta("room", "blue"),
        d.Send(b"welcome"),
        d.Detach(),
        d.Subscribe("news"),
    ]
    conn, planned = answer.opening(CONN, accept, rest, None, None, NOW, RULES)
    assert (conn.meta, conn.detached, conn.grip_prefix) == ({"room": "blue"}, True, "m:")
    deliver = jobs.Deliver(
        "c1", TO.endpoint, False, (Payload.of_bytes(b"welcome", False),), False, int(NOW) + 30
    )
    assert planned == [
        fx.PutConnection(conn),
        fx.Subscribe(TO, "news", None),
        fx.Enqueue(deliver),
    ]


def test_an_open_answer_without_messages_queues_nothing() -> None:
    _, planned = answer.opening(CONN, d.Accept({}, None), [], None, None, NOW, RULES)
    assert [type(e) for e in planned] == [fx.PutConnection]


# -- a publish's way ------------------------------------------------------------------------


def test_a_job_that_fits_the_queue_is_queued_as_it_is() -> None:
    job = jobs.Publish("news", jobs.Inline(text("hi")))
    assert delivery.queued(job, QUEUE_MESSAGE, True, "n1") == [fx.Enqueue(job)]


def test_a_job_too_large_for_the_queue_keeps_its_message_in_one_object() -> None:
    big = text("x" * QUEUE_MESSAGE)
    job = jobs.Publish("news", jobs.Inline(big))
    stored = jobs.Stored("publish/n1.json", False)
    assert delivery.queued(job, QUEUE_MESSAGE, True, "n1") == [
        fx.PutObject("publish/n1.json", big),
        fx.Enqueue(job._replace(action=stored)),
    ]
    with pytest.raises(TooLarge, match="SLIPWAY_BUCKET"):
        delivery.queued(job, QUEUE_MESSAGE, False, "n1")


def test_objects_are_written_before_any_job_is_queued() -> None:
    a, b = fx.Enqueue(jobs.Publish("a", jobs.Inline(text("1")))), fx.PutObject("k", text("2"))
    assert delivery.objects_first([a, b]) == [b, a]


def test_a_split_stores_a_large_message_once_for_every_part() -> None:
    big = text("x" * (MAX_INLINE + 1))
    pages = [[Member(f"e{p}", "https://e", envelope=True)] for p in range(3)]
    planned = delivery.split("news", jobs.Inline(big), pages, None, "m1", QUEUE_MESSAGE, True)
    stored = jobs.Stored("downloads/m1.json", False)
    assert planned == [fx.PutObject("downloads/m1.json", big)] + [
        fx.Enqueue(jobs.Part("news", stored, k, tuple(pages[k])), f"m1-{k}") for k in range(3)
    ]


def test_a_split_for_raw_members_only_stores_nothing() -> None:
    pages = [[Member("r0", "https://e")], [Member("r1", "https://e")]]
    planned = delivery.split("news", jobs.Inline(text("hi")), pages, None, "m1", 9999, True)
    assert [type(e) for e in planned] == [fx.Enqueue, fx.Enqueue]


def test_a_page_is_sent_at_once_with_its_position_and_recorded_for_idle_keep_alives() -> None:
    members = (Member("a", "https://e"), Member("b", "https://e", envelope=True, resume=True))
    position = history.Position("ep", 7)
    planned = delivery.deliver(jobs.Inline(text("hi")), members, "m1", "news", position, now=NOW)
    message = fx.Message(text("hi"), None, "m1", history.trailer("news", position))
    assert planned == [fx.SendAll(members, message), fx.Delivered("news", NOW)]


def test_a_part_is_not_recorded_and_a_close_all_closes() -> None:
    members = (Member("a", "https://e"),)
    part = delivery.deliver(jobs.Inline(text("hi")), members, channel="news", whole=False)
    assert part == [fx.SendAll(members, fx.Message(text("hi")))]
    assert delivery.deliver(jobs.CloseAll(), members) == [fx.CloseAll(members)]
    assert delivery.deliver(jobs.Inline(text("hi")), ()) == []


def test_history_keeps_a_small_message_inline_and_a_large_one_in_one_object() -> None:
    small = jobs.Inline(text("hi"))
    assert delivery.kept(small, "m1") == (small, [])
    big = text("x" * (200 * 1024))
    stored, planned = delivery.kept(jobs.Inline(big), "m1")
    assert stored == jobs.Stored("downloads/m1.json", False)
    assert planned == [fx.PutObject("downloads/m1.json", big)]


def test_an_open_answers_messages_are_sent_in_order_then_the_close() -> None:
    job = jobs.Deliver("c1", TO.endpoint, False, (text("a"), text("b")), True, 0)
    assert delivery.opened(job, "q1") == [
        fx.Send(TO, fx.Message(text("a"), name="q1-0")),
        fx.Send(TO, fx.Message(text("b"), name="q1-1")),
        fx.Close(TO),
    ]


def test_keep_alives_go_out_once_per_distinct_content() -> None:
    a, b, c = (Member(x, "https://e") for x in "abc")
    job = jobs.KeepAlive(5, 0, ((a, text("ka")), (b, text("other")), (c, text("ka"))))
    assert delivery.keep_alives(job) == [
        fx.SendAll((a, c), fx.Message(text("ka"))),
        fx.SendAll((b,), fx.Message(text("other"))),
    ]


def test_a_tick_queues_the_keep_alives_due_and_moves_those_sent_to_since() -> None:
    payload = text("ka")
    quiet = ka.Settings(payload, 30, ka.IDLE, 10, 0)
    busy = ka.Settings(payload, 30, ka.IDLE, 10, 0)
    targets = [
        ka.Target("quiet", "https://e", False, quiet, frozenset({"a"})),
        ka.Target("busy", "https://e", False, busy, frozenset({"b"})),
    ]
    second = 70  # 70 % 30 == 10: both are due, by their phase
    count, planned = delivery.tick(second, targets, {"b": second - 5.0})
    moved = ka.decide(targets[1], second, second - 5.0)
    assert isinstance(moved, ka.Rephase)
    job = jobs.KeepAlive(second, 0, ((Member("quiet", "https://e"), payload),))
    assert count == 1
    assert planned == [
        fx.Rephase("busy", busy.slot(), ka.slot(30, moved.phase)),
        fx.Enqueue(job),
    ]
