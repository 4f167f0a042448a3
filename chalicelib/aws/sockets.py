"""API Gateway's @connections API: send to, close and inspect one connection.

Signed with botocore's own SigV4 signer rather than sent through a boto3 client:
a boto3 call costs ~1.3 ms of CPU, and the fan-out worker makes one call per
delivery. One transport carries every call: keep-alive connections speaking
HTTP/1.1 through h11 (a sans-I/O library: it turns a request into bytes and
bytes into a response, and says when a connection can carry another), one retry
rule and one reading of the answer. Only the waiting differs: a single call
(`send`, `close`, `info`: a handler's reply) blocks on its socket, as asyncio
costs ~30 ms of CPU to import, which a WebSocket function's first reply should
not pay; `send_many` drives many connections from one asyncio loop per thread,
at ~0.2 ms of CPU per delivery and no time handing the GIL between threads
(bench/fanout.py measures it).

Connections stay open between calls: each thread keeps its connection per
endpoint for single calls, and its event loop and idle keep-alive connections
(up to `_IDLE_MAX` per endpoint, each reused for `_IDLE_REUSE` seconds) for
`send_many`, so the records of a batch and the invocations of one Lambda
container (which reuses its module state) pay the TCP and TLS handshakes once,
not once a call. A kept connection the server has closed meanwhile (the container
was frozen between invocations, say) is replaced and the request sent again,
without counting as a failed attempt. `Sockets.stats` counts connections opened.

What an answer means is decided once (`answers.Result`): 410 is Gone, 413
(PayloadTooLargeException: over API Gateway's 128 KB) is TooLarge, which no retry
can help; 429 and 5xx are retried with a jittered backoff, as are dropped
connections. h11 is imported at the first call and asyncio at the first
`send_many`, not at a cold start (tests/test_coldstart.py).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar
from urllib.parse import SplitResult, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from .. import metrics
from ..grip import metrics as m
from ..lazy import LazyModule, lazy
from .answers import RETRYABLE, Outcome, Result, Stats, backoff, url_of
from .answers import SocketError as SocketError  # what a single call raises

if TYPE_CHECKING:
    import asyncio

    import h11
else:
    asyncio = lazy("asyncio")  # at the first call: not in a cold start's way
    h11 = lazy("h11")

_IDLE_MAX = 64  # idle connections kept per endpoint and thread
_IDLE_REUSE = 50.0  # seconds an idle connection is reused for; older ones are closed
_T = TypeVar("_T")


@dataclass
class _Stream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    http: h11.Connection
    kept: bool = False  # taken from the idle pool and not used since
    idle_since: float = 0.0


@dataclass
class _Blocking:
    """A single calls' connection: a socket and its HTTP/1.1 state."""

    sock: socket.socket
    http: h11.Connection
    kept: bool = False  # used before: the server may have closed it meanwhile


class Sockets:
    """Thread-safe: every thread keeps its own loop and connections to each endpoint."""

    def __init__(self, session: Any, attempts: int = 3, timeout: float = 5.0) -> None:
        self._credentials = session.get_credentials()
        self._local = threading.local()
        self._tls = ssl.create_default_context()
        self._timeout = timeout
        self._attempts = attempts
        self._region = session.region_name or os.environ.get("AWS_REGION", "us-east-1")
        self.stats = Stats()
        self._loops: list[tuple[asyncio.AbstractEventLoop, dict[str, list[_Stream]]]] = []
        self._loops_lock = threading.Lock()

    def _region_of(self, host: str) -> str:
        # <api>.execute-api.<region>.amazonaws.com; anything else (local) uses ours.
        parts = host.split(".")
        if len(parts) > 3 and parts[1] == "execute-api":
            return parts[2]
        return self._region

    def _signed(self, method: str, url: str, parts: SplitResult, body: bytes) -> dict[str, str]:
        """Request headers with SigV4 for execute-api (none without credentials)."""
        request = AWSRequest(method=method, url=url, data=body)
        if self._credentials is not None:
            region = self._region_of(parts.hostname or "")
            frozen = self._credentials.get_frozen_credentials()
            SigV4Auth(frozen, "execute-api", region).add_auth(request)
        return dict(request.headers)

    def _run(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run `work` on this thread's loop, whose idle connections it may use."""
        _import()
        _import_asyncio()
        loop = getattr(self._local, "loop", None)
        if loop is None or loop.is_closed():
            loop = self._local.loop = asyncio.new_event_loop()
            self._local.idle = {}
            with self._loops_lock:
                self._loops.append((loop, self._local.idle))
        return loop.run_until_complete(work)

    def _one(self, method: str, endpoint: str, cid: str, body: bytes = b"") -> bytes:
        _import()
        url = url_of(endpoint, cid)
        parts = urlsplit(url)
        attempt = 0
        while True:
            kept = False
            try:
                status, data = self._exchange_blocking(method, url, parts, body)
            except (OSError, h11.ProtocolError) as exc:
                stream = self._local.conns.pop(parts.netloc, None)
                kept = stream is not None and stream.kept
                if stream is not None:
                    stream.sock.close()
                attempt, result = self._judge(attempt, kept, error=exc)
            else:
                attempt, result = self._judge(attempt, kept, status, data)
            if result is not None:
                if method == "POST":
                    metrics.record(m.DELIVERIES, 1, m.delivery_outcome(result.status))
                return result.value(cid)
            if attempt:  # not a stale connection, replaced at once
                time.sleep(backoff(attempt))

    def _exchange_blocking(
        self, method: str, url: str, parts: SplitResult, body: bytes
    ) -> tuple[int, bytes]:
        conns: dict[str, _Blocking] = self._local.__dict__.setdefault("conns", {})
        stream = conns.get(parts.netloc)
        if stream is None:
            https = parts.scheme == "https"
            host = parts.hostname or ""
            sock = socket.create_connection(
                (host, parts.port or (443 if https else 80)), self._timeout
            )
            if https:
                sock = self._tls.wrap_socket(sock, server_hostname=host)
            self.stats.count(https)
            stream = conns[parts.netloc] = _Blocking(sock, h11.Connection(h11.CLIENT))
        stream.sock.sendall(self._request(stream.http, method, url, parts, body))
        http = stream.http
        status, data = 0, bytearray()
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(stream.sock.recv(65536))  # b"": closed
            elif _read(event, data):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
        stream.kept = True
        if not _reusable(http):
            stream.sock.close()
            del conns[parts.netloc]
        return status, bytes(data)

    def _judge(
        self,
        attempt: int,
        kept: bool,
        status: int = 0,
        data: bytes = b"",
        error: Exception | None = None,
    ) -> tuple[int, Result | None]:
        """The retry rule, one for every call: the attempts made so far (a kept
        connection the server closed while idle does not count) and the call's
        result, or None to try again."""
        if error is not None:
            if kept and not isinstance(error, TimeoutError):
                self.stats.stale += 1  # closed while idle: not this request's fault
                return attempt, None
            attempt += 1
            return attempt, Result(0, error=error) if attempt == self._attempts else None
        attempt += 1
        if status not in RETRYABLE or attempt == self._attempts:
            return attempt, Result(status, data)
        return attempt, None

    def _request(
        self, http: h11.Connection, method: str, url: str, parts: SplitResult, body: bytes
    ) -> bytes:
        """A signed request's bytes."""
        headers = self._signed(method, url, parts, body)
        headers.setdefault("Host", parts.netloc)
        headers["Content-Length"] = str(len(body))
        request = h11.Request(method=method, target=parts.path, headers=list(headers.items()))
        return http.send(request) + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage())

    def send(self, endpoint: str, connection_id: str, data: bytes) -> None:
        """Post one message: Gone when the connection has left, TooLarge when
        @connections refuses its size, SocketError for other refusals."""
        self._one("POST", endpoint, connection_id, data)

    def close(self, endpoint: str, connection_id: str) -> None:
        self._one("DELETE", endpoint, connection_id)

    def info(self, endpoint: str, connection_id: str) -> dict[str, Any]:
        """`{"connectedAt", "lastActiveAt", "identity": {"sourceIp", "userAgent"}}`."""
        info: dict[str, Any] = json.loads(self._one("GET", endpoint, connection_id) or b"{}")
        return info

    # -- many at once ---------------------------------------------------------

    def send_many(
        self,
        targets: list[tuple[str, str]],
        data: bytes | None,
        concurrency: int,
    ) -> Outcome:
        """POST `data` to every (endpoint, connection id), or DELETE each when
        `data` is None, over at most `concurrency` connections at a time."""
        return self._run(self._many(deque(targets), data, concurrency))

    def shutdown(self) -> None:
        """Close every kept connection, of every thread (whose loop is not running):
        for tests and shutdowns, which drop a Sockets before its process ends."""
        with self._loops_lock:
            loops, self._loops = self._loops, []
        for loop, idle in loops:
            if loop.is_running() or loop.is_closed():
                continue
            for kept in idle.values():
                for stream in kept:
                    _close(stream)
            idle.clear()
            loop.run_until_complete(asyncio.sleep(0.01))  # the transports close
            loop.close()

    async def _many(
        self, todo: deque[tuple[str, str]], payload: bytes | None, concurrency: int
    ) -> Outcome:
        outcome = Outcome()
        lanes = [self._lane(todo, payload, outcome) for _ in range(min(concurrency, len(todo)))]
        await asyncio.gather(*lanes)
        return outcome

    async def _lane(
        self, todo: deque[tuple[str, str]], payload: bytes | None, outcome: Outcome
    ) -> None:
        """One keep-alive connection per endpoint, working through the shared queue;
        taken from and given back to this thread's idle connections."""
        method = "DELETE" if payload is None else "POST"
        streams: dict[str, _Stream] = {}
        try:
            while todo:
                endpoint, cid = todo.popleft()
                result = await self._call(streams, method, endpoint, cid, payload or b"")
                result.record(cid, outcome)
                if payload is not None:
                    metrics.record(m.DELIVERIES, 1, m.delivery_outcome(result.status))
        finally:
            self._give_back(streams)

    async def _call(
        self, streams: dict[str, _Stream], method: str, endpoint: str, cid: str, body: bytes
    ) -> Result:
        """One request, with its retries, over `streams` (one per endpoint)."""
        url = url_of(endpoint, cid)
        parts = urlsplit(url)
        attempt = 0
        while True:
            kept = False
            try:
                status, data = await asyncio.wait_for(
                    self._exchange(streams, method, url, parts, body), self._timeout
                )
            except (TimeoutError, OSError, h11.ProtocolError) as exc:
                stream = streams.pop(parts.netloc, None)
                _close(stream)
                kept = stream is not None and stream.kept
                attempt, result = self._judge(attempt, kept, error=exc)
            else:
                attempt, result = self._judge(attempt, kept, status, data)
            if result is not None:
                return result
            if attempt:  # not a stale connection, replaced at once
                await asyncio.sleep(backoff(attempt))

    def _give_back(self, streams: dict[str, _Stream]) -> None:
        """Keep a caller's connections that can carry another request for the next."""
        idle: dict[str, list[_Stream]] = self._local.idle
        now = time.monotonic()
        for netloc, stream in streams.items():
            kept = idle.setdefault(netloc, [])
            if len(kept) < _IDLE_MAX and not stream.writer.is_closing():
                stream.idle_since = now
                kept.append(stream)
            else:
                _close(stream)

    async def _exchange(
        self,
        streams: dict[str, _Stream],
        method: str,
        url: str,
        parts: SplitResult,
        body: bytes,
    ) -> tuple[int, bytes]:
        stream = streams.get(parts.netloc)
        if stream is None:
            stream = _take(self._local.idle.get(parts.netloc))
            if stream is None:
                https = parts.scheme == "https"
                reader, writer = await asyncio.open_connection(
                    parts.hostname,
                    parts.port or (443 if https else 80),
                    ssl=self._tls if https else None,
                )
                self.stats.count(https)
                stream = _Stream(reader, writer, h11.Connection(h11.CLIENT))
            streams[parts.netloc] = stream
        http = stream.http
        stream.writer.write(self._request(http, method, url, parts, body))
        status, data = 0, bytearray()
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await stream.reader.read(65536))  # b"": closed
            elif _read(event, data):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
        stream.kept = False
        if not _reusable(http):
            _close(streams.pop(parts.netloc, None))
        return status, bytes(data)


def _import() -> None:
    """Bind h11 in place of its lazy stand-in, whose every attribute read costs a
    look-up: a few microseconds a call, many times per delivery."""
    global h11
    if isinstance(h11, LazyModule):
        import h11


def _import_asyncio() -> None:
    global asyncio
    if isinstance(asyncio, LazyModule):
        import asyncio


def _take(kept: list[_Stream] | None) -> _Stream | None:
    """The most recently used idle connection still worth reusing; older ones closed."""
    now = time.monotonic()
    while kept:
        stream = kept.pop()
        if now - stream.idle_since < _IDLE_REUSE and not stream.writer.is_closing():
            stream.kept = True
            if not stream.reader.at_eof():
                return stream
        _close(stream)
    return None


def _close(stream: _Stream | None) -> None:
    if stream is not None:
        stream.writer.close()


def _read(event: object, body: bytearray) -> TypeGuard[h11.Response]:
    """Take one h11 event of a response: True for its head (status), the body
    kept; a connection closed part way raises (h11's RemoteProtocolError)."""
    if isinstance(event, h11.Data):
        body += event.data
    elif isinstance(event, h11.ConnectionClosed):
        raise h11.RemoteProtocolError("@connections closed the connection")
    return isinstance(event, h11.Response)


def _reusable(http: h11.Connection) -> bool:
    """Whether a connection whose response was read can carry the next request."""
    if http.our_state is h11.DONE and http.their_state is h11.DONE:
        http.start_next_cycle()
        return True
    return False
