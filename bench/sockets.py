"""The @connections sender's CPU per call (chalicelib/aws/sockets.py): `send_many`
deliveries and single `send`s against bench/fanout.py's stand-in @connections API
(its own process), over kept connections. CPU time, so other load on the machine
moves it little; run another tree's sender in turn to compare transports.

    .venv/bin/python -m bench.sockets --many 2000 --single 500 --latency-ms 0.2
    PYTHONPATH=/path/to/other/tree .venv/bin/python bench/sockets.py
"""

from __future__ import annotations

import argparse
import time

import boto3

from bench.fanout import Connections
from chalicelib.aws.sockets import Sockets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--many", type=int, default=2000, help="deliveries of one send_many")
    parser.add_argument("--single", type=int, default=500, help="single sends, one by one")
    parser.add_argument("--latency-ms", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    server = Connections(args.latency_ms / 1000)
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    sender = Sockets(session)
    targets = [(server.url, f"c{k}=") for k in range(max(args.many, args.single))]
    try:
        sender.send_many(targets[:100], b"warm", args.concurrency)  # imports, connections
        figures = {}
        for kind, n in (("many", args.many), ("single", args.single)):
            cpu, wall = time.process_time(), time.perf_counter()
            if kind == "many":
                assert not sender.send_many(targets[:n], b"hello", args.concurrency).failed
            else:
                for endpoint, cid in targets[:n]:
                    sender.send(endpoint, cid, b"hello")
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            figures[kind] = cpu / n * 1e6
            per_cpu, per_wall = cpu / n * 1e6, wall / n * 1e6
            print(f"{kind:>6}: {n} calls, cpu {per_cpu:6.0f} us/call, wall {per_wall:6.0f} us/call")
        print(" ".join(f"{k}_cpu_us={v:.0f}" for k, v in figures.items()))
    finally:
        sender.shutdown()
        server.stop()


if __name__ == "__main__":
    main()
