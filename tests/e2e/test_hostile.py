"""Hostile input through real sockets against `slipway local` (docs/security.md):
oversized control API bodies, forged credentials and a key in the URL, connection ids
built to escape their route, headers a client forges toward the backend, and envelope
`[4]` URLs pointing at hosts the gateway must never fetch."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit

import gripcontrol
import jwt
import pytest
import requests

from chalicelib.grip.limits import (
    MAX_KEEPALIVE_TIMEOUT,
    MAX_KEEPALIVE_TIMEOUTS,
    MAX_TOKEN_LIFETIME,
    REST_REQUEST,
)

from .processes import KEY, GripBackend, LocalStack
from .test_envelope import BUCKET, frames_client, recv_frame, refusal
from .test_gateway import TIMEOUT, client, connection_id

AUTH = {"Authorization": f"Bearer {KEY}"}


def raw(
    stack: LocalStack, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    """A request with its path sent exactly as given (no client-side normalizing)."""
    host = urlsplit(stack.control)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=TIMEOUT)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in {**AUTH, **(headers or {})}.items():
            conn.putheader(name, value)
        conn.endheaders()
        reply = conn.getresponse()
        body = reply.read()
        return reply.status, json.loads(body) if body else {}
    finally:
        conn.close()


# -- oversized bodies ---------------------------------------------------------------


def test_a_body_over_10_mb_is_refused_before_it_is_read_whole(stack: LocalStack) -> None:
    """The client announces 10 MB + 1 and sends 1 KB of it: the 413 comes back
    without the gateway waiting for the rest."""
    host = urlsplit(stack.control)
    with socket.create_connection((host.hostname, host.port), timeout=TIMEOUT) as sock:
        head = (
            f"POST /publish HTTP/1.1\r\nHost: {host.netloc}\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {REST_REQUEST + 1}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"items": [' + b" " * 1000)
        started = time.monotonic()
        answer = sock.recv(65536)
        assert time.monotonic() - started < TIMEOUT
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413"
    assert b"application/json" in rest.lower()


def test_a_10_mb_body_sent_whole_is_refused_with_json(stack: LocalStack) -> None:
    body = (
        b'{"items": [{"channel": "x", "formats": {"ws-message": {"content": "'
        + (b"a" * (REST_REQUEST + 10))
        + b'"}}}]}'
    )
    reply = requests.post(
        f"{stack.control}/publish",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=60,
    )
    assert reply.status_code == 413
    assert "error" in reply.json()


# -- credentials ----------------------------------------------------------------------


def token(claims: dict, key: str = KEY, algorithm: str = "HS256", **headers: object) -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers or None)


def in_(seconds: int) -> int:
    return int(time.time()) + seconds


BAD_CREDENTIALS = {
    "none": None,
    "alg none": jwt.encode({"exp": in_(60)}, None, algorithm="none"),
    "HS512": token({"exp": in_(60)}, KEY + KEY, "HS512"),
    "HS256 over another key": token({"exp": in_(60)}, "another-key-" + "0" * 40),
    "no exp": token({"iss": "x"}),
    "expired": token({"exp": in_(-10)}),
    "exp ten years ahead": token({"exp": in_(10 * 365 * 86400)}),
    "exp a day and an hour ahead": token({"exp": in_(MAX_TOKEN_LIFETIME + 3600)}),
    # Issue 24, finding 5: NaN compares false both ways, so it never expired.
    "exp NaN": token({"exp": float("nan")}),
    "exp Infinity": token({"exp": float("inf")}),
    "exp 10**400": token({"exp": 10**400}),
    "Pushpin's Grip-Sig": token({"iss": "pushpin", "exp": in_(3600)}),
}


@pytest.mark.parametrize("name", list(BAD_CREDENTIALS))
def test_a_control_route_refuses_a_forged_or_unbounded_credential(
    stack: LocalStack, name: str
) -> None:
    credential = BAD_CREDENTIALS[name]
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    reply = requests.get(f"{stack.control}/channels/lobby", headers=headers, timeout=TIMEOUT)
    assert reply.status_code == 401, reply.text
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="slipway"'
    assert reply.json()["error"]


@pytest.mark.parametrize("param", ["key", "access_token", "token", "auth"])
def test_the_key_in_the_query_string_authorizes_nothing(stack: LocalStack, param: str) -> None:
    """A GRIP URI pasted whole (`...?key=...`) must not work as a credential: URLs end
    up in logs, browser history and Referer headers."""
    url = f"{stack.control}/channels/lobby?{param}={quote(KEY)}"
    assert requests.get(url, timeout=TIMEOUT).status_code == 401
    published = requests.post(
        f"{stack.control}/publish?{param}={quote(KEY)}",
        json={"items": [{"channel": "lobby", "formats": {"ws-message": {"content": "x"}}}]},
        timeout=TIMEOUT,
    )
    assert published.status_code == 401


def test_an_hour_long_token_as_pubcontrol_makes_it_works(stack: LocalStack) -> None:
    headers = {"Authorization": f"Bearer {token({'exp': in_(3600)})}"}
    reply = requests.get(f"{stack.control}/channels/lobby", headers=headers, timeout=TIMEOUT)
    assert reply.status_code == 200


# -- token confusion: a backend's request headers are not a credential -----------------


def test_a_grip_sig_echoed_by_a_backend_opens_nothing(
    stack: LocalStack, backend: GripBackend
) -> None:
    """Issue 24, finding 1: the Grip-Sig of a backend request, logged or echoed by the
    backend, was a Bearer token for the whole control API for its hour."""
    marker = uuid.uuid4().hex
    with client(stack, marker) as ws:
        seen = backend.wait_for(marker, lambda got: len(got) >= 1)[0]["headers"]
        cid, sig = seen["connection-id"], seen["grip-sig"]
        stolen = {"Authorization": f"Bearer {sig}"}
        item = {"channel": marker, "formats": {"ws-message": {"content": "x"}}}
        path = f"{stack.control}/connections/{quote(cid, safe='')}"
        attempts = [
            requests.get(f"{stack.control}/connections", headers=stolen, timeout=TIMEOUT),
            requests.get(path, headers=stolen, timeout=TIMEOUT),
            requests.post(
                f"{stack.control}/publish/", json={"items": [item]}, headers=stolen, timeout=TIMEOUT
            ),
            requests.post(f"{stack.control}/uploads", headers=stolen, timeout=TIMEOUT),
            requests.post(
                f"{path}/message", json={"content": "owned"}, headers=stolen, timeout=TIMEOUT
            ),
            requests.delete(path, headers=stolen, timeout=TIMEOUT),
        ]
        for reply in attempts:
            assert reply.status_code == 401, (reply.request.method, reply.request.url, reply.text)
            assert "Grip-Sig" in reply.json()["error"]
        # Nothing was sent to the client nor closed: its next message is echoed as ever.
        ws.send("still mine")
        assert ws.recv(timeout=TIMEOUT) == "still mine"
    # The same header is still a good Grip-Sig for the backend: it checked it.
    assert gripcontrol.validate_sig(sig, KEY)


# -- numbers: bounded, or refused naming the field -------------------------------------


def test_huge_keep_alive_timeouts_never_fill_the_deployments_timeout_slots(
    stack: LocalStack, backend: GripBackend
) -> None:
    """Issue 24, finding 8: each distinct keep-alive timeout takes one of the
    deployment's 32 slots for ever; 10**41 and a 200-digit one were accepted. 32
    such answers, then a real keep-alive: it still gets its slot and arrives."""
    huge = [10**41 + k for k in range(MAX_KEEPALIVE_TIMEOUTS - 1)] + [int("9" * 200)]
    for timeout in huge:
        # The OPEN response carries the keep-alive: it is carried out before the handshake ends.
        with client(stack, keepalive=json.dumps({"content": "never", "timeout": timeout})):
            pass
    with client(
        stack, keepalive=json.dumps({"content": "ka", "timeout": 1, "mode": "interval"})
    ) as ws:
        assert ws.recv(timeout=TIMEOUT) == "ka"
    assert f"keep-alive timeout must be an integer from 1 to {MAX_KEEPALIVE_TIMEOUT}" in stack.log()


@pytest.mark.parametrize(
    "query", ["limit=%C2%B2", "limit=" + "9" * 5000, "limit=%EF%BC%91", "limit=1e3"]
)
@pytest.mark.parametrize(
    "route", ["/connections", "/channels/lobby/connections", "/channels/lobby/items"]
)
def test_a_page_limit_that_is_not_plain_digits_is_a_400_naming_it(
    stack: LocalStack, route: str, query: str
) -> None:
    """`?limit=²` passed str.isdigit and failed int(): a 500 before the fix."""
    status, body = raw(stack, "GET", f"{route}?{query}")
    assert status == 400, (status, body)
    assert "limit" in json.dumps(body)


def test_an_items_offset_that_is_not_plain_digits_is_a_400_naming_it(stack: LocalStack) -> None:
    status, body = raw(stack, "GET", "/channels/lobby/items?after=%C2%B2")
    assert status == 400, (status, body)
    assert "after" in json.dumps(body)


@pytest.mark.parametrize("mid", [2**53, -(2**53), 10**400])
def test_an_envelope_frame_id_past_javascripts_integers_is_an_invalid_frame(
    stack: LocalStack, mid: int
) -> None:
    with frames_client(stack, uuid.uuid4().hex) as ws:
        ws.send(json.dumps([2, mid]))  # an upload request: its id would go into the S3 key
        assert refusal(ws, 0) == "invalid_frame"
        ws.send(json.dumps([1, 7, "after"]))
        assert recv_frame(ws) == [1, 0, "after"]  # the test backend echoes


def test_a_resume_offset_past_javascripts_integers_is_ignored_not_a_failure(
    stack: LocalStack,
) -> None:
    """A client's `resume=` offsets are numbers it chose: one past 2**53 - 1 is
    ignored (logged) like any bad position, and the connection works as a new one."""
    room = f"hostile-{uuid.uuid4().hex[:8]}"
    with client(stack, envelope="1", resume="", subscribe=room) as ws:
        epoch = json.loads(ws.recv(timeout=TIMEOUT))[2]["epoch"]
    requests.post(
        f"{stack.control}/publish/",
        json={"items": [{"channel": room, "formats": {"ws-message": {"content": "old"}}}]},
        headers=AUTH,
        timeout=TIMEOUT,
    ).raise_for_status()
    far = base64.urlsafe_b64encode(json.dumps({room: [epoch, 10**400]}).encode()).decode()
    with client(stack, envelope="1", resume=far.rstrip("="), subscribe=room) as ws:
        kind, _, report = json.loads(ws.recv(timeout=TIMEOUT))
        assert kind == 6 and report["replayed"] == 0, report
        requests.post(
            f"{stack.control}/publish/",
            json={"items": [{"channel": room, "formats": {"ws-message": {"content": "new"}}}]},
            headers=AUTH,
            timeout=TIMEOUT,
        ).raise_for_status()
        assert json.loads(ws.recv(timeout=TIMEOUT))[:3] == [1, 0, "new"]
    assert "positions ignored" in stack.log()


# -- connection ids built to escape their route ----------------------------------------

ESCAPING_IDS = [
    "a%2Fb",
    "..%2F..%2Fconnections",
    "%2E%2E",
    "%252F",
    "%00",
    "a%0D%0ASet-Cookie:%20x",
    "%C3%A9t%C3%A9",  # été
    "%E2%80%AE",  # right-to-left override
    "%F0%9F%98%80",  # emoji
    "%FF%FE",  # not UTF-8
    "x" * 2000,
]


@pytest.mark.parametrize("cid", ESCAPING_IDS)
@pytest.mark.parametrize(
    "method, suffix",
    [("GET", ""), ("DELETE", ""), ("POST", "/message"), ("PUT", "/channels/c"), ("PATCH", "/meta")],
)
def test_an_escaping_connection_id_is_an_unknown_connection(
    stack: LocalStack, cid: str, method: str, suffix: str
) -> None:
    headers = {"Content-Type": "application/json"} if method in ("POST", "PATCH") else {}
    status, body = raw(stack, method, f"/connections/{cid}{suffix}", headers)
    assert status in (400, 404), (status, body)
    assert body["error"]


@pytest.mark.parametrize(
    "path",
    ["/connections/../channels/x", "/connections/./x", "/connections//x", "/connections/a/b"],
)
def test_a_path_with_dot_segments_or_extra_slashes_never_fails_inside(
    stack: LocalStack, path: str
) -> None:
    status, body = raw(stack, "GET", path)
    assert status < 500 and body, (status, body)


def test_another_connections_id_in_a_route_acts_on_that_connection_only(
    stack: LocalStack, backend: GripBackend
) -> None:
    """No id trickery reaches another connection: an id with a suffix or a prefix of a
    real one, or the real one percent-encoded twice, is unknown."""
    marker = uuid.uuid4().hex
    with client(stack, marker):
        real = connection_id(backend, marker)
        for near in (real + "x", real[:-1], "x" + real, quote(quote(real, safe=""), safe="")):
            status, _ = raw(stack, "GET", f"/connections/{quote(near, safe='')}")
            assert status == 404, near
        status, body = raw(stack, "GET", f"/connections/{quote(real, safe='')}")
        assert (status, body["id"]) == (200, real)


# -- headers a client forges toward the backend ---------------------------------------


def test_forged_meta_and_signature_headers_never_reach_the_backend(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    forged = {
        "Meta-User": "admin",
        "Meta_Role": "root",
        "Grip-Sig": "forged",
        "Grip_Sig": "forged",
        "Set-Meta-User": "admin",
        "Connection_Id": "someone-else",
    }
    with client(stack, marker, meta="user:alice", headers=forged) as ws:
        ws.send("whoami")
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {"user": "alice"}
    for request in backend.requests_with(marker):
        headers = request["headers"]
        assert "forged" not in headers.values() and "admin" not in headers.values()
        assert not {"meta_role", "grip_sig", "connection_id", "set-meta-user"} & set(headers)
        normalized = {k.replace("_", "-") for k in headers}
        assert "meta-role" not in normalized
    assert backend.requests_with(marker)[-1]["headers"]["meta-user"] == "alice"


# -- envelope [4] URLs ----------------------------------------------------------------


@contextmanager
def watched_host() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback HTTP server standing for 'another host': it records every request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                seen.append(conn.recv(65536))
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"stolen!"')

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        listener.close()


def test_an_announced_upload_at_another_host_is_never_fetched(
    stack: LocalStack, backend: GripBackend
) -> None:
    marker = uuid.uuid4().hex
    with watched_host() as (elsewhere, seen), frames_client(stack, marker) as ws:
        other_key = f"uploads/{quote('someone-else=', safe='')}/2000000000-1-0123abcd.json"
        for mid, url in enumerate(
            [
                f"{elsewhere}/latest/meta-data/iam/security-credentials/",
                f"{elsewhere}/{BUCKET}/{other_key}",
                f"{elsewhere}/{BUCKET}/uploads/..%2F..%2Fpublish/x.json",
                f"{stack.control}/connections",
                f"{stack.urls['aws']}/{BUCKET}/publish/x.json",
            ],
            start=1,
        ):
            ws.send(json.dumps([4, mid, url, "GET", {}]))
            assert refusal(ws, mid) == "foreign_key"
        ws.send(json.dumps([1, 50, "still here"]))
        assert recv_frame(ws) == [1, 0, "still here"]
    assert seen == []  # nothing ever contacted the other host
    texts = b"".join(r["body"] for r in backend.requests_with(marker))
    assert b"stolen" not in texts


# -- JSON nested deeper than Python's recursion limit ---------------------------------

DEEP = "[" * 3000 + "]" * 3000
DEEP_B64 = base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("=")


def test_deeply_nested_json_is_a_refusal_never_a_500(
    stack: LocalStack, backend: GripBackend
) -> None:
    json_headers = {**AUTH, "Content-Type": "application/json"}
    marker = uuid.uuid4().hex
    with client(stack, marker):
        cid = quote(connection_id(backend, marker), safe="")
        answers = [
            requests.post(
                f"{stack.control}/publish", data=DEEP, headers=json_headers, timeout=TIMEOUT
            ),
            requests.post(
                f"{stack.control}/connections/{cid}/message",
                data=DEEP,
                headers=json_headers,
                timeout=TIMEOUT,
            ),
            requests.patch(
                f"{stack.control}/connections/{cid}/meta",
                data=DEEP,
                headers=json_headers,
                timeout=TIMEOUT,
            ),
            requests.get(
                f"{stack.control}/connections?cursor={DEEP_B64}", headers=AUTH, timeout=TIMEOUT
            ),
        ]
        assert [a.status_code for a in answers] == [400, 400, 400, 400]
        deep_token = {"Authorization": f"Bearer {DEEP_B64}.{DEEP_B64}.x"}
        reply = requests.get(f"{stack.control}/channels/x", headers=deep_token, timeout=TIMEOUT)
        assert reply.status_code == 401
    with frames_client(stack, marker) as ws:
        ws.send(f"[1, 1, {DEEP}]")
        assert refusal(ws, 0) == "not_an_array"
        ws.send(json.dumps([1, 2, "still here"]))
        assert recv_frame(ws) == [1, 0, "still here"]
