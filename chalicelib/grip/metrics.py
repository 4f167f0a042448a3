"""slipway's metrics: their names, units and dimensions, and CloudWatch's embedded
metric format (EMF) for them: one JSON log line per dimension set, which CloudWatch
Logs turns into custom metrics with no API call (docs/operations.md#metrics).

Pure: a buffer of values in, JSON documents out (chalicelib/metrics.py prints them).

Dimensions are few and of low cardinality (each combination is a billed custom
metric): the stage, the function, and for some metrics one label from a short,
fixed list (an outcome, a status class, a close reason) — never a channel or a
connection id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "slipway"
COUNT = "Count"
MILLISECONDS = "Milliseconds"
# CloudWatch takes at most 100 values in one metric's array (EMF specification).
MAX_VALUES = 100
EMF_KEY = "_aws"


@dataclass(frozen=True)
class Metric:
    name: str  # CloudWatch's name (CamelCase)
    unit: str  # COUNT or MILLISECONDS
    prometheus: str  # its Prometheus name without prefix or suffix (snake_case)
    help: str
    label: str | None = None  # the name of its one extra dimension, if it has one


CONNECTIONS_OPENED = Metric(
    "ConnectionsOpened", COUNT, "connections_opened", "WebSocket connections accepted"
)
CONNECTIONS_CLOSED = Metric(
    "ConnectionsClosed", COUNT, "connections_closed", "WebSocket connections ended", "reason"
)
MESSAGES_IN = Metric("MessagesIn", COUNT, "messages_in", "messages received from clients")
BACKEND_CALLS = Metric(
    "BackendCalls", COUNT, "backend_calls", "calls to the backend by status class", "status"
)
BACKEND_LATENCY = Metric(
    "BackendLatency", MILLISECONDS, "backend_latency", "time to the backend's whole answer"
)
PUBLISHES = Metric("PublishesAccepted", COUNT, "publishes_accepted", "publish items queued")
DELIVERIES = Metric(
    "Deliveries", COUNT, "deliveries", "posts to @connections by outcome", "outcome"
)
DELIVERY_LATENCY = Metric(
    "PublishToDeliveryLatency",
    MILLISECONDS,
    "publish_to_delivery_latency",
    "from a publish job's queueing to the end of the worker batch that delivered it",
)
FANOUT_DURATION = Metric(
    "FanoutBatchDuration", MILLISECONDS, "fanout_batch_duration", "a worker batch's run time"
)
LARGE_MESSAGES = Metric(
    "LargeMessagesStored", COUNT, "large_messages_stored", "messages written to S3"
)
KEEPALIVES = Metric(
    "KeepAlivesQueued", COUNT, "keepalives_queued", "keep-alives queued for the worker to post"
)

RECOVERIES = Metric(
    "Recoveries",
    COUNT,
    "recoveries",
    "resume positions presented, by result: recovered, or the reason it failed",
    "result",
)

ALL = (
    CONNECTIONS_OPENED,
    CONNECTIONS_CLOSED,
    MESSAGES_IN,
    BACKEND_CALLS,
    BACKEND_LATENCY,
    PUBLISHES,
    DELIVERIES,
    DELIVERY_LATENCY,
    FANOUT_DURATION,
    LARGE_MESSAGES,
    KEEPALIVES,
    RECOVERIES,
)
BY_NAME = {m.name: m for m in ALL}

# The label values, each list short and fixed.
SENT, GONE, THROTTLED, FAILED = "sent", "gone", "throttled", "failed"
OUTCOMES = (SENT, GONE, THROTTLED, FAILED)


def delivery_outcome(status: int) -> str:
    """A post's outcome from its last answer's status (0: no answer)."""
    if 200 <= status < 300:
        return SENT
    if status == 410:
        return GONE
    if status == 429:  # API Gateway's LimitExceededException, after our retries
        return THROTTLED
    return FAILED


def recovery_result(recovery: str, reason: str | None) -> str | None:
    """`recovered`, or why it failed (docs/resume.md's reasons); None when no
    position was presented (nothing to recover)."""
    if recovery == "recovered":
        return "recovered"
    if recovery == "failed":
        return reason or "failed"
    return None


def status_class(status: int) -> str:
    """`2xx` .. `5xx`, or `error` for no answer (unreachable, timed out)."""
    return f"{status // 100}xx" if 100 <= status < 600 else "error"


def close_reason(status_code: object) -> str:
    """The class of API Gateway's `disconnectStatusCode`: `normal` (a close frame
    with 1000 or 1001: the client, API Gateway's idle or lifetime limit, or
    @connections' DELETE), `dropped` (no close frame: 1005, 1006), else `other`."""
    try:
        code = int(str(status_code))
    except ValueError:
        return "dropped"
    if code in (1000, 1001):
        return "normal"
    if code in (1005, 1006):
        return "dropped"
    return "other"


def handler_function(handler: str) -> str:
    """The function dimension from Lambda's `_HANDLER` (`app.worker`; the REST API's
    is `app.app`: `api`), the same whatever the deployment named the function."""
    name = handler.rpartition(".")[2]
    return "api" if name == "app" else name


def where(function_name: str, app_name: str, handlers: set[str]) -> tuple[str, str]:
    """(stage, function) of Chalice's function `<app>-<stage>-<handler>` (the REST
    API's is `<app>-<stage>`: function `api`)."""
    rest = function_name.removeprefix(f"{app_name}-")
    for handler in sorted(handlers, key=len, reverse=True):
        if rest.endswith(f"-{handler}") and len(rest) > len(handler) + 1:
            return rest[: -len(handler) - 1], handler
    return rest, "api"


@dataclass
class Buffer:
    """Values recorded in one invocation: counts summed, timings kept, each under
    its metric and label value."""

    counts: dict[tuple[str, str | None], float] = field(default_factory=dict)
    timings: dict[tuple[str, str | None], list[float]] = field(default_factory=dict)

    def add(self, metric: Metric, value: float = 1, label: str | None = None) -> None:
        key = (metric.name, label if metric.label else None)
        if metric.unit == COUNT:
            self.counts[key] = self.counts.get(key, 0) + value
        else:
            values = self.timings.setdefault(key, [])
            if len(values) < MAX_VALUES:  # all a document takes; bounded if never flushed
                values.append(round(value, 3))

    def __bool__(self) -> bool:
        return bool(self.counts or self.timings)


def documents(buffer: Buffer, stage: str, function: str, timestamp_ms: int) -> list[dict[str, Any]]:
    """The buffer as EMF documents: one per dimension set (a label's each value has
    its own), a timing's values as an array of at most MAX_VALUES."""
    groups: dict[tuple[str, str] | None, dict[str, Any]] = {}
    for (name, label), value in buffer.counts.items():
        _group(groups, BY_NAME[name], label)[name] = value
    for (name, label), values in buffer.timings.items():
        group = _group(groups, BY_NAME[name], label)
        group[name] = values[0] if len(values) == 1 else values
    docs = []
    for key, fields in groups.items():
        # Per function, and per stage alone (what the alarms and the dashboard read).
        extra = [key[0]] if key else []
        dims = [["stage", "function", *extra], ["stage", *extra]]
        metrics = [{"Name": n, "Unit": BY_NAME[n].unit} for n in fields]
        doc: dict[str, Any] = {
            EMF_KEY: {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [
                    {"Namespace": NAMESPACE, "Dimensions": dims, "Metrics": metrics}
                ],
            },
            "stage": stage,
            "function": function,
        }
        if key:
            doc[key[0]] = key[1]
        doc.update(fields)
        docs.append(doc)
    return docs


def _group(
    groups: dict[tuple[str, str] | None, dict[str, Any]], metric: Metric, label: str | None
) -> dict[str, Any]:
    key = (metric.label, label or "none") if metric.label else None
    return groups.setdefault(key, {})


def line(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


@dataclass(frozen=True)
class Sample:
    """One metric's values in one EMF document, read back."""

    metric: Metric
    label: str | None  # the label's value
    values: tuple[float, ...]
    stage: str
    function: str


def read(text: str) -> list[Sample]:
    """The samples of an EMF line of ours; [] for any other line."""
    if not text.startswith("{") or EMF_KEY not in text:
        return []
    try:
        doc = json.loads(text)
        directives = doc[EMF_KEY]["CloudWatchMetrics"]
    except (ValueError, KeyError, TypeError):
        return []
    samples = []
    for directive in directives:
        if not isinstance(directive, dict) or directive.get("Namespace") != NAMESPACE:
            continue
        for entry in directive.get("Metrics", []):
            metric = BY_NAME.get(entry.get("Name"))
            if metric is None or metric.name not in doc:
                continue
            raw = doc[metric.name]
            values = tuple(float(v) for v in (raw if isinstance(raw, list) else [raw]))
            label = str(doc.get(metric.label)) if metric.label else None
            stage, function = str(doc.get("stage", "")), str(doc.get("function", ""))
            samples.append(Sample(metric, label, values, stage, function))
    return samples


def publish_latencies(records: list[dict[str, Any]], failed: set[str], now_ms: int) -> list[float]:
    """Milliseconds from each publish job's queueing (SQS's SentTimestamp: the
    publish was accepted then) to `now_ms`, the end of the batch that delivered it;
    only for publish jobs (FIFO group `chan#...`) the batch did not hand back."""
    out = []
    for record in records:
        attributes = record.get("attributes") or {}
        group = str(attributes.get("MessageGroupId", ""))
        sent = attributes.get("SentTimestamp")
        if not group.startswith("chan#") or record.get("messageId") in failed or sent is None:
            continue
        try:
            out.append(max(0.0, float(now_ms - int(sent))))
        except ValueError:
            continue
    return out
