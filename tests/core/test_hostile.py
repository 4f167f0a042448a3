"""Hostile input to the pure core, each refused (docs/security.md, docs/reliability.md):
forged or unbounded control API credentials, headers a client forges toward the
backend, envelope `[4]` URLs that point anywhere but the connection's own uploads.
No I/O: the same checks through real sockets are in tests/e2e/test_hostile.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import quote

import jwt
import pytest
from slipway_client import ControlClient

from chalicelib.grip import envelope as env
from chalicelib.grip.auth import authorize
from chalicelib.grip.envelope import Code, FrameRefused
from chalicelib.grip.errors import Unauthorized
from chalicelib.grip.limits import MAX_TOKEN_LIFETIME
from chalicelib.grip.request import backend_headers, handshake_headers
from chalicelib.grip.token import grip_sig
from chalicelib.settings import SettingsError, load

KEY = "hostile-test-key-" + "0123456789abcdef" * 3  # 64 bytes: PyJWT's HS512 minimum


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(header: object, claims: object, key: str = KEY) -> str:
    """A token with any header, MACed with HS256 over `key` whatever the header says."""
    head, body = b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())
    mac = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def unsigned(header: object, claims: object) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def soon() -> int:
    return int(time.time()) + 60


# -- control API credentials --------------------------------------------------------

HS256 = {"alg": "HS256", "typ": "JWT"}
BAD_TOKENS = {
    "alg none, no signature": lambda: unsigned({"alg": "none"}, {"exp": soon()}),
    "alg none, MACed with the key": lambda: signed({"alg": "none"}, {"exp": soon()}),
    "alg None (capitalized)": lambda: signed({"alg": "None"}, {"exp": soon()}),
    "HS512 with the key": lambda: jwt.encode({"exp": soon()}, KEY, algorithm="HS512"),
    "HS384 with the key": lambda: jwt.encode({"exp": soon()}, KEY, algorithm="HS384"),
    # Algorithm confusion: RS256 claimed, MACed with the shared key as if it were a public key.
    "RS256 claimed, HMAC signature": lambda: signed({"alg": "RS256"}, {"exp": soon()}),
    "no alg": lambda: signed({"typ": "JWT"}, {"exp": soon()}),
    "exp missing": lambda: signed(HS256, {"iss": "slipway"}),
    "exp as a string": lambda: signed(HS256, {"exp": str(soon())}),
    "exp null": lambda: signed(HS256, {"exp": None}),
    "exp true": lambda: signed(HS256, {"exp": True}),
    "exp in the past": lambda: signed(HS256, {"exp": int(time.time()) - 1}),
    "exp ten years ahead": lambda: signed(HS256, {"exp": int(time.time()) + 10 * 365 * 86400}),
    "exp a day and a minute ahead": lambda: signed(
        HS256, {"exp": int(time.time()) + MAX_TOKEN_LIFETIME + 60}
    ),
    "exp 1e308": lambda: signed(HS256, {"exp": 1e308}),
    "exp NaN": lambda: signed(HS256, {"exp": float("nan")}),
    "exp Infinity": lambda: signed(HS256, {"exp": float("inf")}),
    "exp 10**400": lambda: signed(HS256, {"exp": 10**400}),
    "another key": lambda: jwt.encode({"exp": soon()}, "x" * 48, algorithm="HS256"),
    "claims changed after signing": lambda: ".".join(
        [signed(HS256, {"exp": soon()}).split(".")[0], b64(b'{"exp":9999999999}')]
        + [signed(HS256, {"exp": soon()}).split(".")[2]]
    ),
    "signature stripped": lambda: signed(HS256, {"exp": soon()}).rsplit(".", 1)[0] + ".",
    "four parts": lambda: signed(HS256, {"exp": soon()}) + ".x",
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_a_forged_or_unbounded_token_is_refused(name: str) -> None:
    with pytest.raises(Unauthorized):
        authorize(f"Bearer {BAD_TOKENS[name]()}", KEY)


# Tokens made for backends (issue 24, finding 1): a backend that logs or echoes its
# request headers must not hand out the control API.
def pushpins_grip_sig() -> str:
    return jwt.encode({"iss": "pushpin", "exp": soon()}, KEY, algorithm="HS256")


BACKEND_TOKENS = {
    "the gateway's own Grip-Sig": lambda: grip_sig(KEY),
    "a Grip-Sig of before the use claim": lambda: signed(HS256, {"iss": "slipway", "exp": soon()}),
    "Pushpin's Grip-Sig": pushpins_grip_sig,
    "use grip-sig, no issuer": lambda: signed(HS256, {"exp": soon(), "use": "grip-sig"}),
    "any use but control": lambda: signed(HS256, {"exp": soon(), "use": "backend"}),
}


@pytest.mark.parametrize("iss", [None, "slipway", "pushpin", "my-app"])
@pytest.mark.parametrize("name", list(BACKEND_TOKENS))
def test_a_token_made_for_backends_never_opens_the_control_api(name: str, iss: str | None) -> None:
    """Whatever SLIPWAY_CONTROL_ISS says (settings refuse slipway and pushpin too)."""
    with pytest.raises(Unauthorized, match="Grip-Sig|control API|issuer"):
        authorize(f"Bearer {BACKEND_TOKENS[name]()}", KEY, iss)


@pytest.mark.parametrize("iss", [["slipway"], {"a": 1}, 5, None, True])
def test_a_token_with_an_odd_issuer_is_judged_not_a_500(iss: object) -> None:
    authorize(f"Bearer {signed(HS256, {'exp': soon(), 'iss': iss})}", KEY)
    with pytest.raises(Unauthorized, match="issuer"):
        authorize(f"Bearer {signed(HS256, {'exp': soon(), 'iss': iss})}", KEY, "my-app")
    with pytest.raises(Unauthorized, match="use"):
        authorize(f"Bearer {signed(HS256, {'exp': soon(), 'use': iss})}", KEY)


def test_control_tokens_as_backends_make_them_still_pass() -> None:
    """pubcontrol's {iss, exp} (GripPubControl with control_iss), a bare {exp}, an
    explicit use "control", and slipway_client's ControlClient, with and without iss."""
    authorize(f"Bearer {jwt.encode({'iss': 'my-app', 'exp': soon()}, KEY)}", KEY, "my-app")
    authorize(f"Bearer {jwt.encode({'iss': 'my-app', 'exp': soon()}, KEY)}", KEY)
    authorize(f"Bearer {signed(HS256, {'exp': soon(), 'use': 'control'})}", KEY)
    authorize(ControlClient("http://x", KEY).authorization(), KEY)
    authorize(ControlClient("http://x", KEY, iss="my-app").authorization(), KEY, "my-app")


@pytest.mark.parametrize("iss", ["slipway", "pushpin"])
def test_the_grip_sig_issuers_cannot_be_the_control_issuer(iss: str) -> None:
    env = {"TARGET_URL": "http://b", "SLIPWAY_TABLE": "t", "SLIPWAY_QUEUE_URL": "http://q"}
    with pytest.raises(SettingsError, match="SLIPWAY_CONTROL_ISS"):
        load({**env, "SLIPWAY_CONTROL_ISS": iss})
    assert load({**env, "SLIPWAY_CONTROL_ISS": "my-app"}).control_iss == "my-app"


BAD_HEADERS = [
    None,
    "",
    "Bearer",
    "Bearer ",
    f"Basic {b64(f'x:{KEY}'.encode())}",
    f"Token {KEY}",
    f"{KEY}",  # the key without a scheme
    f"Bearer {KEY[:-1]}",
    f"Bearer {KEY}x",
    f"Bearer {KEY.upper()}",
    "Bearer \x00",
]


@pytest.mark.parametrize("header", BAD_HEADERS)
def test_a_missing_or_wrong_authorization_header_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        authorize(header, KEY)


def test_a_token_within_a_day_and_the_key_itself_pass() -> None:
    """The refusals above are refusals of the input, not of every token."""
    authorize(f"Bearer {KEY}", KEY)
    authorize(f"bearer {jwt.encode({'exp': soon()}, KEY, algorithm='HS256')}", KEY)
    exp = int(time.time()) + MAX_TOKEN_LIFETIME - 60
    authorize(f"Bearer {jwt.encode({'exp': exp}, KEY, algorithm='HS256')}", KEY)


# -- headers a client forges toward the backend --------------------------------------

# Every spelling a client might use for a name the gateway alone may set. WSGI servers
# (django-grip, Flask) read `_` as `-`, so `Meta_User` is `Meta-User` to the backend.
FORGED = [
    "Meta-User",
    "meta-user",
    "META-USER",
    "Meta_User",
    "META_USER",
    "Grip-Sig",
    "grip-sig",
    "Grip_Sig",
    "GRIP_SIG",
    "Grip-Channel",
    "Grip-Keep-Alive",
    "Set-Meta-User",
    "Set_Meta_User",
    "Connection-Id",
    "Connection_Id",
    "Content-Type",
    "Content_Type",
    "Accept",
    "Sec-WebSocket-Extensions",
    "Sec_WebSocket_Extensions",
]


@pytest.mark.parametrize("name", FORGED)
@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_a_forged_header_never_reaches_the_backend_as_the_gateways(name: str, multi: bool) -> None:
    single = {name: "forged", "Origin": "https://app.example"}
    handshake = (
        handshake_headers({k: [v] for k, v in single.items()}, None)
        if multi
        else handshake_headers(None, single)
    )
    sent = backend_headers(handshake, "the-real-id", {"user": "alice"}, "the-real-sig")
    wsgi = {}  # as a WSGI backend reads them: HTTP_<NAME>, `-` and `_` alike
    for header, value in sent.items():
        wsgi.setdefault(header.upper().replace("-", "_"), []).append(value)
    assert "forged" not in sent.values()
    assert wsgi["META_USER"] == ["alice"]
    assert wsgi["GRIP_SIG"] == ["the-real-sig"]
    assert wsgi["CONNECTION_ID"] == ["the-real-id"]
    assert wsgi["ORIGIN"] == ["https://app.example"]


# -- envelope [4] URLs ---------------------------------------------------------------

BUCKET = "slipway-blobs"
MINE = "abc="
OTHER = "xyz="
ISSUED = env.upload_key(MINE, 1, 2_000_000_000, "0123abcd")
THEIRS = env.upload_key(OTHER, 1, 2_000_000_000, "0123abcd")
HOSTILE_URLS = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.169.254/latest/api/token",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://127.0.0.1:8001/connections",
    "http://localhost/admin",
    "file:///etc/passwd",
    "https://attacker.example/exfiltrate.json",
    f"https://{BUCKET}.s3.amazonaws.com/{THEIRS}",  # another connection's upload
    f"http://127.0.0.1:5000/{BUCKET}/{THEIRS}",
    f"http://127.0.0.1:5000/{BUCKET}/uploads/{MINE}/../{OTHER}/2000000000-1-0123abcd.json",
    f"http://127.0.0.1:5000/{BUCKET}/uploads/{MINE}%2F..%2F{OTHER}/2000000000-1-0123abcd.json",
    f"http://127.0.0.1:5000/{BUCKET}/publish/some-job.json",  # a queued publish's blob
    f"http://127.0.0.1:5000/{BUCKET}/backend-uploads/2000000000-{'0' * 16}-{'0' * 32}.json",
    f"http://127.0.0.1:5000/other-bucket/{ISSUED.replace(MINE, OTHER)}",
    "",
    "not a url at all",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_an_announced_url_outside_the_connections_own_uploads_is_a_foreign_key(
    url: str,
) -> None:
    """Only the key in the URL's path is read, from the gateway's own bucket: the
    host is never contacted, so a URL at the metadata service or elsewhere reaches
    nothing; any key but this connection's own issued ones is `foreign_key`."""
    with pytest.raises(FrameRefused) as caught:
        env.check_upload_key(1, env.key_of(url, BUCKET), MINE)
    assert caught.value.code == Code.FOREIGN_KEY


def test_the_issued_key_is_read_whatever_host_the_url_names() -> None:
    """The host plays no part: the gateway reads its own bucket by key, never the URL."""
    for host in ("http://169.254.169.254", "https://attacker.example"):
        url = f"{host}/{BUCKET}/{quote(ISSUED)}"  # as a presigned URL spells the key
        assert env.check_upload_key(1, env.key_of(url, BUCKET), MINE) == 2_000_000_000


# -- JSON nested deeper than Python's recursion limit ---------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_B64 = base64.urlsafe_b64encode(b"[" * 2000 + b"]" * 2000).decode().rstrip("=")


def test_deep_json_is_bad_input_everywhere_a_stranger_can_send_it() -> None:
    """json.loads raises RecursionError, not ValueError, past ~1,000 levels: each
    parser of untrusted JSON turns it into its own refusal (a 400, 401 or [5]),
    never an error inside the gateway (a 500)."""
    from chalicelib.grip import decisions, history, introspection, publish, token
    from chalicelib.grip.errors import BadRequest

    for parse in (publish.parse_items, publish.parse_send, publish.parse_close):
        with pytest.raises(publish.PublishError):
            parse(DEEP)
    with pytest.raises(token.TokenError):
        token.verify(f"{DEEP_B64}.{DEEP_B64}.{DEEP_B64}", KEY)
    with pytest.raises(Unauthorized):
        authorize(f"Bearer {DEEP_B64}.{DEEP_B64}.x", KEY)
    with pytest.raises(BadRequest):
        introspection.decode_cursor(DEEP_B64)
    with pytest.raises(history.ResumeError):
        history.parse_resume(DEEP_B64)
    with pytest.raises(FrameRefused) as caught:
        env.read(DEEP.decode())
    assert caught.value.code == Code.NOT_AN_ARRAY
    assert isinstance(decisions._control(DEEP), decisions.Dropped)
