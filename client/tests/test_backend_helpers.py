"""Backend helpers: the reference bytes of docs/backend-protocol.md, gripcontrol
interop, Grip-Sig checks."""

from __future__ import annotations

import time

import gripcontrol
import pytest
from gripcontrol import WebSocketEvent, decode_websocket_events, encode_websocket_events

from slipway_client import (
    Closed,
    CodecError,
    Disconnected,
    GripSigError,
    WebSocketContext,
    codec,
    token,
)
from slipway_client.codec import Event

KEY = "test-key-long-enough-for-hs256-0123456789"
CT = "application/websocket-events"


def request(body: bytes, **headers: str) -> WebSocketContext:
    hdrs = {"Content-Type": CT, "Connection-Id": "conn-1", **headers}
    return WebSocketContext.from_request(body, {k.replace("_", "-"): v for k, v in hdrs.items()})


# -- docs/backend-protocol.md reference bytes (django-grip echo backend) --------------------------


def test_reference_open_accept_subscribe() -> None:
    ctx = request(b"OPEN\r\n")
    assert ctx.is_opening and ctx.connection_id == "conn-1"
    ctx.accept(keep_alive=None)
    ctx.subscribe("test")
    assert ctx.response() == (
        200,
        {"Content-Type": CT, "Sec-WebSocket-Extensions": "grip"},
        b'OPEN\r\nTEXT 2a\r\nc:{"channel": "test", "type": "subscribe"}\r\n',
    )


def test_reference_echo_text() -> None:
    ctx = request(b"TEXT 5\r\nhello\r\n")
    assert not ctx.is_opening
    for message in ctx.messages():
        assert message == "hello"
        ctx.send(message)
    assert ctx.response() == (200, {"Content-Type": CT}, b"TEXT 7\r\nm:hello\r\n")


def test_reference_close_acknowledged_without_code() -> None:
    ctx = request(b"CLOSE 2\r\n\x03\xe8\r\n")
    assert list(ctx.messages()) == [Closed(1000, "")]
    ctx.close()
    # django-grip answers `CLOSE 2\r\n\x00\x00\r\n` (code 0, which Pushpin would pass
    # on to the client); we send a close without a code the way Pushpin itself does.
    assert ctx.response().body == b"CLOSE\r\n"


def test_close_reason_goes_with_a_code_only() -> None:
    ctx = request(b"TEXT 1\r\nx\r\n")
    ctx.close(None, "no code, so no reason")
    ctx.close(0, "zero")
    assert codec.decode(ctx.response().body) == [Event("CLOSE"), Event("CLOSE", b"\x00\x00zero")]
    with pytest.raises(ValueError, match="two bytes"):
        ctx.close(0x10000)


# -- reading ---------------------------------------------------------------------


def test_messages_in_order_with_close_and_disconnect() -> None:
    body = codec.encode(
        [
            Event("TEXT", "héllo".encode()),
            Event("BINARY", b"\x00\xff"),
            Event("PING", b"p"),
            Event("TEXT", b""),
            Event("CLOSE", b"\x0f\xa0bye"),
            Event("DISCONNECT"),
        ]
    )
    ctx = request(body)
    assert list(ctx.messages()) == ["héllo", b"\x00\xff", "", Closed(4000, "bye"), Disconnected()]
    # A PING is answered with a PONG carrying the same content, as gripcontrol does.
    assert ctx.response().body == b"PONG 1\r\np\r\n"


def test_invalid_utf8_text_is_replaced_not_raised() -> None:
    assert list(request(b"TEXT 2\r\n\xff!\r\nTEXT 1\r\nx\r\n").messages()) == ["\ufffd!", "x"]


def test_close_without_code_and_code_zero_read_as_none() -> None:
    assert list(request(b"CLOSE\r\n").messages()) == [Closed(None, "")]
    assert list(request(b"CLOSE 2\r\n\x00\x00\r\n").messages()) == [Closed(None, "")]


def test_meta_headers_read_and_changes_become_set_meta() -> None:
    ctx = request(b"TEXT 1\r\nx\r\n", **{"Meta-User": "alice", "META-Room": "lobby"})
    assert ctx.meta == {"user": "alice", "room": "lobby"}
    ctx.set_meta("Room", "kitchen")
    ctx.set_meta("user", None)
    ctx.set_meta("new-one", "1")
    ctx.meta["direct"] = "edited"
    assert ctx.response().headers == {
        "Content-Type": CT,
        "Set-Meta-room": "kitchen",
        "Set-Meta-new-one": "1",
        "Set-Meta-direct": "edited",
        "Set-Meta-user": "",
    }


def test_headers_as_list_of_pairs() -> None:
    ctx = WebSocketContext.from_request(b"OPEN\r\n", [("connection-id", "c9"), ("meta-a", "b")])
    assert (ctx.connection_id, ctx.meta) == ("c9", {"a": "b"})


@pytest.mark.parametrize(
    "body",
    [b"TEXT 5\r\nhel", b"OPEN", b"NOPE\r\n", b"TEXT zz\r\nab\r\n", b"TEXT 2\r\nabcd\r\n"],
)
def test_malformed_bodies_raise_codec_error(body: bytes) -> None:
    with pytest.raises(CodecError):
        request(body)


# -- building ----------------------------------------------------------------------


def test_every_response_event() -> None:
    ctx = request(b"OPEN\r\n")
    ctx.accept(protocol="chat.v1", keep_alive=None)
    ctx.send("hi")
    ctx.send_binary(b"\x01\x02")
    ctx.unsubscribe("old")
    ctx.detach()
    ctx.keep_alive("ka", timeout=30)
    ctx.keep_alive(b"\x00", timeout=10, mode="interval")
    ctx.keep_alive(None)
    ctx.close(4001, "done")
    status, headers, body = ctx.response()
    assert status == 200
    assert headers == {
        "Content-Type": CT,
        "Sec-WebSocket-Extensions": "grip",
        "Sec-WebSocket-Protocol": "chat.v1",
    }
    assert codec.decode(body) == [
        Event("OPEN"),
        Event("TEXT", b"m:hi"),
        Event("BINARY", b"m:\x01\x02"),
        Event("TEXT", b'c:{"channel": "old", "type": "unsubscribe"}'),
        Event("TEXT", b'c:{"type": "detach"}'),
        Event("TEXT", b'c:{"content": "ka", "timeout": 30, "mode": "idle", "type": "keep-alive"}'),
        Event(
            "TEXT",
            b'c:{"content-bin": "AA==", "timeout": 10, "mode": "interval", "type": "keep-alive"}',
        ),
        Event("TEXT", b'c:{"type": "keep-alive"}'),
        Event("CLOSE", b"\x0f\xa1done"),
    ]


def test_custom_prefix_and_grip_off() -> None:
    ctx = WebSocketContext.from_request(b"OPEN\r\n", {}, message_prefix='x"')
    ctx.accept(keep_alive=None)
    ctx.send("a")
    status, headers, body = ctx.response()
    assert headers["Sec-WebSocket-Extensions"] == 'grip; message-prefix="x\\""'
    assert body == b'OPEN\r\nTEXT 3\r\nx"a\r\n'

    plain = WebSocketContext.from_request(b"OPEN\r\n", {}, message_prefix=None)
    plain.accept(keep_alive=None)
    plain.send("a")
    assert plain.response() == (200, {"Content-Type": CT}, b"OPEN\r\nTEXT 1\r\na\r\n")
    with pytest.raises(RuntimeError, match="GRIP mode"):
        plain.subscribe("x")


def test_reject_and_misuse() -> None:
    ctx = request(b"OPEN\r\n")
    ctx.reject(401, "who are you?")
    assert ctx.response() == (401, {"Content-Type": "text/plain; charset=utf-8"}, b"who are you?")
    later = request(b"TEXT 1\r\nx\r\n")
    with pytest.raises(RuntimeError, match="opening request"):
        later.accept(keep_alive=None)
    with pytest.raises(TypeError):
        later.send(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        later.set_meta("bad name", "v")
    with pytest.raises(ValueError):
        later.set_meta("ok", "line\nbreak")
    with pytest.raises(ValueError):
        later.keep_alive("x", mode="sometimes")


# -- interop with gripcontrol -----------------------------------------------------------


def test_gripcontrol_decodes_what_we_build() -> None:
    ctx = request(b"OPEN\r\n")
    ctx.accept(keep_alive=None)
    ctx.subscribe("room")
    ctx.send("héllo")
    ctx.send_binary(b"\x00\r\n\x01")
    ctx.close(1000)
    decoded = decode_websocket_events(ctx.response().body)
    assert [(e.type, e.content) for e in decoded] == [
        ("OPEN", None),
        ("TEXT", b'c:{"channel": "room", "type": "subscribe"}'),
        ("TEXT", "m:héllo".encode()),
        ("BINARY", b"m:\x00\r\n\x01"),
        ("CLOSE", b"\x03\xe8"),
    ]


def test_same_bytes_as_a_gripcontrol_backend() -> None:
    """The same backend logic, written with gripcontrol and with our helpers."""
    incoming = b"OPEN\r\n"
    theirs = gripcontrol.WebSocketContext("c", {}, decode_websocket_events(incoming))
    theirs.accept()
    theirs.subscribe("a")
    theirs.send("one")
    theirs.send_binary(b"two")
    theirs.unsubscribe("a")
    theirs.detach()
    theirs.close(4000)
    out = [WebSocketEvent("OPEN"), *theirs.out_events]
    out.append(WebSocketEvent("CLOSE", theirs.out_close_code.to_bytes(2, "big")))

    ours = WebSocketContext.from_request(incoming, {"Connection-Id": "c"})
    ours.accept(keep_alive=None)
    ours.subscribe("a")
    ours.send("one")
    ours.send_binary(b"two")
    ours.unsubscribe("a")
    ours.detach()
    ours.close(4000)
    assert ours.response().body == encode_websocket_events(out)
    # Without a code the two differ on purpose: gripcontrol's 0 vs Pushpin's bare CLOSE.
    theirs.close()
    assert theirs.out_close_code == 0
    ours = WebSocketContext.from_request(incoming, {})
    ours.close()
    assert ours.response().body == b"CLOSE\r\n"


def test_we_read_what_gripcontrol_encodes() -> None:
    body = encode_websocket_events(
        [
            WebSocketEvent("TEXT", "ünïcode"),
            WebSocketEvent("BINARY", b"\x00\x01"),
            WebSocketEvent("PING"),
            WebSocketEvent("CLOSE", b"\x03\xe9gone"),
        ]
    )
    ctx = WebSocketContext.from_request(body, {})
    assert list(ctx.messages()) == ["ünïcode", b"\x00\x01", Closed(1001, "gone")]
    # And gripcontrol's own context reads our encoding of the same events the same way.
    theirs = gripcontrol.WebSocketContext(
        "c", {}, decode_websocket_events(codec.encode(ctx.events))
    )
    assert [theirs.recv(), theirs.recv(), theirs.recv()] == ["ünïcode", b"\x00\x01", None]
    assert theirs.close_code is None  # gripcontrol reads only a bare 2-byte close content


def test_the_gateway_reads_our_response_as_intended() -> None:
    """The gateway's own response reader, when the gateway code is importable."""
    decisions = pytest.importorskip("chalicelib.grip.decisions")
    ctx = request(b"OPEN\r\n")
    ctx.accept(keep_alive=None)
    ctx.subscribe("room")
    ctx.set_meta("user", "bob")
    ctx.keep_alive("ping", timeout=20)
    ctx.send("welcome")
    ctx.close()
    status, headers, body = ctx.response()
    got = decisions.read_response(status, headers, body, opening=True)
    assert got == [
        decisions.Accept({}, "m:"),
        decisions.SetMeta("user", "bob"),
        decisions.Subscribe("room"),
        decisions.KeepAlive(b"ping", False, 20, "idle"),
        decisions.Send(b"welcome"),
        decisions.Close(None, ""),
    ]


# -- Grip-Sig ---------------------------------------------------------------------------


def signed(claims: dict, key: str = KEY) -> WebSocketContext:
    return WebSocketContext.from_request(
        b"OPEN\r\n", {"Grip-Sig": token.sign(claims, key)}, key=KEY
    )


def test_valid_grip_sig_accepted_and_interoperable() -> None:
    claims = {"iss": "slipway", "exp": int(time.time()) + 3600}
    assert signed(claims).is_opening
    # gripcontrol (PyJWT) accepts what we sign ...
    assert gripcontrol.validate_sig(token.sign(claims, KEY), KEY)
    # ... and we accept what a PyJWT signer produces.
    import jwt

    theirs = jwt.encode(claims, KEY, algorithm="HS256")
    assert token.verify(theirs, KEY, iss="slipway")["iss"] == "slipway"


@pytest.mark.parametrize(
    ("claims", "key", "reason"),
    [
        ({"exp": -10}, KEY, "expired"),
        ({"iss": "slipway"}, KEY, "no exp"),
        ({"exp": 3600}, "not-the-key", "signature"),
    ],
)
def test_bad_grip_sig_rejected(claims: dict, key: str, reason: str) -> None:
    if "exp" in claims:
        claims = {**claims, "exp": int(time.time()) + claims["exp"]}
    with pytest.raises(GripSigError, match=reason):
        signed(claims, key)


def test_missing_or_malformed_grip_sig() -> None:
    with pytest.raises(GripSigError, match="missing Grip-Sig"):
        WebSocketContext.from_request(b"OPEN\r\n", {}, key=KEY)
    with pytest.raises(GripSigError, match="not a JWT"):
        WebSocketContext.from_request(b"OPEN\r\n", {"Grip-Sig": "abc"}, key=KEY)
    forged_alg = token.sign({"exp": int(time.time()) + 60}, KEY).split(".")
    forged_alg[0] = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    with pytest.raises(GripSigError, match="HS256"):
        token.verify(".".join(forged_alg), KEY)


def test_grip_sig_issuer_checked_when_asked() -> None:
    sig = token.sign({"iss": "someone", "exp": int(time.time()) + 60}, KEY)
    with pytest.raises(GripSigError, match="issuer"):
        WebSocketContext.from_request(b"OPEN\r\n", {"grip-sig": sig}, key=KEY, iss="slipway")


def test_accept_keeps_the_connection_alive_by_default() -> None:
    """API Gateway drops a connection after 10 minutes of quiet: by default the
    gateway is told to send an empty message after 5 minutes without one."""
    from chalicelib.grip import decisions as d

    ctx = request(b"OPEN\r\n")
    ctx.accept()
    status, headers, body = ctx.response()
    decided = d.read_response(status, headers, body, opening=True)
    assert d.KeepAlive(b"", False, 300, "idle") in decided
    plain = WebSocketContext.from_request(b"OPEN\r\n", {}, message_prefix=None)
    plain.accept()  # no GRIP mode, no control messages: nothing to send
    assert plain.response().body == b"OPEN\r\n"
