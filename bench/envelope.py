"""A large publish to envelope clients: slipway's one S3 object per publish
against one object per recipient, same run.

Seeds N envelope-mode members of one channel (moto, in process), publishes one
1 MB message through the control route, drains the queue through the worker
(stand-in @connections API from bench/fanout.py, its own process) and counts
what was written to S3 and posted. The baseline does what a first attempt does:
for each recipient, store the message and post that recipient its own `[4]`
frame. The last line is one machine-readable summary.

    .venv/bin/python -m bench.envelope --members 50 500 --size-kb 1024
"""

from __future__ import annotations

import argparse
import json
import os
import uuid

from bench.fanout import (
    Connections,
    Requests,
    configure,
    count_requests,
    create_resources,
    run_slipway,
    seed,
    start_aws,
    timed,
)

S3_WRITES = ("PutObject",)


def run_per_recipient(channel: str, text: str) -> None:
    from chalicelib import executor, services
    from chalicelib.grip import effects as fx
    from chalicelib.grip.model import Member
    from chalicelib.grip.payload import Payload

    svc = services.current()
    cursor = None
    while True:
        members, cursor = svc.store.members(channel, start=cursor)
        for m in members:
            to = Member(m.connection_id, m.endpoint, envelope=True)
            # a fresh message for each recipient, in a run of its own: one object each
            message = fx.Message(Payload.of_text(text))
            executor.execute(svc, [fx.Send(to, message)], strict=True)
        if cursor is None:
            return


def measure(name, fn, connections: Connections, requests: Requests) -> dict:
    elapsed, delivered, calls, _ = timed(fn, connections, requests)
    return {
        "name": name,
        "seconds": elapsed,
        "delivered": delivered,
        "s3_writes": requests.total("s3", S3_WRITES),
        "s3_requests": requests.total("s3"),
        "posts": calls.get("POST", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--size-kb", type=int, default=1024)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    start_aws()
    connections = Connections(args.latency_ms / 1000)
    import boto3

    from chalicelib import services
    from slipway_dev import aws

    requests = count_requests()
    text = ("0123456789abcdef" * 64 * args.size_kb)[: args.size_kb * 1024]
    summary = ""
    for n in args.members:
        tag = uuid.uuid4().hex[:8]
        table, queue = create_resources(tag)
        bucket = f"bench-{tag}"
        aws.ensure_bucket(boto3.client("s3"), bucket)
        os.environ["SLIPWAY_BUCKET"] = bucket
        configure(table, queue, connections.url, args.concurrency)
        seed(table, "bench", n, connections.url, envelope=True)
        seed(table, "naive", n, connections.url, envelope=True)
        services.current()  # clients built outside the timed runs, as in a warm container
        body = json.dumps({"items": [{"channel": "bench", "ws-message": {"content": text}}]})
        ours = measure(
            "slipway", lambda q=queue, b=body: run_slipway(q, "bench", b), connections, requests
        )
        naive = measure(
            "per-recipient", lambda: run_per_recipient("naive", text), connections, requests
        )
        assert ours["delivered"] == naive["delivered"] == n, (ours, naive)
        for r in (ours, naive):
            print(
                f"{r['name']:>14} members={n:>5} {r['seconds']:7.2f}s "
                f"s3_writes={r['s3_writes']:>5} "
                f"s3_bytes_written={r['s3_writes'] * len(text) / 1e6:8.1f} MB "
                f"s3_requests={r['s3_requests']:>5} posts={r['posts']}"
            )
        summary = (
            f"members={n} size_kb={args.size_kb} s3_writes={ours['s3_writes']} "
            f"baseline_s3_writes={naive['s3_writes']} "
            f"seconds={ours['seconds']:.2f} baseline_seconds={naive['seconds']:.2f} "
            f"speedup={naive['seconds'] / ours['seconds']:.1f}"
        )
    connections.stop()
    print(summary)


if __name__ == "__main__":
    main()
