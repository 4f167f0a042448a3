"""Envelope mode end to end (docs/envelope.md): messages of any size through S3, between
real clients (the slipway_client library, and bare websockets for the frames
themselves), `slipway local` and the gripcontrol test backend."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from botocore.config import Config
from gripcontrol import decode_websocket_events
from slipway_client import ControlClient, WebSocketClient
from slipway_client.envelope import strip_query
from websockets.sync.client import ClientConnection, connect

from .processes import KEY, GripBackend, LocalStack
from .test_gateway import TIMEOUT, local_client

UPLOAD_EXPIRY = 4
MAX_UPLOAD = 2 * 1024 * 1024
STACK_ENV = {
    "SLIPWAY_UPLOAD_EXPIRY": str(UPLOAD_EXPIRY),
    "SLIPWAY_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
}
# A fan-out of one publish to 50 clients: well inside this.
STACK_ARGS = ("--visibility-timeout", "30")
BUCKET = "slipway-blobs"
MB = 1024 * 1024


def big_text(size: int) -> str:
    """`size` characters that JSON must escape and UTF-8 must widen, now and then."""
    unit = 'ab"c\\d/é€\n😀' + uuid.uuid4().hex
    return (unit * (size // len(unit) + 1))[:size]


def s3(stack: LocalStack, **options: Any) -> Any:
    return local_client("s3", stack.urls["aws"], **options)


def keys(stack: LocalStack, prefix: str = "") -> set[str]:
    found = s3(stack).list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"] for o in found}


def texts_from(backend: GripBackend, marker: str) -> list[bytes]:
    """The TEXT contents the backend got from the connection(s) marked `marker`."""
    found = []
    for request in backend.requests_with(marker):
        for event in decode_websocket_events(request["body"]):
            if event.type == "TEXT":
                found.append(event.content)
    return found


def frames_client(stack: LocalStack, marker: str, **query: str) -> ClientConnection:
    """A bare WebSocket client in envelope mode: the test speaks the frames itself."""
    url = f"{stack.websocket}?{urlencode({'t': marker, 'envelope': '1', **query})}"
    return connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=None)


def recv_frame(ws: ClientConnection) -> list[Any]:
    return json.loads(ws.recv(timeout=TIMEOUT))


def assert_usable(ws: ClientConnection, mid: int = 99) -> None:
    """The connection still carries messages both ways."""
    ws.send(json.dumps([1, mid, f"still here {mid}"]))
    assert recv_frame(ws) == [1, 0, f"still here {mid}"]


def upload_target(ws: ClientConnection, mid: int) -> tuple[str, dict[str, str]]:
    ws.send(json.dumps([2, mid]))
    kind, got_id, url, method, headers = recv_frame(ws)
    assert (kind, got_id, method) == (3, mid, "PUT")
    return url, headers


def refusal(ws: ClientConnection, mid: int) -> str:
    kind, got_id, error = recv_frame(ws)
    assert (kind, got_id, error["success"]) == (5, mid, False), error
    assert error["errorMessage"]
    return error["errorCode"]


# -- client -> backend ---------------------------------------------------------------


def test_a_1_mb_message_from_the_python_client_reaches_the_backend_byte_exact(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    text = big_text(MB)
    document = {"rows": [big_text(1000) for _ in range(300)], "n": 1}

    async def run() -> tuple[Any, Any, Any]:
        url = f"{stack.websocket}?t={marker}"
        async with WebSocketClient(url, reconnect=None) as ws:
            await ws.send(text)
            echoed = await asyncio.wait_for(ws.recv(), 30)  # the backend echoes it back
            await ws.send(document)
            echoed_document = await asyncio.wait_for(ws.recv(), 30)
            await ws.send("small")
            small = await asyncio.wait_for(ws.recv(), TIMEOUT)
        return echoed, echoed_document, small

    echoed, echoed_document, small = asyncio.run(run())
    got = texts_from(backend, marker)
    assert got[0] == text.encode("utf-8")
    assert json.loads(got[1]) == document
    assert got[1] == json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    assert got[2] == b"small"
    # ... and the echoes came back the same way: through S3 when large.
    assert echoed == text
    assert echoed_document == document
    assert small == "small"
    assert not keys(stack, "uploads/"), "a forwarded upload is deleted"


def test_the_aux_client_frames_upload_and_announce(stack: LocalStack, backend: GripBackend) -> None:
    """What `@casual-simulation/aux-websocket-aws` does, frame by frame."""
    marker = uuid.uuid4().hex
    data = {"big": big_text(40_000)}
    with frames_client(stack, marker) as ws:
        url, headers = upload_target(ws, 5)
        assert headers == {
            "Content-Type": "application/json",
            "x-amz-acl": "bucket-owner-full-control",
        }
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        assert requests.put(url, data=body, headers=headers, timeout=TIMEOUT).ok
        ws.send(json.dumps([4, 5, strip_query(url), "GET", {}]))
        kind, mid, download, method, _ = recv_frame(ws)  # the echo: too large for a frame
        assert (kind, mid, method) == (4, -1, "GET")
        assert requests.get(download, timeout=TIMEOUT).content == body
        assert_usable(ws)
    assert texts_from(backend, marker)[0] == body


def _sigv4_at_the_local_s3(stack: LocalStack, url: str) -> None:
    """Signature Version 4, on the stack's S3 (AWS_ENDPOINT_URL: path-style there; on AWS
    the bucket's regional host, tests/test_uploads.py)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == stack.urls["aws"], url
    assert parts.path.startswith(f"/{BUCKET}/"), url
    query = parse_qs(parts.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"], url
    assert "Signature" not in query and "AWSAccessKeyId" not in query, url


def test_every_presigned_url_is_sigv4_and_the_local_s3_refuses_sigv2(stack: LocalStack) -> None:
    """[3] upload targets, [4] downloads and POST /uploads: what S3 takes from a bucket
    made today. The local S3 refuses a SigV2 URL as S3 does."""
    data = json.dumps({"big": big_text(40_000)}).encode()
    with frames_client(stack, uuid.uuid4().hex) as ws:
        url, headers = upload_target(ws, 6)
        _sigv4_at_the_local_s3(stack, url)
        assert requests.put(url, data=data, headers=headers, timeout=TIMEOUT).ok
        ws.send(json.dumps([4, 6, strip_query(url), "GET", {}]))
        kind, mid, download, _, _ = recv_frame(ws)  # the echo: too large for a frame
        assert (kind, mid) == (4, -1)
        _sigv4_at_the_local_s3(stack, download)
        assert requests.get(download, timeout=TIMEOUT).content == data
    issued = requests.post(
        f"{stack.control}/uploads", headers={"Authorization": f"Bearer {KEY}"}, timeout=TIMEOUT
    )
    _sigv4_at_the_local_s3(stack, issued.json()["url"])

    key = strip_query(download).rpartition(f"/{BUCKET}/")[2]
    v2 = s3(stack, config=Config(signature_version="s3"))
    sigv2 = v2.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key})
    assert "Signature=" in sigv2
    refused = requests.get(sigv2, timeout=TIMEOUT)
    assert refused.status_code == 400
    assert "<Code>InvalidRequest</Code>" in refused.text, refused.text


def test_small_messages_are_wrapped_and_unwrapped(stack: LocalStack, backend: GripBackend) -> None:
    marker = uuid.uuid4().hex
    with frames_client(stack, marker) as ws:
        ws.send(json.dumps([1, 1, {"hello": [1, 2]}]))
        assert recv_frame(ws) == [1, 0, {"hello": [1, 2]}]  # JSON from the backend: embedded
        ws.send(json.dumps([1, 2, "plain"]))
        assert recv_frame(ws) == [1, 0, "plain"]
    assert texts_from(backend, marker) == [b'{"hello":[1,2]}', b"plain"]


# -- failures: a [5] each, and the connection goes on ---------------------------------


def test_a_download_of_another_connections_upload_is_refused(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    with frames_client(stack, marker) as mine, frames_client(stack, marker) as theirs:
        their_url, headers = upload_target(theirs, 1)
        requests.put(their_url, data=b'"their secret"', headers=headers, timeout=TIMEOUT)
        for foreign in (
            strip_query(their_url),
            f"{stack.urls['aws']}/{BUCKET}/publish/anything.json",
            "https://elsewhere.example/uploads/x/1-1-0123abcd.json",
        ):
            mine.send(json.dumps([4, 7, foreign, "GET", {}]))
            assert refusal(mine, 7) == "foreign_key"
        assert_usable(mine)
        # Their upload is untouched: they can still announce it.
        theirs.send(json.dumps([4, 1, strip_query(their_url), "GET", {}]))
        assert recv_frame(theirs) == [1, 0, "their secret"]
    assert b"their secret" in texts_from(backend, marker)
    assert texts_from(backend, marker).count(b"their secret") == 1


def test_an_expired_upload_is_refused(stack: LocalStack) -> None:
    with frames_client(stack, uuid.uuid4().hex) as ws:
        late_url, headers = upload_target(ws, 1)
        never_url, _ = upload_target(ws, 2)
        time.sleep(UPLOAD_EXPIRY + 1.5)
        # S3 would refuse this PUT; moto takes it, and the gateway still refuses it.
        requests.put(late_url, data=b'"late"', headers=headers, timeout=TIMEOUT)
        ws.send(json.dumps([4, 1, strip_query(late_url), "GET", {}]))
        assert refusal(ws, 1) == "upload_expired"
        ws.send(json.dumps([4, 2, strip_query(never_url), "GET", {}]))
        assert refusal(ws, 2) == "upload_expired"
        assert_usable(ws)
    assert not keys(stack, "uploads/")


def test_a_too_large_upload_is_refused(stack: LocalStack, backend: GripBackend) -> None:
    marker = uuid.uuid4().hex
    with frames_client(stack, marker) as ws:
        url, headers = upload_target(ws, 3)
        body = json.dumps("x" * (MAX_UPLOAD + 10)).encode()
        requests.put(url, data=body, headers=headers, timeout=30)
        ws.send(json.dumps([4, 3, strip_query(url), "GET", {}]))
        assert refusal(ws, 3) == "message_too_large"
        assert_usable(ws)
    assert not keys(stack, "uploads/"), "the refused upload is deleted"
    assert all(len(t) < MAX_UPLOAD for t in texts_from(backend, marker))


def test_an_announced_upload_that_never_came_is_not_found(stack: LocalStack) -> None:
    with frames_client(stack, uuid.uuid4().hex) as ws:
        url, _ = upload_target(ws, 4)
        ws.send(json.dumps([4, 4, strip_query(url), "GET", {}]))
        assert refusal(ws, 4) == "upload_not_found"
        assert_usable(ws)


@pytest.mark.parametrize(
    ("frame", "mid", "code"),
    [
        ("hello", 0, "not_an_array"),
        ('{"a": 1}', 0, "not_an_array"),
        ("[9, 6]", 6, "unknown_frame_type"),
        ("[3, 6, 1]", 6, "unknown_frame_type"),
        ("[1, 6]", 6, "invalid_frame"),
    ],
)
def test_malformed_frames_are_refused(stack: LocalStack, frame: str, mid: int, code: str) -> None:
    with frames_client(stack, uuid.uuid4().hex) as ws:
        ws.send(frame)
        assert refusal(ws, mid) == code
        assert_usable(ws)


# -- gateway -> clients ---------------------------------------------------------------


async def _subscribers(stack: LocalStack, channel: str, count: int) -> list[WebSocketClient]:
    url = f"{stack.websocket}?{urlencode({'subscribe': channel})}"
    gate = asyncio.Semaphore(10)

    async def one() -> WebSocketClient:
        async with gate:  # the 101 comes after $connect stored the subscription
            client = WebSocketClient(url, reconnect=None, open_timeout=30)
            await client.connect()
            return client

    return list(await asyncio.gather(*(one() for _ in range(count))))


def test_a_1_mb_publish_reaches_50_envelope_clients_through_one_s3_object(
    stack: LocalStack,
) -> None:
    channel = f"big-{uuid.uuid4().hex[:8]}"
    text = big_text(MB)
    control = ControlClient(stack.control, key=KEY)

    async def run() -> list[Any]:
        clients = await _subscribers(stack, channel, 50)
        try:
            await asyncio.to_thread(control.publish, channel, text)
            async with asyncio.timeout(90):
                return list(await asyncio.gather(*(c.recv() for c in clients)))
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    before = keys(stack)
    received = asyncio.run(run())
    assert len(received) == 50
    assert all(r == text for r in received)  # byte-exact: == on the whole string
    written = keys(stack) - before
    assert len(written) == 1, written


def test_a_raw_client_is_not_sent_an_oversize_message(stack: LocalStack) -> None:
    channel = f"mixed-{uuid.uuid4().hex[:8]}"
    oversize = big_text(200 * 1024)
    query = urlencode({"subscribe": channel})
    raw = connect(f"{stack.websocket}?{query}", open_timeout=TIMEOUT, max_size=None)
    wrapped = frames_client(stack, uuid.uuid4().hex, subscribe=channel)
    with raw, wrapped:
        reply = requests.post(
            f"{stack.control}/publish/",
            json={
                "items": [{"channel": channel, "formats": {"ws-message": {"content": oversize}}}]
            },
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["too_large_for_raw"] == [0]
        kind, mid, url, _, _ = recv_frame(wrapped)
        assert (kind, mid) == (4, -1)
        assert json.loads(requests.get(url, timeout=TIMEOUT).content) == oversize
        ControlClient(stack.control, key=KEY).publish(channel, "after")
        # The raw client's first message is the one after: the oversize one was skipped.
        assert raw.recv(timeout=TIMEOUT) == "after"
        assert recv_frame(wrapped) == [1, 0, "after"]


def test_one_oversize_message_to_a_raw_connection_is_refused_with_413(
    stack: LocalStack, backend: GripBackend
) -> None:
    from .test_gateway import client, connection_id

    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        cid = connection_id(backend, marker)
        reply = requests.post(
            f"{stack.control}/connections/{cid}/message",
            json={"content": "x" * (129 * 1024)},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=TIMEOUT,
        )
        assert reply.status_code == 413
        assert "envelope" in reply.json()["error"]
        ws.send("still connected")
        assert ws.recv(timeout=TIMEOUT) == "still connected"
