"""chalicelib/grip/token.py: HS256 JWTs, checked against gripcontrol and PyJWT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time

import gripcontrol
import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.grip.limits import MAX_TOKEN_LIFETIME
from chalicelib.grip.token import TokenError, grip_sig, sign, verify

# 64 bytes: long enough that PyJWT warns for no algorithm.
KEY = "k" * 32 + "0123456789abcdef0123456789abcdef"
OTHER = "o" * 64
NOW = 1_700_000_000
HS256 = {"alg": "HS256", "typ": "JWT"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(
    header: object, claims: object, key: str = KEY, raw_claims: bytes | None = None
) -> str:
    """A token assembled by hand, signed with HS256 whatever the header says."""
    head = b64(json.dumps(header).encode())
    body = b64(raw_claims if raw_claims is not None else json.dumps(claims).encode())
    mac = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


# --- ours with ours ---------------------------------------------------------------------


def test_sign_verify_round_trip() -> None:
    claims = {"iss": "me", "exp": NOW + 10, "sub": "x", "n": [1, 2]}
    token = sign(claims, KEY)
    assert token.count(".") == 2
    assert verify(token, KEY, now=NOW) == claims
    assert verify(token, KEY, iss="me", now=NOW) == claims


def test_bytes_and_str_keys_agree() -> None:
    claims = {"exp": NOW + 10}
    assert sign(claims, KEY) == sign(claims, KEY.encode())
    assert verify(sign(claims, KEY.encode()), KEY, now=NOW) == claims
    assert verify(sign(claims, KEY), KEY.encode(), now=NOW) == claims


def test_header_is_hs256_jwt() -> None:
    head = sign({"exp": NOW}, KEY).split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(head + "==")) == {"alg": "HS256", "typ": "JWT"}


def test_no_padding_in_the_token() -> None:
    for n in range(8):
        assert "=" not in sign({"exp": NOW, "pad": "x" * n}, KEY)


def test_grip_sig_claims() -> None:
    token = grip_sig(KEY, now=NOW + 0.9)
    assert verify(token, KEY, iss="slipway", now=NOW) == {
        "iss": "slipway",
        "exp": NOW + 3600,
        "use": "grip-sig",
    }
    assert verify(token, KEY, now=NOW + 3599)
    with pytest.raises(TokenError, match="expired"):
        verify(token, KEY, now=NOW + 3600)


def test_grip_sig_uses_the_clock_by_default() -> None:
    before = int(time.time())
    claims = verify(grip_sig(KEY), KEY)
    assert before + 3600 <= claims["exp"] <= int(time.time()) + 3600


@settings(max_examples=100)
@given(
    st.dictionaries(
        st.text(max_size=8).filter(lambda k: k != "exp"),
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        max_size=5,
    ),
    st.text(min_size=1, max_size=40),
)
def test_round_trip_any_claims_and_key(extra: dict, key: str) -> None:
    claims = {**extra, "exp": NOW + 1}
    assert verify(sign(claims, key), key, now=NOW) == claims


# --- interoperability ------------------------------------------------------------------


def test_gripcontrol_validate_sig_accepts_our_grip_sig() -> None:
    token = grip_sig(KEY)
    assert gripcontrol.validate_sig(token, KEY) is True
    assert gripcontrol.validate_sig(token, KEY, iss="slipway") is True


def test_the_grip_sig_use_claim_breaks_no_backend_check() -> None:
    """The claim that binds Grip-Sig to backends is private: gripcontrol's
    validate_sig (django-grip's check), PyJWT without options and our client all
    accept it, where an `aud` would make PyJWT refuse the token."""
    token = grip_sig(KEY)
    assert gripcontrol.validate_sig(token, KEY) is True
    assert jwt.decode(token, KEY, algorithms=["HS256"])["use"] == "grip-sig"
    with_aud = sign({"exp": int(time.time()) + 60, "aud": "backend"}, KEY)
    assert gripcontrol.validate_sig(with_aud, KEY) is False


def test_gripcontrol_validate_sig_rejects_the_wrong_key_or_issuer() -> None:
    token = grip_sig(KEY)
    assert gripcontrol.validate_sig(token, OTHER) is False
    assert gripcontrol.validate_sig(token, KEY, iss="pushpin") is False


def test_gripcontrol_validate_sig_rejects_our_expired_grip_sig() -> None:
    assert gripcontrol.validate_sig(grip_sig(KEY, now=time.time() - 3601), KEY) is False


def test_pyjwt_decodes_our_tokens() -> None:
    claims = {"iss": "slipway", "exp": int(time.time()) + 60, "x": "y"}
    assert jwt.decode(sign(claims, KEY), KEY, algorithms=["HS256"]) == claims
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(sign(claims, KEY), OTHER, algorithms=["HS256"])


def test_we_verify_pyjwt_tokens() -> None:
    exp = int(time.time()) + 60
    token = jwt.encode({"iss": "pub", "exp": exp}, KEY, algorithm="HS256")
    assert verify(token, KEY) == {"iss": "pub", "exp": exp}
    assert verify(token, KEY, iss="pub") == {"iss": "pub", "exp": exp}
    bkey = jwt.encode({"exp": exp}, KEY.encode(), algorithm="HS256")
    assert verify(bkey, KEY) == {"exp": exp}


def test_we_verify_what_grip_pub_control_would_send() -> None:
    # GripPubControl's auth: a JWT with {"iss": control_iss, "exp": now + 3600}.
    token = jwt.encode({"iss": "my-app", "exp": int(time.time()) + 3600}, KEY, algorithm="HS256")
    assert verify(token, KEY, iss="my-app")["iss"] == "my-app"


def test_pyjwt_expired_token_is_refused() -> None:
    token = jwt.encode({"exp": int(time.time()) - 1}, KEY, algorithm="HS256")
    with pytest.raises(TokenError, match="expired"):
        verify(token, KEY)


def test_pyjwt_float_exp_is_honoured() -> None:
    token = jwt.encode({"exp": NOW + 0.5}, KEY, algorithm="HS256")
    assert verify(token, KEY, now=NOW)
    with pytest.raises(TokenError, match="expired"):
        verify(token, KEY, now=NOW + 0.5)


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw_exp",
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" + b"0" * 400, b"9" * 4000],
    ids=["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "10**400", "4000 digits"],
)
def test_a_non_finite_exp_is_refused(raw_exp: bytes) -> None:
    """Issue 24, finding 5: `exp: NaN` compared false both ways and never expired."""
    token = hand_made(HS256, None, raw_claims=b'{"exp": ' + raw_exp + b"}")
    with pytest.raises(TokenError, match="exp"):
        verify(token, KEY, now=NOW, max_lifetime=MAX_TOKEN_LIFETIME)
    with pytest.raises(TokenError, match="exp"):
        verify(token, KEY, now=NOW)  # with no lifetime bound too (a backend's Grip-Sig check)


# Any JSON number: what a token's exp may hold once its claims are parsed.
json_numbers = (
    st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(NOW - 10, NOW + MAX_TOKEN_LIFETIME + 10)
    | st.booleans()
)


@settings(max_examples=300)
@given(json_numbers)
def test_any_exp_is_refused_or_finite_and_within_a_day(exp: object) -> None:
    token = sign({"exp": exp}, KEY)
    try:
        claims = verify(token, KEY, now=NOW, max_lifetime=MAX_TOKEN_LIFETIME)
    except TokenError as exc:
        assert "exp" in str(exc) or "expire" in str(exc)
    else:
        assert isinstance(claims["exp"], int | float) and not isinstance(claims["exp"], bool)
        assert math.isfinite(claims["exp"])
        assert NOW < claims["exp"] <= NOW + MAX_TOKEN_LIFETIME


def test_expired() -> None:
    token = sign({"exp": NOW}, KEY)
    assert verify(token, KEY, now=NOW - 1)
    with pytest.raises(TokenError, match="expired"):
        verify(token, KEY, now=NOW)
    with pytest.raises(TokenError, match="expired"):
        verify(token, KEY, now=NOW + 1000)


@pytest.mark.parametrize(
    "claims",
    [{}, {"iss": "x"}, {"exp": None}, {"exp": "9999999999"}, {"exp": True}, {"exp": [1]}],
    ids=["empty", "iss only", "null", "string", "bool", "list"],
)
def test_missing_or_non_numeric_exp(claims: dict) -> None:
    with pytest.raises(TokenError, match="exp"):
        verify(sign(claims, KEY), KEY, now=NOW)


def test_missing_exp_from_pyjwt() -> None:
    with pytest.raises(TokenError, match="exp"):
        verify(jwt.encode({"iss": "x"}, KEY, algorithm="HS256"), KEY)


def test_wrong_key() -> None:
    with pytest.raises(TokenError, match="signature"):
        verify(sign({"exp": NOW + 10}, OTHER), KEY, now=NOW)
    token = jwt.encode({"exp": int(time.time()) + 60}, OTHER, algorithm="HS256")
    with pytest.raises(TokenError, match="signature"):
        verify(token, KEY)


def test_forged_claims_keep_the_old_signature() -> None:
    head, _, mac = sign({"exp": NOW + 10, "iss": "user"}, KEY).split(".")
    forged = b64(json.dumps({"exp": NOW + 10**6, "iss": "admin"}).encode())
    with pytest.raises(TokenError, match="signature"):
        verify(f"{head}.{forged}.{mac}", KEY, now=NOW)


def test_truncated_or_missing_signature() -> None:
    token = sign({"exp": NOW + 10}, KEY)
    head, body, mac = token.split(".")
    for bad in (f"{head}.{body}.", f"{head}.{body}.{mac[:-2]}", f"{head}.{body}.{mac}AA"):
        with pytest.raises(TokenError):
            verify(bad, KEY, now=NOW)


def test_wrong_issuer_when_issuer_given() -> None:
    token = sign({"exp": NOW + 10, "iss": "someone"}, KEY)
    assert verify(token, KEY, now=NOW)  # not checked when not asked
    with pytest.raises(TokenError, match="issuer"):
        verify(token, KEY, iss="slipway", now=NOW)
    with pytest.raises(TokenError, match="issuer"):
        verify(sign({"exp": NOW + 10}, KEY), KEY, iss="slipway", now=NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "....", "Bearer x.y.z.w"])
def test_not_three_parts(token: str) -> None:
    with pytest.raises(TokenError, match="three"):
        verify(token, KEY, now=NOW)


@pytest.mark.parametrize(
    "token",
    [
        "!!!.@@@.###",
        "a.b.c",
        "\u00e9\u00e9.\u00e9\u00e9.\u00e9\u00e9",
        "x.y.z",
        "eyJ.eyJ.sig",
        "e30.e30.",  # {} . {} . empty signature
    ],
)
def test_garbage(token: str) -> None:
    with pytest.raises(TokenError):
        verify(token, KEY, now=NOW)


def test_header_not_json() -> None:
    head = b64(b"not json")
    with pytest.raises(TokenError, match="header"):
        verify(f"{head}.{b64(b'{}')}.{b64(b'sig')}", KEY, now=NOW)


def test_claims_not_json_or_not_an_object() -> None:
    header = {"alg": "HS256", "typ": "JWT"}
    with pytest.raises(TokenError, match="not JSON"):
        verify(hand_made(header, None, raw_claims=b"{oops"), KEY, now=NOW)
    with pytest.raises(TokenError, match="not an object"):
        verify(hand_made(header, [1, 2]), KEY, now=NOW)
    with pytest.raises(TokenError, match="not JSON"):
        verify(hand_made(header, None, raw_claims=b"\xff\xfe\x00"), KEY, now=NOW)


def test_alg_none() -> None:
    # The classic attack: an unsigned token claiming alg none.
    head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64(json.dumps({"exp": NOW + 10}).encode())
    for token in (f"{head}.{body}.", f"{head}.{body}.{b64(b'x')}"):
        with pytest.raises(TokenError, match="HS256"):
            verify(token, KEY, now=NOW)
    # Even correctly MACed, a header that does not say HS256 is refused.
    with pytest.raises(TokenError, match="HS256"):
        verify(hand_made({"alg": "none"}, {"exp": NOW + 10}), KEY, now=NOW)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_algorithms_from_pyjwt(alg: str) -> None:
    token = jwt.encode({"exp": int(time.time()) + 60}, KEY, algorithm=alg)
    with pytest.raises(TokenError, match="HS256"):
        verify(token, KEY)


@pytest.mark.parametrize(
    "header", [{"typ": "JWT"}, {"alg": "hs256"}, {"alg": None}, ["HS256"], "HS256"]
)
def test_header_without_hs256(header: object) -> None:
    with pytest.raises(TokenError, match="HS256"):
        verify(hand_made(header, {"exp": NOW + 10}), KEY, now=NOW)


def test_token_error_is_a_value_error() -> None:
    assert issubclass(TokenError, ValueError)


b64_part = st.binary(max_size=40).map(b64)


@settings(max_examples=300)
@given(st.text(max_size=80) | st.tuples(b64_part, b64_part, b64_part).map(".".join))
def test_any_string_verifies_or_raises_token_error(token: str) -> None:
    try:
        claims = verify(token, KEY, now=NOW)
    except TokenError:
        return
    raise AssertionError(f"random token verified: {claims!r}")  # pragma: no cover
