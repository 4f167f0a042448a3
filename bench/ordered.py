"""Ordered delivery against unordered, same run, through `slipway local` and the
gripcontrol test backend (real sockets on loopback; docs/ordered.md).

For each mode it sends a burst of messages back to back and times until every
echo is back (messages per second), counts the backend requests they took, and
then sends messages one at a time at a slow pace to time each round trip (client
-> gateway -> backend -> @connections -> client) without queueing: the latency
that ordering adds is the difference. It also counts, for the burst, the
messages that reached the backend out of the order they were sent. The last line
is one machine-readable summary.

    .venv/bin/python -m bench.ordered --burst 300 --samples 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from urllib.parse import urlencode

from websockets.asyncio.client import connect

from chalicelib.grip import codec
from tests.e2e.processes import GripBackend, LocalStack, stack_with_backend


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _texts(requests: list[dict]) -> list[str]:
    return [
        e.content.decode()
        for r in requests
        for e in codec.decode(r["body"])
        if e.type == "TEXT" and e.content is not None
    ]


async def burst(stack: LocalStack, backend: GripBackend, n: int, ordered: bool) -> dict:
    marker = uuid.uuid4().hex
    query = {"t": marker, **({"ordered": "1"} if ordered else {})}
    sent = [f"b{i:05d}" for i in range(n)]
    async with connect(f"{stack.websocket}?{urlencode(query)}", max_size=None) as ws:
        start = time.perf_counter()
        for text in sent:
            await ws.send(text)
        got = set()
        while len(got) < n:
            got.add(await asyncio.wait_for(ws.recv(), 120))
        elapsed = time.perf_counter() - start
    requests = [r for r in backend.requests_with(marker) if r["body"] != b"OPEN\r\n"]
    forwarded = _texts(requests)
    messages = [r for r in requests if any(t.startswith("b") for t in _texts([r]))]
    inversions = sum(1 for a, b in zip(forwarded, forwarded[1:], strict=False) if a > b)
    return {
        "per_second": n / elapsed,
        "requests": len(messages),
        "requests_per_message": len(messages) / n,
        "out_of_order": inversions,
        "in_order": forwarded == sent,
    }


async def latency(stack: LocalStack, samples: int, pause: float, ordered: bool) -> list[float]:
    query = {"t": uuid.uuid4().hex, **({"ordered": "1"} if ordered else {})}
    out = []
    async with connect(f"{stack.websocket}?{urlencode(query)}") as ws:
        for i in range(samples):
            start = time.perf_counter()
            await ws.send(f"l{i}")
            assert await asyncio.wait_for(ws.recv(), 60) == f"l{i}"
            out.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(pause)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=300, help="messages sent back to back")
    parser.add_argument("--samples", type=int, default=100, help="round trips timed, per mode")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between them")
    parser.add_argument("--hold-ms", type=int, help="SLIPWAY_ORDERED_HOLD_MS for the run")
    args = parser.parse_args()

    env = {"SLIPWAY_ORDERED_HOLD_MS": str(args.hold_ms)} if args.hold_ms else None
    stack, backend = stack_with_backend("--log-level", "WARNING", env=env)
    results: dict[str, dict] = {}
    try:
        for mode, ordered in (("unordered", False), ("ordered", True)):
            b = asyncio.run(burst(stack, backend, args.burst, ordered))
            lat = asyncio.run(latency(stack, args.samples, args.pause, ordered))
            results[mode] = {
                **b,
                "p50_ms": statistics.median(lat),
                "p99_ms": _quantile(lat, 0.99),
            }
            r = results[mode]
            print(
                f"{mode:>9}: burst of {args.burst}: {r['per_second']:.0f} messages/s, "
                f"{r['requests']} backend requests ({r['requests_per_message']:.3f} per message), "
                f"{r['out_of_order']} out of order; round trip p50 {r['p50_ms']:.1f} ms, "
                f"p99 {r['p99_ms']:.1f} ms ({args.samples} samples)",
                flush=True,
            )
    finally:
        stack.stop()
        backend.stop()
    o, u = results["ordered"], results["unordered"]
    print(
        f"added latency: p50 {o['p50_ms'] - u['p50_ms']:.1f} ms, "
        f"p99 {o['p99_ms'] - u['p99_ms']:.1f} ms"
    )
    summary = {
        "ordered_p50_ms": round(o["p50_ms"], 1),
        "ordered_p99_ms": round(o["p99_ms"], 1),
        "unordered_p50_ms": round(u["p50_ms"], 1),
        "unordered_p99_ms": round(u["p99_ms"], 1),
        "ordered_msgs_per_s": round(o["per_second"], 1),
        "unordered_msgs_per_s": round(u["per_second"], 1),
        "requests_per_message": round(o["requests_per_message"], 3),
        "unordered_requests_per_message": round(u["requests_per_message"], 3),
        "ordered_out_of_order": o["out_of_order"],
        "unordered_out_of_order": u["out_of_order"],
    }
    print(" ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
