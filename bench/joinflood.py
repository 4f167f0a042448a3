"""A join flood against one channel (docs/security.md#amplification-through-queued-work):
how late other members' publishes arrive while one client makes its backend
subscribe it again and again.

One raw member is subscribed to `lobby` by the gripcontrol backend; a publish to
`lobby` goes out every `--interval` seconds for `--seconds`, and its publish ->
receive latency is measured. After `--after` seconds one envelope client that
tracks positions (`?envelope=1&resume=`) sends `--frames` `sub lobby` messages
within half a second and closes. Before round 2 every one of them queued a `Join`
in the channel's FIFO group, and each re-queued itself for a closed connection.

The last line is one machine-readable summary:
`frames= publishes= p50_ms= max_ms= lost= requeued= never_opened= dropped=`.

    .venv/bin/python -m bench.joinflood --frames 200 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slipway_client import ControlClient  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from tests.e2e.processes import KEY, stack_with_backend  # noqa: E402

TIMEOUT = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--after", type=float, default=2.0)
    args = parser.parse_args()

    stack, backend = stack_with_backend()
    lobby = f"lobby-{uuid.uuid4().hex[:8]}"
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    try:
        control = ControlClient(stack.control, KEY)
        member_url = f"{stack.websocket}?{urlencode({'subscribe': lobby})}"
        with connect(member_url, open_timeout=TIMEOUT) as member:
            time.sleep(1.0)  # the subscribe in the OPEN reply is applied

            def receive() -> None:
                while True:
                    try:
                        text = member.recv(timeout=max(30.0, args.seconds))
                    except Exception:
                        return
                    got[str(text)] = time.perf_counter()

            reader = threading.Thread(target=receive, daemon=True)
            reader.start()

            def flood() -> None:
                time.sleep(args.after)
                query = urlencode({"envelope": "1", "resume": "", "t": "flood"})
                with connect(f"{stack.websocket}?{query}", open_timeout=TIMEOUT) as ws:
                    for k in range(args.frames):
                        ws.send(json.dumps([1, k + 1, f"sub {lobby}"]))
                        time.sleep(0.5 / args.frames)

            flooder = threading.Thread(target=flood, daemon=True)
            flooder.start()
            start = time.perf_counter()
            i = 0
            while time.perf_counter() - start < args.seconds:
                name = f"p{i}"
                sent[name] = time.perf_counter()
                control.publish(lobby, name)
                i += 1
                time.sleep(max(0.0, start + i * args.interval - time.perf_counter()))
            flooder.join()
            deadline = time.perf_counter() + 120
            while len(got) < len(sent) and time.perf_counter() < deadline:
                time.sleep(0.2)
        log = stack.log()
    finally:
        stack.stop()
        backend.stop()

    latencies = [(got[n] - sent[n]) * 1000 for n in sent if n in got]
    lost = len(sent) - len(latencies)
    requeued = log.count("queued again")
    never = log.count("never opened")
    dropped = log.count("join to") - requeued
    print(
        f"{len(sent)} publishes to {lobby} while one client sent {args.frames} subscribes: "
        f"publish->receive p50 {statistics.median(latencies):.0f} ms, "
        f"max {max(latencies):.0f} ms, {lost} lost"
    )
    print(f"joins queued again {requeued}, 'never opened' lines {never}, dropped as gone {dropped}")
    print(
        f"frames={args.frames} publishes={len(sent)} p50_ms={statistics.median(latencies):.0f} "
        f"max_ms={max(latencies):.0f} lost={lost} requeued={requeued} never_opened={never} "
        f"dropped={dropped}"
    )


if __name__ == "__main__":
    main()
