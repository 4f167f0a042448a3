"""The control client: against a recording HTTP server, then against slipway's
real control routes served by Chalice's local server."""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from gripcontrol import validate_sig

from slipway_client import (
    ConnectionPage,
    ConnectionSummary,
    ControlClient,
    ControlError,
    PublishItem,
    PublishResult,
    UnknownConnection,
    token,
)

KEY = "test-key-long-enough-for-hs256-0123456789"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """An HTTP server on 127.0.0.1 that records requests and plays scripted answers."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    answers: list[tuple[int, str, bytes]] = field(default_factory=list)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            rec.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
            status, ctype, reply = (
                rec.answers.pop(0)
                if rec.answers
                else (200, "application/json", b'{"message": "ok"}')
            )
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    yield rec
    server.shutdown()
    server.server_close()


def test_auth_header_is_a_jwt_over_the_key(recorder: Recorder) -> None:
    ControlClient(recorder.url, KEY, iss="backend").publish("room", "hi")
    auth = recorder.requests[0].headers["Authorization"]
    scheme, _, jwt = auth.partition(" ")
    assert scheme == "Bearer"
    assert validate_sig(jwt, KEY, iss="backend")  # gripcontrol (PyJWT) agrees
    claims = token.verify(jwt, KEY, iss="backend")
    assert abs(claims["exp"] - (time.time() + 3600)) < 5
    ControlClient(recorder.url, KEY).publish("room", "hi")
    assert "iss" not in token.verify(recorder.requests[1].headers["Authorization"][7:], KEY)


def test_publish_bodies(recorder: Recorder) -> None:
    control = ControlClient(recorder.url + "/", KEY)
    control.publish("room", "hello")
    control.publish("room", binary=b"\x00\xff", id="7", prev_id="6")
    control.publish_close("room", 4000, "bye")
    control.publish_close("room")
    assert [(r.method, r.path) for r in recorder.requests] == [("POST", "/api/publish/")] * 4
    assert recorder.requests[0].headers["Content-Type"] == "application/json"
    assert [r.json() for r in recorder.requests] == [
        {"items": [{"channel": "room", "formats": {"ws-message": {"content": "hello"}}}]},
        {
            "items": [
                {
                    "channel": "room",
                    "id": "7",
                    "prev-id": "6",
                    "formats": {"ws-message": {"content-bin": "AP8="}},
                }
            ]
        },
        {
            "items": [
                {
                    "channel": "room",
                    "formats": {"ws-message": {"action": "close", "code": 4000, "reason": "bye"}},
                }
            ]
        },
        {"items": [{"channel": "room", "formats": {"ws-message": {"action": "close"}}}]},
    ]


def test_publish_many_in_chunks_of_100(recorder: Recorder) -> None:
    items: list[Any] = [PublishItem(f"c{i}", text=str(i)) for i in range(149)]
    items.append({"channel": "raw", "ws-message": {"content": "as is"}})
    ControlClient(recorder.url, KEY).publish_many(items)
    sent = [r.json()["items"] for r in recorder.requests]
    assert [len(s) for s in sent] == [100, 50]
    assert sent[0][0] == {"channel": "c0", "formats": {"ws-message": {"content": "0"}}}
    assert sent[1][-1] == {"channel": "raw", "ws-message": {"content": "as is"}}
    ControlClient(recorder.url, KEY).publish_many([])
    assert len(recorder.requests) == 2  # nothing to publish, no request


def test_large_content_is_uploaded_and_published_by_reference(recorder: Recorder) -> None:
    def upload_target(n: int) -> tuple[int, str, bytes]:
        answer = {
            "url": f"{recorder.url}/s3/backend-uploads/{n}.json?X-Amz-Signature=x",
            "method": "PUT",
            "headers": {"Content-Type": "application/json"},
            "ref": f"backend-uploads/{n}.json",
            "expires_at": "2030-01-01T00:00:00Z",
        }
        return 200, "application/json", json.dumps(answer).encode()

    ok = (200, "application/json", b"{}")
    recorder.answers = [upload_target(1), ok, ok, upload_target(2), ok, ok, upload_target(3), ok]
    control = ControlClient(recorder.url, KEY, upload_over=1000)
    text, doc, data = "é" * 1000, '{"rows": [' + "1," * 600 + "1]}", bytes(range(256)) * 4
    control.publish("room", text)  # 2000 bytes of UTF-8
    control.publish_many([PublishItem("room", text=doc), PublishItem("room", text="small")])
    control.send("known+id=", data)
    calls = [(r.method, r.path.split("?")[0]) for r in recorder.requests]
    assert calls == [
        ("POST", "/api/uploads"),
        ("PUT", "/api/s3/backend-uploads/1.json"),
        ("POST", "/api/publish/"),
        ("POST", "/api/uploads"),
        ("PUT", "/api/s3/backend-uploads/2.json"),
        ("POST", "/api/publish/"),
        ("POST", "/api/uploads"),
        ("PUT", "/api/s3/backend-uploads/3.json"),
        ("POST", "/api/connections/known+id=/message"),
    ]
    puts = [r for r in recorder.requests if r.method == "PUT"]
    assert "Authorization" not in puts[0].headers  # S3 takes the URL's signature only
    # Each upload holds the message as an envelope client downloads it.
    assert puts[0].json() == text and puts[0].headers["Content-Type"] == "application/json"
    assert puts[1].body == doc.encode()  # a JSON document as it is
    assert base64.b64decode(puts[2].json()) == data
    publishes = [r.json()["items"] for r in recorder.requests if r.path.endswith("/publish/")]
    assert publishes[0][0]["formats"]["ws-message"] == {"content-ref": "backend-uploads/1.json"}
    assert [i["formats"]["ws-message"] for i in publishes[1]] == [
        {"content-ref": "backend-uploads/2.json"},
        {"content": "small"},
    ]
    assert recorder.requests[-1].json() == {"content-bin-ref": "backend-uploads/3.json"}


def test_an_upload_over_the_deployments_limit_is_refused_before_it_is_sent(
    recorder: Recorder,
) -> None:
    target = {"url": f"{recorder.url}/s3/x", "ref": "r", "headers": {}, "max_bytes": 2000}
    recorder.answers = [(200, "application/json", json.dumps(target).encode())]
    with pytest.raises(ControlError) as caught:
        ControlClient(recorder.url, KEY, upload_over=1000).publish("room", "x" * 3000)
    assert caught.value.status == 400 and "SLIPWAY_MAX_PUBLISH_BYTES" in caught.value.error
    assert [r.path for r in recorder.requests] == ["/api/uploads"]  # no PUT, no publish


def test_a_publish_request_stays_under_lambdas_limit(recorder: Recorder) -> None:
    # Each item under the upload threshold, together far over 6 MB: several requests.
    items = [PublishItem("room", text="x" * 200_000) for _ in range(60)]
    ControlClient(recorder.url, KEY).publish_many(items)
    sizes = [len(r.body) for r in recorder.requests]
    assert len(sizes) == 3 and max(sizes) < 5 * 1024 * 1024
    assert sum(len(r.json()["items"]) for r in recorder.requests) == 60


def test_publish_item_needs_exactly_one_content() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        PublishItem("room")
    with pytest.raises(ValueError, match="exactly one"):
        PublishItem("room", text="a", binary=b"b")
    with pytest.raises(ValueError, match="no content"):
        PublishItem("room", text="a", close=True)


def test_one_connection_routes(recorder: Recorder) -> None:
    recorder.answers = [
        (200, "application/json", b'{"message": "Sent"}'),
        (200, "application/json", b'{"message": "Sent"}'),
        (200, "application/json", b'{"message": "Closing"}'),
        (200, "application/json", b'{"message": "Closing"}'),
        (200, "application/json", b'{"id": "a/b+c=", "channels": ["room"]}'),
    ]
    control = ControlClient(recorder.url, KEY)
    cid = "a/b+c="
    control.send(cid, "text")
    control.send(cid, b"\x01")
    control.close(cid)
    control.close(cid, 4001, "kicked")
    assert control.inspect(cid) == {"id": cid, "channels": ["room"]}
    quoted = "/api/connections/a%2Fb+c="
    assert [(r.method, r.path, r.body and r.json()) for r in recorder.requests] == [
        ("POST", quoted + "/message", {"content": "text"}),
        ("POST", quoted + "/message", {"content-bin": "AQ=="}),
        ("DELETE", quoted, b""),
        ("DELETE", quoted, {"reason": "kicked", "code": 4001}),
        ("GET", quoted, b""),
    ]


def test_channel_and_membership_routes(recorder: Recorder) -> None:
    one = {"id": "a=", "meta": {"user": "ann"}, "connected_at": "2025-01-31T12:00:00.000Z"}
    two = {"id": "b=", "meta": {}, "connected_at": "2025-01-31T12:00:01.000Z"}
    ok = (200, "application/json", b'{"message": "ok"}')
    recorder.answers = [
        ok,
        ok,
        (200, "application/json", b'{"id": "a/b+c=", "meta": {"room": "r1"}}'),
        (200, "application/json", b'{"channel": "a b", "subscribers": 3}'),
        (200, "application/json", json.dumps({"connections": [one], "cursor": "K1"}).encode()),
        (200, "application/json", json.dumps({"connections": [two], "cursor": None}).encode()),
        (200, "application/json", json.dumps({"connections": [two], "cursor": None}).encode()),
        (404, "application/json", b'{"error": "no connection x="}'),
    ]
    control = ControlClient(recorder.url, KEY)
    cid = "a/b+c="
    control.subscribe(cid, "a b")
    control.unsubscribe(cid, "a b")
    assert control.set_meta(cid, {"room": "r1", "user": None}) == {"room": "r1"}
    assert control.subscribers("a b") == 3
    listed = list(control.iter_channel_connections("a b", page_size=1))
    assert listed == [
        ConnectionSummary("a=", {"user": "ann"}, "2025-01-31T12:00:00.000Z"),
        ConnectionSummary("b=", {}, "2025-01-31T12:00:01.000Z"),
    ]
    page = control.connections(limit=5, cursor="K9")
    assert page == ConnectionPage([listed[1]], None)
    with pytest.raises(UnknownConnection):
        control.subscribe("x=", "a")
    quoted = "/api/connections/a%2Fb+c="
    assert [(r.method, r.path, r.body and r.json()) for r in recorder.requests] == [
        ("PUT", quoted + "/channels/a%20b", b""),
        ("DELETE", quoted + "/channels/a%20b", b""),
        ("PATCH", quoted + "/meta", {"room": "r1", "user": None}),
        ("GET", "/api/channels/a%20b", b""),
        ("GET", "/api/channels/a%20b/connections?limit=1", b""),
        ("GET", "/api/channels/a%20b/connections?limit=1&cursor=K1", b""),
        ("GET", "/api/connections?limit=5&cursor=K9", b""),
        ("PUT", "/api/connections/x=/channels/a", b""),
    ]


def test_errors_carry_the_server_answer(recorder: Recorder) -> None:
    fields = {"items.0.channel": ["Missing data for required field."]}
    recorder.answers = [
        (
            400,
            "application/json",
            json.dumps({"error": "invalid request body", "fields": fields}).encode(),
        ),
        (401, "application/json", b'{"error": "wrong key"}'),
        (404, "application/json", b'{"error": "no connection x"}'),
        (503, "application/json", b'{"error": "not queued, retry: throttled"}'),
        (502, "text/html", b"<html>Bad Gateway</html>"),
    ]
    control = ControlClient(recorder.url, KEY)
    with pytest.raises(ControlError) as bad:
        control.publish("room", "x")
    assert (bad.value.status, bad.value.error, bad.value.fields) == (
        400,
        "invalid request body",
        fields,
    )
    assert "items.0.channel: Missing data" in str(bad.value)
    with pytest.raises(ControlError, match="401: wrong key"):
        control.publish("room", "x")
    with pytest.raises(UnknownConnection) as gone:
        control.send("x", "hi")
    assert gone.value.status == 404 and gone.value.error == "no connection x"
    with pytest.raises(ControlError, match="retry") as busy:
        control.publish("room", "x")
    assert busy.value.status == 503
    with pytest.raises(ControlError, match="502: <html>Bad Gateway</html>"):
        control.inspect("x")


def test_unreachable_server_is_a_control_error() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ControlError) as err:
        ControlClient(f"http://127.0.0.1:{port}", KEY, timeout=2).publish("room", "x")
    assert err.value.status is None


# -- against slipway's real control routes ------------------------------------------


@dataclass
class RealRoutes:
    url: str
    events: queue.Queue[dict[str, Any]]

    def next_event(self) -> dict[str, Any]:
        return self.events.get(timeout=5)


@pytest.fixture(scope="module")
def real_routes() -> Iterator[RealRoutes]:
    pytest.importorskip("chalice")
    if not (ROOT / "app.py").exists():
        pytest.skip("the slipway gateway source is not next to the client")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("chalice_control_server.py")),
            KEY,
            "backend",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not first.startswith("listening "):
        proc.kill()
        pytest.fail(f"the Chalice control server did not start: {first!r}")
    events: queue.Queue[dict[str, Any]] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # Chalice prints its own lines too: keep only ours
            if line.startswith("event "):
                events.put(json.loads(line[len("event ") :]))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    yield RealRoutes(f"http://127.0.0.1:{first.split()[1]}", events)
    proc.terminate()
    proc.wait(timeout=10)
    reader.join(timeout=5)
    proc.stdout.close()


def test_real_routes_accept_our_publishes(real_routes: RealRoutes) -> None:
    control = ControlClient(real_routes.url, KEY, iss="backend")
    control.publish("room", "hello", id="1")
    assert real_routes.next_event() == {
        "queued": {"v": 1, "job": "publish", "channel": "room", "content": "hello", "id": "1"}
    }  # the id rides along, for the channel history (docs/resume.md)
    control.publish("room", binary=b"\x00\x01")
    assert real_routes.next_event()["queued"]["content-bin"] == "AAE="
    control.publish_close("room", 4000, "bye")
    assert real_routes.next_event()["queued"]["close"] == {"code": 4000, "reason": "bye"}
    control.publish_many([PublishItem("a", text="1"), PublishItem("b", text="2")])
    assert [real_routes.next_event()["queued"]["channel"] for _ in range(2)] == ["a", "b"]


def test_real_routes_one_connection(real_routes: RealRoutes) -> None:
    control = ControlClient(real_routes.url, KEY, iss="backend")
    known = "known+id="
    control.send(known, "just you")
    assert real_routes.next_event() == {"sent": {"id": known, "text": "just you"}}
    control.send(known, b"\xff")
    assert real_routes.next_event() == {"sent": {"id": known, "binary": "ff"}}
    control.close(known, 4002, "later")
    assert real_routes.next_event() == {
        "close_code": {"id": known, "code": 4002, "reason": "later"}
    }
    assert real_routes.next_event() == {"closed": {"id": known}}
    control.close(known)
    assert real_routes.next_event() == {"closed": {"id": known}}
    info = control.inspect(known)
    assert info["id"] == known
    assert info["channels"] == ["lobby", "room"]
    assert info["meta"] == {"user": "ann"}
    assert info["source_ip"] == "192.0.2.7"
    with pytest.raises(UnknownConnection, match="no connection"):
        control.send("someone-else", "x")


def test_real_routes_errors(real_routes: RealRoutes) -> None:
    with pytest.raises(ControlError) as no_iss:
        ControlClient(real_routes.url, KEY).publish("room", "x")
    assert no_iss.value.status == 401 and "issuer" in no_iss.value.error
    with pytest.raises(ControlError) as wrong_key:
        ControlClient(real_routes.url, "another-key-long-enough-0123456789", iss="backend").publish(
            "room", "x"
        )
    assert wrong_key.value.status == 401
    control = ControlClient(real_routes.url, KEY, iss="backend")
    with pytest.raises(ControlError) as bad:
        control.publish_close("room", code=99)
    assert bad.value.status == 400
    assert any("code" in name for name in bad.value.fields), bad.value.fields
    with pytest.raises(ControlError) as empty:
        control.publish_many([{"channel": ""}])
    assert empty.value.status == 400 and "items.0.channel" in empty.value.fields


def test_real_routes_id_with_a_slash(real_routes: RealRoutes) -> None:
    with pytest.raises(UnknownConnection) as err:
        ControlClient(real_routes.url, KEY, iss="backend").inspect("x/y")
    assert err.value.error == "no connection x/y"


# -- the first hour: what a publish answered, and the wrong URL -------------------


def test_publish_returns_the_gateways_warnings_with_the_callers_indexes(
    recorder: Recorder,
) -> None:
    """`publish` returned None: `skipped` and `too_large_for_raw` never reached the caller."""
    first = {
        "message": "Published",
        "skipped": [1],
        # Counted among the items published: 0 and 2 are the body's 0 and 3.
        "too_large_for_raw": [0, 2],
        "warning": "not published, no ws-message format: item 1 (ws_message). ...",
    }
    second = {"message": "Published", "skipped": [0], "warning": "item 0 ..."}
    recorder.answers += [
        (200, "application/json", json.dumps(first).encode()),
        (200, "application/json", json.dumps(second).encode()),
    ]
    items: list[Any] = [PublishItem(f"c{i}", text=str(i)) for i in range(101)]
    result = ControlClient(recorder.url, KEY).publish_many(items)
    assert result == PublishResult(
        skipped=(1, 100),
        too_large_for_raw=(0, 3),
        warnings=(first["warning"], second["warning"]),
    )
    assert not result.complete
    plain = ControlClient(recorder.url, KEY).publish("room", "hi")
    assert plain == PublishResult() and plain.complete


def test_the_grip_url_is_refused_saying_which_url_the_client_takes() -> None:
    """Given `slipway local`'s `grip:` line, every call answered `HTTP 405:
    Unsupported method: POST` (the query swallowed the path)."""
    with pytest.raises(ValueError) as refused:
        ControlClient("http://127.0.0.1:8001/?key=abc", KEY)
    message = str(refused.value)
    assert "base_url is the control API's base URL without a query" in message
    assert "'http://127.0.0.1:8001/'" in message and "`control:`" in message
    assert "its key as `key`" in message


def test_real_routes_say_what_was_skipped(real_routes: RealRoutes) -> None:
    control = ControlClient(real_routes.url, KEY, iss="backend")
    typo = {"channel": "room", "formats": {"ws_message": {"content": "typo"}}}
    result = control.publish_many([typo, PublishItem("room", text="ok")])
    assert result.skipped == (0,) and result.too_large_for_raw == ()
    assert "no ws-message format: item 0 (ws_message)" in result.warnings[0]
    assert real_routes.next_event()["queued"]["content"] == "ok"
