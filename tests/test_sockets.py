"""The @connections sender (chalicelib/aws/sockets.py): the calls of one container
share their keep-alive connections, one the server closed while idle is replaced
without failing a delivery, and an answer means the same to a single call and to
a batch (410 gone, 413 too large)."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator

import boto3
import pytest

from chalicelib.aws.sockets import Sockets
from chalicelib.grip.errors import Gone, TooLarge
from chalicelib.grip.limits import MAX_POST
from slipway_dev.connections import ConnectionsServer, RecordingSink, Registry

DUMMY = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


@pytest.fixture
def server() -> Iterator[ConnectionsServer]:
    server = ConnectionsServer(Registry()).start()
    yield server
    server.stop()


def members(server: ConnectionsServer, n: int) -> tuple[list[tuple[str, str]], list[RecordingSink]]:
    sinks = []
    for k in range(n):
        sink = RecordingSink()
        server.registry.register(f"c{k}=", sink)
        sinks.append(sink)
    return [(server.url, f"c{k}=") for k in range(n)], sinks


def sockets() -> Sockets:
    return Sockets(boto3.session.Session(region_name="us-east-1", **DUMMY))


def test_calls_reuse_the_connections_of_the_first(server: ConnectionsServer) -> None:
    targets, sinks = members(server, 20)
    sender = sockets()
    try:
        for k in range(5):  # five invocations of one container
            outcome = sender.send_many(targets, f"m{k}".encode(), concurrency=4)
            assert not outcome.failed and not outcome.gone
        assert all(s.frames == [b"m0", b"m1", b"m2", b"m3", b"m4"] for s in sinks)
        assert sender.stats.opened == 4  # one set, for 100 deliveries
        assert server.calls["POST"] == 100
    finally:
        sender.shutdown()


def test_single_calls_share_one_kept_connection(server: ConnectionsServer) -> None:
    targets, sinks = members(server, 3)
    sender = sockets()
    try:
        for k in range(4):  # four invocations, each replying to each connection
            for endpoint, cid in targets:
                sender.send(endpoint, cid, f"r{k}".encode())
        assert all(s.frames == [b"r0", b"r1", b"r2", b"r3"] for s in sinks)
        assert sender.info(*targets[0])["identity"]["sourceIp"] == "127.0.0.1"
        sender.close(*targets[1])
        assert sinks[1].closed
        assert sender.stats.opened == 1
    finally:
        sender.shutdown()


def test_a_post_over_the_limit_is_too_large_alone_and_in_a_batch(
    server: ConnectionsServer,
) -> None:
    """API Gateway answers a post over 128 KB 413 (PayloadTooLargeException): no
    retry can help, so it is not retried, and a single call says TooLarge (what its
    callers catch) rather than a failure of @connections."""
    targets, sinks = members(server, 2)
    big = b"x" * (MAX_POST + 1)
    sender = sockets()
    try:
        with pytest.raises(TooLarge):
            sender.send(*targets[0], big)
        outcome = sender.send_many(targets, big, concurrency=2)
        assert sorted(outcome.too_large) == ["c0=", "c1="] and not outcome.failed
        assert server.calls["POST"] == 3  # one attempt each
        sender.send(*targets[0], b"small")  # the connection is still good
        assert sinks[0].frames == [b"small"]
    finally:
        sender.shutdown()


def test_a_connection_that_left_is_gone_alone_and_in_a_batch(server: ConnectionsServer) -> None:
    targets, _ = members(server, 1)
    sender = sockets()
    try:
        with pytest.raises(Gone):
            sender.send(server.url, "left=", b"hi")
        outcome = sender.send_many([(server.url, "left="), *targets], b"hi", concurrency=2)
        assert outcome.gone == ["left="] and not outcome.failed
    finally:
        sender.shutdown()


class ClosesWhenIdle(socketserver.ThreadingTCPServer):
    """An endpoint that answers each request 200 (keep-alive) and then, idle for a
    moment, hangs up: what a kept connection meets after a container sat frozen."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.received: list[bytes] = []
        super().__init__(("127.0.0.1", 0), self.Handler)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock = self.request
            sock.settimeout(0.2)
            data = b""
            try:
                while True:
                    while b"\r\n\r\n" not in data:
                        data += sock.recv(65536)
                    head, _, data = data.partition(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    while len(data) < length:
                        data += sock.recv(65536)
                    self.server.received.append(data[:length])  # type: ignore[attr-defined]
                    data = data[length:]
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            except (TimeoutError, OSError, IndexError):
                pass  # idle (or gone): hang up

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def test_a_kept_connection_closed_by_the_server_is_replaced() -> None:
    server = ClosesWhenIdle()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sender = sockets()
    try:
        targets = [(server.url, f"c{k}=") for k in range(6)]
        assert not sender.send_many(targets, b"one", concurrency=3).failed
        time.sleep(0.5)  # the server hangs up on the kept connections
        outcome = sender.send_many(targets, b"two", concurrency=3)
        assert not outcome.failed
        assert sorted(server.received) == [b"one"] * 6 + [b"two"] * 6  # each once
        assert sender.stats.opened == 6  # the three it hung up on were replaced
    finally:
        sender.shutdown()
        server.shutdown()
        server.server_close()


def test_a_single_calls_kept_connection_closed_by_the_server_is_replaced() -> None:
    server = ClosesWhenIdle()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sender = sockets()
    try:
        sender.send(server.url, "c0=", b"one")
        time.sleep(0.5)  # the server hangs up on the kept connection
        sender.send(server.url, "c0=", b"two")
        assert server.received == [b"one", b"two"]  # each once
        assert (sender.stats.opened, sender.stats.stale) == (2, 1)
    finally:
        sender.shutdown()
        server.shutdown()
        server.server_close()
