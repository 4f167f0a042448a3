"""chalicelib/secrets.py against moto: the key from SSM or Secrets Manager, fetched
once per container."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import secrets

from .conftest import DUMMY, REGION


@pytest.fixture
def aws(moto: str, session: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """This process's default boto3 session pointed at moto (what key() uses), and a
    client factory for setting things up."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL_") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY["aws_secret_access_key"])
    secrets.clear_cache()
    yield lambda service: session.client(service, endpoint_url=moto)
    secrets.clear_cache()


def name() -> str:
    return f"/slipway-test/{uuid.uuid4().hex[:8]}/key"


def test_no_store_configured():
    assert secrets.source({}) is None
    assert secrets.source({"SLIPWAY_KEY": "plain"}) is None
    assert secrets.key({"SLIPWAY_KEY": "plain", "TARGET_URL": "x"}) is None


@pytest.mark.parametrize(
    "env",
    [
        {"SLIPWAY_KEY": "a", "SLIPWAY_KEY_PARAMETER": "/p"},
        {"SLIPWAY_KEY_PARAMETER": "/p", "SLIPWAY_KEY_SECRET": "s"},
    ],
)
def test_two_stores_are_refused(env):
    with pytest.raises(secrets.SecretError, match="keep only one"):
        secrets.source(env)


def test_secure_string_parameter_is_decrypted_once_per_container(aws):
    parameter = name()
    aws("ssm").put_parameter(Name=parameter, Type="SecureString", Value="k-123")
    env = {"SLIPWAY_KEY_PARAMETER": parameter}
    assert secrets.key(env) == "k-123"
    aws("ssm").delete_parameter(Name=parameter)
    assert secrets.key(env) == "k-123"  # cached: no second call
    secrets.clear_cache()
    with pytest.raises(secrets.SecretError, match="ParameterNotFound.*put-parameter"):
        secrets.key(env)


def test_a_failure_is_not_cached(aws):
    parameter = name()
    env = {"SLIPWAY_KEY_PARAMETER": parameter}
    with pytest.raises(secrets.SecretError, match=parameter):
        secrets.key(env)
    aws("ssm").put_parameter(Name=parameter, Type="SecureString", Value="later")
    assert secrets.key(env) == "later"


@pytest.mark.parametrize(
    "stored, key",
    [("plain-key", "plain-key"), (json.dumps({"key": "in-json", "note": "x"}), "in-json")],
)
def test_secret_plain_or_json(aws, stored, key):
    secret = f"slipway-test/{uuid.uuid4().hex[:8]}"
    arn = aws("secretsmanager").create_secret(Name=secret, SecretString=stored)["ARN"]
    assert secrets.key({"SLIPWAY_KEY_SECRET": arn}) == key
    assert secrets.fetch(secrets.SECRET, secret, aws) == key


def test_secret_json_without_key_is_refused(aws):
    secret = f"slipway-test/{uuid.uuid4().hex[:8]}"
    aws("secretsmanager").create_secret(Name=secret, SecretString='{"password": "x"}')
    with pytest.raises(secrets.SecretError, match='"key" member'):
        secrets.fetch(secrets.SECRET, secret, aws)


def test_missing_secret_says_how_to_create_it(aws):
    with pytest.raises(secrets.SecretError, match="create-secret"):
        secrets.fetch(secrets.SECRET, "slipway-test/none", aws)


def test_empty_value_is_refused(aws):
    secret = f"slipway-test/{uuid.uuid4().hex[:8]}"
    aws("secretsmanager").create_secret(Name=secret, SecretString='{"key": ""}')
    with pytest.raises(secrets.SecretError, match="empty"):
        secrets.fetch(secrets.SECRET, secret, aws)


def test_keys_are_read_again_once_the_ttl_has_passed(aws):
    """A rotation reaches a warm container within SLIPWAY_KEY_TTL, no redeploy."""
    parameter = name()
    ssm = aws("ssm")
    ssm.put_parameter(Name=parameter, Type="SecureString", Value="old")
    env = {"SLIPWAY_KEY_PARAMETER": parameter}
    assert secrets.keys(env, ttl=60, now=1000.0) == ("old",)
    ssm.put_parameter(Name=parameter, Type="SecureString", Value="new\nold", Overwrite=True)
    assert secrets.keys(env, ttl=60, now=1059.0) == ("old",)  # still within the TTL
    assert secrets.keys(env, ttl=60, now=1060.0) == ("new", "old")
    assert secrets.key(env) == "new"


def test_a_failed_refresh_keeps_the_keys_already_read(aws):
    parameter = name()
    ssm = aws("ssm")
    ssm.put_parameter(Name=parameter, Type="SecureString", Value="k1")
    env = {"SLIPWAY_KEY_PARAMETER": parameter}
    assert secrets.keys(env, ttl=60, now=0.0) == ("k1",)
    ssm.delete_parameter(Name=parameter)
    assert secrets.keys(env, ttl=60, now=61.0) == ("k1",)  # kept, tried again later
    ssm.put_parameter(Name=parameter, Type="SecureString", Value="k2")
    assert secrets.keys(env, ttl=60, now=61.0 + secrets.RETRY_AFTER - 1) == ("k1",)
    assert secrets.keys(env, ttl=60, now=61.0 + secrets.RETRY_AFTER) == ("k2",)


def test_a_secret_may_hold_a_keys_list(aws):
    secret = f"slipway-test/{uuid.uuid4().hex[:8]}"
    stored = json.dumps({"keys": ["new", "old"], "note": "x"})
    arn = aws("secretsmanager").create_secret(Name=secret, SecretString=stored)["ARN"]
    assert secrets.keys({"SLIPWAY_KEY_SECRET": arn}) == ("new", "old")
    aws("secretsmanager").put_secret_value(SecretId=arn, SecretString='{"keys": []}')
    with pytest.raises(secrets.SecretError, match="holds no key"):
        secrets.read(secrets.SECRET, arn, aws)
