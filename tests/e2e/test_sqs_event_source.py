"""The SQS event source (slipway_dev/sqs.py) against moto, with small fake functions:
batches, the record shape, partial batch failure, retries after the visibility
timeout, the dead-letter queue, and FIFO order across concurrent batches."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from slipway_dev import aws
from slipway_dev.moto_server import MotoServer
from slipway_dev.runtime import LambdaFunction
from slipway_dev.sqs import SqsEventSource


class Queues:
    def __init__(self, endpoint: str, max_receive_count: int = 2, visibility: int = 1) -> None:
        tag = uuid.uuid4().hex[:8]
        names = aws.Names(
            table=f"t-{tag}",
            queue=f"q-{tag}.fifo",
            dead_letter_queue=f"q-{tag}-dlq.fifo",
            bucket=f"b-{tag}",
            visibility_timeout=visibility,
            max_receive_count=max_receive_count,
        )
        self.sqs = aws.client("sqs", endpoint)
        self.resources = aws.ensure(endpoint, names)
        self.visibility = visibility

    def send(self, *bodies: str, group: str = "g", attributes: dict | None = None) -> None:
        for body in bodies:
            kwargs: dict[str, Any] = {
                "QueueUrl": self.resources.queue_url,
                "MessageBody": body,
                "MessageGroupId": group,
                "MessageDeduplicationId": uuid.uuid4().hex,
            }
            if attributes:
                kwargs["MessageAttributes"] = attributes
            self.sqs.send_message(**kwargs)

    def dead_letters(self) -> list[str]:
        reply = self.sqs.receive_message(
            QueueUrl=self.resources.dead_letter_queue_url, MaxNumberOfMessages=10
        )
        return [m["Body"] for m in reply.get("Messages", [])]

    def poller(self, function: Callable[[dict], Any], **kwargs: Any) -> SqsEventSource:
        return SqsEventSource(
            self.sqs,
            self.resources.queue_url,
            self.resources.queue_arn,
            function,
            visibility_timeout=self.visibility,
            # As the stack runs it against its own moto: long polls, busy or not.
            wait_seconds=1,
            short_poll_when_busy=False,
            **kwargs,
        )


class Recorder:
    """A fake worker: records every batch; fails the records whose body is in `fail`."""

    def __init__(self, fail: set[str] = frozenset(), delay: float = 0.0) -> None:
        self.fail = fail
        self.delay = delay
        self.batches: list[list[dict]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict) -> dict:
        records = event["Records"]
        time.sleep(self.delay)
        with self.lock:
            self.batches.append(records)
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in records if r["body"] in self.fail
            ]
        }

    def bodies(self) -> list[str]:
        with self.lock:
            return [r["body"] for batch in self.batches for r in batch]


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """The stack's own moto server class, with its FIFO redelivery fix."""
    server = MotoServer()
    with pytest.MonkeyPatch.context() as env:
        for name, value in aws.DUMMY_CREDENTIALS.items():
            env.setenv(name, value)
        yield server.start()
    server.stop()


@pytest.fixture
def queues(moto: str) -> Queues:
    return Queues(moto)


@pytest.fixture
def running() -> Iterator[list[SqsEventSource]]:
    started: list[SqsEventSource] = []
    yield started
    for poller in started:
        poller.stop()


def test_records_have_lambdas_sqs_event_shape(queues: Queues, running: list) -> None:
    attributes = {
        "kind": {"DataType": "String", "StringValue": "deliver"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    }
    queues.send('{"kind": "deliver"}', group="conn#abc", attributes=attributes)
    recorder = Recorder()
    running.append(queues.poller(recorder).start())
    wait_until(lambda: recorder.batches)
    (record,) = recorder.batches[0]
    assert record["body"] == '{"kind": "deliver"}'
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues.resources.queue_arn
    assert record["awsRegion"] == "us-east-1"
    assert record["messageId"] and record["receiptHandle"]
    attrs = record["attributes"]
    assert attrs["ApproximateReceiveCount"] == "1"
    assert attrs["MessageGroupId"] == "conn#abc"
    assert {"SentTimestamp", "SequenceNumber", "MessageDeduplicationId"} <= set(attrs)
    assert record["messageAttributes"] == {
        "kind": {
            "stringValue": "deliver",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "blob": {
            "binaryValue": "AAE=",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    json.dumps(record)  # Lambda hands the function JSON


def test_partial_failure_retries_only_the_failed_then_dead_letters_them(
    queues: Queues, running: list
) -> None:
    queues.send("ok-1", group="a")
    queues.send("bad", group="b")
    queues.send("ok-2", group="c")
    recorder = Recorder(fail={"bad"})
    poller = queues.poller(recorder, concurrency=2)
    running.append(poller.start())
    # maxReceiveCount 2: two failed receives, then the redrive policy moves it.
    wait_until(lambda: recorder.bodies().count("bad") >= 2)
    dead: list[str] = []
    wait_until(lambda: dead.extend(queues.dead_letters()) or bool(dead))
    assert dead == ["bad"]
    bodies = recorder.bodies()
    assert bodies.count("ok-1") == 1 and bodies.count("ok-2") == 1
    assert bodies.count("bad") == 2
    assert poller.stats.deleted == 2


def test_an_exception_fails_the_whole_batch(queues: Queues, running: list) -> None:
    calls: list[list[dict]] = []

    def flaky(event: dict, context: object) -> None:
        calls.append(event["Records"])
        if len(calls) == 1:
            raise RuntimeError("first invocation fails")

    queues.send("one", "two", "three")
    poller = queues.poller(LambdaFunction("flaky", flaky), batch_size=10)
    running.append(poller.start())
    wait_until(lambda: sum(len(batch) for batch in calls) >= 6)
    time.sleep(queues.visibility + 0.5)  # nothing more comes: all were deleted
    second = [r for batch in calls[1:] for r in batch]
    assert [r["body"] for r in calls[0]] == ["one", "two", "three"]
    assert [r["body"] for r in second] == ["one", "two", "three"]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in second} == {"2"}
    assert poller.stats.failed == 3 and poller.stats.deleted == 3


def test_fifo_groups_keep_order_and_never_run_concurrently(queues: Queues, running: list) -> None:
    active: set[str] = set()
    order: dict[str, list[int]] = defaultdict(list)
    overlaps: list[str] = []
    lock = threading.Lock()

    def worker(event: dict) -> dict:
        groups = {r["attributes"]["MessageGroupId"] for r in event["Records"]}
        with lock:
            overlaps.extend(groups & active)
            active.update(groups)
        time.sleep(0.05)
        with lock:
            for r in event["Records"]:
                group, _, n = r["body"].partition(":")
                order[group].append(int(n))
            active.difference_update(groups)
        return {"batchItemFailures": []}

    for group in ("x", "y", "z"):
        queues.send(*(f"{group}:{n}" for n in range(8)), group=group)
    running.append(queues.poller(worker, batch_size=3, concurrency=3).start())
    wait_until(lambda: sum(len(v) for v in order.values()) >= 24)
    assert overlaps == []
    assert dict(order) == {g: list(range(8)) for g in ("x", "y", "z")}


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, {"a", "b"}),
        ({"batchItemFailures": [{"id": "b"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zz"}]}, {"a", "b"}),
        ({"batchItemFailures": "b"}, {"a", "b"}),
        ("not an object", {"a", "b"}),
    ],
)
def test_partial_batch_response_is_read_as_lambda_reads_it(result: Any, failed: set) -> None:
    poller = SqsEventSource(None, "url", "arn", lambda event: None)
    assert poller.failures(result, ["a", "b"]) == failed
    assert (
        SqsEventSource(
            None, "url", "arn", lambda event: None, report_batch_item_failures=False
        ).failures(result, ["a", "b"])
        == set()
    )


def test_a_long_poll_answers_when_a_message_arrives_not_when_it_ends(queues: Queues) -> None:
    """The stack's moto answers a long poll as SQS does: empty when its time is up,
    at once when a message comes meanwhile, and holding up no other request."""
    url = queues.resources.queue_url
    started = time.monotonic()
    assert "Messages" not in queues.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert time.monotonic() - started >= 0.9  # it waited
    got: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        reply = queues.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)
        got["bodies"] = [m["Body"] for m in reply.get("Messages", [])]
        got["after"] = time.monotonic() - started

    waiting = threading.Thread(target=poll)
    waiting.start()
    time.sleep(0.3)
    queues.send("hello")  # goes through while the poll waits
    waiting.join(20)
    assert got["bodies"] == ["hello"]
    assert got["after"] < 10  # answered by the message, long before its 20 s
