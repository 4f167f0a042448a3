"""How the Lambda runtime calls a handler: a JSON round trip in, a context
object, and a JSON round trip out.

The round trips are the point: on AWS the event arrives as parsed JSON and the
return value must serialize, or the invocation fails with Runtime.MarshalError.
A handler that returns bytes works in a unit test and fails on AWS; here it
fails the same way.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from chalice.app import Chalice
from chalice.local import LambdaContext

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

_cold_start = threading.Lock()
_warm: set[str] = set()  # functions whose container has initialised
_first_locks: dict[str, threading.Lock] = {}


class InvocationError(Exception):
    """The function raised, or its return value could not be serialized."""


class LambdaFunction:
    """One Lambda function: a handler with a name, a timeout and a memory size."""

    def __init__(
        self, name: str, handler: Handler, timeout: float = 30.0, memory_mb: int = 128
    ) -> None:
        self.name = name
        self.handler = handler
        self.timeout = timeout
        self.memory_mb = memory_mb
        with _cold_start:
            self._first = _first_locks.setdefault(name, threading.Lock())

    def __call__(self, event: dict[str, Any]) -> Any:
        """Invoke synchronously; raises InvocationError as Lambda reports a failure."""
        if self.name not in _warm:
            # A Lambda container initialises before it takes events, and then takes
            # one at a time. Here many invocations share one process: the first of
            # each function runs alone, so lazily built module state (cached boto3
            # clients) is built once instead of by every thread of the first burst
            # at the same time. Per function: a long-running one (a scheduled
            # function's minute) must not hold up the others.
            with self._first:
                if self.name not in _warm:
                    try:
                        return self._invoke(event)
                    finally:
                        _warm.add(self.name)
        return self._invoke(event)

    def _invoke(self, event: dict[str, Any]) -> Any:
        context = LambdaContext(self.name, self.memory_mb, max_runtime_ms=int(self.timeout * 1000))
        payload = json.loads(json.dumps(event))
        try:
            result = self.handler(payload, context)
        except Exception as exc:
            log.exception("%s failed", self.name)
            raise InvocationError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        try:
            return json.loads(json.dumps(result))
        except (TypeError, ValueError) as exc:
            log.error("%s: Runtime.MarshalError: unable to marshal response: %s", self.name, exc)
            raise InvocationError(f"{self.name}: Runtime.MarshalError: {exc}") from exc


def function_name(app: Chalice, stage: str, handler_name: str) -> str:
    """Chalice's naming: <app>-<stage>-<handler>."""
    return f"{app.app_name}-{stage}-{handler_name}"
