"""EventBridge's scheduled rules, for the app's `@app.schedule` functions: each
is invoked at its rate, the first time when the stack starts, with the event
AWS sends (its `time` the scheduled minute), each invocation in its own thread
as Lambda runs overlapping invocations side by side.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from chalice.app import Chalice, ScheduledEventConfig

from .runtime import InvocationError, LambdaFunction, function_name

log = logging.getLogger(__name__)

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}


def period_of(expression: str) -> float | None:
    """Seconds between invocations of a `rate(...)` expression; None for `cron(...)`,
    which the local stack does not run."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        return None
    return int(match[1]) * _UNIT[match[2].rstrip("s")]


def event(rule: str, when: float, region: str) -> dict[str, Any]:
    moment = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": moment,
        "region": region,
        "resources": [f"arn:aws:events:{region}:000000000000:rule/{rule}"],
        "detail": {},
    }


class Schedules:
    """Runs every rate-scheduled function of the app until stopped."""

    def __init__(self, app: Chalice, stage: str, region: str) -> None:
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._region = region
        self._rules: list[tuple[LambdaFunction, float]] = []
        for source in app.event_sources:
            if not isinstance(source, ScheduledEventConfig):
                continue
            expression = source.schedule_expression
            text = expression if isinstance(expression, str) else expression.to_string()
            period = period_of(text)
            if period is None:
                log.warning("%s: %s is not run locally (only rate(...))", source.name, text)
                continue
            name = function_name(app, stage, source.name)
            # The deployed function's timeout (.chalice/config.json): half a period more.
            function = LambdaFunction(name, app.handler_map[source.name], period * 1.5)
            self._rules.append((function, period))

    def start(self) -> Schedules:
        for function, period in self._rules:
            thread = threading.Thread(
                target=self._run, args=(function, period), name=function.name, daemon=True
            )
            thread.start()
            self._threads.append(thread)
            log.info("%s runs every %gs", function.name, period)
        return self

    def _run(self, function: LambdaFunction, period: float) -> None:
        # EventBridge fires at whole periods; the first window is the one under way.
        scheduled = time.time() // period * period
        while not self._stop.is_set():
            when = event(function.name, scheduled, self._region)
            threading.Thread(target=self._invoke, args=(function, when), daemon=True).start()
            scheduled += period
            self._stop.wait(max(0.0, scheduled - time.time()))

    def _invoke(self, function: LambdaFunction, when: dict[str, Any]) -> None:
        try:
            function(when)
        except InvocationError as exc:
            log.error("%s", exc)  # EventBridge would retry; the next one comes anyway

    def stop(self) -> None:
        self._stop.set()
