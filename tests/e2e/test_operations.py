"""Operating a stage, end to end through the local stack: `slipway rotate-key`
(docs/security.md#key-rotation) while a backend keeps publishing, and `slipway
redrive` (docs/reliability.md#redrive) once what sent a job to the dead-letter
queue is fixed. Both run the real CLI against the stack's AWS endpoint, as an
operator runs them against an account."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from gripcontrol import validate_sig

from chalicelib.grip.history import Position, encode_resume, read_floor

from .processes import KEY, ROOT, GripBackend, LocalStack, free_port
from .test_gateway import TIMEOUT, client, local_client
from .test_resume import frame, joined

NEW_KEY = "e2e-new-key-fedcba9876543210fedcba9876543210"
# The functions read the keys again every second here (300 s deployed).
STACK_ENV = {"SLIPWAY_KEY_TTL": "1"}
# Two receives, then the dead-letter queue: a failing job gets there in ~4 s.
STACK_ARGS = ("--max-receive-count", "2")


@pytest.fixture(scope="module")
def running(request: pytest.FixtureRequest) -> Iterator[tuple[LocalStack, GripBackend]]:
    """The stack in front of a backend that was given the new key before the
    rotation, as the procedure says: it accepts a Grip-Sig signed with either."""
    port = free_port()
    stack = LocalStack(
        "--target",
        f"http://127.0.0.1:{port}/ws",
        "--key",
        KEY,
        "--visibility-timeout",
        "2",
        *STACK_ARGS,
        env=STACK_ENV,
    )
    try:
        backend = GripBackend(port, [KEY, NEW_KEY], stack.control)
    except BaseException:
        stack.stop()
        raise
    failed_before = request.session.testsfailed
    yield stack, backend
    code = stack.stop()
    backend.stop()
    if request.session.testsfailed > failed_before or code != 0:
        print(f"\n--- slipway local log (exit {code}) ---\n{stack.log()[-6000:]}")
    assert code == 0


def slipway(*args: str) -> str:
    """The CLI, as an operator runs it; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "slipway_dev.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"slipway {args[0]} failed:\n{done.stderr}"
    return done.stdout


def publish(stack: LocalStack, key: str, channel: str, text: str) -> int:
    item = {"channel": channel, "formats": {"ws-message": {"content": text}}}
    reply = requests.post(
        f"{stack.control}/publish/",
        json={"items": [item]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT,
    )
    return reply.status_code


def upload(stack: LocalStack, key: str, text: str) -> str:
    """`POST /uploads` and the PUT: the ref to publish the text by."""
    auth = {"Authorization": f"Bearer {key}"}
    target = requests.post(f"{stack.control}/uploads", headers=auth, timeout=TIMEOUT).json()
    body = json.dumps(text).encode()
    assert requests.put(target["url"], data=body, headers=target["headers"], timeout=TIMEOUT).ok
    return str(target["ref"])


def publish_ref(stack: LocalStack, key: str, channel: str, ref: str) -> int:
    item = {"channel": channel, "formats": {"ws-message": {"content-ref": ref}}}
    reply = requests.post(
        f"{stack.control}/publish/",
        json={"items": [item]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT,
    )
    return reply.status_code


def recover(stack: LocalStack, room: str, where: dict[str, Any], text: str) -> dict[str, Any]:
    """Publish `text`, then come back from `where` (a `[6]` frame) with its floor:
    the report of a recovery that replayed it."""
    assert publish(stack, NEW_KEY, room, text) == 200
    back = encode_resume({room: Position(where["epoch"], where["offset"])}, {room: where["floor"]})
    with client(stack, envelope="1", resume=back, subscribe=room) as ws:
        assert frame(ws)[:3] == [1, 0, text]
        report = joined(ws)
    assert report["recovery"] == "recovered", report
    return report


class Publisher(threading.Thread):
    """A backend publishing one numbered message after another, with whichever key
    it was last told to use; every status it got is kept."""

    def __init__(self, stack: LocalStack, channel: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.channel = stack, channel
        self.key = KEY
        self.sent: list[tuple[str, int]] = []  # (key, status)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            key = self.key
            status = publish(self.stack, key, self.channel, f"m{len(self.sent)}")
            self.sent.append((key, status))
            time.sleep(0.05)

    def published(self, key: str) -> int:
        return sum(1 for k, status in self.sent if k == key and status == 200)


def signed_with(stack: LocalStack, backend: GripBackend) -> set[str]:
    """Which keys sign the Grip-Sig of a new connection's handshake."""
    marker = uuid.uuid4().hex
    with client(stack, marker):
        pass
    sig = backend.wait_for(marker, lambda got: len(got) >= 1)[0]["headers"]["grip-sig"]
    return {name for name, k in (("old", KEY), ("new", NEW_KEY)) if validate_sig(sig, k)}


def wait_until(done: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"waited {timeout:.0f}s for {what}"
        time.sleep(0.2)


def test_a_key_rotates_while_a_backend_keeps_publishing(
    stack: LocalStack, backend: GripBackend
) -> None:
    channel = f"rot-{uuid.uuid4().hex[:8]}"
    endpoint = ("--stage", "local", "--endpoint-url", stack.urls["aws"])
    with client(stack) as subscriber:
        subscriber.send(f"sub {channel}")
        assert subscriber.recv(timeout=TIMEOUT) == f"subscribed {channel}"
        assert signed_with(stack, backend) == {"old"}
        publisher = Publisher(stack, channel)
        publisher.start()
        try:
            wait_until(lambda: publisher.published(KEY) >= 5, "publishes with the old key")
            ref = upload(stack, KEY, "uploaded before the rotation")
            room = f"floor-{uuid.uuid4().hex[:8]}"
            with client(stack, envelope="1", resume="", subscribe=room) as ws:
                start = joined(ws)  # its floor signed with the old key

            # 1. The new key first: it signs; the old one still opens the control API.
            with tempfile.NamedTemporaryFile("w", suffix=".key") as new_key:
                new_key.write(NEW_KEY + "\n")
                new_key.flush()
                out = slipway("rotate-key", *endpoint, "--new-key-file", new_key.name)
            assert "key 1: sha256:" in out and "(signs and verifies)" in out
            assert "key 2: sha256:" in out and "(verifies only)" in out
            assert NEW_KEY not in out and KEY not in out  # fingerprints only
            wait_until(
                lambda: signed_with(stack, backend) == {"new"},
                "Grip-Sig signed with the new key",
            )
            # A ref the old key signed is still the deployment's, published with the new key.
            assert publish_ref(stack, NEW_KEY, channel, ref) == 200
            # A floor the old key signed still recovers; the join hands it back re-signed.
            after = recover(stack, room, start, "r1")
            assert after["replayed"] == 1
            # The worker (a process of its own) reads the list again within its
            # SLIPWAY_KEY_TTL, here 1 s; 10 s more when a read fails, as it can under
            # load. Until then a floor comes back signed with the old key, still valid.
            texts = iter(f"r1.{n}" for n in range(1, 30))
            deadline = time.monotonic() + 30
            while read_floor(NEW_KEY, room, after["epoch"], after["floor"]) is None:
                assert read_floor(KEY, room, after["epoch"], after["floor"]) is not None
                assert time.monotonic() < deadline, "waited 30s for a floor signed with the new key"
                time.sleep(1)
                after = recover(stack, room, after, next(texts))
                assert after["replayed"] == 1
            before_switch = len(publisher.sent)
            wait_until(lambda: len(publisher.sent) >= before_switch + 5, "more old-key publishes")

            # 2. The backend moves to the new key.
            publisher.key = NEW_KEY
            wait_until(lambda: publisher.published(NEW_KEY) >= 5, "publishes with the new key")

            # 3. The old key retired: it opens nothing, once the functions read the list again.
            out = slipway("rotate-key", *endpoint, "--retire")
            assert "key 1: sha256:" in out and "key 2" not in out
            wait_until(
                lambda: publish(stack, KEY, channel, "probe with the retired key") == 401,
                "the retired key refused",
            )
            assert recover(stack, room, after, "r2")["replayed"] == 1  # its new floor
            after_retire = len(publisher.sent)
            wait_until(lambda: len(publisher.sent) >= after_retire + 5, "publishes after retiring")
        finally:
            publisher.stopping.set()
            publisher.join(TIMEOUT)

        refused = [(i, k == KEY, status) for i, (k, status) in enumerate(publisher.sent)]
        refused = [r for r in refused if r[2] != 200]
        assert not refused, f"(publish number, with the old key, status) refused: {refused}"
        assert publisher.published(KEY) >= 10 and publisher.published(NEW_KEY) >= 10
        # Every message of both keys reached the subscriber (at least once).
        wanted = {f"m{i}" for i in range(len(publisher.sent))} | {"uploaded before the rotation"}
        got: set[str] = set()
        while not wanted <= got:
            got.add(subscriber.recv(timeout=TIMEOUT))  # type: ignore[arg-type]
    # The backend refused no Grip-Sig: every request was signed with a key it had.
    sigs = [r["headers"]["grip-sig"] for r in backend.requests()]
    assert sigs and all(validate_sig(s, KEY) or validate_sig(s, NEW_KEY) for s in sigs)
    assert signed_with(stack, backend) == {"new"}


def dead_letters(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_dead_letter_job_is_moved_back_and_delivered(stack: LocalStack) -> None:
    sqs = local_client("sqs", stack.urls["aws"])
    dlq = sqs.get_queue_url(QueueName="slipway-publish-dlq.fifo")["QueueUrl"]
    key = publish_key(stack)
    channel = f"dlq-{uuid.uuid4().hex[:8]}"
    faults = stack.urls["faults"]
    with client(stack) as subscriber:
        subscriber.send(f"sub {channel}")
        assert subscriber.recv(timeout=TIMEOUT) == f"subscribed {channel}"
        assert dead_letters(sqs, dlq) == 0
        # Every @connections post fails: the job fails twice, then is dead-lettered.
        assert requests.put(faults, data="connections:500:1.0", timeout=5).status_code == 200
        try:
            assert publish(stack, key, channel, "after the fix") == 200
            wait_until(lambda: dead_letters(sqs, dlq) == 1, "the job in the dead-letter queue")
        finally:
            assert requests.delete(faults, timeout=5).status_code == 200  # the fix

        out = slipway("redrive", "--stage", "local", "--endpoint-url", stack.urls["aws"])
        assert "moved: 1 (1 to the publish queue, 0 ordered)" in out
        assert "left in the dead-letter queue: 0" in out
        assert subscriber.recv(timeout=TIMEOUT) == "after the fix"
        assert dead_letters(sqs, dlq) == 0
        # Nothing left: a second run moves nothing and says so.
        out = slipway("redrive", "--stage", "local", "--endpoint-url", stack.urls["aws"])
        assert "moved: 0" in out


def publish_key(stack: LocalStack) -> str:
    """Whichever key the stage holds now (the rotation test may have run first)."""
    ssm = local_client("ssm", stack.urls["aws"])
    value = ssm.get_parameter(Name="/slipway-local/key", WithDecryption=True)["Parameter"]["Value"]
    return str(value.splitlines()[0] if not value.startswith("[") else json.loads(value)[0])
