"""What an answer of API Gateway's @connections API means, decided once for
every call (aws/sockets.py carries the calls): 410 is Gone, 413
(PayloadTooLargeException: over API Gateway's 128 KB) is TooLarge, which no retry
can help; 429 and 5xx are retried with a jittered backoff, as are dropped
connections."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from urllib.parse import quote

from ..grip.errors import BadGateway, Gone, TooLarge

log = logging.getLogger("slipway.sockets")
RETRYABLE = {429, 500, 502, 503, 504}


class SocketError(BadGateway):
    """@connections refused a call for another reason (status and body say why)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"@connections answered {status}: {body[:200]!r}")
        self.upstream_status = status


def url_of(endpoint: str, cid: str) -> str:
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
class Outcome:
    """What `send_many` did: connection ids found gone, and those that failed."""

    gone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)  # 413: no retry can help


@dataclass(frozen=True)
class Result:
    """One call's end, after its retries: an answer's status and body, or the
    error that ended the last attempt (status 0)."""

    status: int
    body: bytes = b""
    error: BaseException | None = None

    def value(self, cid: str) -> bytes:
        """The body of a success, or the error a single call raises."""
        if self.status == 410:
            raise Gone(cid)
        if self.status == 413:
            raise TooLarge(f"@connections refused the message as too large: {self.body[:200]!r}")
        if self.status == 0 or self.status >= 300:
            error = str(self.error).encode() if self.status == 0 else self.body
            raise SocketError(self.status, error) from self.error
        return self.body

    def record(self, cid: str, outcome: Outcome) -> None:
        """Count the end of one of many calls in `outcome`."""
        if self.status == 410:
            outcome.gone.append(cid)
        elif self.status == 413:
            outcome.too_large.append(cid)
        elif self.status == 0 or self.status >= 300:
            outcome.failed.append(cid)
            log_failure(cid, self.error if self.status == 0 else f"status {self.status}")


def log_failure(cid: str, why: object) -> None:
    log.warning("@connections call for %s failed: %s", cid, why)


def backoff(attempt: int) -> float:
    return random.uniform(0, 0.05 * 2 ** (attempt - 1))  # jittered
