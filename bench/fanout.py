"""Fan-out throughput: slipway's worker against a naive sequential loop, same run.

Seeds N members of one channel in DynamoDB (moto, in process), points the worker
at a local @connections API (its own process) that answers after an injected
latency, publishes one message through the control route, runs the worker over
the queue as Lambda's event source would, and prints deliveries per second, the
limit (concurrency / latency), @connections calls per delivery, and DynamoDB and
SQS requests per publish. The last line is one machine-readable summary.

`deliveries/s` counts from the first @connections call to the last answer: the
sending itself. `end-to-end/s` counts from the publish request to the end, so it
also pays for moto, which is far slower than DynamoDB and SQS (docs/local-stack.md).

    .venv/bin/python -m bench.fanout --members 1000 10000 --latency-ms 20
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# -- a stand-in @connections API, in its own process so it does not share our GIL --
#
# A lean HTTP/1.1 server, one thread per keep-alive connection: it parses just
# enough, sleeps the injected latency (time.sleep is precise to ~0.1 ms, where an
# event loop's timers round up to the millisecond) and answers 200, so the
# figures measure slipway's worker rather than a Python web server.


def _serve_connections(latency: float, port_out, counts_in, counts_out) -> None:
    import socket
    import socketserver

    calls = {"POST": 0, "GET": 0, "DELETE": 0}
    window = [0.0, 0.0]  # first call received, last answer sent
    posts: list[tuple[str, float]] = []  # (connection id, when it arrived)
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock = self.request
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                arrived = time.time()
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                while len(buffer) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                buffer = buffer[length:]
                method, path = head.split(b" ", 2)[:2]
                with lock:
                    calls[method.decode()] = calls.get(method.decode(), 0) + 1
                    window[0] = window[0] or arrived
                    if method == b"POST":
                        posts.append((unquote(path.decode().rsplit("/", 1)[-1]), arrived))
                time.sleep(max(0.0, arrived + latency - time.time()))
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                with lock:
                    window[1] = time.time()

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 512

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port_out.send(f"http://127.0.0.1:{server.server_address[1]}")
    while (asked := counts_in.recv()) != "stop":
        with lock:
            if asked == "arrivals":
                counts_out.send(list(posts))
                posts.clear()
                continue
            counts_out.send((calls.get("POST", 0), dict(calls), window[1] - window[0]))
            calls.clear()
            window[:] = [0.0, 0.0]
    server.shutdown()


class Connections:
    def __init__(self, latency: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        url_r, url_w = ctx.Pipe(False)
        self._ask_r, self._ask_w = ctx.Pipe(False)
        self._ans_r, self._ans_w = ctx.Pipe(False)
        self.proc = ctx.Process(
            target=_serve_connections, args=(latency, url_w, self._ask_r, self._ans_w), daemon=True
        )
        self.proc.start()
        self.url = url_r.recv()

    def take_counts(self) -> tuple[int, dict[str, int], float]:
        """(deliveries, calls by method, seconds from the first call to the last
        answer) since the last call."""
        self._ask_w.send("count")
        return self._ans_r.recv()

    def arrivals(self) -> list[tuple[str, float]]:
        """(connection id, epoch seconds) of every POST since the last call."""
        self._ask_w.send("arrivals")
        return self._ans_r.recv()

    def stop(self) -> None:
        self._ask_w.send("stop")
        self.proc.join(5)


# -- request counting on boto3 clients -------------------------------------------


class Requests:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hook(self, client) -> None:
        service = client.meta.service_model.service_name

        def count(model, **kwargs) -> None:
            with self._lock:
                self.counts[f"{service}.{model.name}"] += 1

        client.meta.events.register("before-call.*.*", count)

    def total(self, service: str, ops: tuple[str, ...] | None = None) -> int:
        return sum(
            n
            for key, n in self.counts.items()
            if key.startswith(service + ".") and (ops is None or key.split(".", 1)[1] in ops)
        )


DDB_READS = ("Query", "GetItem", "BatchGetItem", "Scan")


def count_requests() -> Requests:
    """Count the requests of every boto3 client made from now on."""
    import boto3

    requests = Requests()
    original_client = boto3.session.Session.client

    def counted_client(self, *a, **kw):
        client = original_client(self, *a, **kw)
        requests.hook(client)
        return client

    boto3.session.Session.client = counted_client  # type: ignore[method-assign]
    return requests


def timed(fn, connections: Connections, requests: Requests) -> tuple[float, int, dict, float]:
    """Run `fn` with fresh counts: (seconds, deliveries, @connections calls by method,
    seconds from the first call to the last answer)."""
    requests.counts.clear()
    connections.take_counts()
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    return (elapsed, *connections.take_counts())


# -- set-up --------------------------------------------------------------------


def start_aws() -> str:
    from slipway_dev.moto_server import MotoServer
    from slipway_dev.stack import aws_environment

    url = MotoServer().start()
    aws_environment(url, ours=True)
    return url


def create_resources(tag: str) -> tuple[str, str]:
    import boto3

    from slipway_dev import aws

    table = f"bench-{tag}"
    aws.ensure_table(boto3.client("dynamodb"), table)
    queue = aws.ensure_queue(boto3.client("sqs"), f"bench-{tag}.fifo", {"VisibilityTimeout": "60"})
    return table, queue


def seed(table: str, channel: str, count: int, endpoint: str, envelope: bool = False) -> list[str]:
    """Member rows written in batches of 25 (the store's subscribe is one at a time)."""
    import boto3

    ddb = boto3.client("dynamodb")
    ids = [f"{uuid.uuid4().hex[:12]}=" for _ in range(count)]
    for start in range(0, count, 25):
        ddb.batch_write_item(
            RequestItems={
                table: [
                    {
                        "PutRequest": {
                            "Item": {
                                "pk": {"S": f"chan#{channel}"},
                                "sk": {"S": cid},
                                "endpoint": {"S": endpoint},
                                "envelope": {"BOOL": envelope},
                                "expires_at": {"N": str(int(time.time()) + 7800)},
                            }
                        }
                    }
                    for cid in ids[start : start + 25]
                ]
            }
        )
    return ids


def configure(table: str, queue: str, endpoint: str, concurrency: int) -> None:
    from chalicelib import services, settings

    os.environ.update(
        {
            "TARGET_URL": "http://127.0.0.1:9/unused",
            "SLIPWAY_KEY": "bench-key",
            "SLIPWAY_TABLE": table,
            "SLIPWAY_QUEUE_URL": queue,
            "SLIPWAY_CONNECTIONS_ENDPOINT": endpoint,
            "SLIPWAY_FANOUT_CONCURRENCY": str(concurrency),
        }
    )
    settings.current.cache_clear()
    services.current.cache_clear()


# -- the two contenders ----------------------------------------------------------


def run_slipway(queue_url: str, channel: str, body: str | None = None) -> None:
    """Publish through the control route, then drain the queue through the worker."""
    import boto3

    from chalicelib import control, fanout

    if body is None:
        body = json.dumps({"items": [{"channel": channel, "ws-message": {"content": "hello"}}]})
    reply = control.publish({"authorization": "Bearer bench-key"}, body.encode())
    assert reply.status_code == 200, reply.body
    sqs = boto3.client("sqs")
    idle = 0
    while idle < 2:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            idle += 1
            continue
        idle = 0
        records = [
            {"messageId": m["MessageId"], "body": m["Body"], "attributes": m["Attributes"]}
            for m in messages
        ]
        failed = {f["itemIdentifier"] for f in fanout.handle_batch(records)["batchItemFailures"]}
        assert not failed, "the bench expects no failures"
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


def run_naive(channel: str, endpoint: str) -> None:
    """What a first attempt looks like: one Lambda, page the members, post one by one."""
    from chalicelib import services

    svc = services.current()
    cursor = None
    while True:
        members, cursor = svc.store.members(channel, start=cursor)
        for m in members:
            svc.sockets.send(endpoint, m.connection_id, b"hello")
        if cursor is None:
            return


def round_trip(endpoint: str, calls: int = 100) -> float:
    """The stand-in endpoint's real sequential round trip, through slipway's sender."""
    import boto3

    from chalicelib.aws.sockets import Sockets

    sockets = Sockets(boto3.session.Session())
    for _ in range(10):
        sockets.send(endpoint, "warm=", b"x")
    started = time.perf_counter()
    for _ in range(calls):
        sockets.send(endpoint, "probe=", b"x")
    return (time.perf_counter() - started) / calls


def measure(name, fn, connections: Connections, requests: Requests, members: int) -> dict:
    elapsed, delivered, calls, sending = timed(fn, connections, requests)
    return {
        "name": name,
        "seconds": elapsed,
        "delivered": delivered,
        "deliveries_per_s": delivered / sending,
        "end_to_end_per_s": delivered / elapsed,
        "calls_per_delivery": sum(calls.values()) / max(delivered, 1),
        "ddb_reads": requests.total("dynamodb", DDB_READS),
        "ddb_requests": requests.total("dynamodb"),
        "sqs_requests": requests.total("sqs"),
    }


def warm_connections(queue_url: str, table: str, endpoint: str, members: int, calls: int) -> dict:
    """Connections opened per 1,000 deliveries over `calls` publishes to one channel,
    each drained as its own worker invocation: kept across invocations (as now) and,
    in the same run, dropped after each (as when each call opened its own)."""
    from chalicelib import services

    seed(table, "warm", members, endpoint)
    stats = services.current().sockets.stats
    got = {}
    for name, drop in (("kept", False), ("per_call", True)):
        services.current().sockets.shutdown()
        before = stats.opened
        for _ in range(calls):
            run_slipway(queue_url, "warm")
            if drop:
                services.current().sockets.shutdown()
        got[name] = (stats.opened - before) * 1000 / (members * calls)
    return got


def split_bench(queue_url: str, table: str, endpoint: str, n: int, measured: int) -> dict:
    """A publish to an n-member channel: the split (reading every page, queueing
    the parts) timed in one invocation, then `measured` parts delivered, each
    timed as its own invocation."""
    import boto3

    from chalicelib import control, fanout, services

    started = time.perf_counter()
    seed_fast(table, "huge", n, endpoint)
    seeded = time.perf_counter() - started
    svc = services.current()
    reads, sends = [0.0], [0.0]
    store_members, queue_send_all = svc.store.members, svc.queue.send_all

    def timed_members(*a, **kw):
        t = time.perf_counter()
        try:
            return store_members(*a, **kw)
        finally:
            reads[0] += time.perf_counter() - t

    def timed_send_all(*a, **kw):
        t = time.perf_counter()
        try:
            return queue_send_all(*a, **kw)
        finally:
            sends[0] += time.perf_counter() - t

    svc.store.members, svc.queue.send_all = timed_members, timed_send_all
    body = json.dumps({"items": [{"channel": "huge", "ws-message": {"content": "hello"}}]})
    reply = control.publish({"authorization": "Bearer bench-key"}, body.encode())
    assert reply.status_code == 200, reply.body
    sqs = boto3.client("sqs")
    publish = _receive(sqs, queue_url, 1)
    t = time.perf_counter()
    assert not fanout.handle_batch(publish)["batchItemFailures"]
    split = time.perf_counter() - t
    _delete(sqs, queue_url, publish)
    svc.store.members, svc.queue.send_all = store_members, queue_send_all
    parts = []
    while records := _receive(sqs, queue_url, 10):
        parts += records
        _delete(sqs, queue_url, records)
    part_times = []
    for record in parts[:measured]:
        t = time.perf_counter()
        assert not fanout.handle_batch([record])["batchItemFailures"]
        part_times.append(time.perf_counter() - t)
    return {
        "seeded_s": seeded,
        "split_s": split,
        "reads_s": reads[0],
        "queueing_s": sends[0],
        "parts": len(parts),
        "part_s": sorted(part_times)[len(part_times) // 2],
        "part_members": math.ceil(n / max(1, len(parts))),
    }


def _receive(sqs, queue_url: str, n: int) -> list[dict]:
    got = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=n, AttributeNames=["All"]
    ).get("Messages", [])
    return [
        {
            "messageId": m["MessageId"],
            "body": m["Body"],
            "attributes": m["Attributes"],
            "receipt": m["ReceiptHandle"],
        }
        for m in got
    ]


def _delete(sqs, queue_url: str, records: list[dict]) -> None:
    sqs.delete_message_batch(
        QueueUrl=queue_url,
        Entries=[{"Id": str(i), "ReceiptHandle": r["receipt"]} for i, r in enumerate(records)],
    )


def seed_fast(table: str, channel: str, count: int, endpoint: str) -> None:
    """Member rows put straight into moto's in-process backend (the same rows as
    `seed`): 100,000 BatchWriteItem rows over HTTP would take minutes."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    expires = str(int(time.time()) + 7800)
    for _ in range(count):
        backend.put_item(
            table,
            {
                "pk": {"S": f"chan#{channel}"},
                "sk": {"S": f"{uuid.uuid4().hex[:12]}="},
                "endpoint": {"S": endpoint},
                "envelope": {"BOOL": False},
                "expires_at": {"N": expires},
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--naive-cap", type=int, default=500, help="members the naive loop is timed over"
    )
    parser.add_argument(
        "--invocations", type=int, default=10, help="publishes of the warm-connections line"
    )
    parser.add_argument(
        "--split-members", type=int, default=0, help="also a channel this large (e.g. 100000)"
    )
    parser.add_argument("--parallel", type=int, default=100, help="worker invocations at once")
    parser.add_argument("--parts-measured", type=int, default=5)
    args = parser.parse_args()
    latency = args.latency_ms / 1000

    start_aws()
    connections = Connections(latency)
    from chalicelib import services

    requests = count_requests()
    limit = args.concurrency / latency
    rtt = round_trip(connections.url)
    print(
        f"one @connections call, sequential: {rtt * 1000:.2f} ms for {args.latency_ms:g} ms "
        f"injected; limit at that round trip {args.concurrency / rtt:.0f}/s"
    )
    summary = ""
    for n in args.members:
        table, queue = create_resources(uuid.uuid4().hex[:8])
        configure(table, queue, connections.url, args.concurrency)
        seed(table, "bench", n, connections.url)
        services.current()  # clients built outside the timed runs, as in a warm container
        ours = measure("slipway", lambda q=queue: run_slipway(q, "bench"), connections, requests, n)
        # The naive loop is slow by construction: time it over a prefix channel.
        naive_n = min(n, args.naive_cap)
        seed(table, "naive", naive_n, connections.url)
        naive = measure(
            "naive", lambda: run_naive("naive", connections.url), connections, requests, naive_n
        )
        assert ours["delivered"] == n, f"slipway delivered {ours['delivered']} of {n}"
        assert naive["delivered"] == naive_n
        for r in (ours, naive):
            print(
                f"{r['name']:>8} members={r['delivered']:>6} {r['seconds']:7.2f}s "
                f"end-to-end/s={r['end_to_end_per_s']:7.1f} "
                f"deliveries/s={r['deliveries_per_s']:7.1f} "
                f"ratio={r['deliveries_per_s'] / limit:5.2f} "
                f"calls/delivery={r['calls_per_delivery']:.2f} ddb_reads={r['ddb_reads']} "
                f"ddb_requests={r['ddb_requests']} sqs_requests={r['sqs_requests']}"
            )
        print(
            f"   target ddb_reads <= {math.ceil(n / 1000) + 1}; limit = {args.concurrency} / "
            f"{args.latency_ms:g} ms = {limit:.0f}/s"
        )
        summary = (
            f"members={n} latency_ms={args.latency_ms:g} concurrency={args.concurrency} "
            f"deliveries_per_s={ours['deliveries_per_s']:.0f} limit_per_s={limit:.0f} "
            f"ratio={ours['deliveries_per_s'] / limit:.2f} "
            f"ratio_vs_rtt={ours['deliveries_per_s'] * rtt / args.concurrency:.2f} "
            f"calls_per_delivery={ours['calls_per_delivery']:.2f} ddb_reads={ours['ddb_reads']} "
            f"sqs_requests={ours['sqs_requests']} "
            f"naive_ratio={naive['deliveries_per_s'] / limit:.2f}"
        )
    table, queue = create_resources(uuid.uuid4().hex[:8])
    configure(table, queue, connections.url, args.concurrency)
    warm = warm_connections(queue, table, connections.url, 100, args.invocations)
    print(
        f"new @connections connections per 1,000 deliveries over {args.invocations} "
        f"invocations of 100 deliveries: kept {warm['kept']:.1f}, "
        f"one set per call {warm['per_call']:.1f} (on AWS each is a TLS handshake)"
    )
    summary += f" connections_per_1000={warm['kept']:.1f} per_call_baseline={warm['per_call']:.1f}"
    if args.split_members:
        table, queue = create_resources(uuid.uuid4().hex[:8])
        configure(table, queue, connections.url, args.concurrency)
        s = split_bench(queue, table, connections.url, args.split_members, args.parts_measured)
        waves = math.ceil(s["parts"] / args.parallel)
        projected = s["split_s"] + waves * s["part_s"]
        sqs_lambda = 0.028  # SQS FIFO -> Lambda p50, published (docs/limits.md)
        print(
            f"{args.split_members} members: seeded in {s['seeded_s']:.1f}s (not timed below); "
            f"split {s['split_s']:.2f}s (reading pages {s['reads_s']:.2f}s, queueing "
            f"{s['parts']} parts {s['queueing_s']:.2f}s); one part of {s['part_members']} "
            f"members {s['part_s']:.2f}s (median of {args.parts_measured})"
        )
        print(
            f"   projected publish -> last delivery with {args.parallel} parallel invocations: "
            f"split + {waves} x part = {projected:.2f}s "
            f"(+ {2 * sqs_lambda * 1000:.0f} ms of SQS -> Lambda at its p50: "
            f"{projected + 2 * sqs_lambda:.2f}s)"
        )
        summary += (
            f" split_members={args.split_members} split_s={s['split_s']:.2f} "
            f"part_s={s['part_s']:.2f} parts={s['parts']} parallel={args.parallel} "
            f"projected_s={projected + 2 * sqs_lambda:.2f}"
        )
    connections.stop()
    print(summary)


if __name__ == "__main__":
    main()
