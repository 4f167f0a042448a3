"""chalicelib/grip/ordered.py: ordered delivery's jobs, wake-ups, inbox order and
requests to the backend. Pure."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.grip import codec
from chalicelib.grip import ordered as o
from chalicelib.grip.limits import MAX_POST, ORDERED_REQUEST_BYTES

ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
times = st.integers(min_value=0, max_value=10**13 - 1)
jobs = st.one_of(
    st.builds(o.Inbound, ids, times, st.binary(max_size=300), st.booleans()),
    st.builds(
        o.Ended,
        ids,
        times,
        st.none() | st.integers(min_value=1000, max_value=4999),
        st.text(max_size=30),
    ),
)


@given(jobs)
def test_a_job_survives_the_inbox(job: o.Job) -> None:
    encoded = o.encode(job)
    assert encoded.isascii()
    assert o.decode(encoded) == job


@given(ids, times, times)
def test_a_wake_up_survives_the_queue(cid: str, received: int, written: int) -> None:
    wake = o.Wake(cid, received, written)
    assert o.decode_wake(o.encode_wake(wake)) == wake


def test_a_frame_of_128_kb_stays_under_sqs_and_dynamodb_limits() -> None:
    job = o.Inbound("c", 1, ("é" * (MAX_POST // 2)).encode())
    assert len(o.encode(job)) < 256 * 1024


@pytest.mark.parametrize(
    "body", ['{"v": 2, "k": "in"}', "[]", "not json", '{"v": 1, "k": "what", "c": "x", "t": 1}']
)
def test_what_is_not_a_job_is_refused(body: str) -> None:
    with pytest.raises(o.OrderedJobError):
        o.decode(body)
    with pytest.raises(o.OrderedJobError):
        o.decode_wake(body)


@given(st.lists(st.tuples(times, ids), min_size=2, max_size=20))
def test_sort_keys_order_by_receipt_time(keys: list[tuple[int, str]]) -> None:
    ordered = sorted(keys, key=lambda k: o.sort_key(*k))
    assert [t for t, _ in ordered] == sorted(t for t, _ in keys)


def test_an_end_sorts_after_messages_of_its_millisecond() -> None:
    assert o.sort_key(5, "~end") > o.sort_key(5, "Zz9_-=")
    assert o.sort_key(5, "~end") < o.sort_key(6, "")


def test_nothing_after_an_end_is_forwarded() -> None:
    a, b = o.Inbound("c", 1, b"a"), o.Inbound("c", 2, b"b")
    end, late = o.Ended("c", 3, 1000), o.Inbound("c", 4, b"late")
    assert o.until_ended([a, b, end, late]) == ([a, b], end)
    assert o.until_ended([a, b]) == ([a, b], None)


def test_requests_are_bounded_like_pushpins_buffer() -> None:
    events = [codec.Event("TEXT", b"x" * 60_000) for _ in range(7)]
    batches = o.requests(events)
    assert [e for batch in batches for e in batch] == events
    assert all(len(codec.encode(b)) <= ORDERED_REQUEST_BYTES for b in batches)
    assert [len(b) for b in batches] == [3, 3, 1]


def test_an_event_larger_than_the_bound_goes_alone() -> None:
    big = codec.Event("TEXT", b"x" * (ORDERED_REQUEST_BYTES + 1))
    small = codec.Event("TEXT", b"y")
    assert o.requests([small, big, small]) == [[small], [big], [small]]
    assert o.requests([]) == []
