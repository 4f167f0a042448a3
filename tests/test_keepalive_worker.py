"""Keep-alive through the handlers, the scheduler's tick and the worker, against
moto, the test backend and a recording @connections API."""

from __future__ import annotations

import json
import logging
import time

from chalicelib import keepalive, services
from chalicelib.grip import keepalive as ka
from chalicelib.grip.limits import MAX_KEEPALIVE_TIMEOUT, MAX_KEEPALIVE_TIMEOUTS
from chalicelib.grip.payload import Payload
from tests.harness import Gateway


def keep_alive(gateway: Gateway, cid: str, envelope: bool = False, **params: object) -> None:
    text = "keepalive " + json.dumps(params)
    gateway.send(cid, json.dumps([1, 1, text]) if envelope else text)


def due_second(cid: str) -> int:
    """The first second the connection's keep-alive is due."""
    stored = services.current().store.get_connection(cid)
    assert stored is not None and stored.keep_alive is not None
    return int(stored.keep_alive["since"]) + int(stored.keep_alive["timeout"])


def run_tick(gateway: Gateway, second: int) -> int:
    svc = services.current()
    queued = keepalive.tick(svc, second, svc.store.keepalive_timeouts())
    gateway.drain()
    return queued


def test_a_due_keep_alive_reaches_its_connection_in_its_own_form(gateway: Gateway) -> None:
    raw, raw_sink, _ = gateway.connect()
    wrapped, wrapped_sink, _ = gateway.connect({"envelope": "1"})
    keep_alive(gateway, raw, content="ka", timeout=7, mode="interval")
    keep_alive(gateway, wrapped, envelope=True, **{"content-bin": "AAE=", "timeout": 7})
    for cid, sink, expected in ((raw, raw_sink, b"ka"), (wrapped, wrapped_sink, b'[1,0,"AAE="]')):
        second = due_second(cid)
        assert run_tick(gateway, second - 7) == 0  # set then: not due for a period
        assert run_tick(gateway, second) >= 1
        assert sink.frames[-1] == expected


def test_a_gone_connection_is_forgotten_when_its_keep_alive_finds_it(
    gateway: Gateway, backend_log
) -> None:
    cid, _, _ = gateway.connect()
    keep_alive(gateway, cid, content="ka", timeout=9)
    second = due_second(cid)
    gateway.registry.unregister(cid)  # the client left; no $disconnect came
    run_tick(gateway, second)
    assert services.current().store.get_connection(cid) is None
    told = [r["body"] for r in backend_log.requests() if r["headers"]["connection-id"] == cid]
    assert told[-1] == b"DISCONNECT\r\n"


def test_too_many_distinct_timeouts_are_refused_with_a_warning(gateway: Gateway, caplog) -> None:
    store = services.current().store
    used = set(store.keepalive_timeouts())
    cid, _, _ = gateway.connect()
    fresh = [t for t in range(100, MAX_KEEPALIVE_TIMEOUT + 1) if t not in used]
    for t in fresh[: MAX_KEEPALIVE_TIMEOUTS - len(used)]:
        store.set_keep_alive(cid, ka.started(time.time(), Payload.of_text("x"), t, ka.IDLE))
    with caplog.at_level(logging.WARNING):
        keep_alive(gateway, cid, content="ka", timeout=fresh[-1])
    assert f"connection {cid}: keep-alive refused" in caplog.text
    assert len(store.keepalive_timeouts()) == MAX_KEEPALIVE_TIMEOUTS


def test_a_publish_restarts_idle_timers_only_when_one_job_reached_every_member(
    gateway: Gateway, monkeypatch
) -> None:
    """A channel delivered in parts is not recorded: a part may fail and be retried
    while another succeeds, and its members must not count as sent."""
    from tests.harness import configure
    from tests.test_fanout import item, members

    store = services.current().store
    members(gateway, "small", 2)
    gateway.publish({"items": [item("small", content="hi")]})
    gateway.drain()
    assert set(store.last_delivered({"small"})) == {"small"}
    configure(monkeypatch, SLIPWAY_FANOUT_PAGE="2")
    members(gateway, "split", 5)
    gateway.publish({"items": [item("split", content="hi")]})
    gateway.drain()
    assert store.last_delivered({"split"}) == {}


def test_a_second_whose_queueing_fails_once_is_tried_again(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect()
    keep_alive(gateway, cid, content="ka", timeout=11, mode="interval")
    second = due_second(cid)
    svc = services.current()
    real = svc.queue.send_all
    calls = []

    def flaky(messages):  # SQS refuses the first try
        calls.append(len(messages))
        if len(calls) == 1:
            raise RuntimeError("throttled")
        real(messages)

    svc.queue.send_all = flaky  # type: ignore[method-assign]
    try:
        keepalive.run(svc, second, second + 0.5, clock=lambda: second - 1, sleep=lambda _: None)
    finally:
        del svc.queue.send_all
    gateway.drain()
    assert len(calls) == 2 and sink.frames[-1] == b"ka"
