"""chalicelib/grip/request.py: the headers the gateway sends the backend
(docs/backend-protocol.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.grip import request
from chalicelib.grip.request import backend_headers, handshake_headers

CT = "application/websocket-events"

KEPT = {
    "Cookie": "sid=1",
    "Origin": "https://app.example",
    "User-Agent": "test/1.0",
    "Sec-WebSocket-Protocol": "chat, superchat",
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "Accept-Language": "en",
    "Authorization": "Bearer user-token",
    "X-Amzn-Trace-Id": "Root=1-abc",
    # Look like forbidden names but are not.
    "Metadata": "m",
    "X-Meta-Thing": "x",
    "X-Grip-Thing": "g",
    "Gripper": "y",
}

DROPPED = [
    # hop-by-hop
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Trailers",
    "Transfer-Encoding",
    "Upgrade",
    # the handshake's own mechanics, and what the gateway sets
    "Host",
    "Content-Length",
    "Content-Type",
    "Accept",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Extensions",
    "Connection-Id",
    # forgeries
    "Meta-User",
    "Meta-",
    "Grip-Sig",
    "Grip-Channel",
    "Grip-Hold",
    "Set-Meta-User",
]


def _cases(name: str) -> list[str]:
    return [name, name.lower(), name.upper(), name.swapcase()]


@pytest.mark.parametrize("name", [c for n in DROPPED for c in _cases(n)])
def test_single_value_headers_are_dropped_case_insensitively(name: str) -> None:
    got = handshake_headers(None, {**KEPT, name: "forged"})
    assert got == KEPT


@pytest.mark.parametrize("name", [c for n in DROPPED for c in _cases(n)])
def test_multi_value_headers_are_dropped_case_insensitively(name: str) -> None:
    multi = {k: [v] for k, v in KEPT.items()}
    multi[name] = ["forged", "twice"]
    assert handshake_headers(multi, None) == KEPT


def test_end_to_end_headers_are_kept_with_their_names_as_sent() -> None:
    single = {"cookie": "a=1", "ORIGIN": "o", "x-custom": "v"}
    assert handshake_headers(None, single) == single


def test_multi_value_headers_are_joined() -> None:
    multi = {
        "Cookie": ["a=1", "b=2", "c=3"],
        "X-Forwarded-For": ["198.51.100.1", "203.0.113.7"],
        "Sec-WebSocket-Protocol": ["chat", "superchat"],
        "Origin": ["https://app.example"],
    }
    assert handshake_headers(multi, None) == {
        "Cookie": "a=1; b=2; c=3",
        "X-Forwarded-For": "198.51.100.1, 203.0.113.7",
        "Sec-WebSocket-Protocol": "chat, superchat",
        "Origin": "https://app.example",
    }


@pytest.mark.parametrize("name", ["cookie", "COOKIE", "CoOkIe"])
def test_cookie_join_is_case_insensitive(name: str) -> None:
    assert handshake_headers({name: ["a=1", "b=2"]}, None) == {name: "a=1; b=2"}


def test_multi_wins_over_single() -> None:
    multi = {"Cookie": ["a=1", "b=2"], "Origin": ["o"]}
    single = {"Cookie": "b=2", "Origin": "o", "X-Only-Single": "s"}
    assert handshake_headers(multi, single) == {"Cookie": "a=1; b=2", "Origin": "o"}


def test_single_is_used_when_multi_is_missing_or_empty() -> None:
    assert handshake_headers(None, {"Origin": "o"}) == {"Origin": "o"}
    assert handshake_headers({}, {"Origin": "o"}) == {"Origin": "o"}


def test_nothing_in_nothing_out() -> None:
    assert handshake_headers(None, None) == {}
    assert handshake_headers({}, {}) == {}


def test_api_gateway_connect_event_headers() -> None:
    """The shape API Gateway gives a $connect Lambda."""
    single = {
        "Host": "abc.execute-api.us-east-1.amazonaws.com",
        "Origin": "https://app.example",
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "X-Amzn-Trace-Id": "Root=1-65",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        "Meta-User": "admin",
        "Grip-Sig": "forged.token.here",
    }
    multi = {k: [v] for k, v in single.items()}
    expected = {
        "Origin": "https://app.example",
        "X-Amzn-Trace-Id": "Root=1-65",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    assert handshake_headers(multi, single) == expected


# --- backend_headers -----------------------------------------------------------------


def test_backend_headers() -> None:
    handshake = {"Cookie": "sid=1", "Origin": "o"}
    got = backend_headers(handshake, "conn-1=", {"user": "alice", "room": "r 1"}, "sig.na.ture")
    assert got == {
        "Cookie": "sid=1",
        "Origin": "o",
        "Content-Type": CT,
        "Accept": CT,
        "Connection-Id": "conn-1=",
        "Sec-WebSocket-Extensions": "grip",
        "Meta-user": "alice",
        "Meta-room": "r 1",
        "Grip-Sig": "sig.na.ture",
    }


def test_backend_headers_without_signature_or_meta() -> None:
    got = backend_headers({}, "c", {}, None)
    assert got == {
        "Content-Type": CT,
        "Accept": CT,
        "Connection-Id": "c",
        "Sec-WebSocket-Extensions": "grip",
    }
    assert "Grip-Sig" not in got


def test_backend_headers_does_not_change_its_arguments() -> None:
    handshake = {"Origin": "o"}
    meta = {"user": "alice"}
    backend_headers(handshake, "c", meta, "s")
    assert handshake == {"Origin": "o"}
    assert meta == {"user": "alice"}


def _lower(headers: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


def test_a_hostile_handshake_cannot_forge_anything_the_gateway_sends() -> None:
    hostile = {
        "meta-user": "admin",
        "META-ROLE": "root",
        "grip-sig": "forged",
        "content-type": "text/plain",
        "accept": "*/*",
        "connection-id": "someone-else",
        "sec-websocket-extensions": "permessage-deflate",
        "set-meta-user": "admin",
        "Origin": "o",
    }
    got = _lower(backend_headers(handshake_headers(None, hostile), "mine", {"user": "bob"}, "real"))
    assert got == {
        "origin": ["o"],
        "content-type": [CT],
        "accept": [CT],
        "connection-id": ["mine"],
        "sec-websocket-extensions": ["grip"],
        "meta-user": ["bob"],
        "grip-sig": ["real"],
    }


header_names = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-"),
    min_size=1,
    max_size=24,
)
forbidden_names = st.tuples(
    st.sampled_from(["meta-", "grip-", "set-meta-", "Meta-", "GRIP-", "Set-Meta-"]),
    header_names,
).map("".join)


@settings(max_examples=200)
@given(st.dictionaries(header_names | forbidden_names, st.text(max_size=10), max_size=12))
def test_no_client_header_survives_as_meta_or_grip(single: dict[str, str]) -> None:
    for multi, one in ((None, single), ({k: [v] for k, v in single.items()}, None)):
        kept = handshake_headers(multi, one)
        for name in kept:
            lowered = name.lower()
            assert not lowered.startswith(("meta-", "grip-", "set-meta-"))
            assert lowered not in {"host", "connection", "upgrade", "connection-id"}
            assert not lowered.startswith("sec-websocket-") or lowered == "sec-websocket-protocol"
        # Everything else is kept untouched.
        assert all(kept[k] == single[k] for k in kept)


def test_a_frame_is_its_text_or_its_decoded_base64() -> None:
    assert request.frame_bytes("héllo", False) == "héllo".encode()
    assert request.frame_bytes("AAEC", True) == b"\x00\x01\x02"


def test_a_disconnect_has_its_code_and_reason_or_none() -> None:
    ctx = {"disconnectStatusCode": 4001, "disconnectReason": "bye"}
    assert request.disconnect_status(ctx) == (4001, "bye")
    assert request.disconnect_status({"disconnectStatusCode": "1000"}) == (1000, "")
    assert request.disconnect_status({"disconnectReason": None}) == (None, "")
