"""Ordered delivery through the handlers as Lambda invokes them (moto, the
gripcontrol test backend): `$default` invocations that finish in any order still
reach the backend in API Gateway's receipt order, batched, CLOSE last."""

from __future__ import annotations

import uuid

import boto3

import app
from chalicelib.grip import codec
from slipway_dev import events
from tests.harness import BackendLog, Gateway, configure, create_queue, handshake

ARN = "arn:aws:sqs:us-east-1:000000000000:ordered.fifo"


def ordered_gateway(monkeypatch, gateway: Gateway) -> str:
    url = create_queue(f"o-{uuid.uuid4().hex[:8]}.fifo")
    configure(monkeypatch, SLIPWAY_ORDERED_QUEUE_URL=url, SLIPWAY_ORDERED_HOLD_MS="1")
    return url


def forward(url: str) -> int:
    """Run the forwarder over the ordered queue as Lambda's event source does."""
    sqs = boto3.client("sqs")
    ran = 0
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        result = app.ordered_forwarder(events.sqs_event(got, ARN, "us-east-1"), None)
        assert result == {"batchItemFailures": []}
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        ran += len(got)
    return ran


def sent_events(backend_log: BackendLog) -> list[list[codec.Event]]:
    return [codec.decode(r["body"]) for r in backend_log.requests()]


def test_invocations_finishing_out_of_order_reach_the_backend_in_receipt_order(
    monkeypatch, gateway: Gateway, backend_log: BackendLog
) -> None:
    url = ordered_gateway(monkeypatch, gateway)
    cid, sink, reply = gateway.connect({"ordered": "1"})
    assert reply["statusCode"] == 200 and gateway.stored(cid).ordered
    t = events.now_ms()
    received = {"one": t, "two": t + 1, "three": t + 2}
    for text in ("three", "one", "two"):  # the order the invocations finished in
        app.ws_message(events.message_event(handshake(cid), text, received[text]), None)
    assert len(backend_log.requests()) == 1  # OPEN only: $default did not call the backend
    assert forward(url) == 3
    opening, *rest = sent_events(backend_log)
    assert rest == [[codec.Event("TEXT", t) for t in (b"one", b"two", b"three")]]  # one request
    assert sink.frames == [b"one", b"two", b"three"]  # the echoes, in that order

    gateway.disconnect(cid, 1000)
    assert gateway.stored(cid) is not None  # kept until the forwarder reaches the end
    forward(url)
    assert sent_events(backend_log)[-1] == [codec.closing_event(1000)]
    assert gateway.stored(cid) is None


def test_ordered_without_its_queue_is_refused(gateway: Gateway, backend_log: BackendLog) -> None:
    cid, _, reply = gateway.connect({"ordered": "1"})
    assert reply["statusCode"] == 501
    assert backend_log.requests() == []
    assert gateway.stored(cid) is None
