"""Rotation and resume under load: no gap, no duplicate, across many forced cuts.

Starts `slipway local` with a short maximum connection lifetime (API Gateway's
2-hour cut, shortened: `--max-lifetime 20`) in front of the gripcontrol test
backend, connects N clients of the Python client library (envelope mode, subscribed
to one channel by the backend on OPEN), and publishes numbered messages at a steady
rate through the control API for the given duration. Each client rotates its
connection at a random moment of its rotation window (make before break, below the
lifetime), so every client rotates several times while messages flow; one that
misses its window is cut by the gateway (1001) and resumes. Then it counts, per
client, what the application saw against what was published:

- `expected`: messages published x clients;
- `delivered`: messages the applications received;
- `gaps`: published messages a client never received;
- `duplicates`: messages a client received more than once;
- `rotations`: rotations done (make before break), `cuts`: reconnections after a
  drop or the gateway's cut, `failed`: `[6]` frames reporting a failed recovery.

The last line is one machine-readable summary, e.g.
`expected=24000 delivered=24000 gaps=0 duplicates=0 rotations=160 ...`.

    .venv/bin/python -m bench.rotation --clients 20 --duration 120 --rate 5
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slipway_client import (  # noqa: E402
    Backoff,
    ControlClient,
    Recovery,
    RotationTimeout,
    State,
    WebSocketClient,
)

from tests.e2e.processes import KEY, stack_with_backend  # noqa: E402


class Subscriber:
    """One client and what its application saw."""

    def __init__(self, url: str, window: tuple[float, float], timeout: float) -> None:
        self.received: list[int] = []
        self.recoveries: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.rotation_timeouts = 0
        self.errors: list[str] = []
        self.cuts = 0
        self.first_recovery = asyncio.Event()
        self.client = WebSocketClient(
            url,
            on_message=self.message,
            on_recovery=self.recovery,
            on_error=self.error,
            on_state=self.state,
            rotate_window=window,
            rotate_timeout=timeout,
            reconnect=Backoff(initial=0.2, max_delay=5, max_attempts=None),
            open_timeout=30,
        )

    def message(self, data: Any) -> None:
        self.received.append(int(data))

    def recovery(self, channel: str, result: Recovery) -> None:
        self.recoveries[result.status] += 1
        if result.reason:
            self.reasons[result.reason] += 1
        self.first_recovery.set()

    def error(self, exc: Exception) -> None:
        if isinstance(exc, RotationTimeout):
            self.rotation_timeouts += 1
        self.errors.append(f"{type(exc).__name__}: {exc}")

    def state(self, state: State) -> None:
        if state is State.RECONNECTING:
            self.cuts += 1  # one per attempt; attempts after the first are rare here


def publisher(
    control: ControlClient, channel: str, rate: float, duration: float, out: list[int]
) -> None:
    """Publish 1, 2, 3, ... at `rate` per second for `duration` seconds (paced, not bursty)."""
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < duration:
        n += 1
        control.publish(channel, str(n))
        out.append(n)
        pause = started + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stack, backend = stack_with_backend(
        "--max-lifetime",
        str(args.max_lifetime),
        "--visibility-timeout",
        "5",
        env={"SLIPWAY_HISTORY_SECONDS": "600", "SLIPWAY_HISTORY_ITEMS": "1000"},
    )
    channel = f"rotation-{uuid.uuid4().hex[:8]}"
    subscribers: list[Subscriber] = []
    try:
        url = f"{stack.websocket}?subscribe={channel}"
        window = (args.window[0], args.window[1])
        subscribers = [Subscriber(url, window, args.rotate_timeout) for _ in range(args.clients)]
        for sub in subscribers:  # one by one: a burst of handshakes is not what this measures
            await sub.client.connect()
        await asyncio.wait_for(asyncio.gather(*(s.first_recovery.wait() for s in subscribers)), 60)
        print(f"{args.clients} clients connected and subscribed to {channel}", flush=True)

        published: list[int] = []
        control = ControlClient(stack.control, KEY)
        thread = threading.Thread(
            target=publisher,
            args=(control, channel, args.rate, args.duration, published),
            daemon=True,
        )
        started = time.monotonic()
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(10)
            rotations = sum(s.client.rotations for s in subscribers)
            print(
                f"  t={time.monotonic() - started:5.0f}s published={len(published)}"
                f" rotations={rotations} cuts={sum(s.cuts for s in subscribers)}",
                flush=True,
            )
        total = len(published)
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            if all(len(set(s.received)) >= total for s in subscribers):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything more arriving now would be a duplicate
        elapsed = time.monotonic() - started
    finally:
        for sub in subscribers:
            await sub.client.close()
        code = stack.stop()
        backend.stop()
        if code != 0 or args.log:
            print(f"slipway local exited {code}:\n{stack.log()[-args.log :]}", file=sys.stderr)

    expected = total * len(subscribers)
    delivered = sum(len(s.received) for s in subscribers)
    gaps = sum(len(set(range(1, total + 1)) - set(s.received)) for s in subscribers)
    duplicates = sum(len(s.received) - len(set(s.received)) for s in subscribers)
    out_of_order = sum(
        sum(1 for a, b in zip(s.received, s.received[1:], strict=False) if b < a)
        for s in subscribers
    )
    recoveries: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for sub in subscribers:
        recoveries.update(sub.recoveries)
        reasons.update(sub.reasons)
    rotations = [s.client.rotations for s in subscribers]
    errors = Counter(e.split(":")[0] for s in subscribers for e in s.errors)
    print(f"published {total} messages in {elapsed:.0f} s to {len(subscribers)} clients")
    print(f"rotations per client: min {min(rotations)}, max {max(rotations)}")
    print(f"recoveries: {dict(recoveries)}; failure reasons: {dict(reasons)}")
    print(f"client errors: {dict(errors)}")
    for sub in subscribers[:3]:
        for line in sub.errors[:3]:
            print(f"  e.g. {line}")
    return {
        "expected": expected,
        "delivered": delivered,
        "gaps": gaps,
        "duplicates": duplicates,
        "rotations": sum(rotations),
        "cuts": sum(s.cuts for s in subscribers),
        "failed": recoveries["failed"],
        "rotation_timeouts": sum(s.rotation_timeouts for s in subscribers),
        "out_of_order": out_of_order,
        "clients": len(subscribers),
        "rate": args.rate,
        "seconds": round(elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of publishing")
    parser.add_argument("--rate", type=float, default=5.0, help="publishes per second")
    parser.add_argument("--max-lifetime", type=float, default=20.0, help="the stack's cut, s")
    parser.add_argument(
        "--window",
        type=float,
        nargs=2,
        default=(10.0, 12.0),
        metavar=("LOW", "HIGH"),
        help="the clients' rotate_window, seconds after each connection opened",
    )
    parser.add_argument(
        "--rotate-timeout", type=float, default=8.0, help="the clients' rotate_timeout, s"
    )
    parser.add_argument("--drain", type=float, default=60.0, help="max seconds to wait at the end")
    parser.add_argument("--log", type=int, default=0, help="print this much of the stack's log")
    args = parser.parse_args()
    summary = asyncio.run(run(args))
    print(" ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
