"""chalicelib/grip/decisions.py: a backend's WebSocket-over-HTTP response → decisions."""

from __future__ import annotations

import base64
import json
from struct import pack

import pytest
from gripcontrol import WebSocketContext, WebSocketEvent, encode_websocket_events
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.grip.codec import CodecError, Event, close_content, encode
from chalicelib.grip.decisions import (
    DEFAULT_PREFIX,
    MAX_CHANNEL_LENGTH,
    Accept,
    Close,
    Detach,
    Disconnect,
    Dropped,
    KeepAlive,
    Reject,
    ResponseError,
    Send,
    SetMeta,
    Subscribe,
    Unsubscribe,
    grip_prefix_of,
    read_response,
)
from chalicelib.grip.limits import IDLE_TIMEOUT, MAX_KEEPALIVE_TIMEOUT

CT = "application/websocket-events"
OK = {"Content-Type": CT}
GRIP = {"Content-Type": CT, "Sec-WebSocket-Extensions": "grip"}


def body(*events: Event) -> bytes:
    return encode(list(events))


def text(content: bytes | str) -> Event:
    return Event("TEXT", content.encode() if isinstance(content, str) else content)


def opened(raw: bytes, headers: dict[str, str] | None = None) -> list:
    return read_response(200, headers if headers is not None else GRIP, raw, opening=True)


def later(raw: bytes, prefix: str | None = "m:", headers: dict[str, str] | None = None) -> list:
    hdrs = headers if headers is not None else OK
    return read_response(200, hdrs, raw, opening=False, grip_prefix=prefix)


def control(msg: object) -> object:
    """The one decision for a `c:` control message, in GRIP mode after open."""
    raw = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    (decision,) = later(body(text(b"c:" + raw)))
    return decision


# --- accepting -------------------------------------------------------------------------


def test_accept_plain_open() -> None:
    assert opened(b"OPEN\r\n", OK) == [Accept({}, None)]


def test_accept_with_grip_mode() -> None:
    assert opened(b"OPEN\r\n") == [Accept({}, "m:")]
    assert DEFAULT_PREFIX == "m:"


def test_accept_passes_back_the_subprotocol_and_cookies_only() -> None:
    headers = {
        **GRIP,
        "Sec-WebSocket-Protocol": "chat.v2",
        "Set-Cookie": "sid=1; HttpOnly",
        "X-Backend": "yes",
        "Content-Length": "6",
    }
    (accept,) = opened(b"OPEN\r\n", headers)
    assert accept == Accept(
        {"sec-websocket-protocol": "chat.v2", "set-cookie": "sid=1; HttpOnly"}, "m:"
    )


def test_header_names_are_case_insensitive_and_may_be_a_list_of_pairs() -> None:
    pairs = [
        ("content-TYPE", CT),
        ("SEC-WEBSOCKET-EXTENSIONS", "grip"),
        ("sec-websocket-protocol", "p"),
    ]
    assert read_response(200, pairs, b"OPEN\r\n", opening=True) == [
        Accept({"sec-websocket-protocol": "p"}, "m:")
    ]


def test_content_type_value_is_case_insensitive() -> None:
    headers = {"Content-Type": "Application/WebSocket-Events"}
    assert opened(b"OPEN\r\n", headers) == [Accept({}, None)]


def test_open_response_events_follow_the_accept_in_order() -> None:
    raw = body(
        Event("OPEN"),
        text('c:{"channel": "test", "type": "subscribe"}'),
        text("m:welcome"),
        Event("BINARY", b"m:\x00\x01"),
        Event("CLOSE", close_content(4000, "bye")),
    )
    assert opened(raw) == [
        Accept({}, "m:"),
        Subscribe("test"),
        Send(b"welcome"),
        Send(b"\x00\x01", binary=True),
        Close(4000, "bye"),
    ]


def test_reference_open_response_from_spec() -> None:
    raw = b'OPEN\r\nTEXT 2a\r\nc:{"channel": "test", "type": "subscribe"}\r\n'
    assert opened(raw) == [Accept({}, "m:"), Subscribe("test")]


def test_open_ignores_a_grip_prefix_argument_and_reads_its_own_headers() -> None:
    raw = body(Event("OPEN"), text("hello"))
    decided = read_response(200, OK, raw, opening=True, grip_prefix="m:")
    assert decided == [Accept({}, None), Send(b"hello")]


# --- rejecting on OPEN -------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 301, 302, 500, 503])
def test_open_non_200_is_rejected_with_the_backends_answer(status: int) -> None:
    headers = {
        "Content-Type": "text/plain",
        "Content-Length": "9",
        "Connection": "keep-alive",
        "Transfer-Encoding": "chunked",
        "Content-Encoding": "gzip",
        "X-Reason": "nope",
        "Location": "https://elsewhere.example/",
    }
    decided = read_response(status, headers, b"rejected\n", opening=True)
    assert decided == [
        Reject(
            status,
            {
                "content-type": "text/plain",
                "x-reason": "nope",
                "location": "https://elsewhere.example/",
            },
            b"rejected\n",
        )
    ]


def test_open_non_200_even_with_a_websocket_events_body_is_rejected() -> None:
    decided = read_response(403, OK, b"OPEN\r\n", opening=True)
    assert decided == [Reject(403, {"content-type": CT}, b"OPEN\r\n")]


@pytest.mark.parametrize("status", [201, 202, 204, 206, 299])
def test_open_other_2xx_is_a_502_reject_since_a_2xx_would_accept(status: int) -> None:
    (reject,) = read_response(status, OK, b"OPEN\r\n", opening=True)
    assert isinstance(reject, Reject)
    assert reject.status == 502
    assert str(status).encode() in reject.body


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/json"},
        {"Content-Type": "application/websocket-event"},
        {},
    ],
    ids=["text", "json", "typo", "missing"],
)
def test_open_200_with_the_wrong_content_type_is_a_502(headers: dict[str, str]) -> None:
    (reject,) = read_response(200, headers, b"OPEN\r\n", opening=True)
    assert isinstance(reject, Reject)
    assert reject.status == 502
    # The gateway's own answer: plain text, saying what was wrong (also for the log).
    assert reject.headers == {"content-type": "text/plain; charset=utf-8"}
    assert reject.body == b"Bad Gateway: " + (reject.problem or "").encode()
    assert "Content-Type" in (reject.problem or "")


@pytest.mark.parametrize("raw", [b"OPEN", b"OPEN\r\nTEXT zz\r\nx\r\n", b"OPEN\r\nTEXT 9\r\nhi\r\n"])
def test_open_200_with_a_malformed_body_is_a_502(raw: bytes) -> None:
    (reject,) = opened(raw)
    assert isinstance(reject, Reject)
    assert reject.status == 502
    assert reject.body.startswith(b"Bad Gateway: malformed body")


@pytest.mark.parametrize(
    "raw",
    [b"", b"TEXT 2\r\nhi\r\n", b"TEXT 2\r\nhi\r\nOPEN\r\n", b"CLOSE\r\n", b"DISCONNECT\r\n"],
)
def test_open_response_not_beginning_with_open_is_a_502(raw: bytes) -> None:
    (reject,) = opened(raw)
    assert isinstance(reject, Reject)
    assert reject.status == 502
    assert b"does not begin with OPEN" in reject.body


# --- after open: bad responses raise -----------------------------------------------


@pytest.mark.parametrize("status", [201, 204, 302, 400, 403, 500, 502])
def test_after_open_non_200_raises(status: int) -> None:
    with pytest.raises(ResponseError, match=str(status)):
        read_response(status, OK, b"TEXT 2\r\nhi\r\n", opening=False, grip_prefix="m:")


@pytest.mark.parametrize("ctype", ["text/plain", "", "application/json"])
def test_after_open_wrong_content_type_raises(ctype: str) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    with pytest.raises(ResponseError, match="Content-Type"):
        later(b"TEXT 2\r\nhi\r\n", headers=headers)


@pytest.mark.parametrize("raw", [b"TEXT zz\r\nnot hex\r\n", b"TEXT", b"NOPE\r\n"])
def test_after_open_malformed_body_raises(raw: bytes) -> None:
    with pytest.raises(ResponseError, match="malformed body"):
        later(raw)


def test_after_open_empty_body_is_nothing_to_do() -> None:
    assert later(b"") == []
    assert later(b"", prefix=None) == []


# --- GRIP mode negotiation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "extensions, prefix",
    [
        ("grip", "m:"),
        ("GRIP", "m:"),
        (" grip ", "m:"),
        ('grip; message-prefix="x:"', "x:"),
        ("grip; message-prefix=x:", "x:"),
        ('grip;message-prefix="x:"', "x:"),
        ('grip; message-prefix = "x:"', "x:"),
        ('grip; Message-Prefix="x:"', "x:"),
        ('grip; message-prefix=""', ""),
        ("grip; message-prefix=", ""),
        ('grip; message-prefix="say \\"hi\\":"', 'say "hi":'),
        ('grip; message-prefix="a,b"', "a,b"),
        ('grip; message-prefix="a;b"', "a;b"),
        ("grip; other=1", "m:"),
        ('grip; other=1; message-prefix="p"', "p"),
        ("permessage-deflate, grip", "m:"),
        ('permessage-deflate; client_max_window_bits, grip; message-prefix="x:"', "x:"),
        ('grip; message-prefix="x:", permessage-deflate', "x:"),
        ("grip; message-prefix=x:, permessage-deflate", "x:"),
        ("permessage-deflate", None),
        ('permessage-deflate; message-prefix="x:"', None),
        ("grip-foo", None),
        ("x-grip", None),
        ("", None),
        (None, None),
    ],
)
def test_grip_prefix_of(extensions: str | None, prefix: str | None) -> None:
    assert grip_prefix_of(extensions) == prefix
    headers = dict(OK)
    if extensions is not None:
        headers["Sec-WebSocket-Extensions"] = extensions
    assert opened(b"OPEN\r\n", headers) == [Accept({}, prefix)]


def test_a_custom_prefix_applies_to_the_open_responses_own_messages() -> None:
    headers = {**OK, "Sec-WebSocket-Extensions": 'grip; message-prefix="x:"'}
    raw = body(Event("OPEN"), text("x:one"), text("m:two"))
    decided = opened(raw, headers)
    assert decided[0] == Accept({}, "x:")
    assert decided[1] == Send(b"one")
    assert isinstance(decided[2], Dropped)


# --- messages ------------------------------------------------------------------------


def test_grip_mode_strips_the_prefix() -> None:
    assert later(b"TEXT 7\r\nm:hello\r\n") == [Send(b"hello")]
    assert later(body(Event("BINARY", b"m:\x00\xff"))) == [Send(b"\x00\xff", binary=True)]
    assert later(body(text("m:"))) == [Send(b"")]
    assert later(body(text("m:m:x"))) == [Send(b"m:x")]


def test_grip_mode_custom_prefix() -> None:
    assert later(body(text("app>hi")), prefix="app>") == [Send(b"hi")]
    assert later(body(text("\u00e9:hi")), prefix="\u00e9:") == [Send(b"hi")]
    (dropped,) = later(body(text("m:hi")), prefix="app>")
    assert isinstance(dropped, Dropped)


@pytest.mark.parametrize(
    "event",
    [
        text("hello"),
        text("M:hello"),
        text("m"),
        Event("TEXT"),
        Event("TEXT", b""),
        Event("BINARY", b"\x00"),
        Event("BINARY"),
        Event("BINARY", b'c:{"type": "subscribe", "channel": "x"}'),
    ],
)
def test_grip_mode_drops_unprefixed_messages(event: Event) -> None:
    (decision,) = later(body(event))
    assert isinstance(decision, Dropped)
    assert "prefix" in decision.reason


def test_empty_prefix_passes_everything_but_control() -> None:
    assert later(body(text("hello"), Event("BINARY", b"\x01")), prefix="") == [
        Send(b"hello"),
        Send(b"\x01", binary=True),
    ]
    assert later(body(text('c:{"type": "detach"}')), prefix="") == [Detach()]


def test_without_grip_mode_messages_pass_verbatim() -> None:
    raw = body(
        text("m:hello"),
        text('c:{"type": "subscribe", "channel": "room"}'),
        text("plain"),
        Event("BINARY", b"\x00\x01"),
        Event("TEXT"),
    )
    assert later(raw, prefix=None) == [
        Send(b"m:hello"),
        Send(b'c:{"type": "subscribe", "channel": "room"}'),
        Send(b"plain"),
        Send(b"\x00\x01", binary=True),
        Send(b""),
    ]


def test_close_disconnect_ping_pong() -> None:
    raw = body(
        Event("PING", b"p"),
        Event("PONG"),
        Event("CLOSE", close_content(1001, "going away")),
        Event("DISCONNECT"),
    )
    for prefix in ("m:", None):
        decided = later(raw, prefix=prefix)
        assert isinstance(decided[0], Dropped)
        assert isinstance(decided[1], Dropped)
        assert decided[2:] == [Close(1001, "going away"), Disconnect()]


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, Close(None, "")),
        (b"", Close(None, "")),
        (b"\x03\xe8", Close(1000, "")),
        (b"\x0f\xa0custom", Close(4000, "custom")),
        (b"\x00\x00", Close(None, "")),  # django-grip's close without a code
    ],
)
def test_close(content: bytes | None, expected: Close) -> None:
    assert later(body(Event("CLOSE", content))) == [expected]


def test_reference_close_reply() -> None:
    assert later(b"CLOSE 2\r\n\x00\x00\r\n") == [Close(None)]


def test_a_stray_open_after_open_is_not_sent() -> None:
    (decision,) = later(b"OPEN\r\n")
    assert isinstance(decision, Dropped)


# --- control messages ------------------------------------------------------------------


def test_subscribe_unsubscribe_detach() -> None:
    assert control({"type": "subscribe", "channel": "room"}) == Subscribe("room")
    assert control({"channel": "room", "type": "unsubscribe"}) == Unsubscribe("room")
    assert control({"type": "detach"}) == Detach()
    assert control({"type": "subscribe", "channel": "caf\u00e9 \U0001f600"}) == Subscribe(
        "caf\u00e9 \U0001f600"
    )


def test_channel_length_limit() -> None:
    assert MAX_CHANNEL_LENGTH == 512
    longest = "c" * MAX_CHANNEL_LENGTH
    assert control({"type": "subscribe", "channel": longest}) == Subscribe(longest)
    assert control({"type": "unsubscribe", "channel": longest}) == Unsubscribe(longest)
    for kind in ("subscribe", "unsubscribe"):
        dropped = control({"type": kind, "channel": longest + "c"})
        assert isinstance(dropped, Dropped)
        assert "longer" in dropped.reason


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize("channel", [None, "", 5, ["room"], {"name": "room"}, True])
def test_subscribe_without_a_usable_channel_is_dropped(kind: str, channel: object) -> None:
    msg: dict[str, object] = {"type": kind}
    if channel is not None:
        msg["channel"] = channel
    decision = control(msg)
    assert isinstance(decision, Dropped)
    assert "channel" in decision.reason


def test_keep_alive() -> None:
    assert control({"type": "keep-alive", "content": "ping"}) == KeepAlive(
        b"ping", False, 55, "idle"
    )
    assert control(
        {"type": "keep-alive", "content": "\u00e9", "timeout": 30, "mode": "interval"}
    ) == KeepAlive("\u00e9".encode(), False, 30, "interval")
    assert control(
        {"type": "keep-alive", "content": "", "timeout": 1, "mode": "idle"}
    ) == KeepAlive(b"", False, 1, "idle")


def test_keep_alive_content_bin() -> None:
    data = b"\x00\x01\xfe\xff"
    msg = {"type": "keep-alive", "content-bin": base64.b64encode(data).decode(), "timeout": 20}
    assert control(msg) == KeepAlive(data, True, 20, "idle")
    both = {**msg, "content": "text loses"}
    assert control(both) == KeepAlive(data, True, 20, "idle")


def test_keep_alive_without_content_turns_it_off() -> None:
    assert control({"type": "keep-alive"}) == KeepAlive(None)
    assert control({"type": "keep-alive", "content": None, "timeout": 30}) == KeepAlive(None)
    assert KeepAlive(None).content is None


@pytest.mark.parametrize(
    "extra",
    [
        {"content": "x", "timeout": 0},
        {"content": "x", "timeout": -5},
        {"content": "x", "timeout": "30"},
        {"content": "x", "timeout": 1.5},
        {"content": "x", "timeout": True},
        {"content": "x", "timeout": None},
        {"content": "x", "mode": "busy"},
        {"content": "x", "mode": None},
        {"content": 5},
        {"content": ["x"]},
        {"content-bin": "not base64!"},
        {"content-bin": "abc"},
        {"content-bin": 5},
        {"content-bin": None},
        {"content-bin": "\u00e9\u00e9\u00e9\u00e9"},
    ],
)
def test_keep_alive_with_invalid_values_is_dropped(extra: dict[str, object]) -> None:
    decision = control({"type": "keep-alive", **extra})
    assert isinstance(decision, Dropped)
    assert "keep-alive" in decision.reason


# A JSON number of any kind: what a backend (or a bug in one) may put in `timeout`.
json_numbers = (
    st.integers()
    | st.integers(min_value=10**15, max_value=10**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, MAX_KEEPALIVE_TIMEOUT, MAX_KEEPALIVE_TIMEOUT + 1, 10**41])
)


@settings(max_examples=300)
@given(json_numbers)
def test_any_keep_alive_timeout_is_refused_or_within_bounds(timeout: object) -> None:
    """Issue 24, finding 8: 10**41 and 200-digit timeouts were kept for ever in the
    deployment's 32 timeout slots. Whatever number comes, it is dropped (saying
    why) or a whole number of seconds from 1 to MAX_KEEPALIVE_TIMEOUT."""
    decision = control({"type": "keep-alive", "content": "ka", "timeout": timeout})
    if isinstance(decision, Dropped):
        assert "keep-alive timeout" in decision.reason
        assert len(decision.reason) < 200
    else:
        assert isinstance(decision, KeepAlive)
        assert type(decision.timeout) is int
        assert 1 <= decision.timeout <= MAX_KEEPALIVE_TIMEOUT


@pytest.mark.parametrize(
    "raw",
    [b"1e41", b"100000000000000000000000000000000000000000", b"9" * 200, b"Infinity", b"NaN"],
)
def test_an_unbounded_keep_alive_timeout_is_dropped_naming_the_field(raw: bytes) -> None:
    decision = control(b'{"type": "keep-alive", "content": "ka", "timeout": ' + raw + b"}")
    assert isinstance(decision, Dropped)
    assert f"timeout must be an integer from 1 to {MAX_KEEPALIVE_TIMEOUT}" in decision.reason


def test_the_keep_alive_bound_is_api_gateways_idle_timeout() -> None:
    assert MAX_KEEPALIVE_TIMEOUT == IDLE_TIMEOUT == 600
    msg = {"type": "keep-alive", "content": "ka", "timeout": IDLE_TIMEOUT}
    assert control(msg) == KeepAlive(b"ka", False, IDLE_TIMEOUT, "idle")


def test_set_meta() -> None:
    assert control({"type": "set-meta", "name": "User", "value": "alice"}) == SetMeta(
        "user", "alice"
    )
    assert control({"type": "set-meta", "name": "a-1", "value": "x y"}) == SetMeta("a-1", "x y")
    assert control({"type": "set-meta", "name": "9", "value": "v"}) == SetMeta("9", "v")
    longest = "n" * 64
    assert control({"type": "set-meta", "name": longest, "value": "v"}) == SetMeta(longest, "v")


@pytest.mark.parametrize("value", ["", None, "missing"])
def test_set_meta_empty_value_deletes(value: object) -> None:
    msg: dict[str, object] = {"type": "set-meta", "name": "user"}
    if value != "missing":
        msg["value"] = value
    assert control(msg) == SetMeta("user", "")


@pytest.mark.parametrize(
    "name", ["", "-user", "us er", "us_er", "user:", "n" * 65, "\u00e9", "a\r\nb", 5, None, ["a"]]
)
def test_set_meta_invalid_name_is_dropped(name: object) -> None:
    msg: dict[str, object] = {"type": "set-meta", "value": "v"}
    if name is not None:
        msg["name"] = name
    decision = control(msg)
    assert isinstance(decision, Dropped)
    assert "name" in decision.reason


@pytest.mark.parametrize("value", [5, True, ["v"], {"v": 1}, "a\r\nb", "a\nb", "a\rb"])
def test_set_meta_invalid_value_is_dropped(value: object) -> None:
    decision = control({"type": "set-meta", "name": "user", "value": value})
    assert isinstance(decision, Dropped)
    assert "value" in decision.reason


@pytest.mark.parametrize("msg", [{"type": "frobnicate"}, {"type": None}, {"channel": "x"}, {}])
def test_unknown_control_type_is_dropped(msg: dict[str, object]) -> None:
    decision = control(msg)
    assert isinstance(decision, Dropped)
    assert "unknown" in decision.reason


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe{}", b"subscribe room"])
def test_control_that_is_not_json_is_dropped(raw: bytes) -> None:
    decision = control(raw)
    assert isinstance(decision, Dropped)
    assert "JSON" in decision.reason


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"subscribe"', b"null", b"42"])
def test_control_that_is_not_an_object_is_dropped(raw: bytes) -> None:
    decision = control(raw)
    assert isinstance(decision, Dropped)
    assert "object" in decision.reason


def test_a_dropped_message_does_not_stop_the_rest() -> None:
    raw = body(
        text("c:{oops"),
        text("m:one"),
        text("unprefixed"),
        text('c:{"type": "subscribe", "channel": "a"}'),
        Event("PING"),
        text("m:two"),
    )
    decided = later(raw)
    assert [type(x) for x in decided] == [Dropped, Send, Dropped, Subscribe, Dropped, Send]
    assert decided[1] == Send(b"one")
    assert decided[3] == Subscribe("a")
    assert decided[5] == Send(b"two")


# --- Set-Meta headers ------------------------------------------------------------------


def test_set_meta_headers() -> None:
    headers = {**OK, "Set-Meta-User": "alice", "set-meta-room": "", "SET-META-Lang": "  en  "}
    decided = later(b"TEXT 4\r\nm:hi\r\n", headers=headers)
    assert decided[-1] == Send(b"hi")
    assert set(decided[:-1]) == {
        SetMeta("user", "alice"),
        SetMeta("room", ""),
        SetMeta("lang", "en"),
    }


def test_set_meta_headers_on_open_come_after_the_accept_and_before_events() -> None:
    headers = {**GRIP, "Set-Meta-User": "alice"}
    raw = body(Event("OPEN"), text("m:hi"))
    assert opened(raw, headers) == [Accept({}, "m:"), SetMeta("user", "alice"), Send(b"hi")]


def test_a_bare_set_meta_header_and_meta_headers_are_not_set_meta() -> None:
    headers = {**OK, "Set-Meta-": "x", "Meta-User": "bob", "X-Set-Meta-User": "eve"}
    assert later(b"", headers=headers) == []


def test_set_meta_headers_are_ignored_on_a_reject() -> None:
    decided = read_response(403, {"Set-Meta-User": "alice"}, b"", opening=True)
    assert len(decided) == 1
    assert isinstance(decided[0], Reject)


# --- responses built with gripcontrol's own WebSocketContext -------------------------


def gc_response(ctx: WebSocketContext) -> bytes:
    """What a gripcontrol (django-grip style) backend puts on the wire."""
    out = list(ctx.out_events)
    if ctx.closed:
        out.append(WebSocketEvent("CLOSE", pack(">H", ctx.out_close_code)))
    if ctx.accepted:
        out.insert(0, WebSocketEvent("OPEN"))
    return encode_websocket_events(out)


def test_gripcontrol_context_on_open() -> None:
    ctx = WebSocketContext("conn-1", {}, [WebSocketEvent("OPEN")])
    assert ctx.is_opening()
    ctx.accept()
    ctx.subscribe("room")
    ctx.send("hello")
    ctx.send("caf\u00e9")
    ctx.send_binary(b"\x00\x01\x02")
    ctx.unsubscribe("room")
    ctx.detach()
    ctx.close(4000)
    decided = read_response(200, GRIP, gc_response(ctx), opening=True)
    assert decided == [
        Accept({}, "m:"),
        Subscribe("room"),
        Send(b"hello"),
        Send("caf\u00e9".encode()),
        Send(b"\x00\x01\x02", binary=True),
        Unsubscribe("room"),
        Detach(),
        Close(4000, ""),
    ]


def test_gripcontrol_close_without_a_code_is_code_0_read_as_none() -> None:
    ctx = WebSocketContext("conn-1", {}, [WebSocketEvent("TEXT", b"bye")])
    assert ctx.recv() == "bye"
    ctx.close()
    assert ctx.out_close_code == 0
    assert later(gc_response(ctx)) == [Close(None, "")]


def test_gripcontrol_context_echo_after_open() -> None:
    ctx = WebSocketContext("conn-1", {}, [WebSocketEvent("TEXT", b"hello")])
    while ctx.can_recv():
        ctx.send(ctx.recv())
    assert later(gc_response(ctx)) == [Send(b"hello")]
    # gripcontrol always prefixes with m:, so without GRIP mode the prefix stays.
    assert later(gc_response(ctx), prefix=None) == [Send(b"m:hello")]


def test_gripcontrol_channel_prefix_is_part_of_the_channel() -> None:
    ctx = WebSocketContext("conn-1", {}, [WebSocketEvent("OPEN")], grip_prefix="app-")
    ctx.accept()
    ctx.subscribe("room")
    decided = read_response(200, GRIP, gc_response(ctx), opening=True)
    assert decided == [Accept({}, "m:"), Subscribe("app-room")]


def test_gripcontrol_pong_is_dropped() -> None:
    ctx = WebSocketContext(
        "conn-1", {}, [WebSocketEvent("PING", b"x"), WebSocketEvent("TEXT", b"t")]
    )
    assert ctx.recv() == "t"
    assert [e.type for e in ctx.out_events] == ["PONG"]
    (decision,) = later(gc_response(ctx))
    assert isinstance(decision, Dropped)


def test_gripcontrol_keep_alive_control_message() -> None:
    from gripcontrol import websocket_control_message

    ctx = WebSocketContext("conn-1", {}, [])
    ctx.send_control(websocket_control_message("keep-alive", {"content": "zz", "timeout": 30}))
    assert later(gc_response(ctx)) == [KeepAlive(b"zz", False, 30, "idle")]


# --- properties -------------------------------------------------------------------------

st_events = st.builds(
    Event,
    st.sampled_from(["TEXT", "BINARY", "PING", "PONG", "CLOSE", "DISCONNECT"]),
    st.none() | st.binary(max_size=40) | st.sampled_from([b"m:x", b"c:{}", b'c:{"type":"detach"}']),
)


@settings(max_examples=200)
@given(st.lists(st_events, max_size=8), st.sampled_from(["m:", "", "x", None]))
def test_any_valid_body_gives_one_decision_per_event(
    events: list[Event], prefix: str | None
) -> None:
    decided = later(encode(events), prefix=prefix)
    assert len(decided) == len(events)
    for event, decision in zip(events, decided, strict=True):
        if event.type == "CLOSE":
            assert isinstance(decision, Close)
        elif event.type == "DISCONNECT":
            assert decision == Disconnect()
        elif event.type in ("PING", "PONG"):
            assert isinstance(decision, Dropped)
        elif prefix is None:
            assert decision == Send(event.content or b"", event.type == "BINARY")


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_any_control_payload_gives_exactly_one_decision(raw: bytes) -> None:
    decided = later(body(text(b"c:" + raw)))
    assert len(decided) == 1


@settings(max_examples=200)
@given(st.binary(max_size=200), st.booleans())
def test_any_body_is_decisions_reject_or_response_error(raw: bytes, opening: bool) -> None:
    try:
        decided = read_response(200, GRIP, raw, opening=opening, grip_prefix="m:")
    except ResponseError:
        assert not opening
        return
    except CodecError:  # pragma: no cover - would be a bug
        raise AssertionError("CodecError escaped read_response") from None
    assert isinstance(decided, list)
    if opening:
        assert isinstance(decided[0], Accept | Reject)
