"""API Gateway's @connections management API, on 127.0.0.1.

Speaks what boto3's `apigatewaymanagementapi` client sends:
`POST|GET|DELETE [/<stage>]/@connections/<id>`. A connection exists here only
between the end of its `$connect` and its close, exactly when API Gateway would
accept posts; any other id gets `410 GoneException`, as on AWS.

Two servers over the same Registry: `ConnectionsServer` on threads (for sinks
that are plain objects, as in the handler tests) and `AsyncConnectionsServer`
on an asyncio loop, the one the local stack runs beside its WebSocket server so
that a POST reaches the client's socket without a thread hop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote

from chalicelib.grip.limits import MAX_POST

from .faults import CONTROL_PATH, Faults

log = logging.getLogger(__name__)


class Closed(Exception):
    """Raised by a Sink whose connection closed (or is closing): 410, as on AWS."""


class Sink(Protocol):
    """An open client connection, as the @connections API reaches it.
    Any method may raise Closed."""

    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def info(self) -> dict[str, Any]: ...


class AsyncSink(Sink, Protocol):
    """A sink living on the AsyncConnectionsServer's loop; may raise Closed."""

    async def send_async(self, data: bytes) -> None: ...
    async def close_async(self) -> None: ...


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

    def info(self) -> dict[str, Any]:
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
        return f"http://{host!s}:{port}"

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

            def _reply(
                self, status: int, body: dict[str, Any] | None = None, error: str = ""
            ) -> None:
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
                if method == "POST" and len(data) > MAX_POST:
                    return self._reply(
                        413, {"message": "Message too long"}, "PayloadTooLargeException"
                    )
                try:
                    if method == "POST":
                        sink.send(data)
                        return self._reply(200)
                    if method == "DELETE":
                        sink.close()
                        return self._reply(204)
                    return self._reply(200, sink.info())
                except Closed:
                    return self._reply(410, {"message": f"{cid} is gone"}, "GoneException")
                except Exception as exc:  # a stuck client, a stopping loop: say so
                    return self._reply(
                        500,
                        {"message": f"{type(exc).__name__}: {exc}"},
                        "InternalServerErrorException",
                    )

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        return Handler


# -- the same API on an asyncio loop ------------------------------------------------

_MARKER = "/@connections/"
_PHRASES = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 410: "Gone"}
_PHRASES |= {413: "Payload Too Large", 500: "Internal Server Error"}
_PHRASES |= {405: "Method Not Allowed", 429: "Too Many Requests", 503: "Service Unavailable"}
_MAX_HEADER_LINES = 100


class AsyncConnectionsServer:
    """A small HTTP/1.1 server (keep-alive, Content-Length or chunked bodies) for
    the @connections API, run on the caller's event loop. Sinks with
    `send_async`/`close_async` are awaited directly; others run on a thread."""

    def __init__(
        self,
        registry: Registry,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        self.registry = registry
        self.calls: dict[str, int] = {"POST": 0, "GET": 0, "DELETE": 0}
        self.faults = faults  # injected errors, and their control route (slipway_dev/faults.py)
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._streams: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> AsyncConnectionsServer:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and end every keep-alive connection."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._streams):
            writer.close()  # an idle connection's readline then sees EOF
        if self._streams:
            await asyncio.wait(list(self._streams.values()), timeout=5)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._streams[writer] = asyncio.current_task()  # type: ignore[assignment]
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                method, path, headers, body = request
                status, reply, error = await self._answer(method, path, body)
                keep = headers.get("connection", "").lower() != "close"
                writer.write(_response(status, reply, error, keep))
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ValueError as exc:  # a malformed request: answer it, then hang up
            writer.write(_response(400, {"message": str(exc)}, "BadRequestException", False))
        except asyncio.CancelledError:
            # Ending cancelled makes Python 3.11's stream callback log a spurious
            # error; being cancelled only ever means the loop is shutting down.
            pass
        finally:
            self._streams.pop(writer, None)
            writer.close()

    async def _answer(
        self, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, Any] | None, str]:
        if self.faults is not None and path.split("?", 1)[0] == CONTROL_PATH:
            return (*self.faults.control(method, body), "")
        if method not in self.calls:
            return 404, {"message": "Not Found"}, "NotFoundException"
        self.calls[method] += 1
        path = path.split("?", 1)[0]
        if _MARKER not in path:
            return 404, {"message": "Not Found"}, "NotFoundException"
        cid = unquote(path.split(_MARKER, 1)[1])
        if self.faults is not None and (error := self.faults.pick("connections")) is not None:
            return error.status, {"message": error.message}, error.code
        sink = self.registry.get(cid)
        gone = (410, {"message": f"{cid} is gone"}, "GoneException")
        if sink is None:
            return gone
        if method == "POST" and len(body) > MAX_POST:
            return 413, {"message": "Message too long"}, "PayloadTooLargeException"
        try:
            if method == "POST":
                send = getattr(sink, "send_async", None)
                await (send(body) if send else asyncio.to_thread(sink.send, body))
                return 200, None, ""
            if method == "DELETE":
                close = getattr(sink, "close_async", None)
                await (close() if close else asyncio.to_thread(sink.close))
                return 204, None, ""
            return 200, sink.info(), ""
        except Closed:
            return gone
        except Exception as exc:
            log.exception("@connections %s %s failed", method, cid)
            return 500, {"message": f"{type(exc).__name__}: {exc}"}, "InternalServerErrorException"


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    """One request, or None at a clean end of the connection."""
    line = await reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3:
        raise ValueError(f"bad request line {line[:100]!r}")
    method, path, _ = parts
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise ValueError("too many header lines")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    return method, path, headers, body


def _response(status: int, reply: dict[str, Any] | None, error: str, keep: bool) -> bytes:
    data = json.dumps(reply).encode() if reply is not None else b""
    head = [f"HTTP/1.1 {status} {_PHRASES.get(status, 'Unknown')}"]
    if error:
        head.append(f"x-amzn-ErrorType: {error}")
    head += [
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        f"Connection: {'keep-alive' if keep else 'close'}",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data
