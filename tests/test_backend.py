"""The backend call over real loopback sockets: what is retried, and response
headers as the backend sent them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chalicelib.backend import Backend, BackendUnreachable
from chalicelib.grip import codec
from chalicelib.grip import decisions as d
from chalicelib.grip.model import Connection
from chalicelib.handlers import _accepted


@contextmanager
def server(answer: bytes | None) -> Iterator[tuple[str, list[bytes]]]:
    """A one-shot-per-connection HTTP server: reads a request, then sends `answer`
    (None: closes without answering, as a backend that crashes mid-request)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                received.append(data)
                if answer is not None:
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/", received
    finally:
        listener.close()


def backend(url: str) -> Backend:
    return Backend(url, connect_timeout=1.0, read_timeout=2.0, attempts=3, key="k")


CONN = Connection("c1", "http://127.0.0.1:1")


def test_a_request_the_backend_received_is_not_sent_again() -> None:
    with server(None) as (url, received):
        with pytest.raises(BackendUnreachable):
            backend(url).call(CONN, [codec.Event("TEXT", b"once")])
    assert len(received) == 1  # the backend may have acted on it: never twice


def test_a_backend_not_listening_yet_is_tried_again() -> None:
    """Nothing was sent while no connection could be made: retried with backoff."""
    with socket.socket() as probe:  # a port with nothing listening, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/websocket-events\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    received: list[bytes] = []

    def late_backend() -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        conn, _ = listener.accept()
        with conn, listener:
            received.append(conn.recv(65536))
            conn.sendall(answer)

    threading.Timer(0.1, late_backend).start()
    reply = backend(f"http://127.0.0.1:{port}/").call(CONN, [codec.Event("TEXT", b"x")])
    assert reply.status == 200 and len(received) == 1


def test_a_repeated_response_header_keeps_every_value() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/websocket-events\r\n"
        b"Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2, c=3\r\n"
        b"Sec-WebSocket-Protocol: chat\r\nContent-Length: 6\r\nConnection: close\r\n\r\n"
        b"OPEN\r\n"
    )
    with server(answer) as (url, _):
        reply = backend(url).call(CONN, [codec.Event("OPEN")])
    [accept] = d.read_response(reply.status, reply.headers, reply.body, opening=True)
    assert isinstance(accept, d.Accept)
    assert accept.headers["set-cookie"] == ["a=1; Path=/", "b=2, c=3"]
    assert _accepted(accept.headers) == {
        "statusCode": 200,
        "headers": {"sec-websocket-protocol": "chat"},
        "multiValueHeaders": {"set-cookie": ["a=1; Path=/", "b=2, c=3"]},
    }
