"""The WebSocket side end to end: real clients -> `slipway local` (API Gateway
emulator, Lambda handlers, moto) -> the gripcontrol test backend, and back."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from botocore.config import Config
from gripcontrol import GripPubControl, WebSocketMessageFormat, validate_sig
from pubcontrol import Item
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from chalicelib.grip import codec

from .processes import KEY, GripBackend, LocalStack

TIMEOUT = 10.0


@contextmanager
def client(
    stack: LocalStack, marker: str | None = None, **kwargs: object
) -> Iterator[ClientConnection]:
    """A client whose query string carries `marker` (so its backend requests can
    be found) plus any backend options; keyword `subprotocols` and `headers` go
    to the handshake."""
    subprotocols = kwargs.pop("subprotocols", None)
    headers = kwargs.pop("headers", None)
    query = {"t": marker or uuid.uuid4().hex, **kwargs}
    with connect(
        f"{stack.websocket}?{urlencode(query)}",
        subprotocols=subprotocols,  # type: ignore[arg-type]
        additional_headers=headers,  # type: ignore[arg-type]
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    ) as ws:
        yield ws


def closed_with(ws: ClientConnection) -> int:
    """Wait until the server closes the connection; return the code it sent."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=TIMEOUT)
    assert info.value.rcvd is not None, "the server dropped the connection without a close frame"
    return info.value.rcvd.code


def connection_id(backend: GripBackend, marker: str) -> str:
    first = backend.wait_for(marker, lambda got: len(got) >= 1)[0]
    return first["headers"]["connection-id"]


def local_client(service: str, endpoint: str, **options: Any) -> Any:
    """A boto3 client for one of the stack's local endpoints, with dummy credentials."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        **options,
    )


def management(stack: LocalStack) -> Any:  # a boto3 apigatewaymanagementapi client
    config = Config(retries={"max_attempts": 1})
    return local_client("apigatewaymanagementapi", stack.urls["connections"], config=config)


# -- handshake ---------------------------------------------------------------


def test_connect_accepted_and_echo_strips_the_grip_prefix(stack: LocalStack) -> None:
    with client(stack) as ws:
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == "hello"


def test_without_grip_mode_messages_pass_verbatim(stack: LocalStack) -> None:
    with client(stack, grip="0") as ws:
        ws.send("m:not a prefix")
        assert ws.recv(timeout=TIMEOUT) == "m:not a prefix"


def test_backend_rejection_reaches_the_client_as_http_status(stack: LocalStack) -> None:
    with pytest.raises(InvalidStatus) as info:
        with client(stack, reject="403"):
            pass
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"rejected\n"


def test_subprotocol_from_the_backend_is_negotiated(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker, protocol="chat.v2", subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
    opening = backend.requests_with(marker)[0]
    assert opening["headers"]["sec-websocket-protocol"] == "chat.v1, chat.v2"


def test_open_response_message_is_delivered_after_the_handshake(stack: LocalStack) -> None:
    # $connect cannot post (410 until it returns): this goes through SQS and the worker.
    with client(stack, welcome="welcome aboard") as ws:
        assert ws.recv(timeout=TIMEOUT) == "welcome aboard"
        ws.send("after")
        assert ws.recv(timeout=TIMEOUT) == "after"


def test_backend_sees_the_handshake_signed_and_cleaned(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    headers = {"X-Custom": "yes", "Cookie": "a=1", "Meta-User": "forged", "Grip-Sig": "forged"}
    with client(stack, marker, headers=headers) as ws:
        ws.send("ping me")
        assert ws.recv(timeout=TIMEOUT) == "ping me"
    opening, message = backend.wait_for(marker, lambda got: len(got) >= 2)[:2]
    assert opening["body"] == b"OPEN\r\n"
    assert message["body"] == b"TEXT 7\r\nping me\r\n"
    for request in (opening, message):
        h = request["headers"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{15}=", h["connection-id"])
        assert validate_sig(h["grip-sig"], KEY)
        assert h["x-custom"] == "yes" and h["cookie"] == "a=1"
        assert "meta-user" not in h
        assert h["x-forwarded-for"] == "127.0.0.1"
    assert opening["headers"]["connection-id"] == message["headers"]["connection-id"]


# -- messages -----------------------------------------------------------------


def test_meta_is_set_and_echoed_on_later_requests(stack: LocalStack) -> None:
    with client(stack, meta="team:red") as ws:
        ws.send("meta color blue")
        assert ws.recv(timeout=TIMEOUT) == "meta color set"
        ws.send("whoami")
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {"color": "blue", "team": "red"}


def test_every_message_of_a_connection_is_handled_once(stack: LocalStack) -> None:
    # In any order: API Gateway runs a connection's $default events concurrently, and
    # so does slipway local (in order: ?ordered=1, tests/e2e/test_ordered.py).
    with client(stack) as ws:
        sent = [f"message {i}" for i in range(25)]
        for text in sent:
            ws.send(text)
        assert sorted(ws.recv(timeout=TIMEOUT) for _ in sent) == sorted(sent)


def test_a_32k_frame_and_a_fragmented_100k_message_pass(stack: LocalStack) -> None:
    with client(stack) as ws:
        ws.send("a" * 32 * 1024)
        assert ws.recv(timeout=TIMEOUT) == "a" * 32 * 1024
        ws.send(["b" * 25 * 1024] * 4)  # four frames, one message
        assert ws.recv(timeout=TIMEOUT) == "b" * 100 * 1024


# -- closing ------------------------------------------------------------------


def test_backend_close_closes_the_client(stack: LocalStack) -> None:
    with client(stack) as ws:
        ws.send("close 4001")
        # @connections DELETE carries no code: API Gateway closes with 1000.
        assert closed_with(ws) == 1000


def test_backend_disconnect_drops_the_client(stack: LocalStack) -> None:
    with client(stack) as ws:
        ws.send("disconnect")
        assert closed_with(ws) == 1000


def test_a_client_that_saw_a_reply_finds_the_state_the_reply_made(
    stack: LocalStack, backend: GripBackend
) -> None:
    """A backend answers `detached` and, after it in the same answer, detaches.
    The gateway stores the detach before it posts the message (an answer is
    applied whole, as Pushpin does), so the frame a client sends on seeing
    `detached` never reaches the backend. Many clients, so that a gateway that
    posted first would lose the race for some."""
    markers = []
    for _ in range(ROUNDS):
        marker = uuid.uuid4().hex
        markers.append(marker)
        with client(stack, marker) as ws:
            ws.send("say-then-detach")
            assert ws.recv(timeout=TIMEOUT) == "detached"
            ws.send("after")
            ws.send("after")
    # The frames' invocations end, then the backend's log is read.
    time.sleep(1.0)
    leaked = [m for m in markers if "after" in _texts(backend.requests_with(m))]
    assert leaked == []


ROUNDS = 20


def _texts(requests: list[dict[str, Any]]) -> list[str]:
    return [
        e.content.decode()
        for r in requests
        for e in codec.decode(r["body"])
        if e.type == "TEXT" and e.content is not None
    ]


def test_client_close_code_and_reason_reach_the_backend(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        ws.send("hi")
        assert ws.recv(timeout=TIMEOUT) == "hi"
        ws.close(4002, "bye")
    got = backend.wait_for(marker, lambda got: got and got[-1]["body"].startswith(b"CLOSE"))
    assert got[-1]["body"] == b"CLOSE 5\r\n\x0f\xa2bye\r\n"


def test_client_closing_while_the_backend_answers_still_reaches_it(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        ws.send("sleep 0.5")  # the reply finds the connection gone (410)
        ws.close(4002, "bye")
    got = backend.wait_for(marker, lambda got: got and got[-1]["body"].startswith(b"CLOSE"))
    assert got[-1]["body"] == b"CLOSE 5\r\n\x0f\xa2bye\r\n"


def test_dropped_connection_becomes_disconnect(stack: LocalStack, backend: GripBackend) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        ws.send("hi")
        assert ws.recv(timeout=TIMEOUT) == "hi"
        ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: 1006
    got = backend.wait_for(marker, lambda got: got and got[-1]["body"] == b"DISCONNECT\r\n")
    assert len(got) == 3


def test_frame_over_32k_closes_with_1009(stack: LocalStack) -> None:
    with client(stack) as ws:
        ws.send("x" * (32 * 1024 + 1))
        assert closed_with(ws) == 1009


def test_message_over_128k_closes_with_1009(stack: LocalStack) -> None:
    with client(stack) as ws:
        ws.send(["y" * 30 * 1024] * 5)  # every frame fits; the message does not
        assert closed_with(ws) == 1009


def test_binary_frame_closes_with_1003(stack: LocalStack, backend: GripBackend) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        ws.send(b"\x00\x01binary")
        assert closed_with(ws) == 1003
    got = backend.wait_for(marker, lambda got: got and got[-1]["body"].startswith(b"CLOSE"))
    assert got[-1]["body"].startswith(b"CLOSE ") and b"\x03\xeb" in got[-1]["body"]
    assert not any(r["body"].startswith(b"BINARY") for r in got)


# -- the @connections API -----------------------------------------------------


def test_unknown_connection_is_gone(stack: LocalStack) -> None:
    api = management(stack)
    for call in (
        lambda: api.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x"),
        lambda: api.get_connection(ConnectionId="AAAAAAAAAAAAAAA="),
        lambda: api.delete_connection(ConnectionId="AAAAAAAAAAAAAAA="),
    ):
        with pytest.raises(api.exceptions.GoneException):
            call()


def test_connections_api_on_an_open_connection(stack: LocalStack, backend: GripBackend) -> None:
    api = management(stack)
    marker = uuid.uuid4().hex
    with client(stack, marker, headers={"User-Agent": "e2e-agent"}) as ws:
        cid = connection_id(backend, marker)
        info = api.get_connection(ConnectionId=cid)
        assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "e2e-agent"}
        assert info["ConnectedAt"] <= info["LastActiveAt"]

        api.post_to_connection(ConnectionId=cid, Data="text é".encode())
        assert ws.recv(timeout=TIMEOUT) == "text é"
        api.post_to_connection(ConnectionId=cid, Data=b"\xff\xfe\x00")
        assert ws.recv(timeout=TIMEOUT) == b"\xff\xfe\x00"
        with pytest.raises(api.exceptions.PayloadTooLargeException):
            api.post_to_connection(ConnectionId=cid, Data=b"z" * (128 * 1024 + 1))

        api.delete_connection(ConnectionId=cid)
        assert closed_with(ws) == 1000
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId=cid, Data=b"too late")
    got = backend.wait_for(marker, lambda got: got and got[-1]["body"].startswith(b"CLOSE"))
    assert got[-1]["body"] == b"CLOSE 2\r\n\x03\xe8\r\n"


# -- the first hour: a control call sent to the WebSocket port ----------------------


def _raw(port: int, request: bytes) -> bytes:
    """Send one raw HTTP request and read the answer to its end, as curl does."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_control_call_to_the_websocket_port_is_told_the_control_url(stack: LocalStack) -> None:
    port = int(stack.websocket.rsplit(":", 1)[1].strip("/"))
    body = b'{"items": [{"channel": "c", "formats": {"ws-message": {"content": "x"}}}]}'
    expected = (
        b'{"error":"this is the WebSocket endpoint: the control API is at '
        + stack.control.encode()
        + b'"}'
    )
    publish = _raw(
        port,
        b"POST /publish/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
    )
    assert publish.startswith(b"HTTP/1.1 400 Bad Request\r\n"), publish  # was: no answer
    assert publish.endswith(b"\r\n\r\n" + expected)
    # A GET without an upgrade (curl of a control route) gets the same answer.
    inspect = _raw(port, b"GET /connections/abc HTTP/1.1\r\nHost: x\r\n\r\n")
    assert inspect.startswith(b"HTTP/1.1 400 Bad Request\r\n"), inspect
    assert inspect.endswith(b"\r\n\r\n" + expected)
    # gripcontrol, pointed at this port: it was `RemoteDisconnected`.
    pub = GripPubControl({"control_uri": f"http://127.0.0.1:{port}", "key": KEY})
    with pytest.raises(ValueError) as failed:  # pubcontrol's error for every failure
        pub.publish("c", Item(WebSocketMessageFormat("x")), blocking=True)
    assert "the control API is at " + stack.control in str(failed.value)
    # And the port still serves WebSockets.
    with client(stack) as ws:
        ws.send("after")
        assert ws.recv(timeout=TIMEOUT) == "after"


def test_the_gateways_own_error_bodies_are_compact_json_as_the_apps(stack: LocalStack) -> None:
    """One format for every JSON error, whoever writes it: the app's (Chalice's
    compact serialization) and the local stack's own."""
    http_port = int(stack.control.rsplit(":", 1)[1])
    unknown = _raw(http_port, b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert unknown.endswith(b'\r\n\r\n{"error":"no route GET /nowhere: GET / lists the routes"}')
    upgrade = _raw(
        http_port,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
    )
    assert upgrade.endswith(
        b'\r\n\r\n{"error":"this is the control API: connect to ' + stack.websocket.encode() + b'"}'
    ), upgrade
    unauthorized = _raw(
        http_port,
        b"POST /publish/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    assert b'\r\n\r\n{"error":"' in unauthorized and b'": "' not in unauthorized, unauthorized
