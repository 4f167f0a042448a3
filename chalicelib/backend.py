"""The HTTP call to the application backend (WebSocket-over-HTTP)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import requests
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError

from . import metrics
from .grip import codec, request, token
from .grip import metrics as m
from .grip.errors import BadGateway
from .grip.limits import MAX_BACKEND_RESPONSE
from .grip.model import Connection

log = logging.getLogger("slipway.backend")


class BackendUnreachable(BadGateway):
    """The backend could not be reached, or did not answer in time."""


@dataclass(frozen=True)
class BackendResponse:
    status: int
    headers: list[tuple[str, str]]  # as sent: a repeated header (Set-Cookie) stays repeated
    body: bytes


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Whether the request surely never reached the backend (no connection was
    made), so sending it again cannot deliver its events twice."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, MaxRetryError) and isinstance(cause.reason, NewConnectionError)


class Backend:
    """POSTs events to TARGET_URL through one pooled session per Lambda container."""

    def __init__(
        self,
        target_url: str,
        connect_timeout: float,
        read_timeout: float,
        attempts: int,
        key: str | None = None,
        session: requests.Session | None = None,
        max_response: int = MAX_BACKEND_RESPONSE,
    ) -> None:
        self._target = target_url
        self._timeout = (connect_timeout, read_timeout)
        self._attempts = attempts
        self.key = key  # signs Grip-Sig; changed when the deployment's keys rotate
        self._session = session or requests.Session()
        self._max_response = max_response

    def url(self, query: str) -> str:
        if not query:
            return self._target
        return f"{self._target}{'&' if '?' in self._target else '?'}{query}"

    def call(
        self, conn: Connection, events: list[codec.Event], retry: bool = True
    ) -> BackendResponse:
        """Send a connection's events, signed with Grip-Sig when there is a key."""
        headers = request.backend_headers(
            conn.headers, conn.id, conn.meta, token.grip_sig(self.key) if self.key else None
        )
        return self.post(conn.query, headers, codec.encode(events), retry=retry)

    def post(
        self, query: str, headers: dict[str, str], body: bytes, retry: bool = True
    ) -> BackendResponse:
        """Retries only a request that never reached the backend (no connection
        could be made): after a reset or a read timeout the backend may have acted
        on the events, and must not get them twice."""
        started, status = time.monotonic(), 0
        try:
            answer = self._post(query, headers, body, retry)
            status = answer.status
            return answer
        finally:
            metrics.record(m.BACKEND_CALLS, 1, m.status_class(status))
            metrics.record(m.BACKEND_LATENCY, (time.monotonic() - started) * 1000)

    def _post(
        self, query: str, headers: dict[str, str], body: bytes, retry: bool
    ) -> BackendResponse:
        attempts = self._attempts if retry else 1
        url = self.url(query)
        for attempt in range(attempts):
            try:
                sent = time.monotonic()
                reply = self._session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    stream=True,
                )
                with reply:
                    content = self._read(reply, sent + self._timeout[1])
            except requests.ConnectionError as exc:
                if not _never_sent(exc) or attempt + 1 == attempts:
                    raise BackendUnreachable(f"{url}: {exc}") from exc
                log.warning(
                    "backend unreachable (attempt %d of %d): %s", attempt + 1, attempts, exc
                )
                time.sleep(0.25 * 2**attempt)
            except requests.RequestException as exc:
                raise BackendUnreachable(f"{url}: {exc}") from exc
            else:
                # requests joins a repeated header into one value; urllib3's own keeps each.
                return BackendResponse(reply.status_code, list(reply.raw.headers.items()), content)
        raise AssertionError("unreachable")

    def _read(self, reply: requests.Response, deadline: float) -> bytes:
        """The body, whole by `deadline` and at most max_response bytes; else
        BackendUnreachable. A backend that streams without end, or trickles a
        byte at a time, is cut off there rather than holding the Lambda."""
        chunks: list[bytes] = []
        size = 0
        while chunk := self._read1(reply):
            size += len(chunk)
            if size > self._max_response:
                raise BackendUnreachable(
                    f"{reply.url}: the answer is over {self._max_response} bytes; dropped"
                )
            if time.monotonic() > deadline:
                raise BackendUnreachable(
                    f"{reply.url}: the answer took longer than {self._timeout[1]} s; dropped"
                )
            chunks.append(chunk)
            _shorten_next_read(reply, deadline)
        return b"".join(chunks)

    def _read1(self, reply: requests.Response) -> bytes:
        """At most one socket read, so the deadline is checked between reads."""
        try:
            return reply.raw.read1(64 * 1024, decode_content=True)
        except (HTTPError, OSError) as exc:  # a read timeout, a reset, a bad encoding
            raise BackendUnreachable(f"{reply.url}: {exc}") from exc


def _shorten_next_read(reply: requests.Response, deadline: float) -> None:
    """The socket's timeout for the next read: what is left until `deadline`, so a
    trickle cannot stretch each read to the full read timeout."""
    sock = getattr(getattr(reply.raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
