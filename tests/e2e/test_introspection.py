"""Channels and connections through the control API (issue 15), end to end: real
clients -> `slipway local` -> the gripcontrol test backend, and the control API
driven with slipway_client's ControlClient."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests
from slipway_client import ControlClient, UnknownConnection
from websockets.sync.client import ClientConnection

from chalicelib.grip.introspection import shard_of

from .processes import KEY, GripBackend, LocalStack
from .test_gateway import TIMEOUT, client, connection_id, local_client

TABLE = "slipway-introspection-e2e"
STACK_ARGS = ("--table", TABLE)


@pytest.fixture(scope="module")
def control(stack: LocalStack) -> ControlClient:
    return ControlClient(stack.control, KEY)


def eventually(check: Callable[[], Any], expected: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while (got := check()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {expected!r}, still {got!r}")
        time.sleep(0.05)


def quiet(ws: ClientConnection, seconds: float = 1.5) -> bool:
    """Whether nothing reaches `ws` for `seconds`."""
    try:
        ws.recv(timeout=seconds)
    except TimeoutError:
        return True
    return False


def joined(stack: LocalStack, backend: GripBackend, room: str, marker: str) -> tuple[Any, str]:
    ctx = client(stack, marker)
    ws = ctx.__enter__()
    ws.send(f"sub {room}")
    assert ws.recv(timeout=TIMEOUT) == f"subscribed {room}"
    return (ctx, ws), connection_id(backend, marker)


def test_subscribe_and_unsubscribe_from_outside(
    stack: LocalStack, backend: GripBackend, control: ControlClient
) -> None:
    room, marker = f"news-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    with client(stack, marker) as ws:
        cid = connection_id(backend, marker)
        control.subscribe(cid, room)
        control.subscribe(cid, room)  # idempotent
        assert control.subscribers(room) == 1
        control.publish(room, "first")
        assert ws.recv(timeout=TIMEOUT) == "first"
        control.unsubscribe(cid, room)
        control.unsubscribe(cid, room)
        assert control.subscribers(room) == 0
        control.publish(room, "second")
        assert quiet(ws)


def test_meta_from_outside_reaches_the_backend(
    stack: LocalStack, backend: GripBackend, control: ControlClient
) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker, meta="user:alice") as ws:
        cid = connection_id(backend, marker)
        assert control.set_meta(cid, {"Role": "admin", "user": None}) == {"role": "admin"}
        ws.send("whoami")
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {"role": "admin"}
        assert backend.requests_with(marker)[-1]["headers"].get("meta-role") == "admin"


def test_unknown_connection_is_404_and_no_key_401(
    stack: LocalStack, control: ControlClient
) -> None:
    for act in (
        lambda: control.subscribe("nobody=", "a"),
        lambda: control.unsubscribe("nobody=", "a"),
        lambda: control.set_meta("nobody=", {"a": "b"}),
        lambda: control.inspect("nobody="),
    ):
        with pytest.raises(UnknownConnection):
            act()
    for path in ("/channels/a", "/channels/a/connections", "/connections"):
        assert requests.get(stack.control + path, timeout=TIMEOUT).status_code == 401
    put = requests.put(stack.control + "/connections/x=/channels/a", timeout=TIMEOUT)
    assert put.status_code == 401


def test_count_and_list_follow_joins_leaves_disconnects(
    stack: LocalStack, backend: GripBackend, control: ControlClient
) -> None:
    room = f"room-{uuid.uuid4().hex[:6]}"
    clients = [joined(stack, backend, room, uuid.uuid4().hex) for _ in range(3)]
    ids = sorted(cid for _, cid in clients)
    try:
        assert control.subscribers(room) == 3
        assert sorted(s.id for s in control.iter_channel_connections(room, page_size=2)) == ids
        a_ws = clients[0][0][1]
        a_ws.send(f"unsub {room}")
        assert a_ws.recv(timeout=TIMEOUT) == f"unsubscribed {room}"
        assert control.subscribers(room) == 2
        clients[1][0][0].__exit__(None, None, None)  # b disconnects
        eventually(lambda: control.subscribers(room), 1)
        assert [s.id for s in control.iter_channel_connections(room)] == [clients[2][1]]
        everyone = [s.id for s in control.iter_connections(page_size=3)]
        assert clients[0][1] in everyone and clients[2][1] in everyone
        assert clients[1][1] not in everyone
    finally:
        for (ctx, _), _ in (clients[0], clients[2]):
            ctx.__exit__(None, None, None)
    eventually(lambda: control.subscribers(room), 0)


def _db(stack: LocalStack) -> Any:
    return local_client("dynamodb", stack.urls["aws"])


def _connection_rows(cid: str, endpoint: str) -> list[dict[str, Any]]:
    expires = {"N": str(int(time.time()) + 3600)}
    return [
        {
            "pk": {"S": f"conn#{cid}"},
            "sk": {"S": "conn"},
            "endpoint": {"S": endpoint},
            "headers": {"S": "{}"},
            "query": {"S": ""},
            "meta": {"M": {"n": {"S": cid}}},
            "detached": {"BOOL": True},  # no backend call when it is forgotten
            "envelope": {"BOOL": False},
            "created_at": {"N": str(int(time.time() * 1000))},
            "expires_at": expires,
        },
        {"pk": {"S": f"conns#{shard_of(cid)}"}, "sk": {"S": cid}, "expires_at": expires},
    ]


def test_a_gone_connection_is_counted_out(
    stack: LocalStack, backend: GripBackend, control: ControlClient
) -> None:
    """A connection API Gateway no longer knows (410) is removed by the next publish
    to its channel, and counted out."""
    room, marker = f"gone-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    with client(stack, marker):
        item = _db(stack).get_item(
            TableName=TABLE,
            Key={"pk": {"S": f"conn#{connection_id(backend, marker)}"}, "sk": {"S": "conn"}},
        )["Item"]
    endpoint = item["endpoint"]["S"]  # the stack's @connections: it answers 410 for a ghost
    ghost = f"ghost{uuid.uuid4().hex[:8]}="
    for row in _connection_rows(ghost, endpoint):
        _db(stack).put_item(TableName=TABLE, Item=row)
    control.subscribe(ghost, room)
    assert control.subscribers(room) == 1
    control.publish(room, "anyone there?")
    eventually(lambda: control.subscribers(room), 0)
    with pytest.raises(UnknownConnection):
        control.inspect(ghost)


def test_paging_over_2500_members_returns_each_once(
    stack: LocalStack, backend: GripBackend, control: ControlClient
) -> None:
    room = f"big-{uuid.uuid4().hex[:6]}"
    db = _db(stack)
    endpoint = "http://127.0.0.1:1/seeded"
    ids = [f"seed{k:05d}{uuid.uuid4().hex[:4]}=" for k in range(2500)]
    rows: list[dict[str, Any]] = []
    for cid in ids:
        rows += _connection_rows(cid, endpoint)
        rows.append({"pk": {"S": f"chan#{room}"}, "sk": {"S": cid}, "endpoint": {"S": endpoint}})
    for start in range(0, len(rows), 25):
        batch = [{"PutRequest": {"Item": r}} for r in rows[start : start + 25]]
        request = {TABLE: batch}
        while request:
            request = db.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
    seen: list[str] = []
    page = control.channel_connections(room, limit=1000)
    pages = 1
    seen += [s.id for s in page.connections]
    while page.cursor is not None:
        page = control.channel_connections(room, limit=1000, cursor=page.cursor)
        pages += 1
        seen += [s.id for s in page.connections]
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids) and pages == 3
    everyone = [s.id for s in control.iter_connections(page_size=1000)]
    assert len(everyone) == len(set(everyone))
    assert set(ids) <= set(everyone)
