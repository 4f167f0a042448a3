"""A reconnect storm, modelled: N clients dropped at the same moment come back with
full-jitter backoff against API Gateway's quota of new connections per second.

No network: each client draws its delays as the clients do (client/js/backoff.js,
`slipway_client.Backoff`: attempt n waits uniform(0, min(cap, base * factor**n))),
and the gateway admits at most `--quota` handshakes a second (a token bucket of
that rate and burst); a refused handshake (API Gateway's 429) is a failed attempt.
Prints, per backoff, when the clients are back (p50, p99, last), the busiest
second of handshake attempts, the attempts per client, and how many gave up.

    .venv/bin/python -m bench.reconnect_storm                 # 100,000 clients, 500/s
    .venv/bin/python -m bench.reconnect_storm --clients 20000 --quota 1000

docs/resume.md#reconnect-storms has the figures and the arithmetic behind them.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    name: str
    base: float  # s, the cap of attempt 0
    cap: float  # s, the largest cap
    factor: float = 2.0
    max_attempts: float = math.inf

    def delay(self, attempt: int, rand: random.Random) -> float:
        return rand.random() * min(self.cap, self.base * self.factor ** min(attempt, 64))


@dataclass(frozen=True)
class Outcome:
    back_p50: float
    back_p99: float
    back_last: float
    peak_attempts: int  # handshakes tried in the busiest second
    attempts_per_client: float
    gave_up: int


def storm(policy: Policy, clients: int, quota: float, seed: int = 1) -> Outcome:
    rand = random.Random(seed)
    # (time of the attempt, client, attempts made before it)
    attempts = [(policy.delay(0, rand), c, 0) for c in range(clients)]
    heapq.heapify(attempts)
    tokens, last = quota, 0.0  # the bucket starts full: a burst of one second's quota
    back: list[float] = []
    per_second: Counter[int] = Counter()
    tried = gave_up = 0
    while attempts:
        at, client, made = heapq.heappop(attempts)
        tokens = min(quota, tokens + (at - last) * quota)
        last = at
        tried += 1
        per_second[int(at)] += 1
        if tokens >= 1:
            tokens -= 1
            back.append(at)
        elif made + 1 >= policy.max_attempts:
            gave_up += 1
        else:
            heapq.heappush(attempts, (at + policy.delay(made + 1, rand), client, made + 1))
    back.sort()

    def pct(p: float) -> float:
        return back[min(len(back) - 1, int(p * len(back)))] if back else math.nan

    return Outcome(
        back_p50=pct(0.5),
        back_p99=pct(0.99),
        back_last=back[-1] if back else math.nan,
        peak_attempts=max(per_second.values()),
        attempts_per_client=tried / clients,
        gave_up=gave_up,
    )


POLICIES = [
    Policy("browser client (0.5 s, x2, cap 30 s, forever)", 0.5, 30.0),
    Policy("Python client before (0.5 s, x2, cap 30 s, 8 attempts)", 0.5, 30.0, max_attempts=8),
    Policy("Python client now (0.5 s, x2, cap 30 s, forever)", 0.5, 30.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--quota", type=float, default=500.0, help="new connections/s")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    floor = args.clients / args.quota
    print(f"{args.clients:,} clients dropped at t=0; the gateway admits {args.quota:g}/s")
    print(f"no schedule can bring them all back before {floor:.0f} s")
    for policy in POLICIES:
        out = storm(policy, args.clients, args.quota, args.seed)
        print(
            f"{policy.name}: back p50 {out.back_p50:.0f} s, p99 {out.back_p99:.0f} s, "
            f"last {out.back_last:.0f} s; busiest second {out.peak_attempts:,} attempts; "
            f"{out.attempts_per_client:.1f} attempts/client; gave up {out.gave_up:,}"
        )


if __name__ == "__main__":
    main()
