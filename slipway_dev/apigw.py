"""API Gateway's WebSocket API, emulated on a `websockets` asyncio server.

For each client it does what API Gateway does around the Lambda functions:
- runs `$connect` during the opening handshake and answers with its result
  (non-2xx rejects with that status and body; headers such as
  Sec-WebSocket-Protocol go into the 101 response);
- registers the connection with the @connections API only once the 101 is out,
  so a post made during `$connect` gets 410, as on AWS;
- runs `$default` for each text message as it arrives, without waiting for the
  previous one to finish (up to `EVENT_CONCURRENCY` at once per connection), as
  API Gateway does: a connection's messages may reach the backend out of order
  (`serial_events`: one at a time, in arrival order, which AWS never promises);
  each message's requestTimeEpoch is when it was read, in milliseconds, kept
  strictly increasing per connection. That last part is not AWS's: this event
  loop, shared with moto and the handlers, reads a connection's frames in clumps
  when it is busy and would stamp messages sent milliseconds apart alike, which
  API Gateway would not. API Gateway can still stamp two messages of a burst with
  the same millisecond, and nothing then tells their order (docs/ordered.md#limits);
- enforces the limits of docs/limits.md: a frame over 32 KB or a message over 128 KB
  closes with 1009, a binary frame with 1003, idle timeout and maximum lifetime
  with 1001 "Going away";
- unregisters the connection as soon as it closes, then runs `$disconnect`
  with the close code and reason (1006 when no close frame came).

Lambda functions are blocking: they run in a thread pool, never on the loop.
"""

from __future__ import annotations

import asyncio
import base64
import http
import json
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode as WsCloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

from chalicelib.grip.limits import IDLE_TIMEOUT, MAX_FRAME, MAX_LIFETIME, MAX_POST, CloseCode

from . import events
from .connections import Closed, Registry, iso
from .http import json_bytes
from .runtime import InvocationError

log = logging.getLogger(__name__)

Function = Callable[[dict[str, Any]], Any]

# Headers of the 101 that belong to the handshake itself, never to $connect's answer.
_OWN_HEADERS = frozenset(
    {
        "connection",
        "upgrade",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "content-length",
        "content-type",
        "transfer-encoding",
        "date",
    }
)
# 1001: API Gateway's close for an idle or expired connection, and for every one at
# shutdown. Not in limits.CloseCode: the app's code neither sends nor reads it.
GOING_AWAY = int(WsCloseCode.GOING_AWAY)
# How long an @connections POST may wait for the client's socket to take the frame.
_SEND_TIMEOUT = 10.0
# $default invocations of one connection running at once. API Gateway sets no such
# bound (each message is an invocation of its own); a few keeps a burst from one
# client from taking every thread while still letting events overtake each other.
EVENT_CONCURRENCY = 4
# Messages of one connection read but not yet handed to $default: past this, the
# emulator stops reading the socket (TCP pushes back on the client).
_BACKLOG = 1024


@dataclass(frozen=True)
class Limits:
    frame: int = MAX_FRAME
    message: int = MAX_POST
    idle_timeout: float = IDLE_TIMEOUT
    max_lifetime: float = MAX_LIFETIME
    integration_timeout: float = 29.0


@dataclass(frozen=True)
class Routes:
    """The Lambda function behind each route; a missing route is skipped."""

    connect: Function | None = None
    message: Function | None = None
    disconnect: Function | None = None


class Client:
    """One open client connection, as the @connections API reaches it."""

    def __init__(
        self, handshake: events.Handshake, ws: ServerConnection, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.handshake = handshake
        self.ws = ws
        self._loop = loop
        self.opened = time.monotonic()
        self.last_active = self.opened  # data frames either way count as activity
        self.last_active_ms = handshake.connected_at
        self.closing = False
        self.stamp = 0  # the last requestTimeEpoch given to its events
        self._closer: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.handshake.connection_id

    def touch(self) -> None:
        self.last_active = time.monotonic()
        self.last_active_ms = events.now_ms()

    # -- AsyncSink: called on the loop by the @connections server --------------

    async def send_async(self, data: bytes) -> None:
        """A POST: a TEXT frame if the bytes are UTF-8, else a BINARY frame."""
        if self.closing:
            raise Closed(self.id)
        try:
            message: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            message = data
        try:
            async with asyncio.timeout(_SEND_TIMEOUT):
                await self.ws.send(message)
        except ConnectionClosed:
            raise Closed(self.id) from None
        self.touch()

    async def close_async(self) -> None:
        """A DELETE: close with 1000 (no code of the caller's); $disconnect follows.
        Answered at once: later calls get 410 while the close handshake runs."""
        if self.closing:
            raise Closed(self.id)
        self.closing = True
        self._closer = asyncio.get_running_loop().create_task(self.ws.close(CloseCode.NORMAL))

    # -- Sink: the same from another thread ----------------------------------

    def send(self, data: bytes) -> None:
        asyncio.run_coroutine_threadsafe(self.send_async(data), self._loop).result()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.close_async(), self._loop).result()

    def info(self) -> dict[str, Any]:
        if self.closing:
            raise Closed(self.id)
        return {
            "connectedAt": iso(self.handshake.connected_at),
            "lastActiveAt": iso(self.last_active_ms),
            "identity": {
                "sourceIp": self.handshake.source_ip,
                "userAgent": self.handshake.user_agent,
            },
        }


def close_status(ws: ServerConnection) -> tuple[int, str]:
    """disconnectStatusCode and disconnectReason: the close frame of whoever
    closed first, or 1006 when the connection dropped without one."""
    proto = ws.protocol
    sent, rcvd = proto.close_sent, proto.close_rcvd
    if sent is not None and (rcvd is None or proto.close_rcvd_then_sent is False):
        return int(sent.code), sent.reason
    if rcvd is not None:
        return int(rcvd.code), rcvd.reason
    return int(CloseCode.ABNORMAL), ""


def _response(status: int, headers: list[tuple[str, str]], body: bytes) -> Response:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    out = Headers([("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))])
    for name, value in headers:
        if name.lower() not in ("content-length", "connection", "date"):
            out[name] = value
    out["Connection"] = "close"
    out["Content-Length"] = str(len(body))
    if "Content-Type" not in out:
        out["Content-Type"] = "application/json"
    return Response(status, phrase, out, body)


def _result_headers(result: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        pairs.extend((name, str(v)) for v in values)
    return pairs


def _result_body(result: dict[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if result.get("isBase64Encoded"):
        return base64.b64decode(body)
    return str(body).encode("utf-8")


def not_websocket_body(control_url: str | None) -> bytes:
    """What a plain HTTP request (a control API call sent here by mistake) is
    answered, as the control port answers a WebSocket handshake."""
    where = control_url or "the `control:` URL the stack printed"
    return json_bytes({"error": f"this is the WebSocket endpoint: the control API is at {where}"})


class _Connection(ServerConnection):
    """websockets answers a request it cannot read as a handshake (a POST with a
    body: a publish sent to this port) with no response at all: curl says "Empty
    reply", gripcontrol `RemoteDisconnected`. This one reads the request line first,
    and answers anything but a GET with 400 and `refusal` (not_websocket_body)."""

    refusal = b""
    _MAX_LINE = 8192

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._line: bytearray | None = bytearray()  # None: the request line was let through
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # what the client still sends, read so that it gets to read the answer
        if self._line is None:
            return super().data_received(data)
        self._line += data
        if b"\n" not in self._line and len(self._line) < self._MAX_LINE:
            return
        head, self._line = bytes(self._line), None
        if head.split(b" ", 1)[0] == b"GET":
            return super().data_received(head)
        self._refused = True
        response = _response(400, [], self.refusal)
        self.transport.write(response.serialize())
        method = head.split(b" ", 1)[0].decode("ascii", "replace")[:16]
        log.info("refused %s on the WebSocket port: not a WebSocket handshake", method)
        # Closed when the client has read it and closes, or after a while.
        self.loop.call_later(5, self.transport.close)

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()
            return
        super().eof_received()


class WebSocketGateway:
    def __init__(
        self,
        routes: Routes,
        registry: Registry,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "local",
        api_id: str | None = None,
        limits: Limits | None = None,
        workers: int = 32,
        serial_events: bool = False,
        control_url: str | None = None,
    ) -> None:
        self.routes = routes
        self.registry = registry
        self.host = host
        self.port = port
        self.stage = stage
        self.api_id = api_id or events.api_id()
        self.limits = limits or Limits()
        self.event_concurrency = 1 if serial_events else EVENT_CONCURRENCY
        self.refusal = not_websocket_body(control_url)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="lambda-ws")
        self._server: Server | None = None
        # Accepted by $connect, waiting for the 101 to go out and the handler to start.
        self._opening: weakref.WeakKeyDictionary[ServerConnection, events.Handshake] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await serve(
            self._serve,
            self.host,
            self.port,
            process_response=self._process_response,
            create_connection=type("Connection", (_Connection,), {"refusal": self.refusal}),
            # API Gateway negotiates no extension: frame sizes are wire sizes.
            compression=None,
            max_size=(self.limits.message, self.limits.frame),
            # API Gateway does not ping clients; it answers their pings.
            ping_interval=None,
            ping_timeout=None,
            # $connect may take the whole integration timeout.
            open_timeout=self.limits.integration_timeout + 5,
            close_timeout=5,
            server_header=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every client with 1001 and wait for their $disconnect."""
        if self._server is not None:
            self._server.close(close_connections=True, code=GOING_AWAY, reason="Going away")
            await self._server.wait_closed()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.limits.integration_timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- invoking Lambda ----------------------------------------------------

    async def _invoke(self, function: Function, event: dict[str, Any]) -> Any:
        """Run a function in the pool; raises TimeoutError past the integration
        timeout (the function keeps running, as a Lambda would) or InvocationError."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, function, event)
        return await asyncio.wait_for(asyncio.shield(future), self.limits.integration_timeout)

    # -- $connect: during the handshake ---------------------------------------

    def _handshake(self, ws: ServerConnection, request: Request) -> events.Handshake:
        path, _, query = request.path.partition("?")
        source_ip = str(ws.remote_address[0]) if ws.remote_address else "127.0.0.1"
        headers = list(request.headers.raw_items())
        # API Gateway appends the peer to X-Forwarded-For and adds the port and scheme.
        forwarded = [v for k, v in headers if k.lower() == "x-forwarded-for"]
        headers = [
            (k, v)
            for k, v in headers
            if k.lower() not in ("x-forwarded-for", "x-forwarded-port", "x-forwarded-proto")
        ]
        headers += [
            ("X-Forwarded-For", ", ".join([*forwarded, source_ip])),
            ("X-Forwarded-Port", str(self.port)),
            ("X-Forwarded-Proto", "http"),
        ]
        return events.Handshake(
            connection_id=events.connection_id(),
            api_id=self.api_id,
            stage=self.stage,
            domain_name=request.headers.get("Host", f"{self.host}:{self.port}"),
            source_ip=source_ip,
            user_agent=request.headers.get("User-Agent", ""),
            connected_at=events.now_ms(),
            headers=headers,
            query=query,
        )

    async def _process_response(
        self, ws: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        if response.status_code != 101:
            if "websocket" not in request.headers.get("Upgrade", "").lower():
                return _response(400, [], self.refusal)  # a plain GET: a control call?
            return None  # not a valid upgrade: API Gateway answers before any Lambda
        hs = self._handshake(ws, request)
        result: Any = {"statusCode": 200}
        if self.routes.connect is not None:
            try:
                result = await self._invoke(self.routes.connect, events.connect_event(hs))
            except TimeoutError:
                log.warning("$connect of %s timed out", hs.connection_id)
                return _response(504, [], json_bytes({"message": "Endpoint request timed out"}))
            except InvocationError:
                return _response(502, [], json_bytes({"message": "Internal server error"}))
        if not isinstance(result, dict):
            result = {"statusCode": 200}
        status = int(result.get("statusCode") or 200)
        if not 200 <= status < 300:
            log.info("$connect rejected %s with %d", hs.connection_id, status)
            return _response(status, _result_headers(result), _result_body(result))
        for name, value in _result_headers(result):
            if name.lower() not in _OWN_HEADERS:
                response.headers[name] = value
        if ws.state is not State.CONNECTING or not (self._server and self._server.is_serving()):
            # The client left (or we are stopping) while $connect ran: no 101 will
            # go out and no handler will run, but $connect did succeed.
            self._spawn(self._disconnect(hs, int(CloseCode.ABNORMAL), ""))
            return None
        self._opening[ws] = hs
        return None

    # -- an open connection ----------------------------------------------------

    async def _serve(self, ws: ServerConnection) -> None:
        hs = self._opening.pop(ws)
        client = Client(hs, ws, asyncio.get_running_loop())
        self.registry.register(client.id, client)
        reader = asyncio.create_task(self._read(client))
        watchdog = asyncio.create_task(self._watch(client))
        try:
            await ws.wait_closed()
        finally:
            self.registry.unregister(client.id)
            watchdog.cancel()
        # Messages received before the close are still handled, then $disconnect.
        try:
            await reader
        except Exception:
            log.exception("reading from %s failed", client.id)
        code, reason = close_status(ws)
        # After its last message's stamp, even when that ran ahead of the clock.
        await self._disconnect(hs, code, reason, max(events.now_ms(), client.stamp + 1))

    async def _read(self, client: Client) -> None:
        """Each message is stamped as it arrives (requestTimeEpoch) and its $default
        runs as soon as one of the connection's event_concurrency runners is free,
        in arrival order; returns once every message read has been handled."""
        ws = client.ws
        inbox: asyncio.Queue[tuple[str, int] | None] = asyncio.Queue(_BACKLOG)
        runners = [
            asyncio.get_running_loop().create_task(self._run_messages(client, inbox))
            for _ in range(self.event_concurrency if self.routes.message else 0)
        ]
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await ws.close(CloseCode.UNSUPPORTED_DATA, "Binary frames are not supported")
                    return
                client.touch()
                if runners:
                    # Strictly increasing: see the module's docstring.
                    client.stamp = max(events.now_ms(), client.stamp + 1)
                    await inbox.put((message, client.stamp))  # waits while the backlog is full
        except ConnectionClosed:
            pass
        finally:
            for _ in runners:
                await inbox.put(None)
            if runners:
                await asyncio.wait(runners)

    async def _run_messages(
        self, client: Client, inbox: asyncio.Queue[tuple[str, int] | None]
    ) -> None:
        while (item := await inbox.get()) is not None:
            await self._on_message(client, *item)

    async def _on_message(self, client: Client, body: str, received: int) -> None:
        assert self.routes.message is not None
        event = events.message_event(client.handshake, body, received)
        try:
            await self._invoke(self.routes.message, event)
            return
        except TimeoutError:
            error = "Endpoint request timed out"
        except InvocationError:
            error = "Internal server error"
        # What API Gateway tells a client when the route's integration fails.
        notice = {
            "message": error,
            "connectionId": client.id,
            "requestId": event["requestContext"]["requestId"],
        }
        try:
            await client.ws.send(json.dumps(notice))
        except ConnectionClosed:
            pass

    async def _watch(self, client: Client) -> None:
        """Idle timeout and maximum lifetime: close with 1001 "Going away"."""
        limits = self.limits
        while True:
            now = time.monotonic()
            deadline = min(
                client.last_active + limits.idle_timeout, client.opened + limits.max_lifetime
            )
            if now >= deadline:
                log.info("closing %s: idle or too old", client.id)
                client.closing = True
                await client.ws.close(GOING_AWAY, "Going away")
                return
            await asyncio.sleep(deadline - now)

    async def _disconnect(
        self, hs: events.Handshake, code: int, reason: str, at: int | None = None
    ) -> None:
        if self.routes.disconnect is None:
            return
        event = events.disconnect_event(hs, code, reason, at)
        try:
            await self._invoke(self.routes.disconnect, event)
        except (TimeoutError, InvocationError):
            log.warning("$disconnect of %s failed", hs.connection_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
