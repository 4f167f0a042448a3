"""Channel history and resume (docs/resume.md), the pure part: positions, the
recovery decision, `resume=`, the frames, the items route's query. No I/O."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.grip import envelope, history
from chalicelib.grip.errors import BadRequest
from chalicelib.grip.history import Failed, Head, Position, Reason, Replay, decide

epochs = st.text(min_size=1, max_size=12)
channels = st.text(min_size=1, max_size=40)
offsets = st.integers(0, 10**9)


@given(epochs, offsets, st.integers(0, 2000), st.integers(1, 1000))
def test_a_position_in_the_same_epoch_within_the_history_is_replayed(
    epoch: str, since: int, behind: int, keep: int
) -> None:
    head = Head(epoch, since + behind)
    decided = decide(Position(epoch, since), head, keep)
    if behind > keep:
        assert decided == Failed(Reason.TOO_OLD)
    else:
        assert decided == Replay(since, since + behind)  # nothing to replay when behind == 0


def test_another_epoch_a_future_offset_or_no_history_fail_as_epoch_changed() -> None:
    head = Head("e1", 10)
    assert decide(Position("e0", 3), head, 100) == Failed(Reason.EPOCH_CHANGED)
    assert decide(Position("e1", 11), head, 100) == Failed(Reason.EPOCH_CHANGED)
    assert decide(Position("e1", 3), None, 100) == Failed(Reason.EPOCH_CHANGED)
    assert decide(Position("e1", 3), head, 0) == Failed(Reason.HISTORY_OFF)


def test_a_replay_is_complete_only_without_a_missing_offset() -> None:
    replay = Replay(4, 7)
    assert history.complete([5, 6, 7], replay)
    assert not history.complete([6, 7], replay)  # 5 expired
    assert not history.complete([5, 7], replay)
    assert history.complete([], Replay(7, 7))


@given(st.dictionaries(channels, st.builds(Position, epochs, offsets), max_size=20))
def test_resume_values_round_trip(positions: dict[str, Position]) -> None:
    value = history.encode_resume(positions)
    assert "=" not in value and "+" not in value and "/" not in value  # URL-safe as it is
    assert history.parse_resume(value) == positions


@pytest.mark.parametrize(
    "value",
    [
        "%%%",
        history.encode_resume({}).join(["x", "y"]),
        "WzEsMl0",  # [1,2]: not an object
        "eyJhIjpbImUiXX0",  # {"a":["e"]}
        "eyJhIjpbImUiLC0xXX0",  # {"a":["e",-1]}
        "eyJhIjpbImUiLHRydWVdfQ",  # {"a":["e",true]}
        "x" * (history.MAX_RESUME_LENGTH + 1),
    ],
)
def test_a_bad_resume_value_says_what_is_wrong(value: str) -> None:
    with pytest.raises(history.ResumeError, match="resume"):
        history.parse_resume(value)


def test_an_empty_resume_value_is_no_positions() -> None:
    assert history.parse_resume("") == {}


@given(st.text(), channels, epochs, offsets)
def test_a_trailer_goes_last_and_leaves_the_message_as_it_was(
    text: str, channel: str, epoch: str, offset: int
) -> None:
    trailer = history.trailer(channel, Position(epoch, offset))
    plain = json.loads(envelope.wrap(text))
    tracked = json.loads(envelope.wrap(text, trailer))
    assert tracked[:3] == plain  # what the aux client reads is unchanged
    assert tracked[3] == {"channel": channel, "epoch": epoch, "offset": offset}
    download = json.loads(envelope.download("https://x/y", trailer=trailer))
    assert download == [4, -1, "https://x/y", "GET", {}, tracked[3]]


def test_a_json_message_keeps_its_bytes_with_a_trailer() -> None:
    frame = envelope.wrap('{"b": 1,  "a": [2]}', {"channel": "c", "epoch": "e", "offset": 1})
    assert frame == '[1,0,{"b": 1,  "a": [2]},{"channel":"c","epoch":"e","offset":1}]'


def test_the_report_frame() -> None:
    failed = history.report("c", Head("e", 9), history.Recovery.FAILED, 0, Reason.TOO_OLD)
    assert json.loads(envelope.position(failed)) == [
        6,
        0,
        {
            "channel": "c",
            "epoch": "e",
            "offset": 9,
            "recovery": "failed",
            "replayed": 0,
            "reason": "too_old",
        },
    ]
    done = history.report("c", Head("e", 9), history.Recovery.RECOVERED, 3)
    assert "reason" not in done and done["replayed"] == 3


def test_items_query() -> None:
    assert history.items_query(None) == history.ItemsQuery(0, None, 100)
    assert history.items_query({"after": "7", "limit": "5"}) == history.ItemsQuery(7, None, 5)
    assert history.items_query({"after-id": "x"}) == history.ItemsQuery(0, "x", 100)
    for bad in ({"after": "-1"}, {"after": "x"}, {"after": "1", "after-id": "x"}, {"limit": "0"}):
        with pytest.raises(BadRequest):
            history.items_query(bad)


def test_the_head_finds_a_recent_message_by_counting_back_from_the_top() -> None:
    recent = ["a", "b", "c"]  # took offsets 5, 6, 7
    assert [history.recent_offset(recent, 7, m) for m in ("a", "b", "c", "x")] == [5, 6, 7, None]


def test_the_head_is_trimmed_back_to_recent_once_it_holds_twice_as_many() -> None:
    keep = history.RECENT
    assert history.to_trim(["m"] * (2 * keep - 1)) == 0
    assert history.to_trim(["m"] * (2 * keep)) == keep


# -- who may recover what: the floor of a client's first subscribe -----------------------


def test_a_position_before_the_clients_floor_or_without_one_is_not_recovered() -> None:
    head = Head("e", 50)
    assert decide(Position("e", 0), head, 100, floor=20) == Failed(Reason.NOT_JOINED)
    assert decide(Position("e", 19), head, 100, floor=20) == Failed(Reason.NOT_JOINED)
    assert decide(Position("e", 30), head, 100, floor=None) == Failed(Reason.NOT_JOINED)
    assert decide(Position("e", 20), head, 100, floor=20) == Replay(20, 50)
    assert decide(Position("e", 0), head, 100, floor=0) == Replay(0, 50)  # any position
    # Another epoch is reported as such, whatever the floor.
    assert decide(Position("x", 30), head, 100, floor=None) == Failed(Reason.EPOCH_CHANGED)


def test_a_floor_token_holds_only_for_its_channel_epoch_and_key() -> None:
    token = history.floor_token("k1", "room", "e1", 42)
    assert history.read_floor("k1", "room", "e1", token) == 42
    assert history.read_floor("k2", "room", "e1", token) is None
    assert history.read_floor("k1", "other", "e1", token) is None
    assert history.read_floor("k1", "room", "e2", token) is None
    assert history.read_floor(None, "room", "e1", token) is None
    forged = "0" + token[token.index(".") :]  # another offset, the same MAC
    assert history.read_floor("k1", "room", "e1", forged) is None
    for junk in ("", "42", ".abc", "x.abc", "9" * 40 + ".abc"):
        assert history.read_floor("k1", "room", "e1", junk) is None


def test_presented_floors_are_checked_against_the_position_beside_them() -> None:
    good = history.floor_token("k", "a", "e1", 5)
    presented = history.read_resume(
        history.encode_resume(
            {"a": Position("e1", 9), "b": Position("e1", 9), "c": Position("e2", 9)},
            {"a": good, "b": good, "c": history.floor_token("k", "c", "e1", 1)},
        )
    )
    assert presented.floors["a"] == good
    assert history.verified_floors("k", presented.positions, presented.floors) == {"a": 5}
    assert history.parse_resume(history.encode_resume({"a": Position("e1", 9)}, {"a": good})) == {
        "a": Position("e1", 9)
    }


def test_a_join_hands_back_the_first_floor_once_recovered_else_the_top() -> None:
    head = Head("e", 70)
    assert history.next_floor(True, 20, Position("e", 40), head) == 20
    assert history.next_floor(True, None, Position("e", 40), head) == 40
    assert history.next_floor(False, 20, Position("e", 40), head) == 70
    assert history.next_floor(False, None, None, head) == 70
