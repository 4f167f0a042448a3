"""The deployment's key list (docs/security.md#key-rotation), pure: how a stored
value is read, and that the first key signs while any key verifies what the
gateway reads back (control tokens, upload refs, resume floors)."""

from __future__ import annotations

import time

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.grip import history, keys, token
from chalicelib.grip import uploads as refs
from chalicelib.grip.auth import authorize
from chalicelib.grip.errors import ControlDisabled, Unauthorized
from chalicelib.settings import SettingsError, load

OLD = "old-key-" + "0" * 56
NEW = "new-key-" + "1" * 56
OTHER = "other-key-" + "2" * 54
NONCE = "ab" * 8


@pytest.mark.parametrize(
    "raw, expected",
    [
        (OLD, (OLD,)),  # one key, as before rotation existed
        (f"  {OLD}\n", (OLD,)),
        (f"{NEW}\n{OLD}", (NEW, OLD)),
        (f"\n{NEW}\r\n\n  {OLD}  \n", (NEW, OLD)),
        (f'["{NEW}", "{OLD}"]', (NEW, OLD)),
        (f"{NEW}\n{OLD}\n{NEW}", (NEW, OLD)),  # a repeat dropped, the order kept
        ("[not json", ("[not json",)),  # a key that happens to start with "["
        ("a,b", ("a,b",)),  # commas are a key's own: a list is one key per line
        ("0\x0c0", ("0\x0c0",)),  # so is a form feed (Hypothesis found it split in two)
    ],
)
def test_a_stored_value_holds_one_key_or_a_list(raw: str, expected: tuple[str, ...]) -> None:
    assert keys.parse(raw) == expected
    assert keys.parse(keys.text(expected)) == expected


@pytest.mark.parametrize("raw", ["", "  \n ", "[]", '["a", 1]', '["a", ""]'])
def test_a_value_holding_no_key_is_refused_without_echoing_it(raw: str) -> None:
    with pytest.raises(keys.KeyListError) as caught:
        keys.parse(raw)
    assert raw.strip() == "" or raw not in str(caught.value)


def test_settings_read_the_list_from_slipway_key_and_sign_with_the_first() -> None:
    base = {"TARGET_URL": "http://b", "SLIPWAY_TABLE": "t", "SLIPWAY_QUEUE_URL": "q"}
    cfg = load({**base, "SLIPWAY_KEY": f"{NEW}\n{OLD}"})
    assert (cfg.keys, cfg.key) == ((NEW, OLD), NEW)
    assert load({**base, "SLIPWAY_KEY": OLD}).keys == (OLD,)
    assert load(base).key is None
    with pytest.raises(SettingsError, match="SLIPWAY_KEY: a JSON array must hold strings") as e:
        load({**base, "SLIPWAY_KEY": f'["{OLD}", 7]'})
    assert OLD not in str(e.value)


def test_any_key_of_the_list_opens_the_control_api() -> None:
    listed = (NEW, OLD)
    for k in listed:
        authorize(f"Bearer {k}", listed)
        authorize(f"Bearer {jwt.encode({'exp': time.time() + 60}, k)}", listed)
    with pytest.raises(Unauthorized, match="wrong key"):
        authorize(f"Bearer {OTHER}", listed)
    with pytest.raises(Unauthorized, match="matches no key"):
        authorize(f"Bearer {jwt.encode({'exp': time.time() + 60}, OTHER)}", listed)
    with pytest.raises(ControlDisabled):
        authorize(f"Bearer {OLD}", ())


def test_a_token_signed_with_the_second_key_is_judged_on_its_own_claims() -> None:
    """The reason the key that signed it gives, not 'matches no key'."""
    expired = jwt.encode({"exp": time.time() - 5}, OLD)
    with pytest.raises(Unauthorized, match="expired"):
        authorize(f"Bearer {expired}", (NEW, OLD))
    with pytest.raises(Unauthorized, match="Grip-Sig"):
        authorize(f"Bearer {token.grip_sig(OLD)}", (NEW, OLD))


def test_a_retired_key_opens_nothing() -> None:
    with pytest.raises(Unauthorized):
        authorize(f"Bearer {OLD}", (NEW,))
    with pytest.raises(Unauthorized):
        authorize(f"Bearer {jwt.encode({'exp': time.time() + 60}, OLD)}", (NEW,))


def test_refs_issued_before_a_rotation_stay_good_until_they_expire() -> None:
    before = refs.issue(OLD, 1_000, NONCE)  # issued with the old key
    assert refs.check(before.key, (NEW, OLD), 999) == 1_000
    after = refs.issue(NEW, 1_000, NONCE)
    assert refs.check(after.key, (NEW, OLD), 999) == 1_000
    with pytest.raises(refs.RefRefused, match="another key"):
        refs.check(before.key, (NEW,), 999)  # once the old key is retired


def test_floors_handed_out_before_a_rotation_still_recover() -> None:
    floor = history.floor_token(OLD, "room", "e1", 42)
    assert history.read_floor((NEW, OLD), "room", "e1", floor) == 42
    assert history.read_floor((NEW,), "room", "e1", floor) is None
    assert history.read_floor((), "room", "e1", floor) is None
    assert history.read_floor((NEW, OLD), "other", "e1", floor) is None


@given(
    st.lists(
        st.text(min_size=1, max_size=40).map(str.strip).filter(lambda k: k and "\n" not in k),
        min_size=1,
        max_size=4,
    )
)
def test_what_rotate_key_stores_reads_back_as_the_same_list(listed: list[str]) -> None:
    stored = keys.text(tuple(listed))
    if stored.lstrip().startswith("["):
        return  # a first key that reads as JSON: rotate-key's keys are token_urlsafe
    assert keys.parse(stored) == tuple(dict.fromkeys(listed))
