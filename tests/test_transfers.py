"""Envelope mode in the handlers and the worker (chalicelib/transfers.py), against
moto, the gripcontrol test backend and a recording @connections API."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import boto3
import requests

from chalicelib import services
from slipway_dev.connections import RecordingSink
from tests.harness import Gateway, configure


def item(channel: str, **ws) -> dict:
    return {"channel": channel, "formats": {"ws-message": ws}}


def members(gateway: Gateway, channel: str, count: int, envelope: bool):
    from chalicelib.aws.store import Connection

    svc = services.current()
    endpoint = svc.settings.connections_endpoint
    out = []
    for i in range(count):
        cid = f"{channel}-{'e' if envelope else 'r'}{i:03d}="
        sink = RecordingSink()
        gateway.registry.register(cid, sink)
        svc.store.put_connection(Connection(id=cid, endpoint=endpoint, envelope=envelope))
        svc.store.subscribe(cid, channel, endpoint, envelope)
        out.append((cid, sink))
    return out


def bucket_keys(prefix: str = "") -> set[str]:
    bucket = services.current().settings.bucket
    found = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"] for o in found}


def frames(sink: RecordingSink) -> list:
    return [json.loads(f) for f in sink.frames]


def fetched(frame: list) -> object:
    kind, mid, url, method, headers = frame
    assert (kind, mid, method, headers) == (4, -1, "GET", {})
    return json.loads(requests.get(url, timeout=5).content)


def test_an_envelope_connection_is_stored_as_one_and_reported(gateway: Gateway) -> None:
    cid, _, reply = gateway.connect({"envelope": "1"})
    assert reply["statusCode"] == 200
    assert gateway.stored(cid).envelope is True
    raw, _, _ = gateway.connect()
    assert gateway.stored(raw).envelope is False


def test_envelope_for_every_connection_by_setting(gateway: Gateway, monkeypatch) -> None:
    configure(monkeypatch, SLIPWAY_ENVELOPE_ALL="1")
    cid, sink, _ = gateway.connect()
    gateway.send(cid, json.dumps([1, 1, "hi"]))
    assert frames(sink) == [[1, 0, "hi"]]


def test_replies_are_wrapped_and_binary_goes_as_base64(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect({"envelope": "1"})
    gateway.send(cid, json.dumps([1, 1, "bin \x00\x01"]))
    gateway.send(cid, json.dumps([1, 2, [1, {"a": None}]]))
    assert frames(sink) == [
        [1, 0, base64.b64encode(b"\x00\x01").decode()],  # the backend's BINARY "\x00\x01"
        [1, 0, [1, {"a": None}]],
    ]


def test_the_open_responses_messages_are_wrapped_too(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect({"envelope": "1", "welcome": "hello"})
    gateway.drain()
    assert frames(sink) == [[1, 0, "hello"]]


def test_a_mixed_channel_gets_each_form(gateway: Gateway) -> None:
    raw = members(gateway, "mix", 2, envelope=False)
    wrapped = members(gateway, "mix", 2, envelope=True)
    gateway.publish({"items": [item("mix", content='{"n": 1}')]})
    gateway.drain()
    assert all(sink.frames == [b'{"n": 1}'] for _, sink in raw)
    assert all(frames(sink) == [[1, 0, {"n": 1}]] for _, sink in wrapped)


def test_a_large_publish_to_a_split_channel_is_stored_once(gateway: Gateway, monkeypatch) -> None:
    configure(monkeypatch, SLIPWAY_FANOUT_PAGE="3")
    wrapped = members(gateway, "split", 7, envelope=True)
    raw = members(gateway, "split", 2, envelope=False)
    big = "é" * 60_000  # under the queue's limit, over a frame's
    before = bucket_keys()
    assert gateway.publish({"items": [item("split", content=big)]})[0] == 200
    gateway.drain()
    assert len(bucket_keys() - before) == 1
    got = [frames(sink) for _, sink in wrapped]
    assert all(len(f) == 1 and fetched(f[0]) == big for f in got)
    assert len({f[0][2] for f in got}) <= 3  # one presigned URL per part at most
    assert all(sink.frames == [big.encode()] for _, sink in raw)  # 120 KB: fits a post


def test_a_queue_blob_is_the_download_itself(gateway: Gateway, monkeypatch) -> None:
    configure(monkeypatch, SLIPWAY_QUEUE_MESSAGE_LIMIT="4096")
    [(_, wrapped)] = members(gateway, "blob", 1, envelope=True)
    [(_, raw)] = members(gateway, "blob", 1, envelope=False)
    big = {"rows": ["x" * 100] * 400}  # 40 KB of JSON
    before = bucket_keys()
    gateway.publish({"items": [item("blob", content=json.dumps(big))]})
    gateway.drain()
    assert len(bucket_keys() - before) == 1
    [frame] = frames(wrapped)
    assert fetched(frame) == big
    assert raw.frames == [json.dumps(big).encode()]


def test_without_a_bucket_uploads_are_refused_and_small_messages_still_flow(
    gateway: Gateway, monkeypatch
) -> None:
    monkeypatch.delenv("SLIPWAY_BUCKET")
    configure(monkeypatch)
    cid, sink, _ = gateway.connect({"envelope": "1"})
    gateway.send(cid, json.dumps([2, 4]))
    gateway.send(cid, json.dumps([1, 5, "x" * 40_000]))  # an echo too large for a frame
    gateway.send(cid, json.dumps([1, 6, "small"]))
    [refused, small] = frames(sink)
    assert refused[:2] == [5, 4] and refused[2]["errorCode"] == "uploads_unavailable"
    assert small == [1, 0, "small"]


def test_send_to_one_envelope_connection_and_inspect(gateway: Gateway) -> None:
    from chalice.test import Client

    import app
    from tests.harness import HERE, KEY

    cid, sink, _ = gateway.connect({"envelope": "1"})
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    with Client(app.app, project_dir=str(HERE)) as client:
        path = f"/connections/{cid.replace('=', '%3D')}"
        big = "y" * 200_000
        sent = client.http.post(f"{path}/message", headers=auth, body=json.dumps({"content": big}))
        info = json.loads(client.http.get(path, headers=auth).body)
    assert sent.status_code == 200
    [frame] = frames(sink)
    assert fetched(frame) == big
    assert info["envelope"] is True


def test_an_s3_failure_is_a_gateway_error_and_the_connection_goes_on(
    gateway: Gateway, monkeypatch
) -> None:
    # A bucket that does not exist: S3 answers NoSuchBucket, not NoSuchKey.
    configure(monkeypatch, SLIPWAY_BUCKET="no-such-bucket-here")
    cid, sink, _ = gateway.connect({"envelope": "1"})
    key = f"uploads/{cid.replace('=', '%3D')}/9999999999-3-0123abcd.json"
    url = f"http://s3.local/no-such-bucket-here/{quote(key)}"
    gateway.send(cid, json.dumps([4, 3, url, "GET", {}]))
    gateway.send(cid, json.dumps([1, 4, "after"]))
    [failed, after] = frames(sink)
    assert failed[:2] == [5, 3] and failed[2]["errorCode"] == "gateway_error"
    assert after == [1, 0, "after"]
