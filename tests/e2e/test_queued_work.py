"""Amplification through queued work (docs/security.md), end to end: a client that
makes its backend subscribe it again and again, announces one upload several times,
or presents a position from before it ever joined a channel, against `slipway local`
and the gripcontrol backend (which subscribes on a client's `sub <channel>`)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests
from slipway_client import ControlClient
from slipway_client.envelope import strip_query
from websockets.sync.client import ClientConnection

from chalicelib.grip.history import Position, encode_resume

from .processes import KEY, GripBackend, LocalStack
from .test_envelope import frames_client, recv_frame, texts_from, upload_target
from .test_gateway import TIMEOUT, client, connection_id

FLOOD = 30


@pytest.fixture(scope="module")
def control(stack: LocalStack) -> ControlClient:
    return ControlClient(stack.control, KEY)


def publish(control: ControlClient, channel: str, *texts: str) -> None:
    control.publish_many(
        {"channel": channel, "formats": {"ws-message": {"content": t}}} for t in texts
    )


def until(ws: ClientConnection, last: Any) -> list[Any]:
    """The frames a client gets up to and including the message `last`."""
    got: list[Any] = []
    while True:
        frame = recv_frame(ws)
        got.append(frame)
        if frame[:3] == [1, 0, last]:
            return got


# -- finding 2: a join flood ------------------------------------------------------------


def test_a_repeat_subscribe_queues_no_join(stack: LocalStack, control: ControlClient) -> None:
    """30 `sub lobby` from one client: one `[6]` frame, not 30 (each was a Join job
    in the channel's queue, in front of every other member's publishes)."""
    lobby = f"lobby-{uuid.uuid4().hex[:8]}"
    with frames_client(stack, uuid.uuid4().hex, resume="") as ws:
        for k in range(FLOOD):
            ws.send(json.dumps([1, k + 1, f"sub {lobby}"]))
        echoes = 0
        reports = []
        while echoes < FLOOD:  # each subscribe comes before its echo
            frame = recv_frame(ws)
            if frame[0] == 6:
                reports.append(frame)
            else:
                assert frame == [1, 0, f"subscribed {lobby}"]
                echoes += 1
        # The publish goes through the channel's queue after every Join queued so far.
        publish(control, lobby, "after the flood")
        got = until(ws, "after the flood")
    reports += [f for f in got if f[0] == 6]
    assert len(reports) == 1, reports
    assert reports[0][2]["recovery"] == "none"


def test_a_join_of_a_client_that_left_is_dropped_not_queued_again(
    stack: LocalStack, backend: GripBackend, control: ControlClient
) -> None:
    """A client floods `sub lobby` and closes at once. Its joins do not go round the
    channel's queue again (each costs other members half a second), and the log
    does not call a connection that was open "never opened"."""
    lobby = f"lobby-{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex
    with client(stack, envelope="1", resume="", subscribe=lobby) as member:
        assert recv_frame(member)[0] == 6
        with frames_client(stack, marker, resume="") as ws:
            for k in range(FLOOD):
                ws.send(json.dumps([1, k + 1, f"sub {lobby}"]))
        cid = connection_id(backend, marker)
        backend.wait_for(marker, lambda got: any(b"CLOSE" in r["body"] for r in got))
        publish(control, lobby, "for the member")
        assert until(member, "for the member")[-1][:3] == [1, 0, "for the member"]
    lines = [line for line in stack.log().splitlines() if cid in line]
    assert not [line for line in lines if "queued again" in line or "never opened" in line]


# -- finding 6: one upload, announced three times ----------------------------------------


def test_an_upload_announced_three_times_reaches_the_backend_once(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    data = {"once": uuid.uuid4().hex}
    body = json.dumps(data, separators=(",", ":")).encode()
    with frames_client(stack, marker) as ws:
        url, headers = upload_target(ws, 7)
        assert requests.put(url, data=body, headers=headers, timeout=TIMEOUT).ok
        announce = json.dumps([4, 7, strip_query(url), "GET", {}])
        for _ in range(3):
            ws.send(announce)
        frames = [recv_frame(ws) for _ in range(3)]
    assert [f for f in frames if f[0] == 1] == [[1, 0, data]]  # the backend's echo, once
    refused = [f for f in frames if f[0] == 5]
    assert [(f[1], f[2]["errorCode"]) for f in refused] == [(7, "upload_taken")] * 2
    assert texts_from(backend, marker) == [body]


# -- finding 7: history before a client's first join --------------------------------------


def test_a_position_from_before_the_first_join_replays_nothing(
    stack: LocalStack, control: ControlClient
) -> None:
    """Messages published before a client first joined stay unread: presenting
    offset 0 of the channel's epoch (learnt from a `[6]`) recovers nothing."""
    room = f"private-{uuid.uuid4().hex[:8]}"
    publish(control, room, "secret 1", "secret 2")
    with client(stack, envelope="1", resume="", subscribe=room) as ws:
        start = recv_frame(ws)[2]
    assert start["offset"] >= 2 or start["recovery"] == "none"

    forged = encode_resume({room: Position(start["epoch"], 0)})
    with client(stack, envelope="1", resume=forged, subscribe=room) as ws:
        report = recv_frame(ws)  # the [6] first: nothing replayed before it
        assert report[0] == 6, report
        assert (report[2]["recovery"], report[2]["reason"], report[2]["replayed"]) == (
            "failed",
            "not_joined",
            0,
        )
        publish(control, room, "live")
        assert recv_frame(ws)[:3] == [1, 0, "live"]

    # A raw connection presenting the same position gets the live message only.
    with client(stack, resume=forged, subscribe=room) as raw:
        publish(control, room, "live 2")
        assert raw.recv(timeout=TIMEOUT) == "live 2"


def test_messages_after_the_first_join_are_still_recovered(
    stack: LocalStack, control: ControlClient
) -> None:
    room = f"private-{uuid.uuid4().hex[:8]}"
    publish(control, room, "before")
    with client(stack, envelope="1", resume="", subscribe=room) as ws:
        start = recv_frame(ws)[2]
    publish(control, room, "missed 1", "missed 2")
    back = encode_resume({room: Position(start["epoch"], start["offset"])}, {room: start["floor"]})
    with client(stack, envelope="1", resume=back, subscribe=room) as ws:
        got = [recv_frame(ws) for _ in range(3)]
    assert [f[:3] for f in got[:2]] == [[1, 0, "missed 1"], [1, 0, "missed 2"]]
    assert got[2][0] == 6 and got[2][2]["recovery"] == "recovered"
    # The floor a recovered join hands back is the first join's: it survives rotations.
    assert got[2][2]["floor"] == start["floor"]
