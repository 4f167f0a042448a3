"""API Gateway's @connections API: send to, close and inspect one connection.

Signed with botocore's own SigV4 signer rather than sent through a boto3 client:
a boto3 call costs ~1.3 ms of CPU, and the fan-out worker makes one call per
delivery. Single calls go over one keep-alive `http.client` connection per
thread; `send_many` drives many keep-alive connections from one asyncio loop,
which spends ~0.2 ms of CPU per delivery and no time handing the GIL between
threads (bench/fanout.py measures it).

Connections stay open between calls: each thread keeps its event loop and its idle
keep-alive connections (up to `_IDLE_MAX` per endpoint, each reused for
`_IDLE_REUSE` seconds), so the records of a batch and the invocations of one Lambda
container (which reuses its module state) pay the TCP and TLS handshakes once,
not once a call. A kept connection the server has closed meanwhile (the container
was frozen between invocations, say) is replaced and the request sent again,
without counting as a failed attempt. `Sockets.stats` counts connections opened.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from ..grip.errors import BadGateway, Gone
from ..lazy import lazy

if TYPE_CHECKING:
    import asyncio
else:
    asyncio = lazy("asyncio")  # for send_many only: not in a cold start's way

log = logging.getLogger("slipway.sockets")
_RETRYABLE = {429, 500, 502, 503, 504}
_IDLE_MAX = 64  # idle connections kept per endpoint and thread
_IDLE_REUSE = 50.0  # seconds an idle connection is reused for; older ones are closed


class SocketError(BadGateway):
    """@connections refused a call for another reason (status and body say why)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"@connections answered {status}: {body[:200]!r}")
        self.upstream_status = status


def _url(endpoint: str, cid: str) -> str:
    return f"{endpoint.rstrip('/')}/@connections/{quote(cid, safe='')}"


@dataclass
class Stats:
    """Connections opened to @connections endpoints (TLS handshakes: those over https)."""

    opened: int = 0
    tls: int = 0
    stale: int = 0  # kept connections found closed by the server and replaced

    def count(self, https: bool) -> None:
        self.opened += 1
        self.tls += https


@dataclass
class _Stream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    kept: bool = False  # taken from the idle pool and not used since
    idle_since: float = 0.0


@dataclass
class Outcome:
    """What `send_many` did: connection ids found gone, and those that failed."""

    gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)  # 413: no retry can help


class Sockets:
    """Thread-safe: every thread keeps its own connection to each endpoint."""

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

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        conns: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(netloc)
        if conn is None:
            if scheme == "https":
                conn = _CountedHTTPS(netloc, timeout=self._timeout, context=self._tls)
            else:
                conn = _CountedHTTP(netloc, timeout=self._timeout)
            conn.stats = self.stats
            conns[netloc] = conn
        return conn

    def _drop(self, netloc: str) -> None:
        conn = self._local.__dict__.get("conns", {}).pop(netloc, None)
        if conn is not None:
            conn.close()

    def _signed(self, method: str, url: str, parts: SplitResult, body: bytes) -> dict[str, str]:
        """Request headers with SigV4 for execute-api (none without credentials)."""
        request = AWSRequest(method=method, url=url, data=body)
        if self._credentials is not None:
            region = self._region_of(parts.hostname or "")
            frozen = self._credentials.get_frozen_credentials()
            SigV4Auth(frozen, "execute-api", region).add_auth(request)
        return dict(request.headers)

    def _call(self, method: str, endpoint: str, cid: str, body: bytes = b"") -> bytes:
        url = _url(endpoint, cid)
        parts = urlsplit(url)
        for attempt in range(self._attempts):
            headers = self._signed(method, url, parts, body)
            try:
                conn = self._connection(parts.scheme, parts.netloc)
                conn.request(method, parts.path, body=body or None, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop(parts.netloc)  # a stale keep-alive connection, most often
                if attempt + 1 == self._attempts:
                    raise SocketError(0, str(exc).encode()) from exc
            else:
                if reply.status < 300:
                    return data
                if reply.status == 410:
                    raise Gone(cid)
                if reply.status not in _RETRYABLE or attempt + 1 == self._attempts:
                    raise SocketError(reply.status, data)
            time.sleep(random.uniform(0, 0.05 * 2**attempt))  # jittered backoff
        raise AssertionError("unreachable")

    def send(self, endpoint: str, connection_id: str, data: bytes) -> None:
        self._call("POST", endpoint, connection_id, data)

    def close(self, endpoint: str, connection_id: str) -> None:
        self._call("DELETE", endpoint, connection_id)

    def info(self, endpoint: str, connection_id: str) -> dict[str, Any]:
        """`{"connectedAt", "lastActiveAt", "identity": {"sourceIp", "userAgent"}}`."""
        info: dict[str, Any] = json.loads(self._call("GET", endpoint, connection_id) or b"{}")
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
        loop = getattr(self._local, "loop", None)
        if loop is None or loop.is_closed():
            loop = self._local.loop = asyncio.new_event_loop()
            self._local.idle = {}
            with self._loops_lock:
                self._loops.append((loop, self._local.idle))
        return loop.run_until_complete(
            self._many(deque(targets), data, concurrency, self._local.idle)
        )

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
        self,
        todo: deque[tuple[str, str]],
        payload: bytes | None,
        concurrency: int,
        idle: dict[str, list[_Stream]],
    ) -> Outcome:
        outcome = Outcome()
        lanes = [
            self._lane(todo, payload, outcome, idle) for _ in range(min(concurrency, len(todo)))
        ]
        await asyncio.gather(*lanes)
        return outcome

    async def _lane(
        self,
        todo: deque[tuple[str, str]],
        payload: bytes | None,
        outcome: Outcome,
        idle: dict[str, list[_Stream]],
    ) -> None:
        """One keep-alive connection per endpoint, working through the shared queue;
        taken from and given back to this thread's idle connections."""
        method = "DELETE" if payload is None else "POST"
        body = payload or b""
        streams: dict[str, _Stream] = {}
        try:
            while todo:
                endpoint, cid = todo.popleft()
                url = _url(endpoint, cid)
                parts = urlsplit(url)
                attempt = 0
                while attempt < self._attempts:
                    try:
                        status = await asyncio.wait_for(
                            self._exchange(streams, idle, method, url, parts, body), self._timeout
                        )
                    except (TimeoutError, OSError, EOFError, ValueError) as exc:
                        stream = streams.pop(parts.netloc, None)
                        _close(stream)
                        if stream is not None and stream.kept and not isinstance(exc, TimeoutError):
                            self.stats.stale += 1  # closed while idle: not this request's fault
                            continue
                        attempt += 1
                        if attempt == self._attempts:
                            outcome.failed.append(cid)
                            log_failure(cid, exc)
                        continue
                    attempt += 1
                    if status < 300:
                        break
                    if status == 410:
                        outcome.gone.append(cid)
                        break
                    if status == 413:
                        outcome.too_large.append(cid)
                        break
                    if status not in _RETRYABLE or attempt == self._attempts:
                        outcome.failed.append(cid)
                        log_failure(cid, f"status {status}")
                        break
                    await asyncio.sleep(random.uniform(0, 0.05 * 2 ** (attempt - 1)))
        finally:
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
        idle: dict[str, list[_Stream]],
        method: str,
        url: str,
        parts: SplitResult,
        body: bytes,
    ) -> int:
        stream = streams.get(parts.netloc)
        if stream is None:
            stream = _take(idle.get(parts.netloc))
            if stream is None:
                https = parts.scheme == "https"
                reader, writer = await asyncio.open_connection(
                    parts.hostname,
                    parts.port or (443 if https else 80),
                    ssl=self._tls if https else None,
                )
                self.stats.count(https)
                stream = _Stream(reader, writer)
            streams[parts.netloc] = stream
        headers = self._signed(method, url, parts, body)
        headers.setdefault("Host", parts.netloc)
        lines = [f"{method} {parts.path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        stream.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        status, keep = await _read_response(stream.reader)
        stream.kept = False
        if not keep:
            _close(streams.pop(parts.netloc, None))
        return status


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


class _CountedHTTP(http.client.HTTPConnection):
    stats: Stats

    def connect(self) -> None:
        super().connect()
        self.stats.count(False)


class _CountedHTTPS(http.client.HTTPSConnection):
    stats: Stats

    def connect(self) -> None:
        super().connect()
        self.stats.count(True)


def log_failure(cid: str, why: object) -> None:
    log.warning("@connections call for %s failed: %s", cid, why)


def _close(stream: _Stream | None) -> None:
    if stream is not None:
        stream.writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status of one HTTP/1.1 response, its body read and dropped; and whether the
    connection stays open."""
    status_line = await reader.readuntil(b"\r\n")
    version, status, *_ = status_line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif int(status) not in (204, 304):
        await reader.read()  # delimited by the end of the connection
        keep = False
    return int(status), keep
