"""The HTTP call to the application backend (WebSocket-over-HTTP)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import requests

log = logging.getLogger("slipway.backend")


class BackendUnreachable(Exception):
    """The backend could not be reached, or did not answer in time."""


@dataclass(frozen=True)
class BackendResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Backend:
    """POSTs events to TARGET_URL through one pooled session per Lambda container."""

    def __init__(
        self,
        target_url: str,
        connect_timeout: float,
        read_timeout: float,
        attempts: int,
        session: requests.Session | None = None,
    ) -> None:
        self._target = target_url
        self._timeout = (connect_timeout, read_timeout)
        self._attempts = attempts
        self._session = session or requests.Session()

    def url(self, query: str) -> str:
        if not query:
            return self._target
        return f"{self._target}{'&' if '?' in self._target else '?'}{query}"

    def post(
        self, query: str, headers: dict[str, str], body: bytes, retry: bool = True
    ) -> BackendResponse:
        """Retries only failures to connect (the request never arrived); a read
        timeout is not retried, since the backend may have acted on the events."""
        attempts = self._attempts if retry else 1
        url = self.url(query)
        for attempt in range(attempts):
            try:
                reply = self._session.post(
                    url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
                )
            except requests.ConnectionError as exc:
                if attempt + 1 == attempts:
                    raise BackendUnreachable(f"{url}: {exc}") from exc
                log.warning(
                    "backend unreachable (attempt %d of %d): %s", attempt + 1, attempts, exc
                )
                time.sleep(0.25 * 2**attempt)
            except requests.RequestException as exc:
                raise BackendUnreachable(f"{url}: {exc}") from exc
            else:
                return BackendResponse(
                    reply.status_code, list(reply.headers.items()), reply.content
                )
        raise AssertionError("unreachable")
