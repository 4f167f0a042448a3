"""Resume after reconnect (docs/resume.md), the gateway's side, end to end: a
client speaking the protocol by hand over a real socket, the gripcontrol backend
subscribing it, publishes through the control API and GripPubControl."""

from __future__ import annotations

import json
import time
import uuid
from contextlib import ExitStack
from typing import Any

import pytest
import requests
from gripcontrol import GripPubControl, WebSocketMessageFormat, parse_grip_uri
from pubcontrol import Item
from slipway_client import ControlClient
from websockets.sync.client import ClientConnection

from chalicelib.grip.history import Position, encode_resume

from .processes import KEY, LocalStack
from .test_gateway import TIMEOUT, client

HISTORY_ITEMS = 60
STACK_ENV = {"SLIPWAY_HISTORY_ITEMS": str(HISTORY_ITEMS)}


@pytest.fixture(scope="module")
def control(stack: LocalStack) -> ControlClient:
    return ControlClient(stack.control, KEY)


def frame(ws: ClientConnection) -> list[Any]:
    value = json.loads(ws.recv(timeout=TIMEOUT))
    assert isinstance(value, list)
    return value


def joined(ws: ClientConnection) -> dict[str, Any]:
    """The `[6]` frame that follows a subscribe, and nothing before it."""
    first = frame(ws)
    assert first[:2] == [6, 0], first
    return first[2]


def publish_all(control: ControlClient, channel: str, texts: list[str]) -> None:
    """One control API request for every message: a publish of many items."""
    control.publish_many(
        {"channel": channel, "formats": {"ws-message": {"content": t}}} for t in texts
    )


def test_a_client_back_after_50_publishes_gets_exactly_those_in_order_then_live(
    stack: LocalStack, control: ControlClient
) -> None:
    room = f"resume-{uuid.uuid4().hex[:8]}"
    with client(stack, envelope="1", resume="", subscribe=room) as ws:
        start = joined(ws)
    assert start["recovery"] == "none" and start["channel"] == room
    where = Position(start["epoch"], start["offset"])

    missed = [f"missed {i}" for i in range(50)]
    publish_all(control, room, missed)

    back = encode_resume({room: where}, {room: start["floor"]})
    with client(stack, envelope="1", resume=back, subscribe=room) as ws:
        replayed = [frame(ws) for _ in missed]
        assert [f[:3] for f in replayed] == [[1, 0, text] for text in missed]
        offsets = [f[3]["offset"] for f in replayed]
        assert offsets == list(range(where.offset + 1, where.offset + 51))
        assert {f[3]["epoch"] for f in replayed} == {where.epoch}
        report = joined(ws)
        assert report["recovery"] == "recovered" and report["replayed"] == 50
        assert (report["epoch"], report["offset"]) == (where.epoch, offsets[-1])

        publish_all(control, room, ["live"])
        live = frame(ws)
        assert live[:3] == [1, 0, "live"] and live[3]["offset"] == offsets[-1] + 1


def test_a_position_outside_the_history_is_reported_failed(
    stack: LocalStack, control: ControlClient
) -> None:
    room = f"resume-{uuid.uuid4().hex[:8]}"
    with client(stack, envelope="1", resume="", subscribe=room) as ws:
        start = joined(ws)
    publish_all(control, room, [f"m{i}" for i in range(HISTORY_ITEMS + 1)])

    too_old = encode_resume(
        {room: Position(start["epoch"], start["offset"])}, {room: start["floor"]}
    )
    with client(stack, envelope="1", resume=too_old, subscribe=room) as ws:
        report = joined(ws)  # nothing replayed before it
    assert (report["recovery"], report["reason"], report["replayed"]) == ("failed", "too_old", 0)
    assert report["offset"] == start["offset"] + HISTORY_ITEMS + 1  # where it is now

    reset = encode_resume({room: Position("another-epoch", 3)})
    with client(stack, envelope="1", resume=reset, subscribe=room) as ws:
        report = joined(ws)
        assert (report["recovery"], report["reason"]) == ("failed", "epoch_changed")
        publish_all(control, room, ["after"])
        assert frame(ws)[:3] == [1, 0, "after"]


def test_the_backend_recovers_a_raw_client_with_prev_id(
    stack: LocalStack, control: ControlClient
) -> None:
    """Pushpin issue 47650's proposal: the backend subscribes with the id the client
    last saw, and the gateway replays what followed it; a raw client gets the
    messages as they are, with no positions."""
    room = f"resume-{uuid.uuid4().hex[:8]}"
    pub = GripPubControl(parse_grip_uri(stack.urls["grip"]))
    for i in range(6):
        item = Item(WebSocketMessageFormat(f"item {i}"), id=f"id-{i}", prev_id=f"id-{i - 1}")
        pub.publish(room, item, blocking=True)
    with client(stack, subscribe=room, previd="id-2") as ws:
        assert [ws.recv(timeout=TIMEOUT) for _ in range(3)] == ["item 3", "item 4", "item 5"]
        pub.publish(room, Item(WebSocketMessageFormat("live")), blocking=True)
        assert ws.recv(timeout=TIMEOUT) == "live"  # and nothing else came between


def test_the_items_route_pages_the_history(stack: LocalStack, control: ControlClient) -> None:
    room = f"resume-{uuid.uuid4().hex[:8]}"
    pub = GripPubControl(parse_grip_uri(stack.urls["grip"]))
    for i in range(5):
        pub.publish(room, Item(WebSocketMessageFormat(f"item {i}"), id=f"id-{i}"), blocking=True)
    url = f"{stack.control}/channels/{room}/items"
    auth = {"Authorization": f"Bearer {KEY}"}

    deadline = time.monotonic() + TIMEOUT
    while True:  # a publish is answered once queued; the worker keeps it a moment later
        first = requests.get(
            url, params={"after": "0", "limit": "2"}, headers=auth, timeout=TIMEOUT
        )
        assert first.status_code == 200, first.text
        page = first.json()
        if page["top"] == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert page["top"] == 5 and page["missing"] == 0
    assert [(i["offset"], i["id"], i["content"]) for i in page["items"]] == [
        (1, "id-0", "item 0"),
        (2, "id-1", "item 1"),
    ]
    rest = requests.get(url, params={"after": page["next"]}, headers=auth, timeout=TIMEOUT).json()
    assert [i["content"] for i in rest["items"]] == ["item 2", "item 3", "item 4"]
    assert rest["next"] is None

    by_id = requests.get(url, params={"after-id": "id-3"}, headers=auth, timeout=TIMEOUT).json()
    assert [i["content"] for i in by_id["items"]] == ["item 4"]

    unknown = requests.get(url, params={"after-id": "nope"}, headers=auth, timeout=TIMEOUT)
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    bad = requests.get(url, params={"after": "-1"}, headers=auth, timeout=TIMEOUT)
    assert bad.status_code == 400
    assert requests.get(url, timeout=TIMEOUT).status_code == 401  # no key, no history


def test_clients_that_do_not_ask_get_frames_as_before(
    stack: LocalStack, control: ControlClient
) -> None:
    """The aux client (envelope mode, no `resume`) sees no positions and no [6]."""
    room = f"resume-{uuid.uuid4().hex[:8]}"
    with client(stack, envelope="1", subscribe=room) as aux, client(stack, subscribe=room) as raw:
        publish_all(control, room, ["plain"])
        assert frame(aux) == [1, 0, "plain"]
        assert raw.recv(timeout=TIMEOUT) == "plain"


def test_a_crowd_reconnecting_at_once_each_recovers_everything_once(
    stack: LocalStack, control: ControlClient
) -> None:
    """Their joins run side by side in the worker; publishes keep their place."""
    room = f"resume-{uuid.uuid4().hex[:8]}"
    crowd = 8
    with client(stack, envelope="1", resume="", subscribe=room) as ws:
        start = joined(ws)
    where = encode_resume({room: Position(start["epoch"], start["offset"])}, {room: start["floor"]})
    publish_all(control, room, [f"before {i}" for i in range(10)])
    with ExitStack() as stack_of:
        sockets = [
            stack_of.enter_context(client(stack, envelope="1", resume=where, subscribe=room))
            for _ in range(crowd)
        ]
        publish_all(control, room, [f"during {i}" for i in range(5)])
        expected = [f"before {i}" for i in range(10)] + [f"during {i}" for i in range(5)]
        for ws in sockets:
            got, reports = [], []
            while len(got) < len(expected):
                value = frame(ws)
                if value[0] == 6:
                    reports.append(value[2])
                else:
                    got.append(value)
            assert [f[2] for f in got] == expected  # once each, in order
            offsets = [f[3]["offset"] for f in got]
            assert offsets == list(range(start["offset"] + 1, start["offset"] + 16))
            assert [r["recovery"] for r in reports] == ["recovered"]
