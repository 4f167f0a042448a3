"""chalicelib/grip/envelope.py: the gateway's side of docs/envelope.md's frames. Pure."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.grip import envelope as env
from chalicelib.grip.envelope import Code, FrameRefused
from chalicelib.grip.payload import Payload

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


def refused(text: str) -> FrameRefused:
    with pytest.raises(FrameRefused) as caught:
        env.read(text)
    return caught.value


def test_a_string_message_reaches_the_backend_as_it_is() -> None:
    assert env.read('[1, 7, "héllo"]') == env.Text(7, "héllo".encode())


def test_any_other_json_value_reaches_the_backend_as_its_json_text() -> None:
    assert env.read('[1, 2, {"a": [1, 2]}]') == env.Text(2, b'{"a":[1,2]}')
    assert env.read("[1, 3, null]") == env.Text(3, b"null")


def test_upload_request_and_uploaded() -> None:
    assert env.read("[2, 5]") == env.UploadRequest(5)
    url = "https://b.s3.amazonaws.com/uploads/x/1-5-abcdef01.json"
    assert env.read(json.dumps([4, 5, url, "GET", {}])) == env.Uploaded(5, url)


@pytest.mark.parametrize("text", ["hello", "{}", '{"a": 1}', "[]", "[1]", '[1, "x", 2]', "7"])
def test_not_a_json_array_of_type_and_id(text: str) -> None:
    exc = refused(text)
    assert (exc.code, exc.id) == (Code.NOT_AN_ARRAY, env.PUSH_ID)


@pytest.mark.parametrize("kind", [0, 3, 5, 9, "1"])
def test_unknown_frame_type_names_the_request(kind: object) -> None:
    exc = refused(json.dumps([kind, 4, "x"]))
    assert (exc.code, exc.id) == (Code.UNKNOWN_TYPE, 4)


@pytest.mark.parametrize("text", ["[1, 4]", "[1, 4, 1, 2]", '[2, 4, "x"]', "[4, 4]", "[4, 4, 5]"])
def test_known_type_of_the_wrong_shape(text: str) -> None:
    exc = refused(text)
    assert (exc.code, exc.id) == (Code.INVALID_FRAME, 4)


@given(json_values)
def test_wrap_then_unwrapped_gives_the_json_text_of_the_data(value: object) -> None:
    content = json.dumps(value)
    frame = env.wrap(content)
    kind, mid, data = json.loads(frame)
    assert (kind, mid) == (1, 0)
    if isinstance(value, dict | list):
        assert data == value
        assert env.unwrapped(frame) == content.encode()  # byte for byte
    else:
        assert data == content
    assert json.loads(env.unwrapped(frame)) == data


@pytest.mark.parametrize("text", ["hello", "[not json", "{", "42", '"quoted"', "", " [1, 2]x"])
def test_anything_but_an_object_or_array_is_wrapped_as_a_string(text: str) -> None:
    assert json.loads(env.wrap(text)) == [1, 0, text]


def test_fits_counts_characters_and_utf8_bytes() -> None:
    assert env.fits("a" * env.MAX_INLINE)
    assert not env.fits("a" * (env.MAX_INLINE + 1))
    assert not env.fits("é" * (env.MAX_INLINE // 2 + 1))  # fewer characters, more bytes


@given(json_values)
def test_uploaded_content_is_what_an_inline_message_would_carry(value: object) -> None:
    body = env.dumps(value).encode()
    assert env.uploaded_content(1, body) == env.to_content(value)


@given(st.text() | st.binary())
def test_download_form_round_trip(data: str | bytes) -> None:
    payload = Payload.of_bytes(data) if isinstance(data, bytes) else Payload.of_text(data)
    text = env.from_download_form(env.download_form(payload.text))
    assert Payload(None, payload.binary, text) == payload


@given(json_values)
def test_a_json_message_is_downloaded_as_it_was_sent(value: object) -> None:
    content = " " + json.dumps(value)  # leading space: still embedded verbatim when JSON
    assert env.from_download_form(env.download_form(content)) == content


def test_an_upload_that_is_not_json_is_refused() -> None:
    with pytest.raises(FrameRefused) as caught:
        env.uploaded_content(3, b"\x00not json")
    assert (caught.value.code, caught.value.id) == (Code.INVALID_UPLOAD, 3)


def test_failure_and_location_frames() -> None:
    assert json.loads(env.failure(9, Code.TOO_LARGE, "too big")) == [
        5,
        9,
        {"success": False, "errorCode": "message_too_large", "errorMessage": "too big"},
    ]
    assert json.loads(env.download("https://x/k?sig")) == [4, -1, "https://x/k?sig", "GET", {}]
    assert json.loads(env.upload_target(2, "https://x/k", env.UPLOAD_HEADERS)) == [
        3,
        2,
        "https://x/k",
        "PUT",
        {"Content-Type": "application/json", "x-amz-acl": "bucket-owner-full-control"},
    ]


# -- keys -----------------------------------------------------------------------


@given(st.text(min_size=1, max_size=40), st.integers(-(2**40), 2**40), st.integers(0, 2**36))
def test_an_issued_key_checks_out_for_its_connection_only(cid: str, mid: int, expires: int) -> None:
    key = env.upload_key(cid, mid, expires, "0123abcd")
    assert env.check_upload_key(mid, key, cid) == expires
    with pytest.raises(FrameRefused) as caught:
        env.check_upload_key(mid, key, cid + "x")
    assert caught.value.code == Code.FOREIGN_KEY


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5000/blobs/uploads/abc%3D/100-1-0123abcd.json",  # path style
        "https://blobs.s3.us-east-1.amazonaws.com/uploads/abc%253D/100-1-0123abcd.json",
    ],
)
def test_key_of_either_url_style(url: str) -> None:
    key = env.key_of(url, "blobs")
    assert key.startswith("uploads/abc")
    assert key.endswith("/100-1-0123abcd.json")


@pytest.mark.parametrize(
    "key",
    [
        "publish/abc.json",
        "uploads/other/100-1-0123abcd.json",
        "uploads/abc/../other/100-1-0123abcd.json",
        "uploads/abc/sub/100-1-0123abcd.json",
        "downloads/abc/100-1-0123abcd.json",
    ],
)
def test_keys_outside_the_connections_prefix_are_foreign(key: str) -> None:
    with pytest.raises(FrameRefused) as caught:
        env.check_upload_key(1, key, "abc")
    assert caught.value.code == Code.FOREIGN_KEY


def test_a_key_under_the_prefix_never_issued_is_not_found() -> None:
    with pytest.raises(FrameRefused) as caught:
        env.check_upload_key(1, "uploads/abc/made-up.json", "abc")
    assert caught.value.code == Code.UPLOAD_NOT_FOUND


@pytest.mark.parametrize("kind", ["true", "1.0", '"1"', "null"])
def test_a_frame_type_must_be_a_whole_number(kind: str) -> None:
    with pytest.raises(FrameRefused) as caught:
        env.read(f'[{kind}, 5, "x"]')
    assert (caught.value.id, caught.value.code) == (5, Code.UNKNOWN_TYPE)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_what_javascript_cannot_parse_is_neither_read_nor_embedded(constant: str) -> None:
    with pytest.raises(FrameRefused) as caught:
        env.read(f"[1, 5, {constant}]")
    assert caught.value.code == Code.NOT_AN_ARRAY
    # a backend's text that only Python would read as JSON goes out as a string
    frame = env.wrap(f"[{constant}]")
    assert json.loads(frame) == [1, 0, f"[{constant}]"]
