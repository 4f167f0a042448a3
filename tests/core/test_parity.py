"""Gateway and client library agree: the same inputs through both implementations.

`client/slipway_client` carries its own copies of the codec, the token and the
envelope frames so that it installs without the gateway. These tests run both
copies over the same Hypothesis inputs, in both directions of every exchange:

| gateway (chalicelib.grip)            | client (slipway_client)                  |
|--------------------------------------|------------------------------------------|
| codec.CONTENT_TYPE, EVENT_TYPES      | codec.CONTENT_TYPE, EVENT_TYPES          |
| codec.Event / encode / decode        | codec.Event / encode / decode            |
| codec.close_content / parse_close    | codec.close_content / parse_close        |
| token.sign / verify                  | token.sign / verify                      |
| token.grip_sig                       | token.verify (what a backend checks)     |
| envelope.read                        | envelope.encode of [1], [2], [4]         |
| envelope.uploaded_content            | the upload body (envelope.dumps)         |
| envelope.key_of / check_upload_key   | envelope.strip_query of the upload URL   |
| envelope.wrap / download_form        | envelope.decode of [1]; the download     |
| envelope.upload_target               | envelope.decode of [3]                   |
| envelope.download                    | envelope.decode of [4]                   |
| envelope.failure                     | envelope.decode of [5]                   |
| envelope.fits, limits.MAX_INLINE     | envelope.fits_inline, MAX_INLINE_LENGTH  |
| envelope.dumps                       | envelope.dumps                           |
| history.parse_resume / encode_resume | resume.encode_resume / decode_resume     |
| envelope.wrap/download with trailer  | envelope.decode: Message/Download.stamp  |
| envelope.position (history.report)   | resume.read_recovery                     |
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from slipway_client import WebSocketContext
from slipway_client import codec as cl_codec
from slipway_client import envelope as cl_env
from slipway_client import resume as cl_resume
from slipway_client import token as cl_token
from slipway_client.errors import GripSigError

from chalicelib.grip import codec as gw_codec
from chalicelib.grip import envelope as gw_env
from chalicelib.grip import history
from chalicelib.grip import token as gw_token
from chalicelib.grip.limits import MAX_INLINE

KEY = "parity-key-long-enough-for-hs256-0123456789"
NOW = 1_700_000_000.0
EXAMPLES = settings(max_examples=200, deadline=None)

# -- strategies -------------------------------------------------------------------

event_types = st.sampled_from(sorted(gw_codec.EVENT_TYPES))
contents = st.none() | st.binary(max_size=40) | st.sampled_from([b"", b"\r\n", b"a\r\nb"])
events = st.lists(st.tuples(event_types, contents), max_size=6)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
json_containers = st.lists(json_values, max_size=4) | st.dictionaries(
    st.text(max_size=6), json_values, max_size=4
)
ids = st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)  # JavaScript's exact integers
close_codes = st.none() | st.integers(min_value=0, max_value=0xFFFF)
reasons = st.text(max_size=30)
path_segments = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=10
)
urls = st.builds(
    lambda host, path, query: f"https://{host}.s3.amazonaws.com/{quote('/'.join(path))}{query}",
    st.from_regex(r"[a-z0-9][a-z0-9-]{2,20}", fullmatch=True),
    st.lists(path_segments, min_size=1, max_size=3),
    st.sampled_from(["", "?X-Amz-Signature=abc&X-Amz-Expires=300"]),
)
header_maps = st.dictionaries(
    st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True), st.text(max_size=20), max_size=3
)


def gw_events(pairs: list[tuple[str, bytes | None]]) -> list[gw_codec.Event]:
    return [gw_codec.Event(t, c) for t, c in pairs]


def cl_events(pairs: list[tuple[str, bytes | None]]) -> list[cl_codec.Event]:
    return [cl_codec.Event(t, c) for t, c in pairs]


def pairs_of(
    decoded: list[gw_codec.Event] | list[cl_codec.Event],
) -> list[tuple[str, bytes | None]]:
    return [(e.type, e.content) for e in decoded]


# -- codec ------------------------------------------------------------------------


def test_the_same_content_type_and_event_types() -> None:
    assert gw_codec.CONTENT_TYPE == cl_codec.CONTENT_TYPE == "application/websocket-events"
    assert gw_codec.EVENT_TYPES == cl_codec.EVENT_TYPES


@EXAMPLES
@given(events)
def test_both_encode_events_to_the_same_bytes(pairs: list[tuple[str, bytes | None]]) -> None:
    assert gw_codec.encode(gw_events(pairs)) == cl_codec.encode(cl_events(pairs))


@EXAMPLES
@given(events)
def test_what_one_encodes_the_other_decodes(pairs: list[tuple[str, bytes | None]]) -> None:
    # backend (client library) -> gateway, and gateway -> backend
    assert pairs_of(gw_codec.decode(cl_codec.encode(cl_events(pairs)))) == pairs
    assert pairs_of(cl_codec.decode(gw_codec.encode(gw_events(pairs)))) == pairs
    assert pairs_of(cl_codec.decode(bytearray(gw_codec.encode(gw_events(pairs))))) == pairs


@st.composite
def damaged_bodies(draw: st.DrawFn) -> bytes:
    """A valid body, then a few bytes inserted, removed or overwritten."""
    body = bytearray(gw_codec.encode(gw_events(draw(events))))
    junk = st.sampled_from([b"\r", b"\n", b" ", b"\r\n", b"0", b"f", b"G", b"-1", b"\xff", b"TEXT"])
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(body)))
        match draw(st.sampled_from(["insert", "delete", "overwrite"])):
            case "insert":
                body[at:at] = draw(junk | st.binary(min_size=1, max_size=3))
            case "delete":
                del body[at : at + draw(st.integers(1, 3))]
            case _:
                piece = draw(junk)
                body[at : at + len(piece)] = piece
    return bytes(body)


def gw_decoded(body: bytes) -> list[tuple[str, bytes | None]] | str:
    try:
        return pairs_of(gw_codec.decode(body))
    except gw_codec.CodecError:
        return "refused"


def cl_decoded(body: bytes) -> list[tuple[str, bytes | None]] | str:
    try:
        return pairs_of(cl_codec.decode(body))
    except cl_codec.CodecError:
        return "refused"


@settings(max_examples=500, deadline=None)
@given(damaged_bodies() | st.binary(max_size=30))
def test_both_accept_and_refuse_the_same_bodies(body: bytes) -> None:
    assert gw_decoded(body) == cl_decoded(body)


def test_both_refuse_a_non_ascii_event_type() -> None:
    body = "TÉXT 1\r\nx\r\n".encode()
    assert gw_decoded(body) == cl_decoded(body) == "refused"


@EXAMPLES
@given(close_codes, reasons)
def test_both_write_the_same_close_content(code: int | None, reason: str) -> None:
    assert gw_codec.close_content(code, reason) == cl_codec.close_content(code, reason)


def test_a_close_without_code_has_no_content_on_either_side() -> None:
    # Pushpin's own encoding of a close that carried no code: a bare CLOSE.
    assert gw_codec.close_content(None) is None
    assert cl_codec.close_content(None) is None
    assert cl_codec.close_content(None, "a reason needs a code") is None
    assert cl_codec.encode([cl_codec.Event("CLOSE", cl_codec.close_content(None))]) == b"CLOSE\r\n"
    assert (
        gw_codec.close_content(1000, "bye") == cl_codec.close_content(1000, "bye") == b"\x03\xe8bye"
    )


@EXAMPLES
@given(close_codes, reasons)
def test_a_close_reads_the_same_across(code: int | None, reason: str) -> None:
    """A backend built on the client library closes; the gateway reads it, and back."""
    expected = (code or None, reason if code is not None else "")
    body = cl_codec.encode([cl_codec.Event("CLOSE", cl_codec.close_content(code, reason))])
    (event,) = gw_codec.decode(body)
    assert gw_codec.parse_close(event.content) == expected
    body = gw_codec.encode([gw_codec.Event("CLOSE", gw_codec.close_content(code, reason))])
    (back,) = cl_codec.decode(body)
    assert cl_codec.parse_close(back.content) == expected


def test_django_grips_code_zero_is_no_code_on_both_sides() -> None:
    body = b"CLOSE 2\r\n\x00\x00\r\n"  # from a django-grip backend (docs/backend-protocol.md)
    (gw_event,) = gw_codec.decode(body)
    (cl_event,) = cl_codec.decode(body)
    assert gw_codec.parse_close(gw_event.content) == cl_codec.parse_close(cl_event.content)
    assert cl_codec.parse_close(cl_event.content) == (None, "")


@EXAMPLES
@given(st.none() | st.binary(max_size=12))
def test_both_parse_any_close_content_alike(content: bytes | None) -> None:
    assert gw_codec.parse_close(content) == cl_codec.parse_close(content)


@settings(max_examples=50, deadline=None)
@given(st.integers().filter(lambda code: not 0 <= code <= 0xFFFF))
def test_both_refuse_a_close_code_over_two_bytes(code: int) -> None:
    with pytest.raises((ValueError, struct.error)):
        gw_codec.close_content(code)
    with pytest.raises(ValueError):
        cl_codec.close_content(code)


# -- token ------------------------------------------------------------------------

claim_sets = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
keys = st.text(min_size=1, max_size=40) | st.binary(min_size=1, max_size=40)


@EXAMPLES
@given(claim_sets, keys)
def test_both_sign_the_same_token(claims: dict[str, Any], key: str | bytes) -> None:
    assert gw_token.sign(claims, key) == cl_token.sign(claims, key)


@EXAMPLES
@given(claim_sets, keys, st.integers(1, 10**9) | st.floats(0.5, 1e9), st.booleans())
def test_a_token_one_signs_the_other_verifies(
    claims: dict[str, Any], key: str | bytes, ahead: float, with_iss: bool
) -> None:
    claims = {**claims, "exp": NOW + ahead}
    iss = None
    if with_iss:
        claims["iss"] = iss = "slipway"
    assert cl_token.verify(gw_token.sign(claims, key), key, iss=iss, now=NOW) == claims
    assert gw_token.verify(cl_token.sign(claims, key), key, iss=iss, now=NOW) == claims


def test_a_backend_checks_the_gateways_grip_sig() -> None:
    sig = gw_token.grip_sig(KEY, now=NOW)
    assert cl_token.verify(sig, KEY, iss="slipway", now=NOW) == {
        "iss": "slipway",
        "exp": int(NOW) + 3600,
        "use": "grip-sig",
    }
    with pytest.raises(GripSigError, match="expired"):
        cl_token.verify(sig, KEY, iss="slipway", now=NOW + 3600)
    # What a backend does with a request: a fresh Grip-Sig passes, a forged one is refused.
    headers = {"Grip-Sig": gw_token.grip_sig(KEY)}
    assert WebSocketContext.from_request(b"OPEN\r\n", headers, key=KEY, iss="slipway").is_opening
    with pytest.raises(GripSigError):
        WebSocketContext.from_request(b"OPEN\r\n", headers, key=KEY + "x", iss="slipway")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _forge(header: Any, claims: Any, key: str) -> str:
    """A token with any header and claims, signed correctly with `key`."""
    body = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(key.encode(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


@st.composite
def token_cases(draw: st.DrawFn) -> tuple[str, str, str | None, float]:
    """(token, key, iss, now): valid tokens and every way to spoil one."""
    claims = draw(claim_sets)
    exp = draw(
        st.sampled_from([NOW + 60, NOW, NOW - 1, True, "soon", None, 10**400])
        | st.floats(allow_nan=True, allow_infinity=True)
    )
    if exp is not None:
        claims["exp"] = exp
    issuer = draw(st.sampled_from([None, "slipway", "other"]))
    if issuer is not None:
        claims["iss"] = issuer
    header = draw(
        st.sampled_from(
            [{"alg": "HS256", "typ": "JWT"}, {"alg": "none"}, {"alg": "HS512"}, ["HS256"], {}]
        )
    )
    token = _forge(header, draw(st.sampled_from([claims, [claims], "claims"])), KEY)
    match draw(st.sampled_from(["keep", "flip", "cut", "extra", "key", "junk"])):
        case "flip":
            at = draw(st.integers(0, len(token) - 1))
            token = token[:at] + draw(st.sampled_from("Aa0_-.=é")) + token[at + 1 :]
        case "cut":
            token = token[: draw(st.integers(0, len(token) - 1))]
        case "extra":
            token += draw(st.sampled_from([".", ".x", "==", "!"]))
        case "key":
            return token, KEY + "x", issuer, NOW
        case "junk":
            token = draw(st.text(max_size=60))
    return token, KEY, draw(st.sampled_from([None, "slipway"])), NOW


@settings(max_examples=400, deadline=None)
@given(token_cases())
def test_both_refuse_the_same_tokens(case: tuple[str, str, str | None, float]) -> None:
    token, key, iss, now = case
    try:
        gw_outcome: Any = gw_token.verify(token, key, iss=iss, now=now)
    except gw_token.TokenError:
        gw_outcome = "refused"
    try:
        cl_outcome: Any = cl_token.verify(token, key, iss=iss, now=now)
    except GripSigError:
        cl_outcome = "refused"
    assert gw_outcome == cl_outcome


@pytest.mark.parametrize(
    ("token", "iss", "why"),
    [
        (_forge({"alg": "HS256"}, {"exp": NOW + 60}, KEY + "x"), None, "signature"),
        (_forge({"alg": "HS256"}, {"exp": NOW - 1}, KEY), None, "expired"),
        (_forge({"alg": "HS256"}, {"iss": "other", "exp": NOW + 60}, KEY), "slipway", "issuer"),
        (_forge({"alg": "HS256"}, {"iss": "slipway"}, KEY), "slipway", "exp"),
        (_forge({"alg": "none"}, {"exp": NOW + 60}, KEY), None, "HS256"),
        (_forge({"alg": "HS256"}, ["exp"], KEY), None, "object"),
    ],
)
def test_both_say_why_a_token_is_refused(token: str, iss: str | None, why: str) -> None:
    with pytest.raises(gw_token.TokenError, match=why):
        gw_token.verify(token, KEY, iss=iss, now=NOW)
    with pytest.raises(GripSigError, match=why):
        cl_token.verify(token, KEY, iss=iss, now=NOW)


# -- envelope: client -> gateway ------------------------------------------------------


def backend_text(data: Any) -> bytes:
    """What the backend should get for a message: a string as it is, any other JSON
    value as its JSON text (JSON.stringify's form)."""
    return data.encode() if isinstance(data, str) else cl_env.dumps(data).encode()


@EXAMPLES
@given(ids, json_values)
def test_the_clients_message_reaches_the_backend_the_same_inline_or_uploaded(
    mid: int, data: Any
) -> None:
    frame = cl_env.encode(cl_env.Message(mid, data))
    assert gw_env.read(frame) == gw_env.Text(mid, backend_text(data))
    # Too large for a frame, the client uploads `dumps(data)` and the gateway reads it back.
    uploaded = cl_env.dumps(data).encode("utf-8")
    assert gw_env.uploaded_content(mid, uploaded) == backend_text(data)


@EXAMPLES
@given(ids)
def test_the_clients_upload_request_is_read_as_one(mid: int) -> None:
    assert gw_env.read(cl_env.encode(cl_env.UploadRequest(mid))) == gw_env.UploadRequest(mid)


@EXAMPLES
@given(ids, st.from_regex(r"[A-Za-z0-9_=+-]{1,20}", fullmatch=True), st.integers(0, 10**11))
def test_the_clients_upload_announcement_names_the_issued_key(
    mid: int, connection_id: str, expires: int
) -> None:
    bucket = "blobs"
    key = gw_env.upload_key(connection_id, mid, expires, "0123abcd")
    presigned = (
        f"https://{bucket}.s3.amazonaws.com/{quote(key)}?X-Amz-Signature=f00&X-Amz-Expires=60"
    )
    target = cl_env.decode(gw_env.upload_target(mid, presigned, dict(gw_env.UPLOAD_HEADERS)))
    assert isinstance(target, cl_env.UploadTarget)
    # What the client sends once its PUT is done (as socket.WebSocketClient does):
    announced = cl_env.encode(cl_env.Download(mid, cl_env.strip_query(target.url)))
    frame = gw_env.read(announced)
    assert isinstance(frame, gw_env.Uploaded) and frame.id == mid
    assert gw_env.check_upload_key(mid, gw_env.key_of(frame.url, bucket), connection_id) == expires


# -- envelope: gateway -> client ------------------------------------------------------


@EXAMPLES
@given(
    json_containers,
    st.sampled_from([(",", ":"), (", ", ": ")]),
    st.booleans(),
    st.sampled_from(["", " ", "\n"]),
)
def test_a_pushed_json_object_or_array_reaches_the_client_as_that_value(
    value: Any, separators: tuple[str, str], ascii_only: bool, space: str
) -> None:
    content = space + json.dumps(value, separators=separators, ensure_ascii=ascii_only) + space
    assert cl_env.decode(gw_env.wrap(content)) == cl_env.Message(gw_env.PUSH_ID, value)
    # Too large to push, the message is downloaded instead: the client reads the same value.
    assert json.loads(gw_env.download_form(content)) == value


def _is_json_container(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict | list)
    except ValueError:
        return False


@EXAMPLES
@given(st.text(max_size=40) | json_scalars.map(json.dumps))
def test_any_other_pushed_text_reaches_the_client_as_that_string(content: str) -> None:
    assume(not _is_json_container(content))
    assert cl_env.decode(gw_env.wrap(content)) == cl_env.Message(gw_env.PUSH_ID, content)
    assert json.loads(gw_env.download_form(content)) == content


@EXAMPLES
@given(ids, urls, header_maps)
def test_the_gateways_upload_target_is_read_as_one(
    mid: int, url: str, headers: dict[str, str]
) -> None:
    frame = cl_env.decode(gw_env.upload_target(mid, url, headers))
    assert frame == cl_env.UploadTarget(mid, url, "PUT", headers)


@EXAMPLES
@given(st.none() | ids, urls)
def test_the_gateways_download_is_read_as_one(mid: int | None, url: str) -> None:
    text = gw_env.download(url) if mid is None else gw_env.download(url, mid)
    expected_id = gw_env.DOWNLOAD_ID if mid is None else mid
    assert cl_env.decode(text) == cl_env.Download(expected_id, url, "GET", {})


@EXAMPLES
@given(ids, st.sampled_from(list(gw_env.Code)), st.text(max_size=40))
def test_the_gateways_failure_is_read_as_one(mid: int, code: gw_env.Code, message: str) -> None:
    frame = cl_env.decode(gw_env.failure(mid, code, message))
    assert frame == cl_env.Failure(mid, code.value, message)


def test_the_same_inline_limit() -> None:
    assert MAX_INLINE == cl_env.MAX_INLINE_LENGTH


@EXAMPLES
@given(
    st.integers(0, MAX_INLINE + 10),
    st.integers(0, MAX_INLINE // 2),
    st.sampled_from(["é", "€", "😀"]),
)
def test_both_decide_alike_what_fits_in_a_frame(
    ascii_count: int, wide_count: int, wide: str
) -> None:
    text = "a" * ascii_count + wide * wide_count
    assert gw_env.fits(text) == cl_env.fits_inline(text)


@EXAMPLES
@given(json_values)
def test_both_write_json_as_json_stringify_does(value: Any) -> None:
    assert gw_env.dumps(value) == cl_env.dumps(value)


# -- resume after reconnect (docs/resume.md) ------------------------------------------

_channels = st.text(min_size=1, max_size=30)
_positions = st.dictionaries(
    _channels, st.tuples(st.text(max_size=12), st.integers(0, 2**53 - 1)), max_size=10
)


@given(_positions)
def test_resume_values_both_ways(positions: dict[str, tuple[str, int]]) -> None:
    gateway_view = {c: history.Position(*p) for c, p in positions.items()}
    assert history.parse_resume(cl_resume.encode_resume(positions)) == gateway_view
    client_view = cl_resume.decode_resume(history.encode_resume(gateway_view))
    assert {c: tuple(p) for c, p in client_view.items()} == positions


@given(st.text(max_size=50), _channels, st.text(max_size=12), st.integers(0, 2**53))
def test_a_tracked_message_reads_back_with_its_position(
    text: str, channel: str, epoch: str, offset: int
) -> None:
    trailer = history.trailer(channel, history.Position(epoch, offset))
    frame = cl_env.decode(gw_env.wrap(text, trailer))
    assert isinstance(frame, cl_env.Message) and frame.data == text
    assert frame.stamp is not None and frame.stamp.to_json() == trailer
    download = cl_env.decode(gw_env.download("https://b/k", trailer=trailer))
    assert isinstance(download, cl_env.Download) and download.stamp == frame.stamp


@given(_channels, st.text(max_size=12), st.integers(0, 2**53), st.integers(0, 1000))
def test_a_report_reads_back(channel: str, epoch: str, top: int, replayed: int) -> None:

    for status, reason in (
        (history.Recovery.NONE, None),
        (history.Recovery.RECOVERED, None),
        (history.Recovery.FAILED, history.Reason.TOO_OLD),
    ):
        body = history.report(channel, history.Head(epoch, top), status, replayed, reason)
        kind, mid, value = json.loads(gw_env.position(body))
        assert (kind, mid) == (cl_resume.RECOVERY, 0)
        got = cl_resume.read_recovery(value)
        assert got.to_json() == body
