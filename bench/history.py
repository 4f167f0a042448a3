"""What channel history (resume after reconnect, docs/resume.md) costs, and how fast
a recovery is: two local stacks in the same run, history on (the default) and off.

For each stack: one envelope client that tracks positions (`?envelope=1&resume=`)
is subscribed by the gripcontrol backend, and `--publishes` messages are published
one at a time at `--rate` per second through the control API; publish -> receive
latency is measured (the control route's answer to the client's frame). Then, with
history on only: the client goes away, `--missed` messages are published, and it
comes back with its position; the time from the new connection's open to its `[6]`
frame ("recovered") gives replayed messages per second.

The last line is one machine-readable summary:
`history_p50_ms= off_p50_ms= added_p50_ms= history_p99_ms= off_p99_ms= replayed= replay_s=
replay_per_s= lost=`.

    .venv/bin/python -m bench.history --publishes 100 --rate 10 --missed 500
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slipway_client import ControlClient  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from chalicelib.grip.history import Position, encode_resume  # noqa: E402
from tests.e2e.processes import KEY, stack_with_backend  # noqa: E402

TIMEOUT = 60.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def frames(ws, count: int) -> list[list]:
    return [json.loads(ws.recv(timeout=TIMEOUT)) for _ in range(count)]


def latency_run(stack, publishes: int, rate: float) -> tuple[list[float], int, Position, str, str]:
    """Publish one at a time; the latency of each, the number lost, and the
    client's position at the end and its floor token (history on)."""
    room = f"bench-{uuid.uuid4().hex[:8]}"
    control = ControlClient(stack.control, KEY)
    url = f"{stack.websocket}?envelope=1&resume=&subscribe={room}"
    latencies: list[float] = []
    lost = 0
    position, floor = Position("", 0), ""
    with connect(url, open_timeout=TIMEOUT, max_size=None) as ws:
        first = json.loads(ws.recv(timeout=TIMEOUT)) if stack.history else None
        if first is not None:
            position = Position(first[2]["epoch"], first[2]["offset"])
            floor = first[2]["floor"]
        for i in range(publishes):
            started = time.perf_counter()
            control.publish(room, f"m{i}")
            try:
                got = json.loads(ws.recv(timeout=10))
            except TimeoutError:
                lost += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            assert got[2] == f"m{i}", got
            if len(got) > 3:
                position = Position(got[3]["epoch"], got[3]["offset"])
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
    return latencies, lost, position, room, floor


def replay_run(stack, room: str, position: Position, floor: str, missed: int) -> tuple[float, int]:
    """Publish `missed` while the client is away; seconds from its return to its
    `[6]` frame, and how many messages it was replayed."""
    control = ControlClient(stack.control, KEY, timeout=TIMEOUT)  # 100 items a request
    control.publish_many(
        {"channel": room, "formats": {"ws-message": {"content": f"missed {i}"}}}
        for i in range(missed)
    )
    # The publishes are queued: wait until the worker has kept them all.
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        top = _top(stack, room)
        if top >= position.offset + missed:
            break
        time.sleep(0.2)
    resume = encode_resume({room: position}, {room: floor})
    url = f"{stack.websocket}?envelope=1&resume={resume}&subscribe={room}"
    started = time.perf_counter()
    with connect(url, open_timeout=TIMEOUT, max_size=None) as ws:
        got = frames(ws, missed + 1)
        elapsed = time.perf_counter() - started
    report = got[-1]
    assert report[0] == 6 and report[2]["recovery"] == "recovered", report
    return elapsed, report[2]["replayed"]


def _top(stack, room: str) -> int:
    import requests

    answer = requests.get(
        f"{stack.control}/channels/{room}/items",
        params={"limit": "1"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=TIMEOUT,
    )
    return int(answer.json()["top"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishes", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="publishes per second")
    parser.add_argument("--missed", type=int, default=500, help="published while away")
    args = parser.parse_args()
    if args.missed > 1000:
        parser.error("--missed is at most SLIPWAY_HISTORY_ITEMS (1000 by default)")

    results = {}
    for name, env in (("history", {}), ("off", {"SLIPWAY_HISTORY_SECONDS": "0"})):
        stack, backend = stack_with_backend(env=env)
        stack.history = name == "history"
        try:
            latencies, lost, position, room, floor = latency_run(stack, args.publishes, args.rate)
            replay = (
                replay_run(stack, room, position, floor, args.missed) if stack.history else None
            )
        finally:
            stack.stop()
            backend.stop()
        results[name] = (latencies, lost, replay)
        print(
            f"{name:8} publish->receive p50 {statistics.median(latencies):7.1f} ms, "
            f"p99 {percentile(latencies, 0.99):7.1f} ms, {len(latencies)} received, {lost} lost"
        )
    on, off = results["history"], results["off"]
    replay_s, replayed = on[2]
    print(
        f"history: {replayed} missed messages replayed in {replay_s:.2f} s "
        f"({replayed / replay_s:.0f}/s) from the new connection's open to its [6] frame"
    )
    on_p50, off_p50 = statistics.median(on[0]), statistics.median(off[0])
    print(
        f"history_p50_ms={on_p50:.1f} off_p50_ms={off_p50:.1f} "
        f"added_p50_ms={on_p50 - off_p50:.1f} history_p99_ms={percentile(on[0], 0.99):.1f} "
        f"off_p99_ms={percentile(off[0], 0.99):.1f} replayed={replayed} "
        f"replay_s={replay_s:.2f} replay_per_s={replayed / replay_s:.0f} lost={on[1] + off[1]}"
    )


if __name__ == "__main__":
    main()
