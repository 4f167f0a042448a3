"""Publishes through the control route and the SQS worker, to recording connections."""

from __future__ import annotations

import json

import boto3
import pytest

from chalicelib import services
from chalicelib.grip import jobs
from chalicelib.grip.payload import Payload
from slipway_dev.connections import RecordingSink
from tests.harness import Gateway, configure


def item(channel: str, **ws) -> dict:
    return {"channel": channel, "formats": {"ws-message": ws}}


def members(gateway: Gateway, channel: str, count: int) -> list[tuple[str, RecordingSink]]:
    """`count` open connections subscribed to `channel` (stored directly: fast on moto)."""
    from chalicelib.aws.store import Connection

    svc = services.current()
    out = []
    for i in range(count):
        cid = f"{channel}-{i:03d}="
        sink = RecordingSink()
        gateway.registry.register(cid, sink)
        svc.store.put_connection(Connection(id=cid, endpoint=svc.settings.connections_endpoint))
        svc.store.subscribe(cid, channel, svc.settings.connections_endpoint)
        out.append((cid, sink))
    return out


def test_publish_reaches_every_subscriber(gateway: Gateway) -> None:
    room = members(gateway, "room", 5)
    other = members(gateway, "other", 1)
    status, body = gateway.publish({"items": [item("room", content="hello")]})
    assert (status, body) == (200, {"message": "Published"})
    gateway.drain()
    assert all(sink.frames == [b"hello"] for _, sink in room)
    assert other[0][1].frames == []


def test_subscribed_through_the_backend_then_published(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect()
    gateway.send(cid, "sub news")
    gateway.publish({"items": [{"channel": "news", "ws-message": {"content": "top-level"}}]})
    gateway.drain()
    gateway.send(cid, "unsub news")
    gateway.publish({"items": [item("news", content="after unsubscribe")]})
    gateway.drain()
    assert sink.frames == [b"subscribed news", b"top-level", b"unsubscribed news"]


def test_binary_and_close_actions(gateway: Gateway) -> None:
    room = members(gateway, "room", 3)
    gateway.publish(
        {
            "items": [
                item("room", **{"content-bin": "AAEC/w=="}),
                item("room", action="close", code=4000, reason="done"),
            ]
        }
    )
    gateway.drain()
    for _, sink in room:
        assert sink.frames == [b"\x00\x01\x02\xff"] and sink.closed


def test_order_of_successive_publishes_is_kept(gateway: Gateway) -> None:
    room = members(gateway, "room", 3)
    for n in range(6):
        gateway.publish({"items": [item("room", content=f"m{n}")]})
    gateway.drain()
    expected = [f"m{n}".encode() for n in range(6)]
    assert all(sink.frames == expected for _, sink in room)


def test_a_large_channel_is_split_into_parts(gateway: Gateway, monkeypatch) -> None:
    configure(monkeypatch, SLIPWAY_FANOUT_PAGE="3")
    room = members(gateway, "big", 8)
    gateway.publish({"items": [item("big", content="to all")]})
    [publish] = gateway.queued()
    assert gateway.run_worker([publish]) == {"batchItemFailures": []}
    boto3.client("sqs").delete_message(
        QueueUrl=gateway.queue_url, ReceiptHandle=publish["ReceiptHandle"]
    )
    queued = gateway.queued()
    parts = [jobs.decode(m["Body"]) for m in queued]
    assert all(isinstance(p, jobs.Part) for p in parts)
    assert sorted(len(p.members) for p in parts) == [2, 3, 3]
    assert all(sink.frames == [] for _, sink in room)  # the parts have not run yet
    assert gateway.run_worker(queued) == {"batchItemFailures": []}
    assert all(sink.frames == [b"to all"] for _, sink in room)


class Killed(BaseException):
    """Stands for the Lambda being killed: nothing in the worker may catch it."""


def test_worker_killed_mid_fanout_then_retried_reaches_everyone(gateway, monkeypatch) -> None:
    configure(monkeypatch, SLIPWAY_FANOUT_CONCURRENCY="2")
    room = members(gateway, "room", 6)
    gateway.publish({"items": [item("room", content="survive")]})
    sockets = services.current().sockets
    real_exchange, done = sockets._exchange, []

    async def dying_exchange(*args):
        if len(done) >= 2:  # killed after two deliveries
            raise Killed()
        status = await real_exchange(*args)
        done.append(status)
        return status

    monkeypatch.setattr(sockets, "_exchange", dying_exchange)
    with pytest.raises(Killed):
        gateway.run_worker(gateway.queued())
    delivered = sum(bool(sink.frames) for _, sink in room)
    assert 0 < delivered < 6
    monkeypatch.setattr(sockets, "_exchange", real_exchange)
    gateway.drain(wait=3)  # the message comes back after its visibility timeout
    assert all(sink.frames and set(sink.frames) == {b"survive"} for _, sink in room)


def test_gone_members_are_removed_at_once(gateway: Gateway, backend_log) -> None:
    room = members(gateway, "room", 3)
    gone_id = room[0][0]
    gateway.registry.unregister(gone_id)
    gateway.publish({"items": [item("room", content="hi")]})
    gateway.drain()
    store = services.current().store
    assert store.get_connection(gone_id) is None
    [told] = backend_log.requests()  # the backend hears of it, once
    assert told["body"] == b"DISCONNECT\r\n" and told["headers"]["connection-id"] == gone_id
    assert sorted(m.connection_id for m in store.members("room")[0]) == [room[1][0], room[2][0]]
    assert room[1][1].frames == [b"hi"]


def test_a_publish_over_the_queue_limit_rides_in_s3(gateway: Gateway, monkeypatch) -> None:
    configure(monkeypatch, SLIPWAY_QUEUE_MESSAGE_LIMIT="4096")
    room = members(gateway, "room", 2)
    big = "x" * 20_000 + "end"
    status, _ = gateway.publish({"items": [item("room", content=big)]})
    assert status == 200
    [queued] = gateway.queued()
    job = jobs.decode(queued["Body"])
    assert isinstance(job.action, jobs.Stored) and len(queued["Body"]) < 4096
    gateway.run_worker([queued])
    assert all(sink.frames == [big.encode()] for _, sink in room)


class RefusingSink(RecordingSink):
    """@connections answers 500 for this one message, however often it is tried."""

    def send(self, data: bytes) -> None:
        if data == b"m1":
            raise RuntimeError("throttled")
        super().send(data)


def test_a_failed_fifo_record_takes_the_rest_of_the_batch_back(gateway: Gateway) -> None:
    sink = RefusingSink()
    [(cid, _)] = members(gateway, "room", 1)
    gateway.registry.register(cid, sink)
    for n in range(3):
        gateway.publish({"items": [item("room", content=f"m{n}")]})
    messages = []
    while len(messages) < 3:
        messages += gateway.queued()
    failures = gateway.run_worker(messages)["batchItemFailures"]
    assert [f["itemIdentifier"] for f in failures] == [m["MessageId"] for m in messages[1:]]
    assert sink.frames == [b"m0"]


def test_a_publish_over_the_queue_limit_without_a_bucket_is_413(gateway, monkeypatch) -> None:
    monkeypatch.delenv("SLIPWAY_BUCKET")
    configure(monkeypatch, SLIPWAY_QUEUE_MESSAGE_LIMIT="4096")
    status, body = gateway.publish({"items": [item("room", content="x" * 20_000)]})
    assert status == 413 and "SLIPWAY_BUCKET" in body["error"]
    assert gateway.queued() == []


def test_a_message_over_128k_is_dropped_not_retried(gateway: Gateway, caplog) -> None:
    room = members(gateway, "room", 2)
    status, _ = gateway.publish({"items": [item("room", content="x" * (129 * 1024))]})
    assert status == 200
    with caplog.at_level("WARNING"):
        assert gateway.run_worker(gateway.queued()) == {"batchItemFailures": []}
    assert all(sink.frames == [] for _, sink in room)
    assert "too large" in caplog.text


def _send_raw_body(gateway: Gateway, body: str, group: str) -> None:
    boto3.client("sqs").send_message(
        QueueUrl=gateway.queue_url,
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=body[-40:].encode().hex()[:128],
    )


def test_a_deploy_drains_what_the_previous_one_queued(gateway: Gateway) -> None:
    """Queue bodies from before jobs had versions are still delivered."""
    room = members(gateway, "room", 2)
    [(cid, sink)] = members(gateway, "solo", 1)
    endpoint = services.current().settings.connections_endpoint
    old = [
        {"kind": "publish", "item": {"channel": "room", "action": "send", "content": "old"}},
        {"kind": "publish", "item": {"channel": "room", "action": "send", "content-bin": "AAE="}},
        {
            "kind": "deliver",
            "connection": cid,
            "endpoint": endpoint,
            "frames": [{"content": "hi"}],
            "envelope": False,
            "close": False,
            "deadline": 9_999_999_999,
        },
        {
            "kind": "part",
            "item": {"channel": "room", "action": "close", "code": None, "reason": ""},
            "targets": {endpoint: [room[0][0]]},
            "wrapped": {},
        },
    ]
    for body in old:
        _send_raw_body(gateway, json.dumps(body), "g")
    gateway.drain()
    assert all(s.frames[:2] == [b"old", b"\x00\x01"] for _, s in room)
    assert sink.frames == [b"hi"]
    assert room[0][1].closed and not room[1][1].closed


def test_a_job_of_a_newer_deploy_is_handed_back_and_nonsense_is_dropped(gateway: Gateway) -> None:
    room = members(gateway, "room", 1)
    _send_raw_body(gateway, '{"v": 2, "job": "publish", "channel": "room"}', "a")
    _send_raw_body(gateway, '{"v": 1, "job": "teleport"}', "b")
    _send_raw_body(gateway, "not json", "c")
    queued = gateway.queued()
    assert len(queued) == 3
    at = next(k for k, m in enumerate(queued) if '"v": 2' in m["Body"])
    failed = gateway.run_worker(queued)["batchItemFailures"]
    # A newer job stops its batch: it and what follows it go back to SQS; the
    # unreadable ones before it are done with (dropped, and logged).
    assert failed == [{"itemIdentifier": m["MessageId"]} for m in queued[at:]]
    assert room[0][1].frames == []
    assert gateway.run_worker(queued[:at] + queued[at + 1 :]) == {"batchItemFailures": []}


def test_a_job_that_can_never_succeed_is_moved_aside_and_its_group_goes_on(
    gateway: Gateway, caplog
) -> None:
    """A queued publish holding a lone surrogate (an older deploy's, or a bug's):
    done with on its first receive, logged with its channel; the next job of the
    batch, in the same group, is delivered in the same run."""
    room = members(gateway, "room", 1)
    poison = jobs.Publish("room", jobs.Inline(Payload.of_text("bad \udc80")))
    _send_raw_body(gateway, jobs.encode(poison), "chan#room")
    _send_raw_body(
        gateway,
        jobs.encode(jobs.Publish("room", jobs.Inline(Payload.of_text("good")))),
        "chan#room",
    )
    queued = gateway.queued()
    assert gateway.run_worker(queued) == {"batchItemFailures": []}
    assert room[0][1].frames == [b"good"]
    moved = [r for r in caplog.records if "moved aside" in r.getMessage()]
    assert len(moved) == 1 and "'room'" in moved[0].getMessage()
