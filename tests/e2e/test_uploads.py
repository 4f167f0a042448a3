"""Large messages by reference end to end (docs/control-api.md#large-messages):
`POST /uploads`, a PUT to the local S3, a publish naming the upload, and real
envelope clients fetching the one uploaded object; and the local stack refusing
what AWS's request limits refuse."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from slipway_client import ControlClient

from chalicelib.grip import envelope
from chalicelib.grip import uploads as refs

from .processes import KEY, GripBackend, LocalStack
from .test_envelope import (
    BUCKET,
    MB,
    _subscribers,
    big_text,
    frames_client,
    keys,
    recv_frame,
    s3,
    upload_target,
)
from .test_gateway import TIMEOUT, connection_id

MAX_PUBLISH = 24 * MB
STACK_ENV = {"SLIPWAY_MAX_PUBLISH_BYTES": str(MAX_PUBLISH)}
STACK_ARGS = ("--visibility-timeout", "30")
AUTH = {"Authorization": f"Bearer {KEY}"}


def item(channel: str, **message: str) -> dict[str, Any]:
    return {"channel": channel, "formats": {"ws-message": message}}


def publish(stack: LocalStack, *items: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{stack.control}/publish/", json={"items": list(items)}, headers=AUTH, timeout=30
    )


def test_a_20_mb_publish_through_control_client_reaches_20_envelope_clients(
    stack: LocalStack,
) -> None:
    channel = f"huge-{uuid.uuid4().hex[:8]}"
    text = big_text(18 * MB)  # 21.5 MB of UTF-8, with quotes, backslashes and newlines
    assert len(text.encode()) > 20 * MB
    control = ControlClient(stack.control, key=KEY)

    async def run() -> tuple[list[Any], float]:
        clients = await _subscribers(stack, channel, 20)
        try:
            started = time.monotonic()
            await asyncio.to_thread(control.publish, channel, text)
            async with asyncio.timeout(120):
                got = list(await asyncio.gather(*(c.recv() for c in clients)))
            return got, time.monotonic() - started
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    before = keys(stack)
    received, took = asyncio.run(run())
    print(f"20 MB to 20 envelope clients: {took:.1f} s from publish() to the last download")
    assert len(received) == 20 and all(r == text for r in received)  # byte-exact
    written = keys(stack) - before
    assert len(written) == 1 and next(iter(written)).startswith(refs.PREFIX), written


def test_the_two_steps_with_curl(stack: LocalStack, tmp_path: Path) -> None:
    channel = f"curl-{uuid.uuid4().hex[:8]}"
    document = {"rows": [big_text(1000) for _ in range(500)]}  # 1.2 MB of JSON
    path = tmp_path / "document.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    auth = f"Authorization: Bearer {KEY}"

    def curl(*args: str) -> str:
        done = subprocess.run(
            ["curl", "-sS", "--fail-with-body", *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    with frames_client(stack, uuid.uuid4().hex, subscribe=channel) as ws:
        target = json.loads(curl("-X", "POST", f"{stack.control}/uploads", "-H", auth))
        assert set(target) >= {"url", "method", "headers", "ref", "expires_at"}
        curl("-X", "PUT", "-T", str(path), "-H", "Content-Type: application/json", target["url"])
        body = json.dumps({"items": [item(channel, **{"content-ref": target["ref"]})]})
        headers = ["-H", auth, "-H", "Content-Type: application/json"]
        answer = json.loads(curl(f"{stack.control}/publish/", *headers, "-d", body))
        assert answer["message"] == "Published" and answer["too_large_for_raw"] == [0]
        kind, mid, url, method, _ = recv_frame(ws)
        assert (kind, mid, method) == (4, -1, "GET") and target["ref"] in url
        assert requests.get(url, timeout=TIMEOUT).content == path.read_bytes()


def test_control_client_sends_a_large_message_to_one_connection_by_reference(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    text = big_text(MB)
    with frames_client(stack, marker) as ws:
        ControlClient(stack.control, key=KEY).send(connection_id(backend, marker), text)
        kind, mid, url, _, _ = recv_frame(ws)
        assert (kind, mid) == (4, -1) and refs.PREFIX in url
        assert requests.get(url, timeout=TIMEOUT).json() == text


def test_grip_pub_control_publishes_a_ref_in_a_format_of_its_own(stack: LocalStack) -> None:
    """docs/control-api.md#large-messages: gripcontrol users upload, then publish the ref."""
    from gripcontrol import GripPubControl
    from pubcontrol import Format, Item

    class RefFormat(Format):  # as the docs spell it
        def __init__(self, ref: str) -> None:
            self.ref = ref

        def name(self) -> str:
            return "ws-message"

        def export(self) -> dict[str, str]:
            return {"content-ref": self.ref}

    channel = f"grip-{uuid.uuid4().hex[:8]}"
    document = {"rows": ["r" * 1000] * 100}
    ref = ControlClient(stack.control, key=KEY).upload(json.dumps(document))
    with frames_client(stack, uuid.uuid4().hex, subscribe=channel) as ws:
        pub = GripPubControl({"control_uri": stack.control, "key": KEY})
        pub.publish(channel, Item(RefFormat(ref)), blocking=True)
        kind, _, url, _, _ = recv_frame(ws)
        assert kind == 4 and ref in url
        assert requests.get(url, timeout=TIMEOUT).json() == document


def test_an_inline_7_mb_publish_is_refused_as_aws_refuses_it(stack: LocalStack) -> None:
    channel = f"inline-{uuid.uuid4().hex[:8]}"
    with frames_client(stack, uuid.uuid4().hex, subscribe=channel) as ws:
        for size, limit in [(7 * MB, "6291456"), (11 * MB, "10485760")]:
            reply = publish(stack, item(channel, content="x" * size))
            assert reply.status_code == 413
            answer = reply.json()
            assert answer["message"] == "Request Too Long"  # API Gateway's body
            assert limit in answer["error"] and "POST /uploads" in answer["error"]
        # curl asks `Expect: 100-continue` first: refused before the body is sent.
        done = subprocess.run(
            [
                "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}",
                "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                "--data-binary", "@-", f"{stack.control}/publish/",
            ],
            input=json.dumps({"items": [item(channel, content="y" * 7 * MB)]}).encode(),
            capture_output=True, timeout=60,
        )  # fmt: skip
        status, sent = done.stdout.decode().split()
        assert status == "413" and int(sent) < MB
        assert publish(stack, item(channel, content="after")).status_code == 200
        assert recv_frame(ws) == [1, 0, "after"]  # nothing of the refused ones went out


def _missing(stack: LocalStack) -> str:
    return requests.post(f"{stack.control}/uploads", headers=AUTH, timeout=TIMEOUT).json()["ref"]


def _foreign(stack: LocalStack) -> str:
    """A client's envelope upload, uploaded: a key this deployment issued, not a ref."""
    with frames_client(stack, uuid.uuid4().hex) as ws:
        url, headers = upload_target(ws, 7)
    assert requests.put(url, data=b'"mine"', headers=headers, timeout=TIMEOUT).ok
    return envelope.key_of(url, BUCKET)


def _expired(stack: LocalStack) -> str:
    issued = refs.issue(KEY, int(time.time()) - 1, uuid.uuid4().hex)
    s3(stack).put_object(Bucket=BUCKET, Key=issued.key, Body=b'"late"')
    return issued.key


def _oversize(stack: LocalStack) -> str:
    target = requests.post(f"{stack.control}/uploads", headers=AUTH, timeout=TIMEOUT).json()
    data = json.dumps("z" * MAX_PUBLISH).encode()
    assert requests.put(target["url"], data=data, headers=target["headers"], timeout=60).ok
    return str(target["ref"])


@pytest.mark.parametrize(
    "make, reason",
    [
        (_missing, "not_found"),
        (_foreign, "foreign"),
        (_expired, "expired"),
        (_oversize, "too_large"),
    ],
)
def test_a_bad_ref_is_a_400_naming_it_and_nothing_is_queued(
    stack: LocalStack, make: Any, reason: str
) -> None:
    channel = f"bad-{uuid.uuid4().hex[:8]}"
    ref = make(stack)
    with frames_client(stack, uuid.uuid4().hex, subscribe=channel) as ws:
        reply = publish(
            stack, item(channel, content="first"), item(channel, **{"content-ref": ref})
        )
        assert reply.status_code == 400, reply.text
        [(field, [why])] = reply.json()["fields"].items()
        assert field == "items.1.ws-message.content-ref" and why.startswith(f"{reason}:"), why
        assert publish(stack, item(channel, content="after")).status_code == 200
        assert recv_frame(ws) == [1, 0, "after"]  # "first" was never queued
