"""The deployment key from SSM Parameter Store or Secrets Manager, read once per container.

Instead of the key itself in `SLIPWAY_KEY` (plain text in the Lambda configuration),
a stage may name where it is kept:

- `SLIPWAY_KEY_PARAMETER`: an SSM parameter name or ARN, a SecureString, read
  with decryption;
- `SLIPWAY_KEY_SECRET`: a Secrets Manager secret id (name or ARN) whose value is
  the key, or a JSON object with a `"key"` member.

At most one of the three may be set. The value is fetched at the first call of
`key()` (one AWS call, on the container's first event) and kept for the
container's life; a failure is not kept, so the next event tries again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from .grip.errors import ConfigError

log = logging.getLogger("slipway.secrets")

PLAIN = "SLIPWAY_KEY"
PARAMETER = "SLIPWAY_KEY_PARAMETER"
SECRET = "SLIPWAY_KEY_SECRET"

ClientFactory = Callable[[str], Any]


class SecretError(ConfigError):
    """The key could not be read; the message names the variable and what to do."""


def source(env: Mapping[str, str]) -> tuple[str, str] | None:
    """`(variable, parameter or secret id)` of the configured store, or None.

    Raises SecretError when more than one of SLIPWAY_KEY, SLIPWAY_KEY_PARAMETER and
    SLIPWAY_KEY_SECRET is set: which one wins would be a guess."""
    present = [name for name in (PLAIN, PARAMETER, SECRET) if env.get(name, "")]
    if len(present) > 1:
        raise SecretError(f"{' and '.join(present)} are both set; keep only one of them")
    if not present or present[0] == PLAIN:
        return None
    return present[0], env[present[0]]


def fetch(variable: str, name: str, client: ClientFactory) -> str:
    """Read the key from the store `variable` names (PARAMETER or SECRET)."""
    from botocore.exceptions import ClientError  # deferred, like boto3 in services

    try:
        if variable == PARAMETER:
            value = _from_parameter(client("ssm"), name)
        elif variable == SECRET:
            value = _from_secret(client("secretsmanager"), name)
        else:
            raise ValueError(f"not a key store variable: {variable}")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        hint = {
            "ParameterNotFound": "create it: aws ssm put-parameter --type SecureString "
            f"--name {name} --value <key>",
            "ResourceNotFoundException": "create it: aws secretsmanager create-secret "
            f"--name {name} --secret-string <key>",
            "AccessDeniedException": "grant the Lambda role ssm:GetParameter or "
            "secretsmanager:GetSecretValue on it (.chalice/policy-<stage>.json)",
        }.get(code, "check the name, the region and the Lambda role's policy")
        raise SecretError(f"{variable}={name}: {code or exc}; {hint}") from None
    if not value:
        raise SecretError(f"{variable}={name} holds an empty value; store the key there")
    return value


def _from_parameter(ssm: Any, name: str) -> str:
    parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    if parameter.get("Type") != "SecureString":
        log.warning(
            "SSM parameter %s is a %s: store the key as a SecureString", name, parameter.get("Type")
        )
    return parameter.get("Value", "")


def _from_secret(sm: Any, secret_id: str) -> str:
    reply = sm.get_secret_value(SecretId=secret_id)
    if "SecretString" in reply:
        value = reply["SecretString"]
    else:
        value = reply.get("SecretBinary", b"").decode("utf-8")
    if value.lstrip().startswith("{"):
        try:
            document = json.loads(value)
        except ValueError:
            return value  # a key that happens to start with "{"
        if not isinstance(document, dict) or not isinstance(document.get("key"), str):
            raise SecretError(
                f'{SECRET}={secret_id} holds a JSON object without a string "key" member'
            )
        return document["key"]
    return value


def _default_client(service: str) -> Any:
    import boto3

    return boto3.session.Session().client(service)


@lru_cache(maxsize=4)
def _cached(variable: str, name: str) -> str:
    return fetch(variable, name, _default_client)


def key(env: Mapping[str, str] | None = None) -> str | None:
    """The key from the store the environment names, fetched once per container;
    None when the environment names no store (then SLIPWAY_KEY, if any, is the key)."""
    found = source(os.environ if env is None else env)
    if found is None:
        return None
    return _cached(*found)


def clear_cache() -> None:
    """Forget the fetched key (tests; a rotated key is otherwise read by new containers)."""
    _cached.cache_clear()
