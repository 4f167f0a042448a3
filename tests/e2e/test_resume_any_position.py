"""`SLIPWAY_RESUME_ANY_POSITION=1` (docs/resume.md#who-may-recover-what): the
deployment honours every position a client presents, floor or not, as before the
rule that recovery starts at a client's first subscribe."""

from __future__ import annotations

import uuid

from slipway_client import ControlClient

from chalicelib.grip.history import Position, encode_resume

from .processes import KEY, LocalStack
from .test_envelope import recv_frame
from .test_gateway import TIMEOUT, client

STACK_ENV = {"SLIPWAY_RESUME_ANY_POSITION": "1"}


def test_any_position_is_honoured_when_the_deployment_says_so(stack: LocalStack) -> None:
    control = ControlClient(stack.control, KEY)
    room = f"open-{uuid.uuid4().hex[:8]}"
    control.publish_many(
        {"channel": room, "formats": {"ws-message": {"content": t}}} for t in ("one", "two")
    )
    with client(stack, envelope="1", resume="", subscribe=room) as ws:
        start = recv_frame(ws)[2]
    assert start["offset"] == 2
    anywhere = encode_resume({room: Position(start["epoch"], 0)})  # no floor
    with client(stack, resume=anywhere, subscribe=room) as raw:  # raw: never has a floor
        assert [raw.recv(timeout=TIMEOUT) for _ in range(2)] == ["one", "two"]
    with client(stack, envelope="1", resume=anywhere, subscribe=room) as ws:
        got = [recv_frame(ws) for _ in range(3)]
    assert [f[:3] for f in got[:2]] == [[1, 0, "one"], [1, 0, "two"]]
    assert got[2][2]["recovery"] == "recovered"
