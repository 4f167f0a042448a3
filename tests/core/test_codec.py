"""chalicelib/grip/codec.py: the application/websocket-events codec (docs/backend-protocol.md)."""

from __future__ import annotations

import gripcontrol
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.grip.codec import (
    CONTENT_TYPE,
    EVENT_TYPES,
    CodecError,
    Event,
    close_content,
    decode,
    encode,
    parse_close,
)

ALL_TYPES = ["OPEN", "TEXT", "BINARY", "PING", "PONG", "CLOSE", "DISCONNECT"]


def test_the_event_types_and_content_type_are_pushpins() -> None:
    assert set(ALL_TYPES) == EVENT_TYPES
    assert CONTENT_TYPE == "application/websocket-events"


# --- every event type, with and without content ------------------------------------


@pytest.mark.parametrize("etype", ALL_TYPES)
def test_event_without_content(etype: str) -> None:
    wire = etype.encode() + b"\r\n"
    assert encode([Event(etype)]) == wire
    assert decode(wire) == [Event(etype)]
    assert decode(wire)[0].content is None


@pytest.mark.parametrize("etype", ALL_TYPES)
def test_event_with_content(etype: str) -> None:
    content = b"hello, \x00\xff world!!!"  # 0x12 bytes
    wire = etype.encode() + b" 12\r\n" + content + b"\r\n"
    assert encode([Event(etype, content)]) == wire
    assert decode(wire) == [Event(etype, content)]


@pytest.mark.parametrize("etype", ALL_TYPES)
def test_empty_content_is_not_no_content(etype: str) -> None:
    wire = etype.encode() + b" 0\r\n\r\n"
    assert encode([Event(etype, b"")]) == wire
    assert decode(wire) == [Event(etype, b"")]
    assert decode(wire) != [Event(etype)]


def test_content_may_hold_crlf_and_look_like_events() -> None:
    content = b"\r\nOPEN\r\nTEXT 1\r\n"
    wire = b"TEXT %x\r\n" % len(content) + content + b"\r\n"
    assert decode(wire) == [Event("TEXT", content)]
    assert encode([Event("TEXT", content)]) == wire


def test_hex_length_is_hex_in_either_case_and_leading_zeros() -> None:
    content = b"0123456789abcdef!"  # 0x11 = 17 bytes
    for size in (b"11", b"011", b"0000000000000011"):
        assert decode(b"TEXT " + size + b"\r\n" + content + b"\r\n") == [Event("TEXT", content)]
    ten = b"0123456789"
    assert decode(b"TEXT A\r\n" + ten + b"\r\n") == decode(b"TEXT a\r\n" + ten + b"\r\n")
    assert decode(b"TEXT A\r\n" + ten + b"\r\n") == [Event("TEXT", ten)]


def test_encode_writes_lowercase_hex() -> None:
    assert encode([Event("BINARY", b"x" * 0xAB)]).startswith(b"BINARY ab\r\n")
    assert encode([Event("TEXT", b"x" * 4096)]).startswith(b"TEXT 1000\r\n")


def test_a_sequence_in_order() -> None:
    events = [
        Event("OPEN"),
        Event("TEXT", b"hi"),
        Event("BINARY", b"\x00\x01"),
        Event("PING"),
        Event("PONG", b"p"),
        Event("CLOSE", b"\x03\xe8bye"),
        Event("DISCONNECT"),
    ]
    wire = (
        b"OPEN\r\nTEXT 2\r\nhi\r\nBINARY 2\r\n\x00\x01\r\nPING\r\nPONG 1\r\np\r\n"
        b"CLOSE 5\r\n\x03\xe8bye\r\nDISCONNECT\r\n"
    )
    assert encode(events) == wire
    assert decode(wire) == events


def test_empty_body_is_no_events() -> None:
    assert decode(b"") == []
    assert encode([]) == b""


def test_bytearray_body_is_accepted() -> None:
    assert decode(bytearray(b"TEXT 2\r\nhi\r\n")) == [Event("TEXT", b"hi")]
    assert type(decode(bytearray(b"TEXT 2\r\nhi\r\n"))[0].content) is bytes


def test_text_body_is_refused() -> None:
    with pytest.raises(CodecError):
        decode("OPEN\r\n")  # type: ignore[arg-type]


def test_event_refuses_an_unknown_type() -> None:
    with pytest.raises(CodecError):
        Event("HELLO")
    with pytest.raises(CodecError):
        Event("text")


# --- docs/backend-protocol.md reference bytes (django-grip echo backend) ------------


def test_reference_open_request() -> None:
    assert encode([Event("OPEN")]) == b"OPEN\r\n"


def test_reference_open_response() -> None:
    wire = b'OPEN\r\nTEXT 2a\r\nc:{"channel": "test", "type": "subscribe"}\r\n'
    assert decode(wire) == [
        Event("OPEN"),
        Event("TEXT", b'c:{"channel": "test", "type": "subscribe"}'),
    ]
    assert encode(decode(wire)) == wire


def test_reference_echo() -> None:
    assert encode([Event("TEXT", b"hello")]) == b"TEXT 5\r\nhello\r\n"
    assert decode(b"TEXT 7\r\nm:hello\r\n") == [Event("TEXT", b"m:hello")]


def test_reference_close() -> None:
    assert encode([Event("CLOSE", close_content(1000))]) == b"CLOSE 2\r\n\x03\xe8\r\n"
    (reply,) = decode(b"CLOSE 2\r\n\x00\x00\r\n")
    assert reply == Event("CLOSE", b"\x00\x00")
    assert parse_close(reply.content) == (None, "")


# --- strict decoding ----------------------------------------------------------------

MALFORMED = {
    # missing CRLF after the type line
    "no CRLF at all": (b"OPEN", "no CRLF"),
    "LF only": (b"OPEN\n", "no CRLF"),
    "CR only": (b"OPEN\r", "no CRLF"),
    "second event without CRLF": (b"OPEN\r\nTEXT", "no CRLF"),
    "trailing type after content": (b"TEXT 2\r\nhi\r\nOPEN", "no CRLF"),
    # bad hex length
    "not hex": (b"TEXT zz\r\nnot hex\r\n", "bad hex length"),
    "empty length": (b"TEXT \r\n\r\n", "bad hex length"),
    "negative length": (b"TEXT -1\r\nx\r\n", "bad hex length"),
    "0x prefix": (b"TEXT 0x2\r\nhi\r\n", "bad hex length"),
    "two spaces": (b"TEXT  2\r\nhi\r\n", "bad hex length"),
    "trailing space": (b"TEXT 2 \r\nhi\r\n", "bad hex length"),
    "plus sign": (b"TEXT +2\r\nhi\r\n", "bad hex length"),
    "underscore": (b"TEXT 1_0\r\n" + b"x" * 16 + b"\r\n", "bad hex length"),
    "too many digits": (b"TEXT 00000000000000002\r\nhi\r\n", "bad hex length"),
    "non-ASCII digit": ("TEXT \u0662\r\nhi\r\n".encode(), "bad hex length"),
    # short content
    "content too short": (b"TEXT 5\r\nhi\r\n", "header says 5"),
    "content cut off": (b"TEXT 2\r\nhi", "header says 2"),
    "no content at all": (b"BINARY 10\r\n", "header says 16"),
    "huge length": (b"TEXT ffffffffffffffff\r\nhi\r\n", "header says"),
    # content not followed by CRLF
    "content then junk": (b"TEXT 2\r\nhiXY", "not followed by CRLF"),
    "length one short": (b"TEXT 1\r\nhi\r\n", "not followed by CRLF"),
    "content then LF": (b"TEXT 2\r\nhi\n\r", "not followed by CRLF"),
    # unknown type
    "unknown type": (b"HELLO\r\n", "unknown event type"),
    "lowercase type": (b"text 2\r\nhi\r\n", "unknown event type"),
    "empty type line": (b"\r\n", "unknown event type"),
    "blank line after event": (b"OPEN\r\n\r\n", "unknown event type"),
    "leading space": (b" OPEN\r\n", "unknown event type"),
    "tab separator": (b"TEXT\t2\r\nhi\r\n", "unknown event type"),
    "unknown type with content": (b"FRAME 2\r\nhi\r\n", "unknown event type"),
    # non-ASCII type
    "UTF-8 type": ("T\u00c9XT\r\n".encode(), "not ASCII"),
    "latin-1 byte": (b"\xff\r\n", "not ASCII"),
    "non-ASCII with content": (b"\x80PEN 1\r\nx\r\n", "not ASCII"),
}


@pytest.mark.parametrize("body, message", MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_body_raises_codec_error(body: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode(body)


def test_error_says_where() -> None:
    with pytest.raises(CodecError, match="byte 6"):
        decode(b"OPEN\r\nBOGUS\r\n")


def test_codec_error_is_a_value_error() -> None:
    assert issubclass(CodecError, ValueError)


# --- close content -------------------------------------------------------------------


def test_close_content() -> None:
    assert close_content(1000) == b"\x03\xe8"
    assert close_content(1000, "bye") == b"\x03\xe8bye"
    assert close_content(4000, "h\u00e9") == b"\x0f\xa0h\xc3\xa9"
    assert close_content(None) is None
    assert close_content(None, "ignored without a code") is None


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\x03\xe8", (1000, "")),
        (b"\x03\xe8bye", (1000, "bye")),
        (b"\x0f\xa0h\xc3\xa9", (4000, "h\u00e9")),
        (b"\xff\xff", (65535, "")),
        (None, (None, "")),
        (b"", (None, "")),
        (b"\x03", (None, "")),  # one byte: no code
        (b"\x00\x00", (None, "")),  # django-grip: code 0 means "no code"
        (b"\x00\x00why", (None, "why")),
    ],
)
def test_parse_close(content: bytes | None, expected: tuple[int | None, str]) -> None:
    assert parse_close(content) == expected


def test_parse_close_tolerates_a_bad_utf8_reason() -> None:
    code, reason = parse_close(b"\x03\xe8ok\xff")
    assert code == 1000
    assert reason == "ok\ufffd"


@settings(max_examples=200)
@given(st.integers(1, 65535), st.text(max_size=60))
def test_close_round_trip(code: int, reason: str) -> None:
    assert parse_close(close_content(code, reason)) == (code, reason)


# --- properties ------------------------------------------------------------------------

event_types = st.sampled_from(ALL_TYPES)
contents = st.none() | st.binary(max_size=300)
events_st = st.builds(Event, event_types, contents)
event_lists = st.lists(events_st, max_size=12)


@settings(max_examples=300)
@given(event_lists)
def test_round_trip(events: list[Event]) -> None:
    assert decode(encode(events)) == events


def _fragments() -> st.SearchStrategy[bytes]:
    """Pieces that make near-valid bodies, so the decoder's deep paths get exercised."""
    return st.one_of(
        event_lists.map(encode),
        st.sampled_from([b"\r\n", b"\r", b"\n", b" ", b"TEXT", b"OPEN", b"CLOSE 2", b"\xff"]),
        st.integers(0, 2**70).map(lambda n: b" %x" % n),
        st.binary(max_size=20),
    )


arbitrary_bodies = st.binary(max_size=400) | st.lists(_fragments(), max_size=10).map(b"".join)


@settings(max_examples=300)
@given(arbitrary_bodies)
def test_any_bytes_decode_or_raise_codec_error(body: bytes) -> None:
    try:
        events = decode(body)
    except CodecError:
        return
    assert isinstance(events, list)
    assert all(isinstance(e, Event) for e in events)
    assert all(e.content is None or isinstance(e.content, bytes) for e in events)
    # Whatever decodes re-encodes to something meaning the same.
    assert decode(encode(events)) == events


@settings(max_examples=150)
@given(event_lists, st.binary(min_size=1, max_size=8))
def test_truncated_or_extended_bodies_never_crash(events: list[Event], junk: bytes) -> None:
    wire = encode(events)
    for body in (wire[:-1], wire + junk, junk + wire):
        try:
            decode(body)
        except CodecError:
            pass


# --- cross-check with the gripcontrol library ----------------------------------------


def _gc(events: list[Event]) -> list[gripcontrol.WebSocketEvent]:
    return [gripcontrol.WebSocketEvent(e.type, e.content) for e in events]


def _ours(gc_events: list[gripcontrol.WebSocketEvent]) -> list[Event]:
    return [Event(e.type, e.content) for e in gc_events]


@settings(max_examples=150)
@given(event_lists)
def test_our_encoding_is_gripcontrols(events: list[Event]) -> None:
    assert encode(events) == gripcontrol.encode_websocket_events(_gc(events))


@settings(max_examples=150)
@given(event_lists)
def test_gripcontrol_decodes_what_we_encode(events: list[Event]) -> None:
    theirs = gripcontrol.decode_websocket_events(encode(events))
    assert [(e.type, e.content) for e in theirs] == [(e.type, e.content) for e in events]


@settings(max_examples=150)
@given(event_lists)
def test_we_decode_what_gripcontrol_encodes(events: list[Event]) -> None:
    assert decode(gripcontrol.encode_websocket_events(_gc(events))) == events


def test_gripcontrol_agrees_on_the_reference_bytes() -> None:
    wire = b'OPEN\r\nTEXT 2a\r\nc:{"channel": "test", "type": "subscribe"}\r\n'
    assert _ours(gripcontrol.decode_websocket_events(wire)) == decode(wire)
    close = b"CLOSE 2\r\n\x03\xe8\r\n"
    assert _ours(gripcontrol.decode_websocket_events(close)) == decode(close)
    assert gripcontrol.encode_websocket_events([gripcontrol.WebSocketEvent("OPEN")]) == encode(
        [Event("OPEN")]
    )
