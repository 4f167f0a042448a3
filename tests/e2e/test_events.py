"""What the API Gateway emulator hands the Lambda functions, and how it reads
their answers, seen through tests/e2e/probe_app.py (no slipway code involved)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .processes import LocalStack

TIMEOUT = 10.0
ID = re.compile(r"[A-Za-z0-9_-]{15}=")


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Path]]:
    log = tmp_path_factory.mktemp("probe") / "disconnects.jsonl"
    log.touch()
    stack = LocalStack(
        "--app",
        "tests.e2e.probe_app:app",
        "--target",
        "http://127.0.0.1:9/unused",
        env={"PROBE_LOG": str(log)},
    )
    yield stack, log
    assert stack.stop() == 0, stack.log()[-3000:]


def ask(ws: ClientConnection, text: str = "hello") -> dict:
    ws.send(text)
    return json.loads(ws.recv(timeout=TIMEOUT))


def disconnect_event(log: Path, connection_id: str) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event["requestContext"]["connectionId"] == connection_id:
                return event
        time.sleep(0.05)
    raise AssertionError(f"no $disconnect for {connection_id}")


def test_connect_and_message_events_have_api_gateways_shape(probe: tuple) -> None:
    stack, _ = probe
    before = int(time.time() * 1000)
    url = f"{stack.websocket}?a=1&a=2&b=x"
    headers = {"X-Custom": "v", "User-Agent": "probe/1"}
    with connect(url, additional_headers=headers, open_timeout=TIMEOUT) as ws:
        reply = ask(ws)
    connect_event, message = reply["connect"]["event"], reply["message"]
    assert reply["connect"]["post"] == "GoneException"  # not open until $connect returns

    ctx = connect_event["requestContext"]
    assert ctx["routeKey"] == "$connect" and ctx["eventType"] == "CONNECT"
    assert ctx["messageDirection"] == "IN" and ctx["stage"] == "local"
    assert ID.fullmatch(ctx["connectionId"])
    assert re.fullmatch(r"[a-z0-9]{10}", ctx["apiId"])
    assert ctx["domainName"] == stack.websocket.split("/")[2]
    assert before <= ctx["connectedAt"] <= ctx["requestTimeEpoch"] <= before + 10_000
    assert ID.fullmatch(ctx["requestId"]) and ctx["extendedRequestId"]
    assert re.fullmatch(r"\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000", ctx["requestTime"])
    assert ctx["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "probe/1"}
    h = connect_event["headers"]
    assert h["X-Custom"] == "v" and connect_event["multiValueHeaders"]["X-Custom"] == ["v"]
    assert h["X-Forwarded-For"] == "127.0.0.1" and "Sec-WebSocket-Key" in h
    assert connect_event["queryStringParameters"] == {"a": "2", "b": "x"}
    assert connect_event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x"]}
    assert connect_event["isBase64Encoded"] is False

    mctx = message["requestContext"]
    assert mctx["routeKey"] == "$default" and mctx["eventType"] == "MESSAGE"
    assert mctx["connectionId"] == ctx["connectionId"]
    assert mctx["connectedAt"] == ctx["connectedAt"]
    assert ID.fullmatch(mctx["messageId"]) and mctx["requestId"] != ctx["requestId"]
    assert message["body"] == "hello" and message["isBase64Encoded"] is False


def test_without_a_query_string_the_query_keys_are_absent(probe: tuple) -> None:
    with connect(probe[0].websocket, open_timeout=TIMEOUT) as ws:
        event = ask(ws)["connect"]["event"]
    assert "queryStringParameters" not in event
    assert "multiValueQueryStringParameters" not in event


def test_disconnect_event_carries_the_clients_close(probe: tuple) -> None:
    stack, log = probe
    with connect(stack.websocket, open_timeout=TIMEOUT) as ws:
        cid = ask(ws)["message"]["requestContext"]["connectionId"]
        ws.close(4002, "bye")
    event = disconnect_event(log, cid)
    ctx = event["requestContext"]
    assert ctx["routeKey"] == "$disconnect" and ctx["eventType"] == "DISCONNECT"
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (4002, "bye")


def test_a_dropped_connection_disconnects_with_1006(probe: tuple) -> None:
    stack, log = probe
    with connect(stack.websocket, open_timeout=TIMEOUT) as ws:
        cid = ask(ws)["message"]["requestContext"]["connectionId"]
        ws.socket.shutdown(socket.SHUT_RDWR)
    assert disconnect_event(log, cid)["requestContext"]["disconnectStatusCode"] == 1006


def test_connect_response_status_body_and_headers_reach_the_client(probe: tuple) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(f"{probe[0].websocket}?reject=401", open_timeout=TIMEOUT)
    response = info.value.response
    assert (response.status_code, response.body) == (401, b"go away")
    assert response.headers["X-Why"] == "t"


def test_connect_response_headers_go_into_the_101(probe: tuple) -> None:
    url = f"{probe[0].websocket}?protocol=v2"
    with connect(url, subprotocols=["v1", "v2"], open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol == "v2"


@pytest.mark.parametrize("query", ["raise=1", "bytes=1"])
def test_a_failing_connect_function_is_a_502(probe: tuple, query: str) -> None:
    # bytes=1: a body Lambda cannot serialize (Runtime.MarshalError), a raise: a crash.
    with pytest.raises(InvalidStatus) as info:
        connect(f"{probe[0].websocket}?{query}", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 502


def test_a_failing_message_function_is_reported_to_the_client(probe: tuple) -> None:
    with connect(probe[0].websocket, open_timeout=TIMEOUT) as ws:
        notice = ask(ws, "raise")
        assert notice["message"] == "Internal server error"
        assert ID.fullmatch(notice["connectionId"]) and ID.fullmatch(notice["requestId"])
        assert ask(ws)["message"]["body"] == "hello"  # the connection stays open
