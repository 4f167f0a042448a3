"""API Gateway's @connections management API, on 127.0.0.1.

Speaks what boto3's `apigatewaymanagementapi` client sends:
`POST|GET|DELETE [/<stage>]/@connections/<id>`. A connection exists here only
between the end of its `$connect` and its close, exactly when API Gateway would
accept posts; any other id gets `410 GoneException`, as on AWS.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import unquote

MAX_MESSAGE = 128 * 1024


class Sink(Protocol):
    """An open client connection, as the @connections API reaches it."""

    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def info(self) -> dict: ...


class Registry:
    """The connections open right now. Thread-safe."""

    def __init__(self) -> None:
        self._open: dict[str, Sink] = {}
        self._lock = threading.Lock()

    def register(self, connection_id: str, sink: Sink) -> None:
        with self._lock:
            self._open[connection_id] = sink

    def unregister(self, connection_id: str) -> None:
        with self._lock:
            self._open.pop(connection_id, None)

    def get(self, connection_id: str) -> Sink | None:
        with self._lock:
            return self._open.get(connection_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)


def iso(epoch_ms: float) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class RecordingSink:
    """A sink that keeps what it is sent: for tests that drive the handlers directly."""

    def __init__(self, source_ip: str = "127.0.0.1") -> None:
        self.frames: list[bytes] = []
        self.closed = False
        self.connected_at = time.time() * 1000
        self._ip = source_ip
        self.changed = threading.Condition()

    def send(self, data: bytes) -> None:
        with self.changed:
            self.frames.append(data)
            self.changed.notify_all()

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def info(self) -> dict:
        return {
            "connectedAt": iso(self.connected_at),
            "lastActiveAt": iso(self.connected_at),
            "identity": {"sourceIp": self._ip, "userAgent": "test"},
        }

    def wait(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """Block until `count` frames arrived (or the timeout passes); return them."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.frames) >= count, timeout)
            return list(self.frames)


class ConnectionsServer:
    """The @connections API over a Registry. `calls` counts requests by method."""

    def __init__(self, registry: Registry, host: str = "127.0.0.1", port: int = 0) -> None:
        self.registry = registry
        self.calls: dict[str, int] = {"POST": 0, "GET": 0, "DELETE": 0}
        self.latency = 0.0  # seconds added to every call (benchmarks inject it)
        self._calls_lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._server.request_queue_size = 512
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ConnectionsServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, body: dict | None = None, error: str = "") -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sink(self) -> tuple[str, Sink | None]:
                marker = "/@connections/"
                path = self.path.split("?", 1)[0]
                if marker not in path:
                    return "", None
                cid = unquote(path.split(marker, 1)[1])
                return cid, outer.registry.get(cid)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                with outer._calls_lock:
                    outer.calls[method] += 1
                if outer.latency:
                    time.sleep(outer.latency)
                cid, sink = self._sink()
                if not cid:
                    return self._reply(404, {"message": "Not Found"}, "NotFoundException")
                if sink is None:
                    return self._reply(410, {"message": f"{cid} is gone"}, "GoneException")
                if method == "POST":
                    if len(data) > MAX_MESSAGE:
                        return self._reply(
                            413, {"message": "Message too long"}, "PayloadTooLargeException"
                        )
                    sink.send(data)
                    return self._reply(200)
                if method == "DELETE":
                    sink.close()
                    return self._reply(204)
                return self._reply(200, sink.info())

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        return Handler
