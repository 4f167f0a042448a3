"""The pure parts of resume (docs/resume.md): frames, positions, de-duplication,
the `resume=` parameter and the rotation schedule. No I/O."""

from __future__ import annotations

import base64
import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slipway_client import Backoff, EnvelopeError, Position, Recovery, envelope
from slipway_client.envelope import Download, Message
from slipway_client.resume import (
    Handover,
    Stamp,
    Tracker,
    check_window,
    decode_resume,
    encode_resume,
    read_recovery,
    rotation_delay,
    with_resume,
)

STAMP = Stamp("chat", "a7f3", 57)


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        (
            Message(0, "hi", STAMP),
            '[1,0,"hi",{"channel":"chat","epoch":"a7f3","offset":57}]',
        ),
        (
            Download(-1, "https://b.s3/k?sig=1", "GET", {}, STAMP),
            '[4,-1,"https://b.s3/k?sig=1","GET",{},{"channel":"chat","epoch":"a7f3","offset":57}]',
        ),
        (
            Recovery("chat", "a7f3", 60, "recovered", 3),
            '[6,0,{"channel":"chat","epoch":"a7f3","offset":60,"recovery":"recovered","replayed":3}]',
        ),
        (
            Recovery("chat", "b001", 2, "failed", 0, "epoch_changed"),
            '[6,0,{"channel":"chat","epoch":"b001","offset":2,"recovery":"failed",'
            '"replayed":0,"reason":"epoch_changed"}]',
        ),
    ],
)
def test_frames_with_positions(frame: envelope.Frame, text: str) -> None:
    assert envelope.encode(frame) == text
    assert envelope.decode(text) == frame


def test_messages_without_positions_are_unchanged() -> None:
    assert envelope.decode('[1,0,"direct"]') == Message(0, "direct")
    assert envelope.decode('[4,-1,"https://b/k","GET"]') == Download(-1, "https://b/k")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[1,0,"x",{"epoch":"e","offset":1}]', "channel"),
        ('[1,0,"x",{"channel":"c","epoch":"e","offset":-1}]', "offset"),
        ('[1,0,"x",{"channel":"c","epoch":"e","offset":true}]', "offset"),
        ('[1,0,"x",{"channel":"c","epoch":3,"offset":1}]', "epoch"),
        ('[1,0,"x","chat"]', "object"),
        ('[6,0,{"channel":"c","epoch":"e","offset":1,"recovery":"maybe"}]', "recovery"),
        (
            '[6,0,{"channel":"c","epoch":"e","offset":1,"recovery":"none","replayed":-2}]',
            "replayed",
        ),
        ("[6,0]", "[6, 0"),
    ],
)
def test_malformed_positions_say_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(EnvelopeError, match=complaint.replace("[", r"\[")):
        envelope.decode(text)


def test_resume_parameter_as_the_protocol_spells_it() -> None:
    assert encode_resume({"chat": Position("a7f3", 57)}) == "eyJjaGF0IjpbImE3ZjMiLDU3XX0"
    url = "wss://h/ws?envelope=1&resume=old#frag"
    assert with_resume(url, {"chat": ("a7f3", 57)}) == (
        "wss://h/ws?envelope=1&resume=eyJjaGF0IjpbImE3ZjMiLDU3XX0#frag"
    )
    assert with_resume(url, {}) == "wss://h/ws?envelope=1&resume=#frag"  # speaks it, has none
    assert with_resume("wss://h/ws", {}) == "wss://h/ws?resume="
    assert decode_resume("") == {}
    with pytest.raises(ValueError, match="base64url JSON"):
        decode_resume("!!!")
    with pytest.raises(ValueError, match="epoch, offset"):
        decode_resume(base64.urlsafe_b64encode(b'{"c": 5}').decode())


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.tuples(st.text(max_size=10), st.integers(0, 2**53)),
        max_size=5,
    )
)
def test_resume_parameter_round_trips(positions: dict[str, tuple[str, int]]) -> None:
    value = encode_resume(positions)
    assert "=" not in value and "+" not in value and "/" not in value
    assert decode_resume(value) == {c: Position(*p) for c, p in positions.items()}


def test_tracker_drops_what_was_delivered_and_follows_recovery_frames() -> None:
    tracker = Tracker()
    assert tracker.admit(Stamp("c", "e1", 5))  # no position yet: delivered
    assert not tracker.admit(Stamp("c", "e1", 5))
    assert not tracker.admit(Stamp("c", "e1", 3))
    assert tracker.admit(Stamp("c", "e1", 6))
    tracker.recover(Recovery("c", "e1", 4, "recovered", 0))  # behind: ignored
    assert tracker.positions == {"c": Position("e1", 6)}
    tracker.recover(Recovery("c", "e1", 9, "failed", 0, "too_old"))  # 7-8 are lost
    assert not tracker.admit(Stamp("c", "e1", 9))
    tracker.recover(Recovery("c", "e2", 1, "failed", 0, "epoch_changed"))
    assert tracker.positions == {"c": Position("e2", 1)}
    assert not tracker.admit(Stamp("c", "e1", 10))  # an epoch the channel left
    assert tracker.admit(Stamp("c", "e2", 2))
    tracker.forget("c")
    assert tracker.positions == {}


@given(st.lists(st.integers(0, 60), min_size=4, max_size=4), st.randoms())
def test_two_overlapping_connections_deliver_each_message_once(
    points: list[int], rnd: random.Random
) -> None:
    """A rotation: the old connection delivered 1..new_start before the new one
    opened and goes on to old_end; the new one presented new_start, replays up to
    `now` (the channel's position when it subscribed), sends its [6] and goes on
    live to `last`. The two interleave in any order that keeps each connection's
    own order."""
    new_start, now, last = sorted(points[:3])
    old_end = max(new_start, min(points[3], last))
    old = [("m", n) for n in range(new_start + 1, old_end + 1)]
    new = [("m", n) for n in range(new_start + 1, now + 1)]
    new += [("six", now)] + [("m", n) for n in range(now + 1, last + 1)]
    tracker, delivered = Tracker(), []
    for n in range(1, new_start + 1):
        assert tracker.admit(Stamp("c", "e", n))
        delivered.append(n)
    while old or new:
        side = old if old and (not new or rnd.random() < 0.5) else new
        kind, n = side.pop(0)
        if kind == "six":
            tracker.recover(Recovery("c", "e", n, "recovered", 0))
        elif tracker.admit(Stamp("c", "e", n)):
            delivered.append(n)
    assert delivered == list(range(1, last + 1))


def test_rotation_delay_is_uniform_in_the_window() -> None:
    assert rotation_delay((6000, 6900), rand=lambda: 0.0) == 6000
    assert rotation_delay((6000, 6900), rand=lambda: 1.0) == 6900
    assert all(6000 <= rotation_delay((6000, 6900)) <= 6900 for _ in range(100))
    assert check_window(None) is None
    assert check_window((1, 2)) == (1.0, 2.0)
    with pytest.raises(ValueError, match="rotate_window"):
        check_window((10, 5))


def test_handover_waits_for_every_channel() -> None:
    handover = Handover.of(["a", "b"])
    handover.arrived("a")
    handover.arrived("zzz")
    assert not handover.done and handover.waiting == {"b"}
    handover.arrived("b")
    assert handover.done and Handover.of([]).done


def test_backoff_is_full_jitter_by_default() -> None:
    backoff = Backoff(initial=1, factor=2, max_delay=8)
    assert [backoff.delay(n, rand=lambda: 0.0) for n in range(5)] == [1, 2, 4, 8, 8]
    assert [backoff.delay(n, rand=lambda: 1.0) for n in range(5)] == [0, 0, 0, 0, 0]
    waits = [backoff.delay(3) for _ in range(2000)]
    assert 0 <= min(waits) < 1 and 7 < max(waits) <= 8  # anywhere in [0, 8]


def test_the_floor_of_a_recovery_frame_is_kept_and_presented_with_the_position() -> None:
    tracker = Tracker()
    tracker.recover(Recovery("chat", "e1", 7, "none", floor="7.mac"))
    assert tracker.floors == {"chat": "7.mac"}
    # A later [6] that does not move the position (a rotation's) still updates it.
    tracker.admit(Stamp("chat", "e1", 9))
    tracker.recover(Recovery("chat", "e1", 8, "recovered", 1, floor="7.mac2"))
    assert tracker.floors == {"chat": "7.mac2"}
    url = with_resume("wss://h/ws?envelope=1", tracker.positions, tracker.floors)
    value = url.split("resume=", 1)[1]
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert json.loads(raw) == {"chat": ["e1", 9, "7.mac2"]}
    assert decode_resume(value) == {"chat": Position("e1", 9)}
    frame = Recovery("c", "e", 1, "none", floor="f").to_json()
    assert frame["floor"] == "f"
    assert read_recovery(frame) == Recovery("c", "e", 1, "none", floor="f")
    tracker.forget("chat")
    assert tracker.floors == {}
