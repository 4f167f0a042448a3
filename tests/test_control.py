"""The control API routes: auth, validation, GripPubControl, one-connection routes."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from chalice.config import Config
from chalice.local import create_local_server
from chalice.test import Client
from gripcontrol import GripPubControl, WebSocketMessageFormat
from pubcontrol import Item

import app
from tests.harness import KEY, BackendLog, Gateway, configure

# A folder without .chalice/config.json: the Chalice test client then leaves the
# environment alone instead of loading the dev stage's settings.
HERE = Path(__file__).resolve().parent


def call(method: str, path: str, body=None, auth: str | None = f"Bearer {KEY}"):
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    with Client(app.app, project_dir=str(HERE)) as client:
        data = body if isinstance(body, str | bytes | None) else json.dumps(body)
        reply = getattr(client.http, method)(path, headers=headers, body=data)
    return reply.status_code, json.loads(reply.body) if reply.body else None


def ws(**message) -> dict:
    return {"items": [{"channel": "c", "ws-message": message}]}


GOOD = {"items": [{"channel": "c", "formats": {"ws-message": {"content": "x"}}}]}


# -- auth ---------------------------------------------------------------------


def token(claims: dict, key: str = KEY) -> str:
    return "Bearer " + jwt.encode(claims, key, algorithm="HS256")


IN_A_MINUTE = object()  # replaced by now + 60 when the test runs, not when it is collected


def signed(claims: dict, key: str = KEY) -> str:
    exp = claims.get("exp")
    if exp is IN_A_MINUTE:
        claims = {**claims, "exp": int(time.time()) + 60}
    elif isinstance(exp, int) and exp <= 0:  # seconds ago
        claims = {**claims, "exp": int(time.time()) + exp}
    return token(claims, key)


@pytest.mark.parametrize(
    "auth",
    [
        f"Bearer {KEY}",
        "bearer  " + KEY,
        {"exp": IN_A_MINUTE},
        {"iss": "anyone", "exp": IN_A_MINUTE},
    ],
)
def test_accepted_credentials(gateway: Gateway, auth) -> None:
    auth = auth if isinstance(auth, str) else signed(auth)
    assert call("post", "/publish", GOOD, auth) == (200, {"message": "Published"})


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        (None, "missing Authorization"),
        ("Basic abc", "Bearer"),
        ("Bearer wrong-key", "wrong key"),
        ({"exp": -5}, "expired"),
        ({"iss": "x"}, "no exp"),
        (({"exp": IN_A_MINUTE}, "other-key-0123456789abcdef0123456789"), "signature"),
    ],
)
def test_refused_credentials(gateway: Gateway, auth, reason) -> None:
    if isinstance(auth, dict):
        auth = signed(auth)
    elif isinstance(auth, tuple):
        auth = signed(*auth)
    status, body = call("post", "/publish", GOOD, auth)
    assert status == 401 and reason in body["error"]
    assert gateway.queued() == []


def test_issuer_is_checked_when_configured(gateway: Gateway, monkeypatch) -> None:
    configure(monkeypatch, SLIPWAY_CONTROL_ISS="backend")
    exp = int(time.time()) + 60
    assert call("post", "/publish", GOOD, token({"iss": "other", "exp": exp}))[0] == 401
    assert call("post", "/publish", GOOD, token({"iss": "backend", "exp": exp}))[0] == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/publish"), ("get", "/connections/x="), ("delete", "/connections/x=")],
)
def test_no_key_configured_means_no_control_api(gateway, monkeypatch, method, path) -> None:
    monkeypatch.delenv("SLIPWAY_KEY")
    configure(monkeypatch)
    status, body = call(method, path, GOOD if method == "post" else None)
    assert status == 503 and "SLIPWAY_KEY" in body["error"]


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json", "body"),
        ([1, 2], "body"),
        ({}, "items"),
        ({"items": []}, "items"),
        ({"items": [{"formats": {"ws-message": {"content": "x"}}}]}, "items.0.channel"),
        ({"items": [GOOD["items"][0], {"channel": 5}]}, "items.1.channel"),
        ({"items": [{"channel": "c", "ws-message": {}}]}, "items.0.ws-message.content"),
        (
            {"items": [{"channel": "c", "ws-message": {"content": "a", "content-bin": "YQ=="}}]},
            "items.0.ws-message.content",
        ),
        (
            {"items": [{"channel": "c", "ws-message": {"content-bin": "@@"}}]},
            "items.0.ws-message.content-bin",
        ),
        (
            {"items": [{"channel": "c", "ws-message": {"action": "explode"}}]},
            "items.0.ws-message.action",
        ),
        (
            {"items": [{"channel": "c", "ws-message": {"action": "close", "code": 99}}]},
            "items.0.ws-message.code",
        ),
    ],
)
def test_bad_bodies_are_400_naming_the_field(gateway: Gateway, body, field) -> None:
    status, reply = call("post", "/publish", body)
    assert status == 400 and field in reply["fields"], reply
    assert gateway.queued() == []


# -- GripPubControl over HTTP -------------------------------------------------


@pytest.fixture(scope="module")
def control_uri() -> Iterator[str]:
    """The app's routes served by Chalice's own local server, as `slipway local` does
    (once per process: it swaps the app object's class)."""
    server = create_local_server(app.app, Config(), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("iss", [None, "backend"])
def test_grip_pub_control_publishes_unchanged(gateway: Gateway, control_uri: str, iss) -> None:
    cid, sink, _ = gateway.connect()
    gateway.send(cid, "sub room")
    config = {"control_uri": control_uri, "key": KEY}
    if iss:
        config["control_iss"] = iss
    pub = GripPubControl(config)
    pub.publish("room", Item(WebSocketMessageFormat("from gripcontrol")), blocking=True)
    pub.publish("room", Item(WebSocketMessageFormat(b"\x00bin", binary=True)), blocking=True)
    gateway.drain()
    assert sink.frames == [b"subscribed room", b"from gripcontrol", b"\x00bin"]


def test_grip_pub_control_with_a_wrong_key_fails(gateway: Gateway, control_uri: str) -> None:
    pub = GripPubControl({"control_uri": control_uri, "key": "not-the-key"})
    with pytest.raises(ValueError, match="401"):
        pub.publish("room", Item(WebSocketMessageFormat("x")), blocking=True)


# -- one connection -----------------------------------------------------------


def test_send_to_one_connection(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect()
    assert call("post", f"/connections/{cid}/message", {"content": "just you"})[0] == 200
    binary = {"content-bin": base64.b64encode(b"\xff\x00").decode()}
    assert call("post", f"/connections/{cid}/message", binary)[0] == 200
    assert sink.frames == [b"just you", b"\xff\x00"]
    status, body = call("post", f"/connections/{cid}/message", {"nothing": 1})
    assert status == 400 and "content" in body["fields"]


def test_unknown_and_gone_connections_are_404(gateway: Gateway) -> None:
    assert call("post", "/connections/nobody=/message", {"content": "x"})[0] == 404
    assert call("get", "/connections/nobody=")[0] == 404
    assert call("delete", "/connections/nobody=")[0] == 404
    cid, _, _ = gateway.connect()
    gateway.registry.unregister(cid)
    assert call("get", f"/connections/{cid}")[0] == 404
    assert gateway.stored(cid) is None


def test_inspect_a_connection(gateway: Gateway) -> None:
    cid, _, _ = gateway.connect({"meta": "user:alice"})
    gateway.send(cid, "sub b")
    gateway.send(cid, "sub a")
    status, body = call("get", f"/connections/{cid}")
    assert status == 200
    assert body["id"] == cid and body["connected"] is True and body["grip"] is True
    assert body["meta"] == {"user": "alice"} and body["channels"] == ["a", "b"]
    assert body["connected_at"].endswith("Z") and body["source_ip"] == "127.0.0.1"


def test_close_one_connection_keeps_the_code_for_the_backend(
    gateway: Gateway, backend_log: BackendLog
) -> None:
    cid, sink, _ = gateway.connect()
    assert call("delete", f"/connections/{cid}", {"code": 4100, "reason": "kicked"})[0] == 200
    assert sink.closed
    gateway.disconnect(cid, 1005)  # what API Gateway reports for a close without a code
    assert backend_log.requests()[-1]["body"] == b"CLOSE 8\r\n\x10\x04kicked\r\n"


# -- channels and connections (issue 15) -------------------------------------------


def test_subscribe_count_list_and_unsubscribe_from_outside(gateway: Gateway) -> None:
    ids = sorted(gateway.connect({"meta": f"user:u{k}"})[0] for k in range(3))
    assert call("get", "/channels/room") == (200, {"channel": "room", "subscribers": 0})
    for cid in ids:
        assert call("put", f"/connections/{cid}/channels/room")[0] == 200
    assert call("put", f"/connections/{ids[0]}/channels/room")[0] == 200  # idempotent
    assert call("get", "/channels/room")[1]["subscribers"] == 3
    status, body = call("get", "/channels/room/connections?limit=2")
    assert status == 200 and [c["id"] for c in body["connections"]] == ids[:2]
    assert {"user"} == set(body["connections"][0]["meta"])
    assert body["connections"][0]["connected_at"].endswith("Z")
    status, rest = call("get", f"/channels/room/connections?limit=2&cursor={body['cursor']}")
    assert [c["id"] for c in rest["connections"]] == ids[2:] and rest["cursor"] is None
    assert call("delete", f"/connections/{ids[1]}/channels/room")[0] == 200
    assert call("delete", f"/connections/{ids[1]}/channels/room")[0] == 200  # idempotent
    assert call("get", "/channels/room")[1]["subscribers"] == 2
    gateway.disconnect(ids[2])
    assert call("get", "/channels/room")[1]["subscribers"] == 1
    status, body = call("get", "/connections?limit=1")
    seen = [c["id"] for c in body["connections"]]
    while body["cursor"]:
        body = call("get", f"/connections?limit=1&cursor={body['cursor']}")[1]
        seen += [c["id"] for c in body["connections"]]
    assert sorted(seen) == [ids[0], ids[1]]


def test_published_after_an_outside_subscribe(gateway: Gateway) -> None:
    cid, sink, _ = gateway.connect()
    assert call("put", f"/connections/{cid}/channels/news")[0] == 200
    news = {"items": [{"channel": "news", "ws-message": {"content": "n1"}}]}
    assert gateway.publish(news)[0] == 200
    gateway.drain()
    assert sink.frames == [b"n1"]


def test_channel_limit_is_409(gateway: Gateway, monkeypatch) -> None:
    configure(monkeypatch, SLIPWAY_MAX_CHANNELS="1")
    cid, _, _ = gateway.connect()
    assert call("put", f"/connections/{cid}/channels/a")[0] == 200
    status, body = call("put", f"/connections/{cid}/channels/b")
    assert status == 409 and "1 channels already" in body["error"]


def test_meta_from_outside_reaches_the_backend(gateway: Gateway, backend_log: BackendLog) -> None:
    cid, _, _ = gateway.connect({"meta": "user:alice"})
    status, body = call("patch", f"/connections/{cid}/meta", {"Room": "r1", "user": None})
    assert (status, body) == (200, {"id": cid, "meta": {"room": "r1"}})
    gateway.send(cid, "hello")
    assert backend_log.requests()[-1]["headers"].get("meta-room") == "r1"
    assert "meta-user" not in backend_log.requests()[-1]["headers"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("patch", "/connections/{cid}/meta", {"bad name": "x"}, "bad name"),
        ("patch", "/connections/{cid}/meta", {"a": "x\ny"}, "a"),
        ("patch", "/connections/{cid}/meta", {"a": 5}, "a"),
        ("patch", "/connections/{cid}/meta", [], "body"),
        ("patch", "/connections/{cid}/meta", "{", "body"),
        ("get", "/connections?limit=0", None, "limit"),
        ("get", "/channels/c/connections?limit=x", None, "limit"),
        ("get", "/connections?cursor=nonsense", None, "cursor"),
        ("get", "/channels/" + "x" * 513, None, "channel"),
        ("put", "/connections/{cid}/channels/" + "x" * 513, None, "channel"),
    ],
)
def test_introspection_input_is_400_naming_the_field(gateway, method, path, body, field) -> None:
    cid, _, _ = gateway.connect()
    status, reply = call(method, path.format(cid=cid), body)
    assert status == 400 and field in reply["fields"], reply


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/connections/nobody=/channels/a"),
        ("delete", "/connections/nobody=/channels/a"),
        ("patch", "/connections/nobody=/meta"),
    ],
)
def test_introspection_of_an_unknown_connection_is_404(gateway, method, path) -> None:
    assert call(method, path, {"a": "b"} if method == "patch" else None)[0] == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/channels/a"),
        ("get", "/channels/a/connections"),
        ("get", "/connections"),
        ("put", "/connections/x=/channels/a"),
        ("delete", "/connections/x=/channels/a"),
        ("patch", "/connections/x=/meta"),
    ],
)
def test_introspection_needs_the_key(gateway, monkeypatch, method, path) -> None:
    assert call(method, path, auth=None)[0] == 401
    monkeypatch.delenv("SLIPWAY_KEY")
    configure(monkeypatch)
    assert call(method, path)[0] == 503
