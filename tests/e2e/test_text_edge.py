"""Text checked once at the edge, end to end (issue 24, findings 3 and 4): meta that
could not ride as a header, and lone surrogates, are refused where they enter
(control API, backend answers, client frames, uploads) and the connection or the
channel goes on; a queued job that can never succeed no longer holds its channel.

Through real sockets against `slipway local` and the gripcontrol test backend."""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests

from chalicelib.grip import jobs
from chalicelib.grip.payload import Payload

from .processes import KEY, GripBackend, LocalStack
from .test_envelope import frames_client, recv_frame, refusal, strip_query, upload_target
from .test_gateway import TIMEOUT, client, connection_id, local_client

# A poisoned job must be seen holding its group: longer than TIMEOUT, as deployed.
STACK_ARGS = ("--visibility-timeout", "30")
WS = '"ws-message": {"content": '  # an item's format, written by hand
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def patch_meta(stack: LocalStack, cid: str, raw: str) -> requests.Response:
    """PATCH with a body written by hand, so it may hold JSON escapes of any kind."""
    return requests.patch(
        f"{stack.control}/connections/{cid}/meta", data=raw, headers=AUTH, timeout=TIMEOUT
    )


def publish_raw(stack: LocalStack, raw: str) -> requests.Response:
    return requests.post(f"{stack.control}/publish/", data=raw, headers=AUTH, timeout=TIMEOUT)


def echoes(ws: Any, text: str = "still here") -> None:
    """The connection still reaches the backend and back."""
    ws.send(text)
    assert ws.recv(timeout=TIMEOUT) == text


def close_reaches_the_backend(backend: GripBackend, marker: str) -> None:
    backend.wait_for(marker, lambda got: any(b"CLOSE" in r["body"] for r in got))


# -- finding 3: meta that cannot be a header ------------------------------------------


def test_meta_a_header_cannot_carry_is_refused_naming_it(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        cid = connection_id(backend, marker)
        for value in ("€uro", "名前", "🙂", " lead", "x" * 70_000):
            reply = patch_meta(stack, cid, json.dumps({"user": value}))
            assert reply.status_code == 400, (value[:10], reply.text)
            assert "user" in reply.json()["fields"]
            echoes(ws)
        assert patch_meta(stack, cid, '{"user": "alice"}').status_code == 200
        ws.send("whoami")
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {"user": "alice"}
    close_reaches_the_backend(backend, marker)


def test_meta_stays_within_its_count_limit(stack: LocalStack, backend: GripBackend) -> None:
    """4 x 32 names made the backend answer 431 and closed the client: now the
    PATCH past the limit is refused and the connection goes on."""
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        cid = connection_id(backend, marker)
        statuses = [
            patch_meta(stack, cid, json.dumps({f"n{k}x{i}": "v" for i in range(32)})).status_code
            for k in range(4)
        ]
        assert statuses[0] == 200 and 400 in statuses, statuses
        echoes(ws)


def test_a_backend_set_meta_a_header_cannot_carry_is_ignored(
    stack: LocalStack, backend: GripBackend
) -> None:
    """A set-meta control message with such a value is dropped (logged); the meta
    stays as it was and the client's messages and close still reach the backend."""
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        for value in ("€uro", " lead"):
            ws.send(f"setmeta user {value}")
            assert ws.recv(timeout=TIMEOUT) == "meta user sent"
            echoes(ws)
        ws.send("setmeta user alice")
        assert ws.recv(timeout=TIMEOUT) == "meta user sent"
        ws.send("whoami")
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {"user": "alice"}
    close_reaches_the_backend(backend, marker)
    assert "set-meta ignored" in stack.log()


# -- finding 4: lone surrogates --------------------------------------------------------


def test_a_publish_holding_a_lone_surrogate_is_refused_and_the_channel_goes_on(
    stack: LocalStack, backend: GripBackend
) -> None:
    room, marker = f"s-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with client(stack, marker, subscribe=room) as ws:
        connection_id(backend, marker)
        for item, field in (
            (f'{{"channel": "{room}", {WS}"bad \\udc80"}}}}', "items.0.ws-message.content"),
            (f'{{"channel": "bad \\udc80", {WS}"x"}}}}', "items.0.channel"),
            (f'{{"channel": "{room}", "id": "\\ud800", {WS}"x"}}}}', "items.0.id"),
        ):
            reply = publish_raw(stack, f'{{"items": [{item}]}}')
            assert reply.status_code == 400, reply.text
            assert list(reply.json()["fields"]) == [field]
        assert publish_raw(
            stack, json.dumps({"items": [{"channel": room, "ws-message": {"content": "next"}}]})
        )
        assert ws.recv(timeout=TIMEOUT) == "next"


def test_a_frame_holding_a_lone_surrogate_is_an_invalid_frame(stack: LocalStack) -> None:
    with frames_client(stack, uuid.uuid4().hex) as ws:
        ws.send('[1, 7, "\\ud800"]')
        assert refusal(ws, 7) == "invalid_frame"
        ws.send('[1, 8, {"k": ["\\udc80"]}]')
        assert refusal(ws, 8) == "invalid_frame"
        ws.send(json.dumps([1, 9, "fine"]))
        assert recv_frame(ws) == [1, 0, "fine"]


def test_an_upload_holding_a_lone_surrogate_is_refused(stack: LocalStack) -> None:
    with frames_client(stack, uuid.uuid4().hex) as ws:
        url, headers = upload_target(ws, 3)
        requests.put(url, data=b'"bad \\ud800"', headers=headers, timeout=TIMEOUT)
        ws.send(json.dumps([4, 3, strip_query(url), "GET", {}]))
        assert refusal(ws, 3) == "invalid_upload"
        ws.send(json.dumps([1, 9, "fine"]))
        assert recv_frame(ws) == [1, 0, "fine"]


# -- poison jobs -------------------------------------------------------------------------


def _queue(stack: LocalStack) -> tuple[Any, str]:
    sqs: Any = local_client("sqs", stack.urls["aws"])
    return sqs, sqs.get_queue_url(QueueName="slipway-publish.fifo")["QueueUrl"]


def test_a_job_that_can_never_succeed_does_not_hold_its_channel(
    stack: LocalStack, backend: GripBackend
) -> None:
    """A publish job holding a lone surrogate (queued by an older deploy, or by a
    bug) is moved aside at once, logged with its channel: the channel's next
    publish arrives without waiting out retries (the visibility timeout is 30 s)."""
    room, marker = f"p-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    poison = jobs.Publish(room, jobs.Inline(Payload.of_text("bad \udc80")))
    good = jobs.Publish(room, jobs.Inline(Payload.of_text("after")))
    with client(stack, marker, subscribe=room) as ws:
        connection_id(backend, marker)
        sqs, url = _queue(stack)
        for job in (poison, good):
            sqs.send_message(
                QueueUrl=url,
                MessageBody=jobs.encode(job),
                MessageGroupId=jobs.group(job),
                MessageDeduplicationId=uuid.uuid4().hex,
            )
        assert ws.recv(timeout=TIMEOUT) == "after"
    log = stack.log()
    assert "moved aside" in log and repr(room) in log
