"""Ordered delivery end to end (docs/ordered.md): real clients -> `slipway local`
(whose API Gateway runs a connection's `$default` events concurrently, as AWS
may) -> the ordered queue and its forwarder -> the gripcontrol test backend."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

from websockets.sync.client import ClientConnection, connect

from chalicelib.grip import codec

from .processes import GripBackend, LocalStack

TIMEOUT = 20.0


@contextmanager
def client(stack: LocalStack, marker: str, **query: str) -> Iterator[ClientConnection]:
    url = f"{stack.websocket}?{urlencode({'t': marker, **query})}"
    with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        yield ws


def events(requests: list[dict]) -> list[list[codec.Event]]:
    return [codec.decode(r["body"]) for r in requests]


def texts(requests: list[dict]) -> list[str]:
    return [
        e.content.decode()
        for r in events(requests)
        for e in r
        if e.type == "TEXT" and e.content is not None
    ]


def overlapping(requests: list[dict]) -> int:
    """How many requests began before the one before them was answered."""
    spans = sorted((r["started"], r["finished"]) for r in requests)
    return sum(1 for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1])


def test_300_messages_arrive_in_order_batched_and_close_comes_last(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    sent = [f"m{i:03d}" for i in range(300)]
    with client(stack, marker, ordered="1") as ws:
        for text in sent:
            ws.send(text)
        echoed = [ws.recv(timeout=TIMEOUT) for _ in sent]
    got = backend.wait_for(
        marker, lambda rs: any(e.type == "CLOSE" for r in events(rs) for e in r), TIMEOUT
    )
    assert got[0]["body"] == b"OPEN\r\n"
    assert texts(got) == sent  # every message, once, in the order the client sent them
    assert echoed == sent  # the backend's answers come back in that order too
    requests = got[1:]
    assert len(requests) <= 300 // 5, f"{len(requests)} requests for 300 messages"
    assert overlapping(requests) == 0  # one request in flight at a time
    last = events(got)[-1]
    assert last[-1].type == "CLOSE" and all(e.type == "CLOSE" for e in last)


def test_without_ordered_the_local_stack_runs_events_concurrently(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        for _ in range(4):
            ws.send("sleep 0.3")
        for _ in range(4):
            assert ws.recv(timeout=TIMEOUT) == "awake"
    got = backend.wait_for(marker, lambda rs: len(rs) >= 5, TIMEOUT)
    sleeps = [r for r in got[1:] if b"sleep" in r["body"]]
    assert len(sleeps) == 4
    # As API Gateway may: a message's request starts before the one before it ended.
    assert overlapping(sleeps) >= 1


def test_meta_set_by_the_backend_comes_with_later_requests(
    stack: LocalStack, backend: GripBackend
) -> None:
    # Within one batched request the backend sees the meta it had before the
    # request, as behind Pushpin; the next request carries what it set.
    marker = uuid.uuid4().hex
    with client(stack, marker, ordered="1") as ws:
        ws.send("meta room blue")
        assert ws.recv(timeout=TIMEOUT) == "meta room set"
        ws.send("whoami")
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {"room": "blue"}


def test_detach_stops_forwarding_in_ordered_mode(stack: LocalStack, backend: GripBackend) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker, ordered="1") as ws:
        ws.send("detach")
        assert ws.recv(timeout=TIMEOUT) == "detached"
        ws.send("after")
        time.sleep(1.0)
    got = backend.requests_with(marker)
    assert "after" not in texts(got)
    assert not any(e.type == "CLOSE" for r in events(got) for e in r)


def test_envelope_frames_in_ordered_mode(stack: LocalStack, backend: GripBackend) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker, ordered="1", envelope="1") as ws:
        for i in range(20):
            ws.send(json.dumps([1, i + 1, f"e{i}"]))
        replies = [json.loads(ws.recv(timeout=TIMEOUT)) for _ in range(20)]
    assert [r[2] for r in replies] == [f"e{i}" for i in range(20)]
    got = backend.wait_for(marker, lambda rs: len(texts(rs)) >= 20, TIMEOUT)
    assert texts(got) == [f"e{i}" for i in range(20)]


def test_a_close_right_after_a_burst_comes_after_every_message(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    sent = [f"q{i:02d}" for i in range(50)]
    with client(stack, marker, ordered="1") as ws:
        for text in sent:
            ws.send(text)
    got = backend.wait_for(
        marker, lambda rs: any(e.type == "CLOSE" for r in events(rs) for e in r), TIMEOUT
    )
    assert texts(got) == sent
    assert [e.type for e in events(got)[-1]] == ["CLOSE"]
