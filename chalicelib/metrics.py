"""Metrics out: values recorded during an invocation, printed as EMF lines
(chalicelib/grip/metrics.py) when it ends. Lambda sends a function's stdout to
CloudWatch Logs, which turns the lines into metrics; the local stack reads them
back (slipway_dev/metrics.py).

`record` may be called from any thread: one buffer per process, as Lambda runs
one invocation per container at a time. `flushing` wraps every function
(a Chalice middleware for "all" events, app.py)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .grip import metrics as m

_lock = threading.Lock()
_buffer = m.Buffer()


_out_lock = threading.Lock()


def _stdout(line: str) -> None:
    """One write a line: lines of threads that flush at once never interleave."""
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


# Where the lines go: stdout, as on Lambda; the local stack's own process points it
# at its collector (its stdout carries the URLs).
sink: Callable[[str], None] = _stdout


def record(metric: m.Metric, value: float = 1, label: str | None = None) -> None:
    """Never raises: a metric must not fail the work it counts."""
    try:
        with _lock:
            _buffer.add(metric, value, label)
    except Exception:  # pragma: no cover - a bug in the buffer; the work goes on
        pass


def flush(stage: str, function: str) -> None:
    global _buffer
    with _lock:
        buffer, _buffer = _buffer, m.Buffer()
    if not buffer:
        return
    for doc in m.documents(buffer, stage, function, int(time.time() * 1000)):
        sink(m.line(doc))


def flushing(app: Any) -> Callable[[Any, Callable[[Any], Any]], Any]:
    """A Chalice middleware ("all"): each invocation's metrics printed as it ends."""

    def middleware(event: Any, get_response: Callable[[Any], Any]) -> Any:
        try:
            return get_response(event)
        finally:
            context = getattr(event, "lambda_context", None) or getattr(event, "context", None)
            name = getattr(context, "function_name", None) or os.environ.get(
                "AWS_LAMBDA_FUNCTION_NAME", app.app_name
            )
            stage, function = m.where(str(name), app.app_name, set(app.handler_map))
            handler = os.environ.get("_HANDLER")  # on Lambda: the same in both deploy paths
            if handler:
                function = m.handler_function(handler)
            flush(os.environ.get("SLIPWAY_STAGE") or stage, function)

    return middleware


def worker_batch(records: list[dict[str, Any]], result: Any, started: float) -> None:
    """A worker batch's duration, and each delivered publish's latency from its queueing."""
    now = time.time()
    record(m.FANOUT_DURATION, (now - started) * 1000)
    failures = (result or {}).get("batchItemFailures", []) if isinstance(result, dict) else []
    failed = {str(f.get("itemIdentifier")) for f in failures if isinstance(f, dict)}
    for latency in m.publish_latencies(records, failed, int(now * 1000)):
        record(m.DELIVERY_LATENCY, latency)


def connected(response: Any) -> None:
    if isinstance(response, dict) and response.get("statusCode", 200) == 200:
        record(m.CONNECTIONS_OPENED)


def message_in() -> None:
    record(m.MESSAGES_IN)


def disconnected(event: dict[str, Any]) -> None:
    status = (event.get("requestContext") or {}).get("disconnectStatusCode")
    record(m.CONNECTIONS_CLOSED, 1, m.close_reason(status))


def recovery(result: str, reason: str | None) -> None:
    """A resume position's outcome (chalicelib/resume.py), if one was presented."""
    label = m.recovery_result(str(result), None if reason is None else str(reason))
    if label is not None:
        record(m.RECOVERIES, 1, label)
