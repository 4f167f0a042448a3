"""How long a job that can never succeed holds its channel (docs/reliability.md).

A poison job (a publish holding a lone surrogate, as an older deploy or a bug could
queue it; the control API now refuses such a publish with a 400) is put straight
into the publish queue, followed by a good publish on the same channel (the same
FIFO group); a subscriber's clock runs from the second send to the good message's
arrival. `--trials` times, against a local stack whose queue has
`--visibility-timeout` seconds (deployed: 6 × the worker's Lambda timeout). Each
trial also times a good publish alone on a fresh channel, for comparison.

The last line is one machine-readable summary:
`held_p50_ms= held_max_ms= plain_p50_ms= trials= visibility_s=`.

    .venv/bin/python -m bench.poison --trials 10 --visibility-timeout 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.sync.client import connect  # noqa: E402

from chalicelib.grip import jobs  # noqa: E402
from chalicelib.grip.payload import Payload  # noqa: E402
from tests.e2e.processes import stack_with_backend  # noqa: E402
from tests.e2e.test_gateway import local_client  # noqa: E402


def send(sqs: Any, url: str, job: jobs.Publish) -> None:
    sqs.send_message(
        QueueUrl=url,
        MessageBody=jobs.encode(job),
        MessageGroupId=jobs.group(job),
        MessageDeduplicationId=uuid.uuid4().hex,
    )


def trial(stack: Any, sqs: Any, url: str, poisoned: bool, timeout: float) -> float:
    room = f"bench-{uuid.uuid4().hex[:8]}"
    with connect(f"{stack.websocket}?subscribe={room}", open_timeout=30) as ws:
        ws.send("ready")  # the echo comes after the OPEN response's subscribe is stored
        ws.recv(timeout=30)
        if poisoned:
            send(sqs, url, jobs.Publish(room, jobs.Inline(Payload.of_text("bad \udc80"))))
        started = time.monotonic()
        send(sqs, url, jobs.Publish(room, jobs.Inline(Payload.of_text("good"))))
        while ws.recv(timeout=timeout) != "good":
            pass
        return (time.monotonic() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--visibility-timeout", type=int, default=30)
    args = parser.parse_args()
    stack, backend = stack_with_backend("--visibility-timeout", str(args.visibility_timeout))
    try:
        sqs: Any = local_client("sqs", stack.urls["aws"])
        url = sqs.get_queue_url(QueueName="slipway-publish.fifo")["QueueUrl"]
        wait = args.visibility_timeout * 6 + 30.0
        held = [trial(stack, sqs, url, True, wait) for _ in range(args.trials)]
        plain = [trial(stack, sqs, url, False, wait) for _ in range(args.trials)]
    finally:
        stack.stop()
        backend.stop()
    print(f"after a poison job: {', '.join(f'{v:.0f}' for v in held)} ms")
    print(f"alone:              {', '.join(f'{v:.0f}' for v in plain)} ms")
    print(
        f"held_p50_ms={statistics.median(held):.0f} held_max_ms={max(held):.0f} "
        f"plain_p50_ms={statistics.median(plain):.0f} trials={args.trials} "
        f"visibility_s={args.visibility_timeout}"
    )


if __name__ == "__main__":
    main()
