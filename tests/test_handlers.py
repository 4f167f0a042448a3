"""The Lambda handlers invoked as Lambda invokes them, against the real gripcontrol
test backend (a process), DynamoDB and SQS on moto, and the local @connections API."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from gripcontrol import validate_sig

from chalicelib import services
from slipway_dev.connections import RecordingSink
from tests.harness import KEY, BackendLog, Gateway, configure

# -- $connect -----------------------------------------------------------------


def test_connect_sends_open_with_the_spec_headers(
    gateway: Gateway, backend_log: BackendLog
) -> None:
    cid, _, reply = gateway.connect(
        {"room": "a b", "protocol": "chat"},
        {
            "Cookie": "session=1",
            "Origin": "https://app.example",
            "Sec-WebSocket-Protocol": "chat, other",
            "X-Forwarded-For": "10.1.2.3",
            "Meta-User": "forged",
            "Grip-Sig": "forged",
            "Connection-Id": "forged",
        },
    )
    assert reply == {"statusCode": 200, "headers": {"sec-websocket-protocol": "chat"}}
    [req] = backend_log.requests()
    assert req["body"] == b"OPEN\r\n"
    assert req["path"] == "/ws?room=a+b&protocol=chat"
    h = req["headers"]
    assert h["content-type"] == "application/websocket-events"
    assert h["accept"] == "application/websocket-events"
    assert h["connection-id"] == cid
    assert h["sec-websocket-extensions"] == "grip"
    assert validate_sig(h["grip-sig"], KEY)
    assert (h["cookie"], h["origin"], h["user-agent"]) == (
        "session=1",
        "https://app.example",
        "pytest",
    )
    assert h["sec-websocket-protocol"] == "chat, other"
    assert h["x-forwarded-for"] == "10.1.2.3"
    assert "meta-user" not in h and "sec-websocket-key" not in h
    stored = gateway.stored(cid)
    assert stored.grip_prefix == "m:" and stored.headers["Cookie"] == "session=1"


def test_connect_rejected_with_the_backends_status(gateway: Gateway) -> None:
    cid, _, reply = gateway.connect({"reject": "403"})
    assert reply["statusCode"] == 403 and reply["body"] == "rejected\n"
    assert gateway.stored(cid) is None


def test_connect_with_unreachable_backend_is_502(gateway: Gateway, monkeypatch) -> None:
    configure(monkeypatch, TARGET_URL="http://127.0.0.1:9/", SLIPWAY_BACKEND_ATTEMPTS="2")
    cid, _, reply = gateway.connect()
    assert reply["statusCode"] == 502
    assert gateway.stored(cid) is None


def test_missing_setting_fails_loudly_naming_it(gateway: Gateway, monkeypatch, caplog) -> None:
    monkeypatch.delenv("TARGET_URL")
    configure(monkeypatch)
    with caplog.at_level(logging.ERROR):
        _, _, reply = gateway.connect()
    assert reply["statusCode"] == 500
    assert "TARGET_URL is not set" in caplog.text


def test_open_response_messages_arrive_once_the_connection_opens(gateway: Gateway) -> None:
    cid, sink, reply = gateway.connect({"welcome": "hi there", "subscribe": "room"}, open_=False)
    assert reply["statusCode"] == 200
    assert gateway.stored(cid).channels == {"room"}
    [queued] = gateway.queued()
    # The connection opens a moment after $connect returned; the worker keeps trying.
    threading.Timer(0.4, gateway.registry.register, (cid, sink)).start()
    assert gateway.run_worker([queued]) == {"batchItemFailures": []}
    assert sink.frames == [b"hi there"]


def test_open_delivery_for_a_connection_that_left_is_dropped(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect({"welcome": "hi"}, open_=False)
    [queued] = gateway.queued()
    gateway.disconnect(cid, 1000)
    assert gateway.run_worker([queued]) == {"batchItemFailures": []}
    assert sink.frames == []


def test_accept_then_close_in_the_open_response(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect({"welcome": "bye", "closeopen": "1"})
    gateway.run_worker(gateway.queued())
    assert sink.frames == [b"bye"] and sink.closed


def test_an_open_response_that_only_closes_waits_for_the_connection_to_open(
    gateway: Gateway,
) -> None:
    """A close with no message before it, for a connection whose $connect has not
    returned yet: the worker keeps trying until it is open, then closes it."""
    cid, sink, _ = gateway.connect({"closeopen": "1"}, open_=False)
    [queued] = gateway.queued()
    threading.Timer(0.4, gateway.registry.register, (cid, sink)).start()
    assert gateway.run_worker([queued]) == {"batchItemFailures": []}
    assert sink.closed


# -- $default -----------------------------------------------------------------


def test_echo_strips_the_grip_prefix(gateway: Gateway, backend_log: BackendLog) -> None:
    cid, sink, _ = gateway.connect()
    gateway.send(cid, "hello")
    assert sink.frames == [b"hello"]
    assert backend_log.requests()[-1]["body"] == b"TEXT 5\r\nhello\r\n"


def test_without_grip_mode_messages_pass_verbatim(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect({"grip": "0"})
    gateway.send(cid, "m:hello")
    assert sink.frames == [b"m:hello"]
    assert gateway.stored(cid).grip_prefix is None


def test_binary_from_the_backend(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect()
    gateway.send(cid, "bin raw")
    assert sink.frames == [b"raw"]


def test_meta_is_stored_and_sent_back(gateway: Gateway, backend_log: BackendLog) -> None:
    cid, sink, _ = gateway.connect({"meta": "user:alice"})
    gateway.send(cid, "meta room lobby")
    gateway.send(cid, "whoami")
    assert json.loads(sink.frames[-1]) == {"room": "lobby", "user": "alice"}
    last = backend_log.requests()[-1]["headers"]
    assert (last["meta-user"], last["meta-room"]) == ("alice", "lobby")
    assert gateway.stored(cid).meta == {"room": "lobby", "user": "alice"}


def test_subscribe_and_unsubscribe(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect()
    store = services.current().store
    gateway.send(cid, "sub news")
    assert [m.connection_id for m in store.members("news")[0]] == [cid]
    gateway.send(cid, "unsub news")
    assert store.members("news") == ([], None)
    assert sink.frames == [b"subscribed news", b"unsubscribed news"]


def test_channel_cap_refuses_the_extra_subscription(gateway: Gateway, monkeypatch) -> None:
    configure(monkeypatch, SLIPWAY_MAX_CHANNELS="2")
    cid, _, _ = gateway.connect()
    for ch in ("a", "b", "c"):
        gateway.send(cid, f"sub {ch}")
    assert gateway.stored(cid).channels == {"a", "b"}


@pytest.mark.parametrize("command", ["close 4001", "disconnect"])
def test_backend_closes_the_client(gateway: Gateway, command: str) -> None:
    cid, sink, _ = gateway.connect()
    gateway.send(cid, command)
    assert sink.closed


def test_detached_connection_is_no_longer_forwarded(gateway: Gateway, backend_log) -> None:
    cid, sink, _ = gateway.connect()
    gateway.send(cid, "detach")
    before = len(backend_log.requests())
    gateway.send(cid, "hello?")
    gateway.disconnect(cid, 1000)
    assert len(backend_log.requests()) == before
    assert sink.frames == [b"detached"]
    assert gateway.stored(cid) is None


def test_keep_alive_settings_are_stored(gateway: Gateway) -> None:
    cid, _, _ = gateway.connect()
    before = time.time()
    gateway.send(cid, "keepalive ping")
    stored = gateway.stored(cid).keep_alive
    since = stored.pop("since")
    assert stored == {"content": "ping", "timeout": 30, "mode": "idle"}
    assert before <= since <= time.time() + 1  # its timer starts now


@pytest.mark.parametrize("command", ["status 500", "malformed", "wrongtype"])
def test_a_bad_backend_response_closes_the_client(gateway: Gateway, command, caplog) -> None:
    cid, sink, _ = gateway.connect()
    with caplog.at_level(logging.ERROR):
        gateway.send(cid, command)
    assert sink.closed and sink.frames == []
    assert f"closing {cid}" in caplog.text


def test_unreachable_backend_after_open_closes_the_client(gateway: Gateway, monkeypatch) -> None:
    cid, sink, _ = gateway.connect()
    configure(monkeypatch, TARGET_URL="http://127.0.0.1:9/", SLIPWAY_BACKEND_ATTEMPTS="2")
    gateway.send(cid, "hello")
    assert sink.closed


def test_message_from_an_unknown_connection_closes_it(gateway: Gateway, backend_log) -> None:
    sink = RecordingSink()
    gateway.registry.register("stranger=", sink)
    gateway.send("stranger=", "hello")
    assert sink.closed and backend_log.requests() == []


def test_a_client_gone_mid_reply_still_tells_the_backend_its_close(
    gateway: Gateway, backend_log: BackendLog
) -> None:
    cid, _, _ = gateway.connect()
    gateway.registry.unregister(cid)  # it closed while the backend was answering
    gateway.send(cid, "hello")
    assert gateway.stored(cid) is not None  # its $disconnect is on the way
    gateway.disconnect(cid, 4002, "bye")
    assert backend_log.requests()[-1]["body"] == b"CLOSE 5\r\n\x0f\xa2bye\r\n"
    assert gateway.stored(cid) is None


# -- $disconnect --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "body"),
    [
        (4002, "bye", b"CLOSE 5\r\n\x0f\xa2bye\r\n"),
        (1000, "", b"CLOSE 2\r\n\x03\xe8\r\n"),
        (1005, "", b"CLOSE\r\n"),
        (1006, "", b"DISCONNECT\r\n"),
        (None, "", b"DISCONNECT\r\n"),
    ],
)
def test_disconnect_tells_the_backend(gateway: Gateway, backend_log, code, reason, body) -> None:
    cid, _, _ = gateway.connect()
    gateway.send(cid, "sub room")
    gateway.disconnect(cid, code, reason)
    last = backend_log.requests()[-1]
    assert last["body"] == body and last["headers"]["connection-id"] == cid
    assert gateway.stored(cid) is None
    assert services.current().store.members("room") == ([], None)
