"""What metrics cost an invocation: a fan-out batch's worth of `record` calls
(one per delivery) and the flush that writes its EMF lines, to a sink that drops
them (the write to stdout is Lambda's, as for any log line).

    .venv/bin/python -m bench.metrics --deliveries 1000
"""

from __future__ import annotations

import argparse
import statistics
import time

from chalicelib import metrics
from chalicelib.grip import metrics as m


def one(deliveries: int) -> float:
    started = time.perf_counter()
    metrics.record(m.BACKEND_CALLS, 1, "2xx")
    metrics.record(m.BACKEND_LATENCY, 12.5)
    for k in range(deliveries):
        metrics.record(m.DELIVERIES, 1, m.SENT if k % 50 else m.GONE)
    metrics.record(m.FANOUT_DURATION, 250.0)
    metrics.flush("bench", "worker")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    metrics.sink = lambda line: None
    for deliveries in (0, args.deliveries):
        times = [one(deliveries) for _ in range(args.runs)]
        per = statistics.median(times) * 1e6
        print(f"deliveries={deliveries} median_us={per:.0f}", end="")
        print(f" per_delivery_us={per / deliveries:.2f}" if deliveries else "")


if __name__ == "__main__":
    main()
