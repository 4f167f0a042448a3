"""Faults end to end, as a user's infrastructure fails: the worker process killed
(SIGKILL) at random points of a fan-out, the backend killed and restarted during a
conversation, AWS throttling and 5xx injected into the local stack
(slipway_dev/faults.py), and the AWS endpoint restarted under load.

Random choices are seeded: each test prints its seed, and SLIPWAY_FAULT_SEED=<n>
repeats a run. The figures they print are in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import requests
from gripcontrol import GripPubControl, WebSocketMessageFormat, parse_grip_uri
from pubcontrol import Item
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as sync_connect

from .processes import KEY, GripBackend, LocalStack, free_port
from .test_gateway import TIMEOUT, client, closed_with, local_client

# Long enough for a batch of three fan-outs to 200 members (about 0.35 s each
# here), short enough that a job a killed worker held comes back soon.
VISIBILITY = 3
# Three kills, and on a busy machine a batch outliving the visibility timeout, each
# count a receive: the dead-letter queue must still stay empty.
STACK_ARGS = ("--visibility-timeout", str(VISIBILITY), "--max-receive-count", "10")
# Pauses of 0.25, 0.5, 1, 2 and 4 s between tries: a backend restart fits in them,
# even on a busy machine.
STACK_ENV = {"SLIPWAY_BACKEND_ATTEMPTS": "6"}

MEMBERS = 200
KILLS = 3
# AWS's throttles and 5xx, at rates far above what AWS gives (docs/local-stack.md#faults).
AWS_FAULTS = (
    "dynamodb:ProvisionedThroughputExceededException:0.05,dynamodb:500:0.03,"
    "sqs:ThrottlingException:0.05,sqs:500:0.03,s3:SlowDown:0.1,"
    "connections:429:0.1,connections:500:0.05"
)


def seed(name: str) -> int:
    value = int(os.environ.get("SLIPWAY_FAULT_SEED") or random.randrange(1 << 32))
    print(f"\n{name}: SLIPWAY_FAULT_SEED={value}")
    return value


def worker_pid(stack: LocalStack) -> int | None:
    """The stack's SQS worker process, found in /proc as its child."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == stack.proc.pid and b"slipway_dev.worker" in cmdline:
            return int(entry)
    return None


def wait_for_worker(stack: LocalStack, other_than: int | None, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = worker_pid(stack)
        if pid is not None and pid != other_than:
            return pid
        time.sleep(0.05)
    raise AssertionError(f"no new worker within {timeout}s:\n{stack.log()[-3000:]}")


def faults_route(stack: LocalStack) -> str:
    return stack.urls["faults"]


def set_faults(stack: LocalStack, spec: str) -> dict[str, Any]:
    reply = requests.put(faults_route(stack), data=spec, timeout=5)
    assert reply.status_code == 200, reply.text
    return reply.json()


def dead_letters(stack: LocalStack) -> int:
    sqs = local_client("sqs", stack.urls["aws"])
    url = sqs.get_queue_url(QueueName="slipway-publish-dlq.fifo")["QueueUrl"]
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def publish(stack: LocalStack, channel: str, texts: list[str]) -> int:
    """Publish each text through GripPubControl, as a backend does; a publish the
    control API refuses (5xx: it was not queued) is sent again. Returns how many were."""
    pub = GripPubControl(parse_grip_uri(stack.urls["grip"]))
    again = 0
    for text in texts:
        for _ in range(5):
            try:
                pub.publish(channel, Item(WebSocketMessageFormat(text)), blocking=True)
                break
            except Exception:
                again += 1
                time.sleep(0.2)
        else:
            raise AssertionError(f"publish of {text!r} refused 5 times")
    return again


async def subscribers(stack: LocalStack, channel: str, count: int) -> list[ClientConnection]:
    gate = asyncio.Semaphore(50)

    async def open_one() -> ClientConnection:
        async with gate:  # the 101 comes once $connect stored the subscription
            return await connect(
                f"{stack.websocket}?subscribe={channel}", open_timeout=60, max_queue=None
            )

    return await asyncio.gather(*(open_one() for _ in range(count)))


class Received:
    """What every client got, counted: first deliveries and duplicates."""

    def __init__(self, clients: list[ClientConnection], expected: list[str]) -> None:
        self.expected = set(expected)
        self.counts = [Counter[str]() for _ in clients]
        self.unique = 0
        self.tasks = [asyncio.create_task(self._read(i, ws)) for i, ws in enumerate(clients)]

    async def _read(self, index: int, ws: ClientConnection) -> None:
        async for message in ws:
            assert isinstance(message, str) and message in self.expected, message
            if not self.counts[index][message]:
                self.unique += 1
            self.counts[index][message] += 1

    @property
    def complete(self) -> bool:
        return self.unique == len(self.counts) * len(self.expected)

    async def until_complete(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not self.complete:
                await asyncio.sleep(0.05)

    def duplicates(self) -> int:
        return sum(n - 1 for c in self.counts for n in c.values())

    def most(self) -> int:
        return max(n for c in self.counts for n in c.values())

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()


# -- the worker killed ----------------------------------------------------------


def test_worker_killed_at_random_points_of_a_fanout_every_member_gets_every_message(
    stack: LocalStack,
) -> None:
    asyncio.run(_worker_kills(stack, random.Random(seed("worker kills"))))


async def _worker_kills(stack: LocalStack, rng: random.Random) -> None:
    channel = f"kills-{uuid.uuid4().hex[:8]}"
    texts = [f"message {i}" for i in range(3)]
    total = MEMBERS * len(texts)
    # Kill when the clients have had this many first deliveries: mid-fan-out.
    points = sorted(rng.sample(range(1, total), KILLS))
    clients = await subscribers(stack, channel, MEMBERS)
    received = Received(clients, texts)
    started = time.monotonic()
    try:
        pid = wait_for_worker(stack, None)
        publishing = asyncio.create_task(asyncio.to_thread(publish, stack, channel, texts))
        for point in points:
            async with asyncio.timeout(60):
                while received.unique < point:
                    await asyncio.sleep(0.005)
            os.kill(pid, signal.SIGKILL)
            print(f"killed worker {pid} after {received.unique} of {total} deliveries")
            pid = await asyncio.to_thread(wait_for_worker, stack, pid)
        await publishing
        await received.until_complete(90)
        await asyncio.sleep(1.0)  # late duplicates
        took = time.monotonic() - started
        print(
            f"{KILLS} kills at {points}: {total} deliveries, {received.duplicates()} duplicates, "
            f"at most {received.most()} of one message to one member; {took:.1f}s"
        )
        # A kill hands the batch in flight back to SQS: a member gets each message
        # at most once more per kill (and once more if, on a busy machine, the batch
        # outlived the visibility timeout).
        assert received.most() <= 2 + KILLS
        assert dead_letters(stack) == 0
        assert stack.log().count("starting a new one, as Lambda starts a new container") >= KILLS
    finally:
        received.stop()
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


# -- AWS throttling and 5xx ---------------------------------------------------------


def test_aws_throttles_and_5xx_are_retried_nothing_lost(stack: LocalStack) -> None:
    asyncio.run(_aws_faults(stack))


async def _aws_faults(stack: LocalStack) -> None:
    channel = f"faults-{uuid.uuid4().hex[:8]}"
    texts = [f"news {i}" for i in range(5)]
    clients = await subscribers(stack, channel, 30)
    talkers = [
        await connect(f"{stack.websocket}?t=talker-{k}", open_timeout=TIMEOUT) for k in range(10)
    ]
    received = Received(clients, texts)
    before = set_faults(stack, AWS_FAULTS)
    started = time.monotonic()
    try:
        refused = await asyncio.to_thread(publish, stack, channel, texts)

        errors: list[str] = []

        async def talk(ws: ClientConnection, k: int) -> int:
            """Echoes through the backend, one at a time; a message is sent again
            only when the gateway says it failed (the error frame), as a client
            would. A reply the worker delivered may come late. Returns how many
            never came back."""
            got: set[str] = set()
            for i in range(5):
                text = f"talk {k} {i}"
                await ws.send(text)
                while text not in got:
                    try:
                        reply = await asyncio.wait_for(ws.recv(), 15)
                    except TimeoutError:
                        return 5 - len(got)
                    if reply.startswith("{"):  # not forwarded
                        errors.append(reply)
                        await ws.send(text)
                    else:
                        got.add(reply)
            return 0

        lost = await asyncio.gather(*(talk(ws, k) for k, ws in enumerate(talkers)))
        await received.until_complete(60)
        await asyncio.sleep(1.0)
        report = set_faults(stack, "")
        injected = {
            name: count - before["injected"].get(name, 0)
            for name, count in report["injected"].items()
        }
        print(
            f"faults {AWS_FAULTS}\ninjected {injected}\n"
            f"{len(clients)} x {len(texts)} published ({refused} publishes refused and sent "
            f"again): {received.duplicates()} duplicates; 50 echoes lost: {sum(lost)} "
            f"({len(errors)} error frames, sent again); "
            f"{time.monotonic() - started:.1f}s"
        )
        assert sum(injected.values()) > 0
        assert sum(lost) == 0
        assert dead_letters(stack) == 0
    finally:
        set_faults(stack, "")
        received.stop()
        await asyncio.gather(*(ws.close() for ws in clients + talkers), return_exceptions=True)


def test_a_reply_whose_post_fails_is_delivered_by_the_worker(stack: LocalStack) -> None:
    """@connections failing every post: the backend's reply is handed to the
    worker, which delivers it once @connections recovers."""
    with client(stack) as ws:
        set_faults(stack, "connections:500:1")
        try:
            ws.send("through the queue")
            time.sleep(1.0)
        finally:
            set_faults(stack, "")
        assert ws.recv(timeout=VISIBILITY + TIMEOUT) == "through the queue"
    assert "reply handed to the worker" in stack.log()


def test_a_message_dynamodb_fails_gets_the_error_frame(stack: LocalStack) -> None:
    """DynamoDB failing before the message reaches the backend: the client is told
    (API Gateway's error frame), so it can send again."""
    with client(stack) as ws:
        set_faults(stack, "dynamodb:500:1")
        try:
            ws.send("first try")
            notice = json.loads(ws.recv(timeout=TIMEOUT))
        finally:
            set_faults(stack, "")
        assert notice["message"] == "Internal server error"
        ws.send("second try")
        assert ws.recv(timeout=TIMEOUT) == "second try"


def test_a_large_message_reaches_envelope_clients_through_s3_slowdowns(
    stack: LocalStack,
) -> None:
    """S3 answering SlowDown to every call for two seconds: the large message is
    stored once S3 recovers, and an envelope client fetches it from its URL."""
    channel = f"large-{uuid.uuid4().hex[:8]}"
    big = "x" * 200_000  # over the 128 KB an @connections post takes
    with sync_connect(
        f"{stack.websocket}?subscribe={channel}&envelope=1", open_timeout=TIMEOUT
    ) as ws:
        set_faults(stack, "s3:SlowDown:1")
        publishing = threading.Thread(target=publish, args=(stack, channel, [big]))
        try:
            publishing.start()
            time.sleep(2.0)
        finally:
            report = set_faults(stack, "")
        publishing.join(30)
        frame = json.loads(ws.recv(timeout=2 * VISIBILITY + TIMEOUT))
    assert frame[:2] == [4, -1], frame
    assert big in requests.get(frame[2], timeout=TIMEOUT).text
    assert report["injected"].get("s3:SlowDown", 0) > 0, report


def test_faults_route_refuses_a_bad_rule(stack: LocalStack) -> None:
    reply = requests.put(faults_route(stack), data="dynamodb:418:0.5", timeout=5)
    assert reply.status_code == 400
    assert "dynamodb has no error '418'" in reply.json()["message"]


# -- the backend killed and restarted (last: the module's backend object stays dead) --


def test_backend_killed_and_restarted_during_a_conversation(
    stack: LocalStack, backend: GripBackend
) -> None:
    port = int(backend.url.rsplit(":", 1)[1])
    room = f"room-{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex
    restarted: list[GripBackend] = []

    def restart(after: float = 0.0) -> GripBackend:
        time.sleep(after)
        new = GripBackend(port, KEY, stack.control)
        restarted.append(new)
        return new

    try:
        with client(stack, marker) as ws:
            ws.send(f"sub {room}")
            assert ws.recv(timeout=TIMEOUT) == f"subscribed {room}"

            # Down between two messages, back within the retry pauses: the message
            # reaches the new backend once, and its answer the client.
            backend.stop(signal.SIGKILL)
            ws.send("while down")
            new = restart(after=0.5)
            assert ws.recv(timeout=TIMEOUT) == "while down"
            texts = [r["body"] for r in new.requests_with(marker)]
            assert texts == [b"TEXT a\r\nwhile down\r\n"], texts

            # The subscription lives in the gateway: publishes still arrive.
            publish(stack, room, ["after the restart"])
            assert ws.recv(timeout=TIMEOUT) == "after the restart"

            # Killed while it holds a request: not sent again (the backend may have
            # acted on it), and the client is closed, as documented.
            ws.send("sleep 5")
            time.sleep(0.5)
            new.stop(signal.SIGKILL)
            assert closed_with(ws) == 1000
        newer = restart()
        time.sleep(1.0)  # the $disconnect's one attempt
        sleeps = [r for r in newer.requests_with(marker) if b"sleep" in r["body"]]
        assert sleeps == [], "a request the backend may have acted on was sent again"

        # Down for longer than the retries: handshakes get 502 and talking clients
        # are closed; when it is back, everything works again.
        with client(stack) as talker:
            newer.stop(signal.SIGKILL)
            talker.send("nobody home")  # tried while the handshake below is
            with pytest.raises(InvalidStatus) as info:
                sync_connect(stack.websocket, open_timeout=3 * TIMEOUT).close()
            assert info.value.response.status_code == 502
            assert closed_with(talker) == 1000
        restart()
        with client(stack) as ws:
            ws.send("back")
            assert ws.recv(timeout=TIMEOUT) == "back"
    finally:
        for each in restarted:
            each.stop()


# -- the AWS endpoint restarted ----------------------------------------------------------


class MotoProcess:
    """moto's own server (`python -m moto.server`), as `--aws-endpoint` would use one."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.argv = [sys.executable, "-m", "moto.server", "-p", str(port)]
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/moto-api/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("moto's server did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def test_aws_endpoint_restarted_under_load_stops_the_stack_loudly() -> None:
    """An --aws-endpoint that restarts has lost every table, queue and connection
    record: the stack says so and exits non-zero within seconds; it never hangs."""
    moto = MotoProcess(free_port())
    port = free_port()
    stack = LocalStack(
        "--aws-endpoint", moto.url, "--key", KEY, "--target", f"http://127.0.0.1:{port}/ws"
    )
    backend = GripBackend(port, KEY, stack.control)
    try:
        asyncio.run(_restart_under_load(stack, moto))
        log = stack.log()
        assert stack.proc.returncode == 1, log[-3000:]
        assert "lost the queue" in log and "start slipway local again" in log, log[-3000:]
    finally:
        if stack.proc.poll() is None:
            stack.stop()
        backend.stop()
        moto.stop()


async def _restart_under_load(stack: LocalStack, moto: MotoProcess) -> None:
    channel = f"moto-{uuid.uuid4().hex[:8]}"
    clients = await subscribers(stack, channel, 10)
    stop = asyncio.Event()
    answers: Counter[str] = Counter()

    def publish_forever() -> None:
        pub = GripPubControl(parse_grip_uri(stack.urls["grip"]))
        n = 0
        while not stop.is_set():
            began = time.monotonic()
            try:
                pub.publish(channel, Item(WebSocketMessageFormat(f"m{n}")), blocking=True)
                answers["published"] += 1
            except Exception:
                answers["refused"] += 1
                time.sleep(0.1)
            assert time.monotonic() - began < 30, "a publish hung"
            n += 1

    publisher = asyncio.create_task(asyncio.to_thread(publish_forever))
    try:
        async with asyncio.timeout(20):
            while answers["published"] < 10:
                await asyncio.sleep(0.05)
        moto.stop()
        killed = time.monotonic()
        moto.start()  # back at once, empty
        code = await asyncio.to_thread(stack.proc.wait, 20)
        stopped = time.monotonic() - killed
        # Its clients are closed with it, not left hanging.
        closed = await asyncio.gather(
            *(asyncio.wait_for(ws.wait_closed(), 10) for ws in clients), return_exceptions=True
        )
        print(
            f"\nmoto restarted after {answers['published']} publishes: the stack exited "
            f"({code}) {stopped:.1f}s later; publishes refused meanwhile: {answers['refused']}"
        )
        assert stopped < 15
        assert all(c is None for c in closed), closed
    finally:
        stop.set()
        await asyncio.gather(publisher, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
