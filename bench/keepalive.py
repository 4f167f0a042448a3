"""Keep-alive at scale: N connections with keep-alive, for a few periods, through
slipway's scheduler and worker.

Seeds N connection rows with an interval keep-alive in DynamoDB (moto, in
process), their timers started evenly over one period, as connections that
arrived over time. Runs the scheduled function's loop (chalicelib/keepalive.py)
and the SQS worker over the real queue, against a stand-in @connections API
with injected latency (bench/fanout.py's, in its own process) that records when
each keep-alive arrived. Prints how many were sent against how many were due,
how late and how early they came against their due time, the AWS requests per
keep-alive, and the monthly cost projected from those figures. The last line is
one machine-readable summary.

    .venv/bin/python -m bench.keepalive --connections 10000 --timeout 60 --periods 2
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
import uuid

from bench.fanout import Connections, count_requests, create_resources, start_aws

# AWS list prices (us-east-1, on demand), per unit: the projection's inputs.
PRICES = {
    "apigw_message": 1.00 / 1e6,  # WebSocket messages, first billion a month
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000166667,
    "sqs_fifo_request": 0.50 / 1e6,
    "ddb_read_unit": 0.125 / 1e6,  # on-demand read request unit
    "ddb_write_unit": 0.625 / 1e6,
}
MONTH = 30 * 86400


def seed(table: str, endpoint: str, count: int, timeout: int, base: int) -> dict[str, int]:
    """Connections whose keep-alive timers started over the period before `base`
    (a multiple of the timeout): one second's share is due every second after it.
    Returns each one's `since`."""
    import boto3

    from chalicelib.aws.table import SLOT_ATTRIBUTE, TIMEOUTS_KEY, conn_key
    from chalicelib.grip import keepalive as ka
    from chalicelib.grip.payload import Payload

    ddb = boto3.client("dynamodb")
    since: dict[str, int] = {}
    rows = []
    for i in range(count):
        cid = f"{uuid.uuid4().hex[:12]}="
        settings = ka.started(
            base - timeout + i % timeout, Payload.of_text("ka"), timeout, "interval"
        )
        since[cid] = settings.since
        rows.append(
            {
                **conn_key(cid),
                "endpoint": {"S": endpoint},
                "envelope": {"BOOL": False},
                "keep_alive": {"S": json.dumps(settings.to_fields())},
                SLOT_ATTRIBUTE: {"S": settings.slot()},
                "expires_at": {"N": str(base + 7800)},
            }
        )
    for first in range(0, count, 25):
        batch = [{"PutRequest": {"Item": r}} for r in rows[first : first + 25]]
        ddb.batch_write_item(RequestItems={table: batch})
    ddb.update_item(
        TableName=table,
        Key=TIMEOUTS_KEY,
        UpdateExpression="ADD timeouts :t",
        ExpressionAttributeValues={":t": {"NS": [str(timeout)]}},
    )
    return since


def drain_queue(queue_url: str, until: threading.Event, pollers: int) -> list[int]:
    """Lambda's SQS event source, as bench/fanout.py runs it: batches of 10 to the
    worker from `pollers` threads until `until` is set and the queue is empty.
    Returns the number of invocations of each poller (a receive that found
    messages: the empty ones are this stand-in's short polling, where Lambda
    long-polls)."""
    import boto3

    from chalicelib import fanout

    invocations = [0] * pollers

    def poll(k: int) -> None:
        sqs = boto3.client("sqs")
        while True:
            got = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                if until.is_set():
                    return
                time.sleep(0.02)
                continue
            records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in got]
            failed = {
                f["itemIdentifier"] for f in fanout.handle_batch(records)["batchItemFailures"]
            }
            invocations[k] += 1
            done = [m for m in got if m["MessageId"] not in failed]
            if done:
                sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done)
                    ],
                )

    threads = [threading.Thread(target=poll, args=(k,)) for k in range(pollers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return invocations


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument(
        "--timeout", type=int, default=60, help="keep-alive timeout, seconds (moto: see README)"
    )
    parser.add_argument("--periods", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pollers", type=int, default=4, help="worker invocations at once")
    args = parser.parse_args()

    import os

    from chalicelib import keepalive, services, settings

    start_aws()
    connections = Connections(args.latency_ms / 1000)
    table, queue = create_resources(uuid.uuid4().hex[:8])
    os.environ.update(
        {
            "TARGET_URL": "http://127.0.0.1:9/unused",
            "SLIPWAY_KEY": "bench-key",
            "SLIPWAY_TABLE": table,
            "SLIPWAY_QUEUE_URL": queue,
            "SLIPWAY_CONNECTIONS_ENDPOINT": connections.url,
            "SLIPWAY_FANOUT_CONCURRENCY": str(args.concurrency),
        }
    )
    settings.current.cache_clear()
    services.current.cache_clear()
    svc = services.current()
    svc.store, svc.queue, svc.sockets  # noqa: B018 -- built before the clock starts

    base = int(time.time()) // args.timeout * args.timeout
    since = seed(table, connections.url, args.connections, args.timeout, base)
    # the first whole period after seeding, two seconds on
    start = math.ceil((time.time() + 2) / args.timeout) * args.timeout
    requests = count_requests()
    services.current.cache_clear()  # clients built again, counted
    svc = services.current()
    connections.arrivals()
    stop_at = start + args.periods * args.timeout
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: result.update(invocations=drain_queue(queue, done, args.pollers))
    )
    result: dict[str, list[int]] = {}
    worker.start()
    # EventBridge: one invocation a PERIOD, each window overlapping the next; each
    # stops after handling the second `stop_at` (handled LEAD before it).
    ka_lead = 0.5
    counts: list[int] = []
    invocations = []
    for window in range(start, stop_at, keepalive.PERIOD):
        if window > start:
            time.sleep(max(0.0, window - time.time()))
        run = threading.Thread(
            target=lambda w=window: counts.append(keepalive.run(svc, w, stop_at + ka_lead))
        )
        run.start()
        invocations.append(run)
    for run in invocations:
        run.join()
    queued = sum(counts)
    done.set()
    worker.join()
    arrivals = connections.arrivals()
    connections.stop()

    # Each arrival against the due time it answers: since + k * timeout, k >= 1.
    timeout = args.timeout
    lateness = []
    for cid, when in arrivals:
        k = max(1, round((when - since[cid]) / timeout))
        lateness.append(when - (since[cid] + k * timeout))
    expected = sum(
        1
        for s in since.values()
        for k in range(1, (stop_at - s) // timeout + 1)
        if start <= s + k * timeout <= stop_at  # a second is handled LEAD before it
    )
    sent = len(arrivals)
    ddb = requests.total("dynamodb")
    worker_invocations = sum(result["invocations"])
    # sends and deletes, and the receives that found messages (one per invocation)
    sqs = requests.total("sqs", ("SendMessageBatch", "DeleteMessageBatch")) + worker_invocations
    scheduler_invocations = len(invocations)
    lambdas = worker_invocations + scheduler_invocations
    late_p99 = percentile(lateness, 99) * 1000
    early_max = max((-x for x in lateness), default=0.0) * 1000
    print(
        f"connections={args.connections} timeout={timeout}s periods={args.periods} "
        f"latency_ms={args.latency_ms:g}: queued {queued}, sent {sent} of {expected} due"
    )
    print(
        f"lateness against the due time: p50 {percentile(lateness, 50) * 1000:.0f} ms, "
        f"p99 {late_p99:.0f} ms, max {max(lateness, default=0) * 1000:.0f} ms; "
        f"earliest {early_max:.0f} ms early (allowed: 1000 early, 2000 late)"
    )
    per = max(sent, 1)
    print(
        f"per keep-alive: {ddb / per:.4f} DynamoDB requests, {sqs / per:.4f} SQS requests, "
        f"{lambdas / per:.5f} Lambda invocations ({worker_invocations} worker, "
        f"{scheduler_invocations:g} scheduler)"
    )

    # 1,000,000 connections, timeout 300 s, for a month: the same ratios, with the
    # index read in 4 KB units (~16 connections a unit) and the scheduler's own
    # requests (1 registry read, 1 tick claim, 1 query a second) on top.
    keepalives = 1_000_000 * MONTH / 300
    seconds = MONTH
    cost = {
        "API Gateway messages": keepalives * PRICES["apigw_message"],
        "Lambda requests": (keepalives * worker_invocations / per + seconds / 60)
        * PRICES["lambda_request"],
        # worker: ~1 ms of a 512 MB function per keep-alive sent (measured here: sending
        # is ~0.3 ms of CPU); scheduler: 80 s of 256 MB a minute
        "Lambda duration": (keepalives * 0.001 * 0.5 + seconds / 60 * 80 * 0.25)
        * PRICES["lambda_gb_second"],
        "SQS": keepalives * sqs / per * PRICES["sqs_fifo_request"],
        "DynamoDB reads": (keepalives / 16 / 2 + 2 * seconds) * PRICES["ddb_read_unit"],
        "DynamoDB writes": seconds * PRICES["ddb_write_unit"],
    }
    for what, usd in cost.items():
        print(f"  projected {what}: ${usd:,.0f}/month")
    total = sum(cost.values())
    print(
        f"projected at 1,000,000 connections, 300 s timeout: ${total:,.0f}/month, of which "
        f"${total - cost['API Gateway messages']:,.0f} is slipway's own (the rest is API "
        f"Gateway's per-message price for {keepalives / 1e9:.2f} billion keep-alives)"
    )
    print(
        f"connections={args.connections} sent={sent} expected={expected} "
        f"late_p99_ms={late_p99:.0f} early_max_ms={early_max:.0f} "
        f"ddb_per_keepalive={ddb / per:.4f} lambda_per_keepalive={lambdas / per:.5f} "
        f"sqs_per_keepalive={sqs / per:.4f} monthly_usd_1m_300s={total:.0f}"
    )


if __name__ == "__main__":
    main()
