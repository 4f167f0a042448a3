"""API Gateway's idle timeout and maximum connection lifetime, shortened by flags."""

from __future__ import annotations

import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from .processes import GripBackend, LocalStack
from .test_gateway import client, closed_with

IDLE = 1.5
LIFETIME = 4.0
STACK_ARGS = ("--idle-timeout", str(IDLE), "--max-lifetime", str(LIFETIME))


def test_idle_connection_is_closed_going_away(stack: LocalStack, backend: GripBackend) -> None:
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        started = time.monotonic()
        assert closed_with(ws) == 1001
        assert IDLE - 0.2 <= time.monotonic() - started < IDLE + 3
    got = backend.wait_for(marker, lambda got: got and got[-1]["body"].startswith(b"CLOSE"))
    assert got[-1]["body"] == b"CLOSE c\r\n\x03\xe9Going away\r\n"


def test_activity_keeps_a_connection_until_its_maximum_lifetime(stack: LocalStack) -> None:
    with client(stack) as ws:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            # Talk more often than the idle timeout: only the lifetime can end this.
            while time.monotonic() - started < LIFETIME + 3:
                ws.send("still here")
                assert ws.recv(timeout=IDLE) == "still here"
                time.sleep(IDLE / 3)
        lived = time.monotonic() - started
        assert ws.close_code == 1001, ws.close_code
        assert LIFETIME - 0.5 <= lived < LIFETIME + 2
