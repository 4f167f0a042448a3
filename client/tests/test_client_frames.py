"""The pure parts: the events codec, envelope frames, backoff, URLs."""

from __future__ import annotations

import pytest
from gripcontrol import decode_websocket_events
from hypothesis import given
from hypothesis import strategies as st

from slipway_client import Backoff, EnvelopeError, envelope
from slipway_client.codec import EVENT_TYPES, Event, decode, encode
from slipway_client.envelope import Download, Failure, Message, UploadRequest, UploadTarget
from slipway_client.socket import with_envelope

events = st.lists(
    st.builds(
        Event,
        st.sampled_from(sorted(EVENT_TYPES)),
        st.one_of(st.none(), st.binary(max_size=300)),
    ),
    max_size=8,
)


@given(events)
def test_codec_round_trip_and_gripcontrol_agrees(evs: list[Event]) -> None:
    body = encode(evs)
    assert decode(body) == evs
    theirs = decode_websocket_events(body)
    assert [(e.type, e.content) for e in theirs] == [(e.type, e.content) for e in evs]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(json_values, st.integers(-1, 2**31))
def test_message_frames_round_trip(data: object, mid: int) -> None:
    assert envelope.decode(envelope.encode(Message(mid, data))) == Message(mid, data)


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        (Message(1, "hi"), '[1,1,"hi"]'),
        (UploadRequest(2), "[2,2]"),
        (
            UploadTarget(
                2, "https://b.s3/k?sig=1", "PUT", {"x-amz-acl": "bucket-owner-full-control"}
            ),
            '[3,2,"https://b.s3/k?sig=1","PUT",{"x-amz-acl":"bucket-owner-full-control"}]',
        ),
        (Download(-1, "https://b.s3/k", "GET", {}), '[4,-1,"https://b.s3/k","GET",{}]'),
        (
            Failure(3, "too_big", "over 10 MB"),
            '[5,3,{"success":false,"errorCode":"too_big","errorMessage":"over 10 MB"}]',
        ),
    ],
)
def test_frames_spelled_as_the_aux_client_does(frame: envelope.Frame, text: str) -> None:
    assert envelope.encode(frame) == text
    assert envelope.decode(text) == frame


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("hello", "not JSON"),
        ('{"a": 1}', "array"),
        ("[1]", "array"),
        ('["1", 1, "x"]', "integers"),
        ("[1, true, 2]", "integers"),
        ("[1, 1]", "[1, id, data]"),
        ("[2, 1, 2]", "[2, id]"),
        ('[3, 1, "ftp://x", "PUT", {}]', "http"),
        ('[4, 1, "https://x", "GET", {"a": 1}]', "headers"),
        ('[5, 1, "oops"]', "errorCode"),
        ("[9, 1]", "unknown frame kind 9"),
    ],
)
def test_malformed_frames_say_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(EnvelopeError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        envelope.decode(text)


def test_inline_limit_counts_utf8_bytes() -> None:
    overhead = len('[1,1,""]')
    assert envelope.fits_inline(envelope.encode(Message(1, "a" * (32_000 - overhead))))
    assert not envelope.fits_inline(envelope.encode(Message(1, "a" * (32_001 - overhead))))
    # 16,000 characters of "é" are 32,000 bytes: over API Gateway's frame limit.
    assert not envelope.fits_inline(envelope.encode(Message(1, "é" * 16_000)))
    assert envelope.dumps({"é": [1, None]}) == '{"é":[1,null]}'  # as JSON.stringify writes it


def test_strip_query() -> None:
    url = "https://bucket.s3.amazonaws.com/up/c1/1.json?X-Amz-Signature=abc&X-Amz-Expires=60#x"
    assert envelope.strip_query(url) == "https://bucket.s3.amazonaws.com/up/c1/1.json"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("wss://h/ws", "wss://h/ws?envelope=1"),
        ("wss://h/ws?token=a%20b", "wss://h/ws?token=a%20b&envelope=1"),
        ("wss://h/ws?envelope=0&x=1", "wss://h/ws?x=1&envelope=1"),
        ("wss://h/?envelope=1", "wss://h/?envelope=1"),
    ],
)
def test_envelope_query_parameter(url: str, expected: str) -> None:
    assert with_envelope(url) == expected


def test_backoff_grows_caps_and_jitters() -> None:
    backoff = Backoff(initial=0.5, factor=2, max_delay=4, jitter=0.5)
    assert [backoff.delay(n, rand=lambda: 0.0) for n in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert [backoff.delay(n, rand=lambda: 1.0) for n in range(4)] == [0.25, 0.5, 1, 2]
    assert all(0.25 <= backoff.delay(0) <= 0.5 for _ in range(100))
    assert backoff.delay(10_000) <= 4  # no overflow for huge attempt numbers
    with pytest.raises(ValueError):
        Backoff(jitter=2)
    with pytest.raises(ValueError):
        Backoff(factor=0.5)
