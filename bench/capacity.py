"""The capacity model (docs/scale.md): what each operation costs, what AWS's quotas
allow, and for a few workloads the bottleneck, the sustained rate, publish -> last
delivery and the monthly bill at list prices. Arithmetic only: no AWS, no moto,
stdlib only.

    .venv/bin/python -m bench.capacity

Every constant says where it comes from: `measured` (bench/README.md, the local
stack), `code` (counted from chalicelib/), `quota` or `price` (AWS's published
figures, docs/scale.md names the pages) or `assumed` (no measurement: a stated
guess). Figures for the sharded design are projections of a design that is not
built.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields

# -- AWS quotas (defaults, us-east-1; most raisable on request) -------------------------
API_RPS = 10_000  # quota: API Gateway requests/s per account and Region, incl. @connections
NEW_CONNECTIONS_PER_S = 500  # quota: new WebSocket connections/s per account and Region
LIFETIME_S = 7_200  # quota: a WebSocket connection's lifetime
PARTITION_WCU = 1_000  # quota: DynamoDB write units/s per partition
PARTITION_RCU = 3_000  # quota: DynamoDB read units/s per partition
SQS_GROUP_CALLS = 300  # quota: SQS FIFO API calls/s per message group (high throughput)
SQS_QUEUE_MSGS = 70_000  # quota: SQS FIFO messages/s per queue, high-throughput mode
LAMBDA_CONCURRENCY = 1_000  # quota: concurrent executions per account

# -- list prices, us-east-1 (docs/scale.md#prices: pages and date) -----------------------
PRICE = {
    "apigw_messages": 1.00e-6,  # WebSocket message, per 32 KB unit, both directions
    "connection_minutes": 0.25e-6,
    "rest_requests": 3.50e-6,  # REST API (the control API), first 333 million a month
    "lambda_requests": 0.20e-6,
    "lambda_gb_s": 0.0000166667,
    "sqs_requests": 0.50e-6,  # FIFO, per 64 KB chunk
    "ddb_wru": 0.625e-6,  # on-demand write request unit
    "ddb_rru": 0.125e-6,  # on-demand read request unit
    "s3_put": 0.005e-3,
    "s3_get": 0.0004e-3,
}
MONTH_S = 30 * 86_400  # a month of 30 days

# -- the worker's delivery time (bench/README.md, "100,000-member channels") ----------
PART_S = 0.79  # measured: one 1,000-member part, 20 ms @connections latency, concurrency 32
POST_LATENCY_S = 0.020  # the stand-in's latency in that run; assumed for AWS's @connections
CONCURRENCY = 32  # code: SLIPWAY_FANOUT_CONCURRENCY's default
CPU_DELIVERIES_PER_S = 1_300  # measured: ~0.22 ms CPU a delivery, at 512 MB's ~0.29 vCPU
PAGE = 1_000  # code: SLIPWAY_FANOUT_PAGE's default

# -- latencies of single calls (bench/README.md names them; AWS's, not the local stack's)
SQS_TO_LAMBDA_S = 0.028  # published p50 of a FIFO SQS -> Lambda hop (bench/README.md)
DDB_WRITE_S = 0.005  # assumed: a single-item DynamoDB write
DDB_PAGE_S = 0.015  # assumed: a 1,000-row (~100 KB) DynamoDB query page, 10-20 ms
SQS_SEND_S = 0.010  # assumed: one SendMessageBatch call
BACKEND_S = 0.030  # assumed: the application backend's answer to a WebSocket-over-HTTP call
JOIN_S = 3 * DDB_WRITE_S + POST_LATENCY_S + 0.010  # assumed: head, history, updates, [6]

# -- sizes (code) ----------------------------------------------------------------------
MEMBER_ROW_BYTES = 100  # a member row: ~100 KB per 1,000-row page (bench/README.md)
ROW_OVERHEAD_BYTES = 150  # a history row's key, position and ids besides the message
PART_MESSAGE_BYTES = 100_000  # a Part job of 1,000 members ("a page fits a queue message")
APIGW_UNIT = 32 * 1024
SQS_CHUNK = 64 * 1024

# -- memory per function, MB (.chalice/config.json, prod stage) -------------------------
WORKER_MB = 512
WEBSOCKET_MB = 512
CONTROL_MB = 256


def fitted_fixed_s() -> float:
    """The part of PART_S that neither the latency nor the CPU explains."""
    return PART_S - _bound_s(PAGE)


def _bound_s(n: int) -> float:
    return max(math.ceil(n / CONCURRENCY) * POST_LATENCY_S, n / CPU_DELIVERIES_PER_S)


def deliver_s(n: int) -> float:
    """One invocation sending to `n` members: latency-bound (C posts in flight)
    or CPU-bound, whichever is slower, plus a fixed part fitted to PART_S."""
    return fitted_fixed_s() + _bound_s(n) if n else 0.0


@dataclass
class Usage:
    """What one operation (or a second of a workload) uses."""

    apigw_messages: float = 0.0  # billed WebSocket messages (32 KB units)
    posts: float = 0.0  # @connections calls: count against API_RPS
    api_requests: float = 0.0  # other API Gateway requests (control API, inbound frames)
    rest_requests: float = 0.0
    connection_minutes: float = 0.0
    new_connections: float = 0.0
    lambda_requests: float = 0.0
    lambda_gb_s: float = 0.0
    sqs_requests: float = 0.0  # billed (64 KB chunks)
    ddb_wru: float = 0.0
    ddb_rru: float = 0.0
    s3_put: float = 0.0
    s3_get: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def __mul__(self, k: float) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) * k for f in fields(self)})

    def monthly_cost(self) -> float:
        """`self` as a rate per second, priced over a month."""
        total = sum(float(getattr(self, name)) * price for name, price in PRICE.items())
        return total * MONTH_S


def _lambda(seconds: float, mb: int) -> Usage:
    return Usage(lambda_requests=1, lambda_gb_s=seconds * mb / 1024)


def _wru(nbytes: int) -> int:
    return max(1, math.ceil(nbytes / 1024))


def _rru_query(nbytes: int) -> float:
    """An eventually consistent query: half a unit per 4 KB."""
    return max(1, math.ceil(nbytes / 4096)) * 0.5


def publish(members: int, size: int, batch: int = 1) -> Usage:
    """One `POST /publish` item to a channel of `members`, a message of `size`
    bytes, history on (the default), today's design. `batch`: publishes per worker
    invocation (the event source takes up to 10 of a group at once)."""
    units = math.ceil(size / APIGW_UNIT) or 1
    chunks = math.ceil(size / SQS_CHUNK) or 1
    u = Usage(rest_requests=1, api_requests=1)
    u += _lambda(0.010 + SQS_SEND_S, CONTROL_MB)  # the control route: auth, one send
    u += Usage(sqs_requests=chunks + 2 / batch)  # send; the event source's receive + delete
    u += Usage(ddb_wru=1 + _wru(size + ROW_OVERHEAD_BYTES))  # history head, history row
    u += Usage(apigw_messages=members * units, posts=members)
    if members <= PAGE:
        u += Usage(ddb_rru=_rru_query(members * MEMBER_ROW_BYTES), ddb_wru=1)  # page; `delivered`
        u += _lambda(publish_serial_s(members), WORKER_MB) * (1 / batch)
        return u
    pages = math.ceil(members / PAGE)
    u += Usage(ddb_rru=pages * _rru_query(PAGE * MEMBER_ROW_BYTES))
    part_chunks = math.ceil(PART_MESSAGE_BYTES / SQS_CHUNK)
    u += Usage(sqs_requests=pages * (part_chunks + 2))  # each part: send, receive, delete
    u += _lambda(split_s(members), WORKER_MB)
    for k in range(pages):
        u += _lambda(deliver_s(min(PAGE, members - k * PAGE)), WORKER_MB)
    return u


def publish_sharded(members: int, size: int, shards: int, batch: int = 1) -> Usage:
    """Projected, not built: the same publish in the sharded design. The channel's
    job takes the position and writes the history, then queues one job a shard
    (10 to a call); each shard reads its own members and delivers to them."""
    shard = math.ceil(members / shards)
    units = math.ceil(size / APIGW_UNIT) or 1
    chunks = math.ceil(size / SQS_CHUNK) or 1
    u = Usage(rest_requests=1, api_requests=1)
    u += _lambda(0.010 + SQS_SEND_S, CONTROL_MB)
    u += Usage(sqs_requests=chunks + 2 / batch + math.ceil(shards / 10) + shards * 2 / batch)
    u += Usage(ddb_wru=1 + _wru(size + ROW_OVERHEAD_BYTES) + 1)  # head, row, `delivered`
    u += Usage(ddb_rru=shards * _rru_query(shard * MEMBER_ROW_BYTES))
    u += Usage(apigw_messages=members * units, posts=members)
    u += _lambda(sharded_serial_s(shards, batch), WORKER_MB) * (1 / batch)
    return u + _lambda(DDB_PAGE_S + deliver_s(shard), WORKER_MB) * (shards / batch)


def split_s(members: int) -> float:
    """Today, a channel over one page: the invocation that reads every page (one
    after another: each needs the last one's cursor) and queues one part a page."""
    pages = math.ceil(members / PAGE)
    return DDB_WRITE_S + pages * DDB_PAGE_S + math.ceil(pages / 2) * SQS_SEND_S


def publish_serial_s(members: int, batch: int = 1) -> float:
    """How long one publish holds its channel's FIFO group today."""
    hop = SQS_TO_LAMBDA_S / batch
    if members > PAGE:
        return hop + split_s(members)
    page = DDB_PAGE_S * max(members, 1) / PAGE
    return hop + DDB_WRITE_S + page + deliver_s(members) + DDB_WRITE_S


def sharded_serial_s(shards: int, batch: int = 1) -> float:
    """Projected, not built: the channel's own job only takes a position and
    queues one job a shard (10 to a SendMessageBatch)."""
    return SQS_TO_LAMBDA_S / batch + DDB_WRITE_S + math.ceil(shards / 10) * SQS_SEND_S


def connect(channels: int, resume: bool) -> Usage:
    """A connection opened: the backend's OPEN, the connection row and its listing
    (one transaction, 2 units an item), a subscribe a channel (a transaction of
    the connection row, the member row and the channel counter); with resume, a
    Join job a channel (queued in the channel's group, run by the worker: head
    read, history query, two updates, the `[6]` frame)."""
    u = Usage(new_connections=1, api_requests=1, ddb_wru=2 * 2 + channels * 3 * 2)
    u += _lambda(
        BACKEND_S + (1 + channels) * DDB_WRITE_S + (SQS_SEND_S if resume else 0), WEBSOCKET_MB
    )
    if resume:
        u += Usage(sqs_requests=3 * channels, ddb_rru=1.5 * channels, ddb_wru=2 * channels)
        u += Usage(apigw_messages=channels, posts=channels)
        u += _lambda(JOIN_S, WORKER_MB) * (channels / 10)  # joins run 10 to a batch
    return u


def disconnect(channels: int) -> Usage:
    """A connection closed: the backend told, the row read, then one transaction
    deletes the connection and listing rows and each member row and counts each
    channel down."""
    u = Usage(ddb_rru=1, ddb_wru=2 * (2 + 2 * channels))
    return u + _lambda(BACKEND_S + 2 * DDB_WRITE_S, WEBSOCKET_MB)


def message_in(size: int) -> Usage:
    """A client's frame to the backend ($default, unordered): the connection row
    read, the backend called; its reply's frames are not counted here."""
    u = Usage(apigw_messages=math.ceil(size / APIGW_UNIT) or 1, api_requests=1, ddb_rru=1)
    return u + _lambda(BACKEND_S + DDB_WRITE_S, WEBSOCKET_MB)


# -- workloads -------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    channels: int
    members: int  # per channel
    rate: float  # publishes/s per channel, offered
    size: int = 1024  # bytes per message
    shards: int = 0  # 0: today's design; else the sharded design, projected
    rotate: bool = True  # clients reconnect before the 2-hour cut (one channel each)
    api_rps: int = API_RPS  # the account's API Gateway quota (raised on request)


@dataclass
class Result:
    workload: Workload
    limits: dict[str, float]  # publishes/s per channel that each limit allows
    bottleneck: str
    sustained: float  # publishes/s per channel
    latency_s: float  # publish -> last delivery, unloaded
    carried: Usage  # per second, at min(offered, sustained)
    monthly: float


def evaluate(w: Workload) -> Result:
    n, c = w.members, w.channels
    batch = 10 if w.rate * publish_serial_s(n) > 1 else 1  # a backlog fills batches
    per_pub = publish_sharded(n, w.size, w.shards, batch) if w.shards else publish(n, w.size, batch)
    connections = n * c
    rotation = (
        (connect(1, True) + disconnect(1)) * (connections / LIFETIME_S) if w.rotate else Usage()
    )
    background = Usage(connection_minutes=connections / 60) + rotation
    api_left = w.api_rps - background.api_requests - background.new_connections - background.posts
    limits = {
        "API Gateway req/s (account)": api_left / (c * (per_pub.posts + per_pub.api_requests)),
        "DynamoDB chanmeta#<c> partition (head + delivered)": PARTITION_WCU / 2,
        "DynamoDB hist#<c> partition (history rows)": PARTITION_WCU
        / _wru(w.size + ROW_OVERHEAD_BYTES),
        "SQS 300 calls/s per group chan#<c>": float(SQS_GROUP_CALLS),
        "SQS 70,000 msgs/s per queue": SQS_QUEUE_MSGS / (c * (1 + max(0, math.ceil(n / PAGE) - 1))),
    }
    if w.shards:
        shard = math.ceil(n / w.shards)
        limits["FIFO group chan#<c>: position + queue shards (projected)"] = 1 / sharded_serial_s(
            w.shards, batch
        )
        limits["FIFO group per shard (projected)"] = 1 / (
            SQS_TO_LAMBDA_S / batch + deliver_s(shard)
        )
        worker_s = sharded_serial_s(w.shards, batch) + w.shards * deliver_s(shard)
        latency = 2 * SQS_TO_LAMBDA_S + sharded_serial_s(w.shards) + deliver_s(shard)
    else:
        limits["FIFO group chan#<c>: one invocation at a time"] = 1 / publish_serial_s(n, batch)
        if n > PAGE:
            limits["FIFO group per part chan#<c>#p<k>"] = 1 / (
                SQS_TO_LAMBDA_S / batch + deliver_s(PAGE)
            )
            worker_s = split_s(n) + math.ceil(n / PAGE) * deliver_s(PAGE)
            latency = 2 * SQS_TO_LAMBDA_S + split_s(n) + deliver_s(PAGE)
        else:
            worker_s = publish_serial_s(n, batch)
            latency = publish_serial_s(n)
    limits["Lambda 1,000 concurrent (account)"] = LAMBDA_CONCURRENCY / (c * worker_s)
    latency = max(latency, n / api_left)  # the account's delivery budget, for one publish
    bottleneck = min(limits, key=lambda k: limits[k])
    sustained = limits[bottleneck]
    carried = per_pub * (c * min(w.rate, sustained)) + background
    return Result(w, limits, bottleneck, sustained, latency, carried, carried.monthly_cost())


WORKLOADS = [
    Workload("1,000-member room, 10/s, today", 1, 1_000, 10.0),
    Workload("1,000-member room, 10/s, 8 shards", 1, 1_000, 10.0, shards=8),
    Workload("1,000-member room, 10/s, 16 shards", 1, 1_000, 10.0, shards=16),
    Workload("100,000 members, 1/s, today", 1, 100_000, 1.0),
    Workload("100,000 members, 1/s, 100 shards", 1, 100_000, 1.0, shards=100),
    Workload("1M conns, 100,000 ch x 10, 1/min each", 100_000, 10, 1 / 60),
    Workload("same, API quota raised to 20,000/s", 100_000, 10, 1 / 60, api_rps=20_000),
]


@dataclass
class Storm:
    """`clients` dropped at once come back, each resubscribing to one channel with
    resume: either all the same channel, or spread over many."""

    clients: int
    same_channel: bool

    def figures(self) -> dict[str, float]:
        floor = self.clients / NEW_CONNECTIONS_PER_S
        # docs/resume.md#reconnect-storms (bench/reconnect_storm.py's model, full
        # jitter): the last of 100,000 back after 218 s, 11.5 attempts each.
        last = floor * 218 / 200
        out = {"connect floor s": floor, "all connected s (jitter model)": last}
        rate = float(NEW_CONNECTIONS_PER_S)
        if self.same_channel:
            # The member rows chan#<c> share one partition key (the counter is
            # sharded over 16 keys, COUNT_SHARDS: ~8,000/s), 2 units a transactional item.
            counter = PARTITION_WCU / 2
            join_run = 10 / (SQS_TO_LAMBDA_S + JOIN_S)  # one batch of 10 at a time
            out["member rows chan#c: subscribes/s"] = counter
            out["SQS group: Join sends/s"] = float(SQS_GROUP_CALLS)
            out["channel group: Joins run/s"] = join_run
            rate = min(rate, counter, SQS_GROUP_CALLS, join_run)
        out["resubscribed + recovered s"] = max(last, self.clients / rate)
        cost = (connect(1, True) * self.clients).monthly_cost() / MONTH_S
        out["cost of the storm $"] = cost
        return out


def operations() -> list[tuple[str, Usage]]:
    """Each operation's usage, as docs/scale.md tabulates it."""
    return [
        ("publish, 10 members, 1 KB", publish(10, 1024)),
        ("publish, 1,000 members, 1 KB", publish(1_000, 1024)),
        ("publish, 100,000 members, 1 KB (split)", publish(100_000, 1024)),
        ("publish, 1,000 members, 16 shards (projected)", publish_sharded(1_000, 1024, 16)),
        ("connect, 1 channel, resume", connect(1, True)),
        ("message in, 1 KB", message_in(1024)),
        ("disconnect, 1 channel", disconnect(1)),
    ]


def ops_table() -> str:
    lines = [
        "| operation | Lambda invocations | Lambda GB-s | DynamoDB WRU | DynamoDB RRU "
        "| SQS requests | posts | API Gateway messages |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, u in operations():
        lines.append(
            f"| {name} | {u.lambda_requests:.3g} | {u.lambda_gb_s:.3g} | {u.ddb_wru:.3g} "
            f"| {u.ddb_rru:.3g} | {u.sqs_requests:.3g} | {u.posts:,.0f} | {u.apigw_messages:,.0f} |"
        )
    return "\n".join(lines)


def table() -> str:
    lines = [
        "| workload | bottleneck | offered /s/ch | sustained /s/ch | publish -> last delivery "
        "| deliveries/s | next limit | monthly $ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in WORKLOADS:
        r = evaluate(w)
        ok = w.rate <= r.sustained
        latency = f"{r.latency_s:.2f} s" if ok else f"unbounded ({r.latency_s:.2f} s alone)"
        ranked = sorted(r.limits, key=lambda k: r.limits[k])
        after = f"{ranked[1]} ({r.limits[ranked[1]]:.3g})"
        lines.append(
            f"| {w.name} | {r.bottleneck} | {w.rate:.3g} | {r.sustained:.3g} | {latency} "
            f"| {r.carried.posts:,.0f} | {after} | {r.monthly:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limits", action="store_true", help="every limit of every workload")
    parser.add_argument("--ops", action="store_true", help="each operation's usage")
    parser.add_argument(
        "--workload",
        nargs=3,
        type=float,
        metavar=("CHANNELS", "MEMBERS", "RATE"),
        help="add a workload: channels, members each, publishes/s per channel",
    )
    parser.add_argument("--size", type=int, default=1024, help="its message size, bytes")
    parser.add_argument("--shards", type=int, default=0, help="its shards (projected design)")
    parser.add_argument("--api-rps", type=int, default=API_RPS, help="its API Gateway quota")
    args = parser.parse_args()
    if args.workload:
        channels, members, rate = args.workload
        name = f"{channels:,.0f} ch x {members:,.0f}, {rate:g}/s, {args.size:,} B"
        name += f", {args.shards} shards (projected)" if args.shards else ", today"
        WORKLOADS.append(
            Workload(
                name, int(channels), int(members), rate, args.size, args.shards, True, args.api_rps
            )
        )
    if args.ops:
        print(ops_table())
    print(
        f"delivery time fitted to {PART_S} s per 1,000 members"
        f" (fixed part {fitted_fixed_s() * 1000:.0f} ms)"
    )
    print(table())
    if args.limits:
        for w in WORKLOADS:
            r = evaluate(w)
            print(f"\n{w.name}:")
            for name, value in sorted(r.limits.items(), key=lambda kv: kv[1]):
                print(f"  {value:12.3f} publishes/s per channel  {name}")
            for name, value in vars(r.carried).items():
                if value:
                    dollars = value * PRICE.get(name, 0.0) * MONTH_S
                    print(
                        f"  {value:14,.2f}/s  {name}"
                        + (f"  ${dollars:,.0f}/month" if dollars else "")
                    )
    for storm in (Storm(100_000, True), Storm(100_000, False)):
        where = "one channel" if storm.same_channel else "many channels"
        figures = ", ".join(f"{k} {v:,.1f}" for k, v in storm.figures().items())
        print(f"storm, 100,000 clients, {where}: {figures}")
    today, sharded = evaluate(WORKLOADS[0]), evaluate(WORKLOADS[2])
    print(
        f"room_today={today.sustained:.2f} room_sharded_projected={sharded.sustained:.2f} "
        f"bottleneck_today={today.bottleneck!r}"
    )


if __name__ == "__main__":
    main()
