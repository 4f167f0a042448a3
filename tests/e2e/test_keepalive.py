"""GRIP keep-alive through the local stack: the scheduled function, the worker and
@connections, with real clients and the gripcontrol backend."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from .processes import KEY, GripBackend, LocalStack
from .test_gateway import TIMEOUT, client, connection_id

IDLE = 5.0  # API Gateway's idle timeout, shortened (every keep-alive here is shorter)
STACK_ARGS = ("--idle-timeout", str(IDLE))


def spec(**params: object) -> str:
    return json.dumps(params)


def arrivals(ws: ClientConnection, seconds: float, keep: Callable[[str], bool]) -> list[float]:
    """When (monotonic) each message `keep` accepts arrived, over `seconds` or
    until the connection closes."""
    seen = []
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        try:
            message = ws.recv(timeout=left)
        except (TimeoutError, ConnectionClosed):
            break
        if keep(str(message)):
            seen.append(time.monotonic())
    return seen


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def publish(stack: LocalStack, channel: str, text: str) -> None:
    reply = requests.post(
        f"{stack.control}/publish/",
        json={"items": [{"channel": channel, "formats": {"ws-message": {"content": text}}}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=TIMEOUT,
    )
    assert reply.status_code == 200, reply.text


def test_an_interval_keep_alive_from_the_open_response_arrives_every_period(
    stack: LocalStack,
) -> None:
    with client(stack, keepalive=spec(content="ka", timeout=2, mode="interval")) as ws:
        started = time.monotonic()
        times = arrivals(ws, 9, lambda m: m == "ka")
    assert len(times) >= 3, times
    # the first one timeout after the keep-alive was set; then one every period
    assert 2 - 1.5 <= times[0] - started <= 2 + 2.5
    assert all(2 - 1.5 <= gap <= 2 + 2.5 for gap in gaps(times)), gaps(times)


def test_an_idle_keep_alive_waits_while_the_connection_is_sent_other_messages(
    stack: LocalStack,
) -> None:
    channel = uuid.uuid4().hex
    with client(stack, subscribe=channel) as ws:
        ws.send("keepalive " + spec(content="idle-ka", timeout=3, mode="idle"))
        stop = threading.Event()

        def chatter() -> None:  # a publish every second: shorter than the timeout
            while not stop.wait(1.0):
                publish(stack, channel, "news")

        talker = threading.Thread(target=chatter)
        talker.start()
        try:
            during = arrivals(ws, 8, lambda m: m == "idle-ka")
        finally:
            stop.set()
            talker.join()
        quiet_from = time.monotonic()
        after = arrivals(ws, 7, lambda m: m == "idle-ka")
    assert during == []
    assert after, "no keep-alive once the messages stopped"
    assert after[0] - quiet_from <= 3 + 2.5


def test_a_new_keep_alive_replaces_the_old_and_no_content_turns_it_off(
    stack: LocalStack,
) -> None:
    with client(stack, keepalive=spec(content="old", timeout=2, mode="interval")) as ws:
        assert arrivals(ws, 3.5, lambda m: m == "old")
        ws.send("keepalive " + spec(content="new", timeout=4, mode="interval"))
        replaced = time.monotonic()
        times = arrivals(ws, 13, lambda m: m == "new")
        assert arrivals(ws, 0.1, lambda m: m == "old") == []
        assert len(times) >= 2, times
        assert 4 - 1.5 <= times[0] - replaced <= 4 + 2.5
        assert all(4 - 1.5 <= gap <= 4 + 2.5 for gap in gaps(times)), gaps(times)
        ws.send("keepalive " + spec(timeout=4))  # no content: off
        time.sleep(1.0)
        assert arrivals(ws, 6, lambda m: m in ("old", "new")) == []


def test_a_kept_alive_client_outlives_the_idle_timeout_and_a_quiet_one_does_not(
    stack: LocalStack,
) -> None:
    kept = client(stack, keepalive=spec(content="", timeout=2, mode="idle"))
    quiet = client(stack)
    with kept as alive, quiet as silent:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while time.monotonic() - started < 3 * IDLE + 2:
                try:
                    silent.recv(timeout=1)
                except TimeoutError:
                    pass
        assert silent.close_code == 1001
        assert time.monotonic() - started < 3 * IDLE
        # silent for three idle timeouts: only the keep-alives kept it open
        got = arrivals(alive, 3 * IDLE - (time.monotonic() - started), lambda m: True)
        assert len(got) >= 3
        alive.send("still open")
        assert alive.recv(timeout=TIMEOUT) == "still open"


def test_a_ping_keep_alive_is_refused_with_a_warning(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        cid = connection_id(backend, marker)
        ws.send("keepalive " + spec(content="x", timeout=2, **{"message-type": "ping"}))
        assert arrivals(ws, 4, lambda m: m == "x") == []
    log = stack.log()
    assert f"connection {cid}: keep-alive of message-type ping turned off" in log
