"""The local stack's metrics (docs/operations.md#metrics), end to end: the
functions' EMF lines, collected by the stack and served in Prometheus's text
format on the control port, move as a client connects, talks, is published to,
turns out gone (410) and meets @connections throttles; read with
prometheus_client's own parser."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from slipway_client import ControlClient

from .processes import KEY, ROOT, GripBackend, LocalStack
from .test_faults import set_faults
from .test_gateway import TIMEOUT, client, connection_id
from .test_introspection import _connection_rows, _db

TABLE = "slipway-metrics-e2e"
STACK_ARGS = ("--table", TABLE)

Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(stack: LocalStack) -> dict[Sample, float]:
    reply = requests.get(
        f"{stack.control}/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=5
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(
    stack: LocalStack, before: dict[Sample, float], name: str, by: float = 1, **labels: str
) -> Callable[[], bool]:
    return lambda: value(scrape(stack), name, **labels) - value(before, name, **labels) >= by


def eventually(check: Callable[[], bool], what: str, timeout: float = 3 * TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def control(stack: LocalStack) -> ControlClient:
    return ControlClient(stack.control, KEY)


def test_metrics_need_the_key(stack: LocalStack) -> None:
    url = f"{stack.control}/metrics"
    assert requests.get(url, timeout=5).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer not-the-key"}, timeout=5)
    assert wrong.status_code == 401
    assert "error" in wrong.json()


def test_every_metric_is_there_before_anything_happens(stack: LocalStack) -> None:
    names = {name for name, _ in scrape(stack)}
    assert {
        "slipway_connections_opened_total",
        "slipway_messages_in_total",
        "slipway_publishes_accepted_total",
        "slipway_publish_to_delivery_latency_seconds_count",
        "slipway_fanout_batch_duration_seconds_sum",
    } <= names


def test_metrics_move_with_connections_publishes_gone_and_throttles(
    stack: LocalStack, backend: GripBackend, control: ControlClient
) -> None:
    room, marker = f"metrics-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    before = scrape(stack)
    with client(stack, marker) as ws:
        cid = connection_id(backend, marker)
        eventually(moved(stack, before, "slipway_connections_opened_total"), "opened")
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == "hello"  # the test backend echoes
        eventually(moved(stack, before, "slipway_messages_in_total"), "message in")
        eventually(
            moved(stack, before, "slipway_backend_calls_total", 2, status="2xx"), "backend calls"
        )
        eventually(
            moved(stack, before, "slipway_backend_latency_seconds_count", 2), "backend latency"
        )

        control.subscribe(cid, room)
        control.publish(room, "to you")
        assert ws.recv(timeout=TIMEOUT) == "to you"
        eventually(moved(stack, before, "slipway_publishes_accepted_total"), "publish accepted")
        eventually(moved(stack, before, "slipway_deliveries_total", outcome="sent"), "sent")
        eventually(
            moved(stack, before, "slipway_publish_to_delivery_latency_seconds_count"),
            "publish to delivery latency",
        )
        eventually(
            moved(stack, before, "slipway_fanout_batch_duration_seconds_count"), "batch duration"
        )

        # A member @connections no longer knows: 410.
        endpoint = _db(stack).get_item(
            TableName=TABLE, Key={"pk": {"S": f"conn#{cid}"}, "sk": {"S": "conn"}}
        )["Item"]["endpoint"]["S"]
        ghost = f"ghost{uuid.uuid4().hex[:8]}="
        for row in _connection_rows(ghost, endpoint):
            _db(stack).put_item(TableName=TABLE, Item=row)
        control.subscribe(ghost, room)
        control.publish(room, "anyone there?")
        assert ws.recv(timeout=TIMEOUT) == "anyone there?"
        eventually(moved(stack, before, "slipway_deliveries_total", outcome="gone"), "gone")

        # Every @connections post throttled (LimitExceededException), then not.
        set_faults(stack, "connections:429:1")
        try:
            control.publish(room, "throttled")
            eventually(
                moved(stack, before, "slipway_deliveries_total", outcome="throttled"),
                "throttled",
            )
        finally:
            set_faults(stack, "")
    eventually(moved(stack, before, "slipway_connections_closed_total", reason="normal"), "closed")
    after = scrape(stack)
    assert value(after, "slipway_deliveries_total", outcome="failed") == value(
        before, "slipway_deliveries_total", outcome="failed"
    )


def test_status_shows_the_local_stack(stack: LocalStack) -> None:
    """`slipway status` against the local stack: its own count of open connections,
    the queues, and the metrics it collected; without the key, a clear error."""
    command = [
        sys.executable,
        "-m",
        "slipway_dev.cli",
        "status",
        "--stage",
        "local",
        "--table",
        TABLE,
        "--endpoint-url",
        stack.urls["aws"],
        "--control-url",
        stack.control,
    ]
    with client(stack), client(stack):
        done = subprocess.run(
            [*command, "--key", KEY], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr
    lines = {
        line.split(":")[0].strip(): line.split(":", 1)[1].strip()
        for line in done.stdout.splitlines()
        if ":" in line
    }
    assert lines["connections open"] == "2"
    assert lines["publish queue"].startswith("0 waiting")
    assert lines["dead-letter queue"] == "0"
    metrics = scrape(stack)
    sent = int(value(metrics, "slipway_deliveries_total", outcome="sent"))
    assert lines["deliveries (since start)"].startswith(f"{sent} sent")
    assert sent >= 1  # the test above published
    assert "failed (5xx or no answer)" in lines["backend (since start)"]

    refused = subprocess.run(
        [*command, "--key", "wrong"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and "401" in refused.stderr
