"""A hostile or broken backend, over real loopback sockets: an answer of 100 MB, one
that never ends, one that trickles, one that never comes. Each is cut off by the
size cap or the read timeout, as a backend error, and memory stays bounded."""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from chalicelib.backend import Backend, BackendUnreachable
from chalicelib.grip import codec
from chalicelib.grip.limits import MAX_BACKEND_RESPONSE
from chalicelib.grip.model import Connection

READ_TIMEOUT = 1.5
# A loaded machine may be slow to schedule the reads: "bounded" is what is checked,
# against the 15 minutes the trickle below would otherwise take.
SLACK = 3.0
CONN = Connection("c1", "http://127.0.0.1:1")
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/websocket-events\r\n"


@contextmanager
def backend_that(answer: Callable[[socket.socket], None]) -> Iterator[tuple[str, list[int]]]:
    """A loopback server that reads one request head, then runs `answer` on the
    socket until it returns or the client goes away; `sent` gets the bytes sent."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    sent: list[int] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            counting = _Counting(conn)
            try:
                answer(counting)  # type: ignore[arg-type]
            except OSError:
                pass  # the gateway hung up: what it should do
            sent.append(counting.sent)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/", sent
    finally:
        listener.close()
        thread.join(10)


class _Counting:
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.sent = sock, 0

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)


def call(url: str) -> tuple[BaseException, float]:
    backend = Backend(url, connect_timeout=1.0, read_timeout=READ_TIMEOUT, attempts=3, key="k")
    started = time.monotonic()
    with pytest.raises(BackendUnreachable) as caught:
        backend.call(CONN, [codec.Event("TEXT", b"hi")])
    return caught.value, time.monotonic() - started


HUNDRED_MB = 100 * 1024 * 1024


def test_a_100_mb_answer_is_dropped_at_the_cap_without_holding_it() -> None:
    def flood(sock: socket.socket) -> None:
        sock.sendall(HEAD + f"Content-Length: {HUNDRED_MB}\r\n\r\n".encode())
        block = b"TEXT 1\r\nx\r\n" * 6000
        for _ in range(HUNDRED_MB // len(block)):
            sock.sendall(block)

    tracemalloc.start()
    try:
        with backend_that(flood) as (url, sent):
            error, elapsed = call(url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "over" in str(error) and str(MAX_BACKEND_RESPONSE) in str(error)
    assert peak < 3 * MAX_BACKEND_RESPONSE  # never the 100 MB
    assert sent[0] < HUNDRED_MB // 2  # the gateway stopped reading and hung up
    assert elapsed < READ_TIMEOUT + SLACK


def test_a_chunked_answer_that_never_ends_is_cut_at_the_read_timeout() -> None:
    def endless(sock: socket.socket) -> None:
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        while True:
            sock.sendall(b"8\r\nTEXT 0\r\n\r\n")
            time.sleep(0.05)

    with backend_that(endless) as (url, _):
        error, elapsed = call(url)
    assert "longer than" in str(error) or "timed out" in str(error)
    assert READ_TIMEOUT * 0.9 <= elapsed < READ_TIMEOUT + SLACK


def test_a_trickle_cannot_stretch_every_read_to_the_timeout() -> None:
    """A byte just under the read timeout apart would keep a per-read timeout
    waiting for ever: the whole answer has one deadline."""

    def trickle(sock: socket.socket) -> None:
        sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n")
        while True:
            sock.sendall(b"x")
            time.sleep(READ_TIMEOUT * 0.6)

    with backend_that(trickle) as (url, _):
        _, elapsed = call(url)
    assert elapsed < READ_TIMEOUT + SLACK


def test_an_answer_that_never_comes_is_not_waited_for_and_not_sent_again() -> None:
    requests_seen = 0

    def silent(sock: _Counting) -> None:
        nonlocal requests_seen
        requests_seen += 1
        sock.sock.settimeout(READ_TIMEOUT + 2)
        sock.sock.recv(1)  # until the gateway hangs up

    with backend_that(silent) as (url, _):
        _, elapsed = call(url)
    assert elapsed < READ_TIMEOUT + SLACK
    assert requests_seen == 1  # the backend may have acted: never twice


def test_an_answer_at_the_cap_is_read_whole() -> None:
    body = b"TEXT 1\r\nx\r\n" * 1000

    def exact(sock: socket.socket) -> None:
        sock.sendall(HEAD + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        sock.sendall(body)

    with backend_that(exact) as (url, _):
        backend = Backend(url, 1.0, READ_TIMEOUT, 1, key="k", max_response=len(body))
        reply = backend.call(CONN, [codec.Event("TEXT", b"hi")])
    assert reply.status == 200 and reply.body == body
