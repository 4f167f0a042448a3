"""The WebSocket client (asyncio): messages of any size through slipway (docs/envelope.md).

    async with WebSocketClient("wss://abc.execute-api.eu-west-1.amazonaws.com/ws") as ws:
        await ws.send({"any": "JSON value", "of": "any size"})
        async for message in ws:
            print(message)

In envelope mode (the default) every message travels as `[1, id, data]`; one
whose frame would be over 32,000 characters is PUT to the upload URL the
gateway hands out and announced with `[4, id, url, "GET", {}]`, and a large
message from the gateway arrives as `[4, id, url, "GET", headers]` and is
fetched before it is delivered. Messages are delivered in the order the
gateway sent them, downloads included.

After a connection drops (anything but our own `close()`), the client
reconnects with exponential backoff and jitter, a bounded number of times.
Sending is at most once: a message whose connection drops mid-send raises
`SocketClosed` and is not resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

import requests
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from . import envelope
from .envelope import Download, Failure, Message, UploadRequest, UploadTarget
from .errors import EnvelopeError, RemoteError, SocketClosed, TransferError

log = logging.getLogger("slipway_client")

__all__ = ["Backoff", "State", "WebSocketClient", "connect", "with_envelope"]

_END = object()  # after the last message: the client is closed
_FAILED = object()  # a download that failed (already reported to on_error)


class State(StrEnum):
    """Connection states, as `on_state` reports them (they compare equal to their names)."""

    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True)
class Backoff:
    """How to reconnect: attempt n (from 0) waits `min(max_delay, initial * factor**n)`
    seconds, scaled down by up to `jitter` (0.5: to between 50% and 100%) so that
    many clients dropped at once do not come back at once. `max_attempts=None`
    retries forever."""

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    max_attempts: int | None = 8
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial < 0 or self.max_delay < 0 or self.factor < 1:
            raise ValueError("Backoff needs initial >= 0, max_delay >= 0 and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Backoff jitter is a fraction between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("Backoff max_attempts must be >= 0 (or None: forever)")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before reconnection attempt `attempt` (0-based)."""
        base = min(self.max_delay, self.initial * self.factor ** min(attempt, 64))
        return base * (1 - self.jitter * rand())


StateCallback = Callable[[State], object]
ErrorCallback = Callable[[Exception], object]
MessageCallback = Callable[[Any], object | Awaitable[object]]


def with_envelope(url: str) -> str:
    """`url` with `envelope=1` in its query string (any other `envelope` removed)."""
    base, _, fragment = url.partition("#")
    path, _, query = base.partition("?")
    params = [p for p in query.split("&") if p and p.split("=", 1)[0] != "envelope"]
    out = path + "?" + "&".join([*params, "envelope=1"])
    return out + ("#" + fragment if fragment else "")


class WebSocketClient:
    """A connection to a slipway gateway that survives drops and carries any size.

    - `envelope`: speak docs/envelope.md frames (default); `False` passes frames unchanged.
    - `reconnect`: a `Backoff`, or None to stay closed after a drop.
    - `on_state(state)`: called on every state change; `RECONNECTING` once per attempt.
    - `on_error(exc)`: errors not tied to a `send()` call: `[5]` frames for
      messages already sent, failed downloads, malformed frames, failed
      reconnection attempts. Without it they are logged.
    - `on_message(data)`: receive by callback (sync or async, called in order)
      instead of `recv()` / `async for`.
    - `headers`, `subprotocols`, `open_timeout`: for the handshake;
      `websocket_options`: more keyword arguments for `websockets.connect`.
    - `upload_timeout`: how long to wait for the gateway's upload URL;
      `http_timeout`: for each upload and download.
    """

    def __init__(
        self,
        url: str,
        *,
        envelope: bool = True,
        reconnect: Backoff | None = Backoff(),  # noqa: B008 - frozen, safe to share
        on_state: StateCallback | None = None,
        on_error: ErrorCallback | None = None,
        on_message: MessageCallback | None = None,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        open_timeout: float = 10.0,
        upload_timeout: float = 30.0,
        http_timeout: float = 60.0,
        websocket_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must be a ws:// or wss:// URL, not {url!r}")
        self.url = with_envelope(url) if envelope else url
        self.envelope = envelope
        #: Close code and reason of the last connection that ended (None before).
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._reconnect = reconnect
        self._on_state = on_state
        self._on_error = on_error
        self._on_message = on_message
        self._headers = dict(headers or {})
        self._subprotocols = [Subprotocol(p) for p in subprotocols or ()]
        self._open_timeout = open_timeout
        self._upload_timeout = upload_timeout
        self._http_timeout = http_timeout
        self._options = dict(websocket_options or {})

        self._state = State.CLOSED
        self._changed = asyncio.Event()
        self._started = False
        self._closing = False
        self._finished = False
        self._ws: ClientConnection | None = None
        self._next_id = 1
        self._send_lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[UploadTarget]] = {}
        self._incoming: asyncio.Queue[Any] = asyncio.Queue()
        self._supervisor: asyncio.Task[None] | None = None
        self._deliverer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def state(self) -> State:
        return self._state

    # -- lifecycle -----------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection. The first attempt is not retried: its failure
        (refused handshake, unreachable host, timeout) is raised here."""
        if self._started:
            raise RuntimeError("connect() was already called on this client")
        self._started = True
        self._set_state(State.CONNECTING)
        try:
            ws = await self._open()
        except BaseException:
            self._finish()
            raise
        self._attach(ws)
        self._supervisor = asyncio.create_task(self._run(ws))
        if self._on_message is not None:
            self._deliverer = asyncio.create_task(self._deliver())

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and stop reconnecting. Messages received before
        remain readable; `recv()` then raises `SocketClosed`."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close(code, reason)
        task = self._supervisor
        if task is not None and not task.done():
            if self._state is State.RECONNECTING:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._finish()
        deliverer = self._deliverer
        if deliverer is not None and deliverer is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await deliverer

    async def __aenter__(self) -> WebSocketClient:
        if not self._started:
            await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- sending ---------------------------------------------------------------------

    async def send(self, data: Any) -> int | None:
        """Send one message and return its id (None in raw mode).

        Envelope mode: `data` is any JSON value, of any size. Raw mode: `str`
        (a text frame) or `bytes` (a binary frame, which API Gateway refuses).
        While the client is reconnecting this waits for the connection.
        Raises `RemoteError` when the gateway refuses the upload, `TransferError`
        when the upload fails, `SocketClosed` when the client is closed or the
        connection drops mid-send (the message is not resent).
        """
        async with self._send_lock:
            ws = await self._wait_open()
            try:
                if not self.envelope:
                    if not isinstance(data, str | bytes):
                        raise TypeError(f"raw mode sends str or bytes, not {type(data).__name__}")
                    await ws.send(data)
                    return None
                mid = self._next_id
                text = envelope.encode(Message(mid, data))  # TypeError before the id is used
                self._next_id += 1
                if envelope.fits_inline(text):
                    await ws.send(text)
                else:
                    await self._upload(ws, mid, data)
                return mid
            except ConnectionClosed as exc:
                raise SocketClosed(f"the connection closed while sending: {exc}") from exc

    async def _upload(self, ws: ClientConnection, mid: int, data: Any) -> None:
        target_future: asyncio.Future[UploadTarget] = asyncio.get_running_loop().create_future()
        self._pending[mid] = target_future
        try:
            await ws.send(envelope.encode(UploadRequest(mid)))
            try:
                target = await asyncio.wait_for(target_future, self._upload_timeout)
            except TimeoutError:
                raise TransferError(
                    mid, "PUT", f"no upload URL from the gateway within {self._upload_timeout} s"
                ) from None
        finally:
            self._pending.pop(mid, None)
        body = envelope.dumps(data).encode("utf-8")
        await asyncio.to_thread(
            _http, target.method, target.url, target.headers, body, self._http_timeout, mid
        )
        await ws.send(envelope.encode(Download(mid, envelope.strip_query(target.url))))

    # -- receiving -------------------------------------------------------------------

    async def recv(self) -> Any:
        """The next message (envelope mode: the JSON value; raw mode: str or bytes).
        Raises `SocketClosed` once the client is closed and every earlier
        message was read."""
        if self._on_message is not None and asyncio.current_task() is not self._deliverer:
            raise RuntimeError("this client delivers to on_message: recv() is not available")
        return await self._next_message()

    def __aiter__(self) -> WebSocketClient:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.recv()
        except SocketClosed:
            raise StopAsyncIteration from None

    async def _next_message(self) -> Any:
        while True:
            item = await self._incoming.get()
            if item is _END:
                self._incoming.put_nowait(_END)  # for any later reader too
                raise SocketClosed("the client is closed")
            value = await item
            if value is not _FAILED:
                return value

    async def _deliver(self) -> None:
        assert self._on_message is not None
        while True:
            try:
                value = await self._next_message()
            except SocketClosed:
                return
            try:
                result = self._on_message(value)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_message callback failed")

    # -- the connection's life ---------------------------------------------------------

    async def _open(self) -> ClientConnection:
        return await ws_connect(
            self.url,
            additional_headers=self._headers or None,
            subprotocols=self._subprotocols or None,
            open_timeout=self._open_timeout,
            **self._options,
        )

    def _attach(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._next_id = 1  # ids are per connection
        self._set_state(State.OPEN)

    async def _run(self, ws: ClientConnection) -> None:
        try:
            while True:
                await self._read(ws)
                self.close_code, self.close_reason = ws.close_code, ws.close_reason or ""
                self._fail_pending(SocketClosed(f"the connection closed ({self.close_code})"))
                if self._closing or self._reconnect is None:
                    return
                reopened = await self._reconnect_loop(self._reconnect)
                if reopened is None:
                    return
                ws = reopened
        finally:
            self._finish()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._handle(raw)
        except ConnectionClosed:
            pass  # a drop: the caller decides whether to reconnect

    async def _reconnect_loop(self, backoff: Backoff) -> ClientConnection | None:
        attempt = 0
        while backoff.max_attempts is None or attempt < backoff.max_attempts:
            self._set_state(State.RECONNECTING)
            await asyncio.sleep(backoff.delay(attempt))
            attempt += 1
            if self._closing:
                return None
            try:
                ws = await self._open()
            except Exception as exc:  # refused (InvalidStatus), unreachable, timed out
                self._report(exc)
                continue
            if self._closing:
                await ws.close()
                return None
            self._attach(ws)
            return ws
        self._report(SocketClosed(f"gave up reconnecting after {attempt} attempts"))
        return None

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._fail_pending(SocketClosed("the client is closed"))
        self._set_state(State.CLOSED)
        self._incoming.put_nowait(_END)

    # -- one incoming frame ------------------------------------------------------------

    def _handle(self, raw: str | bytes) -> None:
        if not self.envelope or isinstance(raw, bytes):
            self._push(raw)
            return
        try:
            frame = envelope.decode(raw)
        except EnvelopeError as exc:
            self._report(exc)
            return
        match frame:
            case Message(data=data):
                self._push(data)
            case Download():
                task = asyncio.create_task(self._download(frame))
                self._incoming.put_nowait(task)
            case UploadTarget(id=mid):
                waiting = self._pending.get(mid)
                if waiting is None or waiting.done():
                    self._report(EnvelopeError(f"upload URL for message {mid}, which asked none"))
                else:
                    waiting.set_result(frame)
            case Failure(id=mid, code=code, message=message):
                error = RemoteError(mid, code, message)
                waiting = self._pending.get(mid)
                if waiting is None or waiting.done():
                    self._report(error)
                else:
                    waiting.set_exception(error)
            case UploadRequest(id=mid):
                self._report(EnvelopeError(f"the gateway sent an upload request [2, {mid}]"))

    def _push(self, value: Any) -> None:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(value)
        self._incoming.put_nowait(done)

    async def _download(self, frame: Download) -> Any:
        try:
            body = await asyncio.to_thread(
                _http, frame.method, frame.url, frame.headers, None, self._http_timeout, frame.id
            )
            return json.loads(body)
        except TransferError as exc:
            self._report(exc)
        except ValueError as exc:
            self._report(TransferError(frame.id, frame.method, f"body is not JSON: {exc}"))
        return _FAILED

    # -- state and errors -----------------------------------------------------------------

    async def _wait_open(self) -> ClientConnection:
        while True:
            if self._state is State.OPEN and self._ws is not None:
                return self._ws
            if self._finished or not self._started:
                raise SocketClosed("the client is closed" if self._started else "not connected")
            changed = self._changed
            await changed.wait()

    def _set_state(self, state: State) -> None:
        if state is self._state and state is not State.RECONNECTING:
            return
        self._state = state
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self._callback(self._on_state, state)

    def _fail_pending(self, error: Exception) -> None:
        for waiting in self._pending.values():
            if not waiting.done():
                waiting.set_exception(error)

    def _report(self, error: Exception) -> None:
        if self._on_error is None:
            log.warning("slipway client: %s", error)
            return
        self._callback(self._on_error, error)

    def _callback(self, callback: Callable[[Any], object] | None, arg: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(arg)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        except Exception:
            log.exception("slipway client callback %r failed", callback)


async def connect(url: str, **options: Any) -> WebSocketClient:
    """A connected `WebSocketClient` (see its options)."""
    client = WebSocketClient(url, **options)
    await client.connect()
    return client


def _http(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    timeout: float,
    mid: int,
) -> bytes:
    """One upload or download (blocking: run it in a thread)."""
    try:
        reply = requests.request(method, url, headers=dict(headers), data=body, timeout=timeout)
    except requests.RequestException as exc:
        raise TransferError(mid, method, str(exc)) from exc
    if not 200 <= reply.status_code < 300:
        snippet = reply.text[:200].strip()
        raise TransferError(mid, method, f"HTTP {reply.status_code}: {snippet}", reply.status_code)
    return reply.content
