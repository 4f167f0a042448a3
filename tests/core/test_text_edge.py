"""Text checked once at the edge (grip/text.py, grip/meta.py): whatever a field
holds, the edge either refuses it or every hop after it can carry it. Pure.

The hops need two things of a string: DynamoDB, SQS, S3 and @connections take
UTF-8 (a lone surrogate has no UTF-8 form), and a backend request's headers take
what `requests` and `http.client` send (Latin-1 bytes, no line breaks, no
leading whitespace; meta also stays within its limits)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.utils import check_header_validity

from chalicelib.grip import envelope, history, jobs, meta, request, text
from chalicelib.grip.decisions import Dropped, Send, SetMeta, read_response
from chalicelib.grip.errors import BadRequest
from chalicelib.grip.introspection import channel_name, decode_cursor, meta_changes, page_limit
from chalicelib.grip.limits import MAX_META_BYTES, MAX_META_NAMES, MAX_META_VALUE
from chalicelib.grip.payload import Payload
from chalicelib.grip.publish import parse_publish, parse_send

# Any character, lone surrogates included, and the ones that broke a hop before.
CHAR = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.sampled_from(["€", "名", "🙂", " ", "\t", "\r", "\n", "\x00", "\x7f", "é", "\x85"]),
)
TEXT = st.text(CHAR, max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def utf8(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sendable_header(name: str, value: str) -> None:
    """What the backend call does with a header: requests' checks, then Latin-1."""
    check_header_validity((name, value))
    name.encode("latin-1")
    value.encode("latin-1")


def backend_says(msg: dict[str, Any]) -> Any:
    """The one decision for a control message in a backend's answer (GRIP mode)."""
    raw = b"c:" + json.dumps(msg).encode()
    body = f"TEXT {len(raw):x}\r\n".encode() + raw + b"\r\n"
    (decision,) = read_response(
        200, {"Content-Type": "application/websocket-events"}, body, opening=False, grip_prefix="m:"
    )
    assert not isinstance(decision, Send)
    return decision


# -- lone surrogates ------------------------------------------------------------------


@given(JSON)
def test_a_value_is_found_unpaired_exactly_when_it_has_no_utf8_form(value: Any) -> None:
    assert (text.unpaired_at(value) is None) == utf8(value)


def test_the_path_names_the_field_as_written() -> None:
    body = json.loads('{"items": [{"ws-message": {"content": "bad \\udc80"}}]}')
    assert text.unpaired_at(body) == "items.0.ws-message.content"
    assert text.unpaired_at(json.loads('{"\\ud800": 1}')) == "\ud800"
    assert text.unpaired_at("\ud83d\ude00") is None or not utf8("\ud83d\ude00")
    assert text.unpaired_at(json.loads('"\\ud83d\\ude00"')) is None  # a pair is one character


@settings(max_examples=300)
@given(channel=TEXT, id_=st.none() | TEXT, prev=st.none() | TEXT, content=TEXT)
def test_a_publish_is_refused_or_every_hop_takes_it(
    channel: str, id_: str | None, prev: str | None, content: str
) -> None:
    item: dict[str, Any] = {"channel": channel, "ws-message": {"content": content}}
    if id_ is not None:
        item["id"] = id_
    if prev is not None:
        item["prev-id"] = prev
    try:
        items = parse_publish(json.dumps({"items": [item]}))
    except BadRequest as exc:
        assert exc.fields and utf8(exc.body())  # the refusal itself can be sent back
        return
    for parsed in items:
        job = parsed.to_job()
        assert jobs.decode(jobs.encode(job)) == job  # SQS
        for field in (job.channel, job.id or "", job.prev_id or ""):  # DynamoDB, history
            field.encode("utf-8")
        assert isinstance(job.action, jobs.Inline)
        job.action.payload.data.decode("utf-8")  # @connections, S3


@given(TEXT)
def test_a_send_is_refused_or_its_payload_is_utf8(content: str) -> None:
    try:
        payload = parse_send(json.dumps({"content": content}))
    except BadRequest as exc:
        assert list(exc.fields) == ["content"]
        return
    assert isinstance(payload, Payload)
    payload.data.decode("utf-8")


@given(JSON)
def test_a_client_frame_is_refused_or_its_content_is_utf8(data: Any) -> None:
    try:
        frame = envelope.read(json.dumps([1, 5, data]))
    except envelope.FrameRefused as exc:
        assert (exc.id, exc.code) == (5, envelope.Code.INVALID_FRAME)
        return
    assert isinstance(frame, envelope.Text)
    frame.content.decode("utf-8")


@given(JSON)
def test_an_upload_is_refused_or_its_content_is_utf8(data: Any) -> None:
    try:
        content = envelope.uploaded_content(3, json.dumps(data).encode())
    except envelope.FrameRefused as exc:
        assert exc.code == envelope.Code.INVALID_UPLOAD
        return
    content.decode("utf-8")


@given(st.dictionaries(TEXT, st.tuples(TEXT, st.integers(0, 9)), max_size=3))
def test_a_resume_value_is_refused_or_utf8(positions: dict[str, tuple[str, int]]) -> None:
    raw = json.dumps({k: list(v) for k, v in positions.items()}).encode()
    try:
        got = history.parse_resume(base64.urlsafe_b64encode(raw).decode())
    except history.ResumeError:
        return
    assert utf8({k: list(v) for k, v in got.items()})


@given(TEXT, TEXT)
def test_a_backend_control_message_is_dropped_or_utf8(channel: str, value: str) -> None:
    for msg in (
        {"type": "subscribe", "channel": channel},
        {"type": "set-meta", "name": "user", "value": value},
    ):
        decision = backend_says(msg)
        strings = [v for v in vars(decision).values() if isinstance(v, str)]
        assert isinstance(decision, Dropped) or utf8(strings)


# -- poison jobs ----------------------------------------------------------------------


def test_a_job_holding_a_lone_surrogate_is_permanent_and_names_its_channel() -> None:
    body = jobs.encode(jobs.Publish("room", jobs.Inline(Payload.of_text("bad \udc80"))))
    with pytest.raises(jobs.PermanentJobError) as info:
        jobs.decode(body)
    assert info.value.channel == "room"
    assert "content" in str(info.value)
    bad_channel = jobs.encode(jobs.Publish("r\ud800", jobs.Inline(Payload.of_text("x"))))
    with pytest.raises(jobs.PermanentJobError) as info:
        jobs.decode(bad_channel)
    assert info.value.channel is None  # not loggable as text: the path says where


# -- meta -----------------------------------------------------------------------------


@settings(max_examples=300)
@given(name=TEXT, value=st.none() | TEXT | st.text(st.sampled_from("ab €\t"), max_size=1100))
def test_a_meta_patch_is_refused_or_goes_out_as_a_header(name: str, value: str | None) -> None:
    try:
        changes = meta_changes({name: value}, {})
    except BadRequest as exc:
        assert exc.fields
        return
    headers = request.backend_headers({}, "cid", meta.applied({}, changes), None)
    for header, header_value in headers.items():
        sendable_header(header, header_value)


@given(name=TEXT, value=TEXT)
def test_a_backend_set_meta_is_dropped_or_goes_out_as_a_header(name: str, value: str) -> None:
    decision = backend_says({"type": "set-meta", "name": name, "value": value})
    if isinstance(decision, SetMeta) and decision.value:
        sendable_header(f"Meta-{decision.name}", decision.value)
    else:
        assert isinstance(decision, Dropped | SetMeta)


@pytest.mark.parametrize(
    "header_value", ["\xe2\x82\xacuro", " lead", "x" * (MAX_META_VALUE + 1), "a\x00b"]
)
def test_a_set_meta_header_a_request_cannot_carry_back_is_ignored(header_value: str) -> None:
    """Set-Meta-* values arrive as `requests` decodes them (Latin-1): UTF-8 bytes,
    controls and oversize values are dropped; the meta stays as it was."""
    decisions = read_response(
        200,
        {"Content-Type": "application/websocket-events", "Set-Meta-User": header_value},
        b"",
        opening=False,
    )
    if header_value == " lead":  # a header parser strips the ends: Pushpin too
        assert decisions == [SetMeta("user", "lead")]
    else:
        assert len(decisions) == 1 and isinstance(decisions[0], Dropped)


def test_meta_is_bounded_in_names_and_bytes() -> None:
    full = {f"n{i}": "v" for i in range(MAX_META_NAMES)}
    assert meta.size_problem(full) is None
    with pytest.raises(BadRequest) as info:
        meta_changes({"one-more": "v"}, full)
    assert "at most 32 meta names" in info.value.fields["body"][0]
    big = {f"n{i}": "v" * 1000 for i in range(4)}
    assert meta.size_problem(big) is None
    with pytest.raises(BadRequest):
        meta_changes({"n5": "v" * (MAX_META_BYTES - 4000)}, big)
    assert meta_changes({"n0": None}, full) == {"n0": None}  # clearing is always allowed


def test_stored_meta_a_header_cannot_carry_never_reaches_the_backend() -> None:
    """A row written before these rules must not break its connection's requests."""
    headers = request.backend_headers({}, "cid", {"user": "€uro", "ok": "fine"}, None)
    assert headers["Meta-ok"] == "fine" and "Meta-user" not in headers


@pytest.mark.parametrize("raw", ["¹", "١٢", "²0"])
def test_a_number_in_a_query_is_ascii_digits(raw: str) -> None:
    """`str.isdigit` takes superscripts and other scripts' digits, which `int`
    refuses or reads: a 400, not a 500 (found by the fuzz run)."""
    with pytest.raises(BadRequest):
        page_limit(raw)
    with pytest.raises(BadRequest):
        history.items_query({"after": raw})


def test_a_path_channel_or_cursor_holding_a_lone_surrogate_is_a_400() -> None:
    with pytest.raises(BadRequest) as info:
        channel_name("room\udc80")
    assert list(info.value.fields) == ["channel"]
    cursor = base64.urlsafe_b64encode(b'[0, "\\ud800"]').decode().rstrip("=")
    with pytest.raises(BadRequest) as info:
        decode_cursor(cursor, 16)
    assert list(info.value.fields) == ["cursor"]
