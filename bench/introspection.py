"""What the channel introspection routes cost in DynamoDB read units (issue 15).

Seeds one channel of N members (member rows, connection rows and the all-connections
index rows, with BatchWriteItem) in moto, in process, then reads through the store
as the control routes do: the subscriber count (`GET /channels/{c}`), one page of
the channel's connections and one page of every connection. Read units are
computed as DynamoDB charges them (item sizes rounded up to 4 KB: a strongly
consistent read is 1 unit per 4 KB, an eventually consistent one half), from the
items each call returned; moto's own ConsumedCapacity is printed beside when it
gives one. The last line is one machine-readable summary.

    .venv/bin/python -m bench.introspection --members 100000 --page 100
    .venv/bin/python -m bench.introspection --members 2000   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TABLE = "bench-introspection"
CHANNEL = "big"


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (strings and numbers)."""
    total = 0
    for name, value in item.items():
        total += len(name.encode())
        ((kind, raw),) = value.items()
        if kind in ("S", "N"):
            total += len(str(raw).encode())
        elif kind == "BOOL":
            total += 1
        elif kind == "M":
            total += 3 + item_size(raw)
        elif kind == "SS":
            total += 3 + sum(len(s.encode()) for s in raw)
        else:
            total += len(json.dumps(raw))
    return total


class Metered:
    """A DynamoDB client that counts the read units of what it returns."""

    def __init__(self, client: Any) -> None:
        self._c = client
        self.exceptions = client.exceptions
        self.reset()

    def reset(self) -> None:
        self.units = 0.0
        self.moto_units = 0.0
        self.calls = 0
        self.items = 0

    def _factor(self, kwargs: dict[str, Any]) -> float:
        return 1.0 if kwargs.get("ConsistentRead") else 0.5

    def get_item(self, **kwargs: Any) -> Any:
        reply = self._c.get_item(ReturnConsumedCapacity="TOTAL", **kwargs)
        size = item_size(reply.get("Item", {}))
        self.units += max(1, math.ceil(size / 4096)) * self._factor(kwargs)
        return self._count(reply, 1 if "Item" in reply else 0)

    def query(self, **kwargs: Any) -> Any:
        reply = self._c.query(ReturnConsumedCapacity="TOTAL", **kwargs)
        size = sum(item_size(i) for i in reply.get("Items", []))
        self.units += max(1, math.ceil(size / 4096)) * self._factor(kwargs)
        return self._count(reply, len(reply.get("Items", [])))

    def batch_get_item(self, **kwargs: Any) -> Any:
        reply = self._c.batch_get_item(ReturnConsumedCapacity="TOTAL", **kwargs)
        got = [i for items in reply.get("Responses", {}).values() for i in items]
        asked = sum(len(r["Keys"]) for r in kwargs["RequestItems"].values())
        # A key with no item still costs the least a read does (½ unit).
        self.units += sum(max(1, math.ceil(item_size(i) / 4096)) * 0.5 for i in got)
        self.units += (asked - len(got)) * 0.5
        return self._count(reply, len(got))

    def _count(self, reply: Any, items: int) -> Any:
        self.calls += 1
        self.items += items
        used = reply.get("ConsumedCapacity")
        for entry in used if isinstance(used, list) else [used] if used else []:
            self.moto_units += float(entry.get("CapacityUnits", 0))
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)


def seed(db: Any, members: int) -> list[str]:
    from chalicelib.aws import table
    from chalicelib.grip.introspection import shard_of

    ids = [f"c{k:07d}=" for k in range(members)]
    expires = {"N": str(int(time.time()) + 7800)}
    endpoint = "https://abc.execute-api.us-east-1.amazonaws.com/dev"
    batch: list[dict[str, Any]] = []

    def put(item: dict[str, Any]) -> None:
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25:
            flush()

    def flush() -> None:
        request: dict[str, Any] = {TABLE: list(batch)}
        batch.clear()
        while request:
            request = db.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    for cid in ids:
        put(
            {
                "pk": {"S": f"conn#{cid}"},
                "sk": {"S": "conn"},
                "endpoint": {"S": endpoint},
                "headers": {"S": json.dumps({"User-Agent": "bench", "Origin": "https://x"})},
                "query": {"S": "room=big"},
                "meta": {"M": {"user": {"S": f"user-{cid}"}}},
                "detached": {"BOOL": False},
                "envelope": {"BOOL": False},
                "created_at": {"N": str(int(time.time() * 1000))},
                "channels": {"SS": [CHANNEL]},
                "expires_at": expires,
            }
        )
        put({"pk": {"S": f"chan#{CHANNEL}"}, "sk": {"S": cid}, "endpoint": {"S": endpoint},
             "envelope": {"BOOL": False}, "expires_at": expires})  # fmt: skip
        put({"pk": {"S": f"conns#{shard_of(cid)}"}, "sk": {"S": cid}, "expires_at": expires})
    counted: dict[int, int] = {}
    for cid in ids:
        shard = table.count_shard_of(cid)
        counted[shard] = counted.get(shard, 0) + 1
    for shard, n in counted.items():
        key = table.count_key(CHANNEL, shard)
        put({**key, "n": {"N": str(n)}, "v": {"N": str(n)}, "expires_at": expires})
    if batch:
        flush()
    return ids


def run(members: int, page: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from chalicelib.aws.store import Store
    from slipway_dev import aws

    with mock_aws():
        raw = boto3.client("dynamodb", region_name="us-east-1")
        aws.ensure_table(raw, TABLE)
        started = time.monotonic()
        seed(raw, members)
        seeded = time.monotonic() - started
        db = Metered(raw)
        store = Store(db, TABLE, 7800, 20)
        out: dict[str, Any] = {"members": members, "page": page, "seed_s": round(seeded, 1)}

        db.reset()
        assert store.count(CHANNEL) == members
        out["count"] = {"units": db.units, "items": db.items, "calls": db.calls}

        db.reset()
        listed, _ = store.members(CHANNEL, limit=page)
        conns = store.connections([m.connection_id for m in listed])
        assert len(conns) == min(page, members)
        out["channel_page"] = {"units": db.units, "items": db.items, "calls": db.calls}

        db.reset()
        ids, _ = store.connection_ids(0, None, page)
        store.connections(ids)
        out["all_page"] = {"units": db.units, "items": db.items, "calls": db.calls}
        out["moto_reports_capacity"] = db.moto_units > 0
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[2000])
    parser.add_argument("--page", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    results = []
    for n in args.members:
        r = run(n, args.page)
        results.append(r)
        print(f"members {n:>7}: seeded in {r['seed_s']} s")
        for what, label in (
            ("count", "count (GET /channels/{c})"),
            ("channel_page", f"channel page of {args.page}"),
            ("all_page", f"all-connections page of {args.page}"),
        ):
            f = r[what]
            print(
                f"  {label:<34} {f['units']:>7.1f} read units, "
                f"{f['items']:>5} items, {f['calls']} calls"
            )
    summary = {
        "bench": "introspection",
        "results": [
            {
                "members": r["members"],
                "count_units": r["count"]["units"],
                "count_items": r["count"]["items"],
                "channel_page_units": r["channel_page"]["units"],
                "all_page_units": r["all_page"]["units"],
            }
            for r in results
        ],
    }
    print("summary " + json.dumps(summary, separators=(",", ":")))


if __name__ == "__main__":
    main()
