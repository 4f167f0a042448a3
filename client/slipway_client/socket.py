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
reconnects with exponential backoff and full jitter, a bounded number of times.
Sending is at most once: a message whose connection drops mid-send raises
`SocketClosed` and is not resent.

In envelope mode the client also resumes (docs/resume.md, pure parts in
resume.py): it tracks its position in every channel, reconnects with them
(`resume=`), drops the duplicates a replay or an overlap brings, reports each
subscribe's `[6]` outcome to `on_recovery`, and rotates its connection before
API Gateway's 2-hour cut: it opens a new connection with its positions, waits
for the new one's `[6]` frames, and only then closes the old one.
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
from websockets.protocol import State as WsState
from websockets.typing import Subprotocol

from . import envelope
from .envelope import Download, Failure, Message, UploadRequest, UploadTarget
from .errors import EnvelopeError, RemoteError, RotationTimeout, SocketClosed, TransferError
from .resume import (
    ROTATE_WINDOW,
    Handover,
    Position,
    Recovery,
    Tracker,
    check_window,
    rotation_delay,
    with_resume,
)

log = logging.getLogger("slipway_client")

__all__ = ["Backoff", "State", "WebSocketClient", "connect", "with_envelope"]

GOING_AWAY = 1001  # API Gateway's close at the end of a connection's life: reconnect at once

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
    seconds, scaled down by up to `jitter` so that many clients dropped at once do
    not come back at once. The default, 1.0, is "full jitter": a uniform wait
    between 0 and that bound (0.5 would wait between 50% and 100% of it).
    `max_attempts=None` (the default) retries forever: after a mass drop API
    Gateway admits 500 new connections a second, so 100,000 clients take minutes
    to come back and each may be refused a dozen times (docs/resume.md)."""

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    max_attempts: int | None = None
    jitter: float = 1.0

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
RecoveryCallback = Callable[[str, Recovery], object]


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

    Resume (envelope mode only; docs/resume.md):
    - `on_recovery(channel, recovery)`: called for every `[6]` frame, i.e. after
      every subscribe: `recovery.status` is "none", "recovered" (with
      `recovery.replayed` messages) or "failed" (`recovery.reason`; reload the
      channel's state).
    - `positions`: positions to start from (e.g. saved from `client.positions`),
      and `floors` (saved from `client.floors`): without its floor, the gateway
      does not recover a channel from a position (docs/resume.md).
    - `rotate_window=(low, high)`: rotate each connection at a random moment that
      many seconds after it opened (default 100-115 minutes; API Gateway cuts at
      120); None never rotates. `rotate_timeout`: how long a rotation waits for the
      new connection's `[6]` frames before it closes the old one anyway.
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
        on_recovery: RecoveryCallback | None = None,
        positions: Mapping[str, Position | tuple[str, int]] | None = None,
        floors: Mapping[str, str] | None = None,
        rotate_window: tuple[float, float] | None = ROTATE_WINDOW,
        rotate_timeout: float = 10.0,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must be a ws:// or wss:// URL, not {url!r}")
        if rotate_timeout <= 0:
            raise ValueError("rotate_timeout must be > 0 seconds")
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
        self._on_recovery = on_recovery
        self._tracker = Tracker(positions, floors)
        # Raw mode has no positions, so rotating would deliver the overlap twice.
        self._rotate_window = check_window(rotate_window) if envelope else None
        self._rotate_timeout = rotate_timeout
        #: Rotations done: connections replaced by a rotation's new connection.
        self.rotations = 0

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
        self._readers: dict[ClientConnection, asyncio.Task[None]] = {}
        self._rotation_timer: asyncio.TimerHandle | None = None
        self._rotation: asyncio.Task[bool] | None = None
        self._rotation_failures = 0
        self._candidate: ClientConnection | None = None  # a rotation's new connection
        self._handover: Handover | None = None
        self._handed_over = asyncio.Event()

    @property
    def state(self) -> State:
        return self._state

    @property
    def positions(self) -> dict[str, Position]:
        """Where the client is in each channel: `{channel: Position(epoch, offset)}`
        (a copy). Empty in raw mode and when the gateway keeps no history."""
        return dict(self._tracker.positions)

    @property
    def floors(self) -> dict[str, str]:
        """The floor token of each channel (a copy): save it with `positions`."""
        return dict(self._tracker.floors)

    def forget(self, channel: str) -> None:
        """Drop the position in `channel`: the next connection will not present one,
        and a rotation will not wait for that channel's `[6]` (use it once the
        backend no longer subscribes the client to `channel`)."""
        self._tracker.forget(channel)

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
        self._cancel_rotation_timer()
        rotation = self._rotation
        if rotation is not None and not rotation.done():
            rotation.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await rotation
        for ws in list(self._readers):  # a rotation's connections too
            if ws is not self._ws:
                await ws.close(code, reason)
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

    def _connect_url(self) -> str:
        if not self.envelope:
            return self.url
        return with_resume(self.url, self._tracker.positions, self._tracker.floors)

    async def _open(self) -> ClientConnection:
        return await ws_connect(
            self._connect_url(),
            additional_headers=self._headers or None,
            subprotocols=self._subprotocols or None,
            open_timeout=self._open_timeout,
            **self._options,
        )

    def _attach(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._next_id = 1  # ids are per connection
        if ws not in self._readers:
            self._readers[ws] = asyncio.create_task(self._read(ws))
        self._schedule_rotation()
        self._set_state(State.OPEN)

    async def _run(self, ws: ClientConnection) -> None:
        try:
            while True:
                await self._readers.pop(ws)
                if self._ws is not None and self._ws is not ws:
                    ws = self._ws  # a rotation handed over to its new connection
                    continue
                self.close_code, self.close_reason = ws.close_code, ws.close_reason or ""
                self._fail_pending(SocketClosed(f"the connection closed ({self.close_code})"))
                if self._closing:
                    return
                candidate = self._candidate
                if candidate is not None and candidate.state is WsState.OPEN:
                    # Dropped mid-rotation: the new connection, already resuming, takes over.
                    self._attach(candidate)
                    self._handed_over.set()  # the rotation need not wait any longer
                    ws = candidate
                    continue
                if self._reconnect is None:
                    return
                immediate = self.close_code == GOING_AWAY
                reopened = await self._reconnect_loop(self._reconnect, immediate)
                if reopened is None:
                    return
                ws = reopened
        finally:
            self._cancel_rotation_timer()
            self._finish()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._handle(raw, ws)
        except ConnectionClosed:
            pass  # a drop: the supervisor decides whether to reconnect

    async def _reconnect_loop(
        self, backoff: Backoff, immediate: bool = False
    ) -> ClientConnection | None:
        attempt = 0
        while backoff.max_attempts is None or attempt < backoff.max_attempts:
            self._set_state(State.RECONNECTING)
            # After the gateway's "going away" (API Gateway's 2-hour cut) the first
            # attempt goes at once: connections reach that age one by one.
            await asyncio.sleep(0 if immediate and attempt == 0 else backoff.delay(attempt))
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

    def _handle(self, raw: str | bytes, ws: ClientConnection) -> None:
        if not self.envelope or isinstance(raw, bytes):
            self._push(raw)
            return
        try:
            frame = envelope.decode(raw)
        except EnvelopeError as exc:
            self._report(exc)
            return
        match frame:
            case Message(data=data, stamp=stamp):
                if stamp is None or self._tracker.admit(stamp):
                    self._push(data)
            case Download(stamp=stamp):
                if stamp is not None and not self._tracker.admit(stamp):
                    return  # a duplicate: not even fetched
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
            case Recovery(channel=channel):
                self._tracker.recover(frame)
                if self._handover is not None and ws is self._candidate:
                    self._handover.arrived(channel)
                    if self._handover.done:
                        self._handed_over.set()
                self._callback(self._on_recovery, channel, frame)

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

    # -- rotation ---------------------------------------------------------------------------

    async def rotate(self) -> bool:
        """Rotate the connection now, make before break: open a new connection with
        the current positions, wait for its `[6]` frames (at most `rotate_timeout`),
        then close the old one. Returns whether every channel's `[6]` arrived in
        time (if not, `on_error` also gets a `RotationTimeout`). Raises
        `SocketClosed` when the client is not open, and the handshake's error when
        the new connection cannot be opened (the old one stays)."""
        if not self.envelope:
            raise RuntimeError("rotation needs envelope mode (raw mode has no positions)")
        if self._rotation is None or self._rotation.done():
            self._rotation = asyncio.create_task(self._rotate())
        return await asyncio.shield(self._rotation)

    def _schedule_rotation(self, delay: float | None = None) -> None:
        self._cancel_rotation_timer()
        if self._rotate_window is None or self._closing:
            return
        if delay is None:
            self._rotation_failures = 0
            delay = rotation_delay(self._rotate_window)
        loop = asyncio.get_running_loop()
        self._rotation_timer = loop.call_later(delay, self._rotate_when_due)

    def _cancel_rotation_timer(self) -> None:
        if self._rotation_timer is not None:
            self._rotation_timer.cancel()
            self._rotation_timer = None

    def _rotate_when_due(self) -> None:
        self._rotation_timer = None
        if self._closing or self._state is not State.OPEN:
            return  # a reconnection schedules the next rotation
        if self._rotation is None or self._rotation.done():
            self._rotation = asyncio.create_task(self._rotate())
        # Also when a rotate() is under way: if it fails, the next try is timed.
        self._rotation.add_done_callback(self._rotated)

    def _rotated(self, task: asyncio.Task[bool]) -> None:
        if task.cancelled() or self._closing:
            return
        error = task.exception()
        if isinstance(error, Exception):
            self._report(error)
        if error is not None and self._rotation_timer is None:
            # The new connection could not be opened (or dropped): try again later.
            # (A reconnection meanwhile has scheduled the next rotation itself.)
            self._rotation_failures += 1
            retry = (self._reconnect or Backoff()).delay(self._rotation_failures)
            self._schedule_rotation(max(retry, 1.0))

    async def _rotate(self) -> bool:
        old = self._ws
        if old is None or self._state is not State.OPEN or self._closing:
            raise SocketClosed("the client is not open")
        handover = Handover.of(self._tracker.positions)
        new = await self._open()
        if self._closing or self._ws is not old or self._state is not State.OPEN:
            await new.close()  # overtaken: closed, or reconnected meanwhile
            raise SocketClosed("the connection changed during the rotation")
        self._handover, self._candidate = handover, new
        self._handed_over = asyncio.Event()
        reader = self._readers[new] = asyncio.create_task(self._read(new))
        waiter = asyncio.create_task(self._handed_over.wait())
        try:
            if not handover.done:
                await asyncio.wait(
                    {waiter, reader}, timeout=self._rotate_timeout, return_when="FIRST_COMPLETED"
                )
        finally:
            waiter.cancel()
            self._handover, self._candidate = None, None
        if self._ws is new:  # the old connection dropped meanwhile: the new one took over
            self.rotations += 1
            return handover.done
        if reader.done():
            self._readers.pop(new, None)
            raise SocketClosed(f"the rotation's new connection closed ({new.close_code})")
        if not handover.done:
            self._report(RotationTimeout(frozenset(handover.waiting), self._rotate_timeout))
        if self._closing or self._ws is not old:
            await new.close()
            self._readers.pop(new, None)
            raise SocketClosed("the connection changed during the rotation")
        self._attach(new)
        self.rotations += 1
        async with self._send_lock:  # a send in progress on the old connection ends first
            await old.close(1000, "rotated")
        return handover.done

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

    def _callback(self, callback: Callable[..., object] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(*args)
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
