"""Many connections subscribing to one channel at once (issue 26): no hot item.

Starts moto on 127.0.0.1 (slipway_dev's server, one request at a time), opens N
connection rows, then subscribes every one of them to one channel from parallel
threads through the store, as the subscribe path does; then subscribes a tenth
of them again (a repeat is counted once) and reads the count as
`GET /channels/{c}` does. It checks the count is N, and prints the rate, how the
counter writes spread over the counter items (each under its own partition key),
and what that spread means in DynamoDB: one item takes at most 1,000 write units
a second and a transactional write of a counter costs 2, so the hottest counter
item bounds the channel's subscribe rate at 500 × N / (its writes) a second.

moto serialises every request, so the rate printed is moto's, not DynamoDB's:
the spread is the figure that carries over. The last line is one
machine-readable summary.

    .venv/bin/python -m bench.subscribes --subscribes 2000 --workers 16
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TABLE = "bench-subscribes"
CHANNEL = "room"
EP = "http://127.0.0.1:1/dev"
ITEM_WRITES_PER_SECOND = 500  # 1,000 write units an item, 2 a transactional write


def run(subscribes: int, workers: int) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    from chalicelib.aws.store import Store
    from chalicelib.grip.limits import COUNT_SHARDS
    from chalicelib.grip.model import Connection
    from slipway_dev import aws
    from slipway_dev.moto_server import MotoServer
    from slipway_dev.stack import aws_environment

    server = MotoServer()
    url = server.start()
    try:
        aws_environment(url, ours=True)
        db = boto3.client("dynamodb", config=Config(max_pool_connections=workers * 2))
        aws.ensure_table(db, TABLE)
        store = Store(db, TABLE, ttl_seconds=7800, max_channels=20)
        ids = [f"bench{k:05d}=" for k in range(subscribes)]
        with ThreadPoolExecutor(workers) as pool:
            list(
                pool.map(
                    lambda cid: store.put_connection(
                        Connection(id=cid, endpoint=EP, created_at=int(time.time() * 1000))
                    ),
                    ids,
                )
            )
            started = time.monotonic()
            joined = list(pool.map(lambda cid: store.subscribe(cid, CHANNEL, EP), ids))
            elapsed = time.monotonic() - started
            again = list(pool.map(lambda cid: store.subscribe(cid, CHANNEL, EP), ids[::10]))
        count = store.count(CHANNEL)
        rows = db.scan(
            TableName=TABLE,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": "chancount#"}},
        )["Items"]
        writes = sorted((int(r["v"]["N"]) for r in rows), reverse=True)
        assert all(joined) and not any(again), "a subscribe counted twice or not at all"
        assert count == subscribes, f"count {count} != {subscribes}"
        return {
            "subscribes": subscribes,
            "workers": workers,
            "seconds": round(elapsed, 2),
            "rate": round(subscribes / elapsed),
            "count": count,
            "counter_items": len(rows),
            "shards": COUNT_SHARDS,
            "hottest_item_writes": writes[0],
            "item_writes": writes,
            "ceiling_single_counter": ITEM_WRITES_PER_SECOND,
            "ceiling_sharded": round(ITEM_WRITES_PER_SECOND * subscribes / writes[0]),
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribes", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    r = run(args.subscribes, args.workers)
    print(
        f"{r['subscribes']} subscribes to one channel from {r['workers']} threads: "
        f"{r['seconds']} s, {r['rate']}/s (moto), final count {r['count']}"
    )
    print(f"counter writes over {r['counter_items']} items (of {r['shards']}): {r['item_writes']}")
    print(
        f"DynamoDB bound on this channel's subscribes from its counter: "
        f"~{r['ceiling_sharded']}/s (one counter item: ~{r['ceiling_single_counter']}/s)"
    )
    summary = {k: v for k, v in r.items() if k != "item_writes"}
    print("summary " + json.dumps({"bench": "subscribes", **summary}, separators=(",", ":")))


if __name__ == "__main__":
    main()
