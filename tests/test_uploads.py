"""Backend uploads (docs/control-api.md#large-messages): the refs and their checks
(pure), and POST /uploads, publish and send by reference through the handlers,
the worker, moto's S3 and a recording @connections API."""

from __future__ import annotations

import base64
import json
import time

import boto3
import pytest
import requests

from chalicelib.grip import plan
from chalicelib.grip import uploads as refs
from chalicelib.grip.payload import Payload
from chalicelib.grip.publish import ContentRef, PublishError, parse_publish, parse_send
from tests.harness import KEY, Gateway, configure
from tests.test_transfers import bucket_keys, fetched, frames, item, members

NONCE = "0123456789abcdef"


# -- the refs (pure) ----------------------------------------------------------------


def test_an_issued_ref_checks_until_it_expires() -> None:
    issued = refs.issue(KEY, 1_000, NONCE)
    assert issued.key.startswith(refs.PREFIX) and issued.key.endswith(".json")
    assert refs.check(issued.key, KEY, 999.5) == 1_000
    with pytest.raises(refs.RefRefused) as caught:
        refs.check(issued.key, KEY, 1_000.5)
    assert caught.value.why is refs.Why.EXPIRED


@pytest.mark.parametrize(
    "ref",
    [
        refs.issue("another deployment's key", 9_999_999_999, NONCE).key,
        "uploads/L0SM9cOFvHcCIhw%3D/9999999999-1-0123456789abcdef.json",  # a client's upload
        "publish/abc.json",
        refs.issue(KEY, 9_999_999_999, NONCE).key.replace("9999999999", "9999999998"),  # altered
        "../" + refs.issue(KEY, 9_999_999_999, NONCE).key,
    ],
)
def test_a_ref_this_deployment_did_not_issue_is_foreign(ref: str) -> None:
    with pytest.raises(refs.RefRefused) as caught:
        refs.check(ref, KEY, 0)
    assert caught.value.why is refs.Why.FOREIGN


def test_an_object_over_the_limit_is_refused() -> None:
    refs.check_size(10, limit=10)
    with pytest.raises(refs.RefRefused) as caught:
        refs.check_size(11, 10)
    assert caught.value.why is refs.Why.TOO_LARGE


def test_the_content_of_a_small_object() -> None:
    assert refs.content(b'"h\\u00e9llo"', False) == Payload.of_text("héllo")
    doc = b'{"a": [1, 2]}'
    assert refs.content(doc, False).text == doc.decode()  # byte for byte
    raw = bytes(range(256))
    encoded = json.dumps(base64.b64encode(raw).decode()).encode()
    assert refs.content(encoded, True) == Payload.of_bytes(raw)
    for data, binary in [(b"42", False), (b'{"a": ', False), (b"[1]", True), (b'"@@"', True)]:
        with pytest.raises(refs.RefRefused) as caught:
            refs.content(data, binary)
        assert caught.value.why is refs.Why.INVALID


def test_publish_and_send_take_a_ref_instead_of_content() -> None:
    [first, second] = parse_publish(
        json.dumps(
            {
                "items": [
                    {"channel": "a", "formats": {"ws-message": {"content-ref": "r1"}}},
                    {"channel": "b", "ws-message": {"content-bin-ref": "r2"}},
                ]
            }
        )
    )
    assert first.action == ContentRef("r1", False, "content-ref")
    assert second.action == ContentRef("r2", True, "content-bin-ref")
    with pytest.raises(ValueError):
        first.to_job()  # never queued unchecked
    assert parse_send('{"content-ref": "r"}') == ContentRef("r", False, "content-ref")
    with pytest.raises(PublishError) as caught:
        parse_send('{"content": "x", "content-ref": "r"}')
    assert "content-ref" in caught.value.fields["content"][0]


def test_a_stored_object_too_large_for_any_raw_post() -> None:
    # The largest raw message written as JSON at its most escaped, with its quotes.
    worst = json.dumps("\x00" * plan.MAX_POST).encode()
    assert len(worst) == plan.MAX_RAW_OBJECT


# -- through the handlers -------------------------------------------------------------


def call(method: str, path: str, body: dict | None = None, key: str = KEY) -> tuple[int, dict]:
    from chalice.test import Client

    import app
    from tests.harness import HERE

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with Client(app.app, project_dir=str(HERE)) as client:
        reply = getattr(client.http, method)(
            path, headers=headers, body=json.dumps(body) if body is not None else None
        )
    return reply.status_code, json.loads(reply.body or b"null")


def upload(data: bytes) -> str:
    status, target = call("post", "/uploads")
    assert status == 200, target
    assert target["method"] == "PUT" and target["headers"] == refs.HEADERS
    put = requests.put(target["url"], data=data, headers=target["headers"], timeout=10)
    assert put.status_code == 200
    return target["ref"]


def test_a_large_ref_reaches_envelope_members_as_the_uploaded_object(gateway: Gateway) -> None:
    wrapped = members(gateway, "ref", 3, envelope=True)
    raw = members(gateway, "ref", 1, envelope=False)
    text = "é" * 40_000  # a frame's limit is 32 KB; a raw post's 128 KB
    ref = upload(json.dumps(text, ensure_ascii=False).encode())
    before = bucket_keys()
    status, reply = gateway.publish({"items": [item("ref", **{"content-ref": ref})]})
    assert status == 200 and "too_large_for_raw" not in reply, reply
    gateway.drain()
    assert bucket_keys() == before  # the gateway wrote nothing
    for _, sink in wrapped:
        [frame] = frames(sink)
        assert ref in frame[2] and fetched(frame) == text
    assert raw[0][1].frames == [text.encode()]


def test_a_ref_over_128_kb_skips_raw_members_without_reading_it(gateway: Gateway) -> None:
    [(_, wrapped)] = members(gateway, "huge", 1, envelope=True)
    [(_, raw)] = members(gateway, "huge", 1, envelope=False)
    doc = json.dumps({"rows": ["x" * 1000] * 1000})  # 1 MB of JSON
    ref = upload(doc.encode())
    status, reply = gateway.publish({"items": [item("huge", **{"content-ref": ref})]})
    assert (status, reply["too_large_for_raw"]) == (200, [0])
    gateway.drain()
    assert fetched(frames(wrapped)[0]) == json.loads(doc)
    assert raw.frames == []


def test_a_small_ref_goes_inline_and_binary_stays_binary(gateway: Gateway) -> None:
    [(cid, wrapped)] = members(gateway, "small", 1, envelope=True)
    [(_, raw)] = members(gateway, "small", 1, envelope=False)
    data = bytes(range(256)) * 4
    ref = upload(json.dumps(base64.b64encode(data).decode()).encode())
    assert gateway.publish({"items": [item("small", **{"content-bin-ref": ref})]})[0] == 200
    gateway.drain()
    assert raw.frames == [data]
    assert frames(wrapped) == [[1, 0, base64.b64encode(data).decode()]]
    # The same ref again, to one connection: refs may be used until they expire.
    path = f"/connections/{cid.replace('=', '%3D')}/message"
    assert call("post", path, {"content-bin-ref": ref})[0] == 200
    assert frames(wrapped)[-1] == [1, 0, base64.b64encode(data).decode()]


def test_bad_refs_are_refused_by_name_and_nothing_is_queued(gateway: Gateway) -> None:
    members(gateway, "bad", 1, envelope=True)
    good = upload(b'"fine"')
    never = refs.issue(KEY, int(time.time()) + 60, NONCE).key  # issued, never uploaded
    foreign = refs.issue("other", int(time.time()) + 60, NONCE).key
    body = {
        "items": [
            item("bad", **{"content-ref": good}),
            {"channel": "bad", "formats": {"http-stream": {"content": "x"}}},  # skipped
            item("bad", **{"content-ref": never}),
            item("bad", **{"content-bin-ref": foreign}),
        ]
    }
    status, reply = gateway.publish(body)
    assert status == 400
    fields = reply["fields"]
    assert fields["items.2.ws-message.content-ref"][0].startswith("not_found:")
    assert fields["items.3.ws-message.content-bin-ref"][0].startswith("foreign:")
    assert gateway.queued() == []


def test_an_oversize_or_expired_upload_is_refused(gateway: Gateway, monkeypatch) -> None:
    configure(monkeypatch, SLIPWAY_MAX_PUBLISH_BYTES="1000", SLIPWAY_UPLOAD_EXPIRY="3")
    big = upload(json.dumps("x" * 1000).encode())
    status, reply = gateway.publish({"items": [item("c", **{"content-ref": big})]})
    assert status == 400
    assert reply["fields"]["items.0.ws-message.content-ref"][0].startswith("too_large:")
    time.sleep(3.1)
    status, reply = gateway.publish({"items": [item("c", **{"content-ref": big})]})
    assert reply["fields"]["items.0.ws-message.content-ref"][0].startswith("expired:")


def test_an_upload_url_is_refused_without_the_key_and_without_a_bucket(
    gateway: Gateway, monkeypatch
) -> None:
    assert call("post", "/uploads", key="wrong")[0] == 401
    monkeypatch.delenv("SLIPWAY_BUCKET")
    configure(monkeypatch)
    status, reply = call("post", "/uploads")
    assert status == 503 and "SLIPWAY_BUCKET" in reply["error"]


def test_the_ranged_read_of_an_empty_and_a_large_object(gateway: Gateway) -> None:
    from chalicelib import services

    blobs = services.current().blobs
    assert blobs is not None
    boto3.client("s3").put_object(Bucket=blobs.bucket, Key="t/empty", Body=b"")
    boto3.client("s3").put_object(Bucket=blobs.bucket, Key="t/ten", Body=b"0123456789")
    assert blobs.fetch("t/empty", 5).data == b""
    blob, head = blobs.peek("t/ten", 4)
    assert (blob.size, blob.data, head) == (10, None, b"0123")
    assert blobs.fetch("t/ten", 10).data == b"0123456789"


# -- the local stack's request limits (slipway_dev/http.py) ---------------------------


def test_the_local_stack_refuses_what_aws_refuses() -> None:
    from slipway_dev.http import lambda_event_size, request_refusal

    assert request_refusal(6_000_000, 6_200_000) is None
    over_lambda = request_refusal(6_000_000, 6_291_457)
    over_rest = request_refusal(10 * 1024 * 1024 + 1, 0)
    assert over_lambda is not None and over_rest is not None
    assert over_lambda["message"] == over_rest["message"] == "Request Too Long"
    assert "6291456" in over_lambda["error"] and "10485760" in over_rest["error"]
    assert "POST /uploads" in over_rest["error"]
    # The body rides in the event as a JSON string (escaped) or as base64 (binary types).
    text, binary = {"Content-Type": "application/json"}, {"Content-Type": "image/png"}
    base = lambda_event_size(b"", text, "/p"), lambda_event_size(b"", binary, "/p")
    assert lambda_event_size(b'"' * 1000, text, "/p") - base[0] == 2000  # each one escaped
    assert lambda_event_size(b"\0" * 999, binary, "/p") - base[1] == 1332  # base64


# -- presigned URLs as S3 takes them (docs/security.md#presigned-urls) ----------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "us-west-2"])
def test_presigned_urls_are_sigv4_on_the_buckets_regional_host(monkeypatch, region: str) -> None:
    """As the deployed gateway presigns (no AWS_ENDPOINT_URL): Signature Version 4 on
    https://<bucket>.s3.<region>.amazonaws.com, for an envelope upload (with its ACL), a
    backend's upload and a download. Presigning makes no request."""
    import os
    from urllib.parse import parse_qs, urlsplit

    from chalicelib import services, settings
    from chalicelib.grip import envelope

    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    for name, value in {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "example",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"slipway-dev-blobs-123456789012-{region}"
    cfg = settings.load(
        {
            "TARGET_URL": "https://backend.example.com/ws",
            "SLIPWAY_KEY": KEY,
            "SLIPWAY_TABLE": "t",
            "SLIPWAY_QUEUE_URL": "https://sqs.example.com/q.fifo",
            "SLIPWAY_BUCKET": bucket,
        }
    )
    blobs = services.Services(cfg).blobs
    assert blobs is not None
    urls = [
        blobs.upload_url("uploads/c/1", dict(envelope.UPLOAD_HEADERS), 60),
        blobs.upload_url("backend-uploads/r", dict(refs.HEADERS), 60),
        blobs.download_url("downloads/d", 60),
    ]
    for url in urls:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        assert (parts.scheme, parts.hostname) == ("https", f"{bucket}.s3.{region}.amazonaws.com")
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"], url
        assert query["X-Amz-Credential"][0].split("/")[2:4] == [region, "s3"]
        assert "AWSAccessKeyId" not in query and "Signature" not in query
    # What the uploader must send is signed: its Content-Type (and the aux client's ACL).
    signed = parse_qs(urlsplit(urls[0]).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-type", "host", "x-amz-acl"} <= set(signed)


# -- the local S3 refuses what S3 refuses (slipway_dev/s3rules.py) -------------------


def test_the_local_s3_refuses_a_sigv2_url_as_s3_does(gateway: Gateway) -> None:
    from botocore.config import Config

    from chalicelib import services

    bucket = services.current().settings.bucket
    boto3.client("s3").put_object(Bucket=bucket, Key="downloads/x", Body=b"x")
    v2 = boto3.client("s3", config=Config(signature_version="s3"))
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "downloads/x"})
    assert "Signature=" in url and "X-Amz-Algorithm" not in url
    reply = requests.get(url, timeout=5)
    assert reply.status_code == 400
    assert "<Code>InvalidRequest</Code>" in reply.text and "AWS4-HMAC-SHA256" in reply.text
    put = v2.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "uploads/y", "ContentType": "text/plain"}
    )
    reply = requests.put(put, data=b"y", headers={"Content-Type": "text/plain"}, timeout=5)
    assert reply.status_code == 400 and "uploads/y" not in bucket_keys("uploads/")
    # The gateway's own URL (SigV4) is served.
    blobs = services.current().blobs
    assert blobs is not None
    assert requests.get(blobs.download_url("downloads/x", 60), timeout=5).content == b"x"


def test_a_missing_key_is_403_unless_the_functions_may_list_it() -> None:
    """S3's rule, applied by the local S3 with the policy bootstrap writes."""
    from slipway_dev import s3rules

    bucket = "slipway-dev-blobs"
    deployed = s3rules.functions_policy(bucket)
    for prefix in ("publish/", "uploads/", "downloads/", "backend-uploads/"):
        assert s3rules.missing_key_answer(deployed, bucket, f"{prefix}k") == 404
    assert s3rules.missing_key_answer(deployed, bucket, "elsewhere/k") == 403
    assert s3rules.missing_key_answer(s3rules.functions_policy("other"), bucket, "uploads/k") == 403
    without = {
        "Version": "2012-10-17",
        "Statement": [s for s in deployed["Statement"] if "s3:ListBucket" not in s["Action"]],
    }
    assert s3rules.missing_key_answer(without, bucket, "uploads/k") == 403


def test_the_local_s3_answers_a_missing_key_by_the_policy(gateway: Gateway) -> None:
    import botocore.exceptions

    from chalicelib import services

    bucket = services.current().settings.bucket
    s3 = boto3.client("s3")
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="backend-uploads/never")
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        s3.get_object(Bucket=bucket, Key="elsewhere/never")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(botocore.exceptions.ClientError) as head:
        s3.head_object(Bucket=bucket, Key="elsewhere/never")
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    s3.put_object(Bucket=bucket, Key="elsewhere/there", Body=b"1")
    assert s3.get_object(Bucket=bucket, Key="elsewhere/there")["Body"].read() == b"1"
