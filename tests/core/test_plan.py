"""The payload and the outbound planner: pure."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.grip import envelope as env
from chalicelib.grip import plan
from chalicelib.grip.limits import MAX_INLINE, MAX_POST
from chalicelib.grip.payload import Payload


def payloads() -> st.SearchStrategy[Payload]:
    return st.text().map(Payload.of_text) | st.binary().map(Payload.of_bytes)


@given(payloads())
def test_a_payload_survives_its_queue_fields(payload: Payload) -> None:
    fields = json.loads(json.dumps(payload.to_fields()))
    again = Payload.from_fields(fields)
    assert again == payload and again.binary == payload.binary


@given(st.text())
def test_text_given_as_bytes_or_as_text_is_the_same_payload(text: str) -> None:
    as_bytes = Payload.of_bytes(text.encode(), binary=False)
    assert as_bytes == Payload.of_text(text) and as_bytes.text == text
    assert Payload.of_text(text).size == len(text.encode())


@given(st.text(), st.integers(0, 1000))
def test_at_most_agrees_with_the_size(text: str, limit: int) -> None:
    assert Payload.of_text(text).at_most(limit) == (len(text.encode()) <= limit)


def test_a_raw_connection_gets_the_payload_as_it_is_up_to_128_kb() -> None:
    fits = Payload.of_text("é" * (MAX_POST // 2))
    assert plan.plan(fits, False, bucket=True) == plan.Raw(fits.data)
    over = Payload.of_bytes(b"x" * (MAX_POST + 1))
    assert plan.plan(over, False, bucket=True) == plan.Undeliverable(plan.Why.TOO_LARGE_FOR_RAW)
    assert "envelope mode" in plan.Undeliverable(plan.Why.TOO_LARGE_FOR_RAW).explain()


@given(payloads())
def test_an_envelope_connection_gets_a_frame_that_fits_or_the_object(payload: Payload) -> None:
    decided = plan.plan(payload, True, bucket=True)
    if isinstance(decided, plan.Wrapped):
        assert len(decided.frame) <= MAX_INLINE
        assert decided.frame.decode() == env.wrap(payload.text)
    else:
        assert decided == plan.ViaObject()
        assert len(env.wrap(payload.text).encode()) > MAX_INLINE


def test_a_large_message_without_a_bucket_cannot_reach_an_envelope_connection() -> None:
    big = Payload.of_text("x" * MAX_INLINE)
    assert plan.plan(big, True, bucket=False) == plan.Undeliverable(plan.Why.NO_BUCKET)
    assert "SLIPWAY_BUCKET" in plan.Undeliverable(plan.Why.NO_BUCKET).explain()


def test_a_stored_message_is_served_from_its_object_even_when_small() -> None:
    assert plan.plan(None, True, bucket=True, stored=True) == plan.ViaObject()
    small = Payload.of_text("hi")
    assert plan.plan(small, False, bucket=True, stored=True) == plan.Raw(b"hi")
