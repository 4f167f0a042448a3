"""The deployment's keys from SSM Parameter Store or Secrets Manager, read again
every SLIPWAY_KEY_TTL seconds.

Instead of the keys themselves in `SLIPWAY_KEY` (plain text in the Lambda
configuration), a stage may name where they are kept:

- `SLIPWAY_KEY_PARAMETER`: an SSM parameter name or ARN, a SecureString, read
  with decryption;
- `SLIPWAY_KEY_SECRET`: a Secrets Manager secret id (name or ARN) whose value is
  the keys, or a JSON object with a `"keys"` (a list) or `"key"` member.

At most one of the three may be set. A value holds one key or several
(`grip/keys.py`): the first signs, any verifies, so a key is rotated without
downtime (docs/security.md#key-rotation). The value is fetched at the first call
of `keys()` (one AWS call, on the container's first event), kept for `ttl`
seconds, then fetched again, so a rotation reaches every container within the
TTL without a redeploy. A failed first fetch is not kept (the next event tries
again); a failed later one keeps the keys already read and tries again
RETRY_AFTER seconds later, so a throttled or unreachable store never stops a
container that has its keys.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .grip import keys as keys_
from .grip.errors import ConfigError

log = logging.getLogger("slipway.secrets")

PLAIN = "SLIPWAY_KEY"
PARAMETER = "SLIPWAY_KEY_PARAMETER"
SECRET = "SLIPWAY_KEY_SECRET"
# Seconds a container keeps the keys it read (SLIPWAY_KEY_TTL's default): a
# rotation reaches every container within this. 300 s keeps SSM's GetParameter
# under its default 40 calls a second for up to ~12,000 warm containers.
KEY_TTL = 300
# Seconds before a failed fetch is tried again, keeping the keys already read.
RETRY_AFTER = 10

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
    """Read the stored value (one key or a list, `grip/keys.py`) from the store
    `variable` names (PARAMETER or SECRET)."""
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
    return str(parameter.get("Value", ""))


def _from_secret(sm: Any, secret_id: str) -> str:
    reply = sm.get_secret_value(SecretId=secret_id)
    if "SecretString" in reply:
        value = str(reply["SecretString"])
    else:
        value = bytes(reply.get("SecretBinary", b"")).decode("utf-8")
    if value.lstrip().startswith("{"):
        try:
            document = json.loads(value)
        except ValueError:
            return value  # a key that happens to start with "{"
        if isinstance(document, dict) and isinstance(document.get("keys"), list):
            return json.dumps(document["keys"])  # read by keys_.parse as a JSON array
        if not isinstance(document, dict) or not isinstance(document.get("key"), str):
            raise SecretError(
                f'{SECRET}={secret_id} holds a JSON object without a "keys" list '
                'or a string "key" member'
            )
        return str(document["key"])
    return value


def _default_client(service: str) -> Any:
    import boto3

    return boto3.session.Session().client(service)


# (variable, name) -> (monotonic time to fetch again, keys)
_cache: dict[tuple[str, str], tuple[float, keys_.Keys]] = {}
_lock = threading.Lock()  # the worker runs batches on threads


def read(variable: str, name: str, client: ClientFactory = _default_client) -> keys_.Keys:
    """The keys a store holds now; SecretError naming the variable if it holds none."""
    value = fetch(variable, name, client)
    try:
        return keys_.parse(value)
    except keys_.KeyListError as exc:
        raise SecretError(f"{variable}={name}: {exc}") from None


def keys(
    env: Mapping[str, str] | None = None,
    ttl: float = KEY_TTL,
    now: float | None = None,
    client: ClientFactory = _default_client,
) -> keys_.Keys | None:
    """The keys from the store the environment names, fetched again once `ttl`
    seconds have passed; None when the environment names no store (then
    SLIPWAY_KEY, if any, holds them)."""
    found = source(os.environ if env is None else env)
    if found is None:
        return None
    now = time.monotonic() if now is None else now
    with _lock:
        cached = _cache.get(found)
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            fresh = read(*found, client)
        except Exception as exc:  # SecretError, or botocore's: unreachable, timed out
            if cached is None:
                raise
            log.warning("keeping the keys read before, trying again in %ds: %s", RETRY_AFTER, exc)
            _cache[found] = (now + RETRY_AFTER, cached[1])
            return cached[1]
        if cached is not None and cached[1] != fresh:
            log.info(
                "keys changed: %d now, %s signs (docs/security.md#key-rotation)",
                len(fresh),
                keys_.fingerprint(fresh[0]),
            )
        _cache[found] = (now + ttl, fresh)
        return fresh


def key(env: Mapping[str, str] | None = None) -> str | None:
    """The signing key (the first) from the store the environment names; None
    when the environment names no store."""
    found = keys(env)
    return None if found is None else keys_.signing(found)


def clear_cache() -> None:
    """Forget the fetched keys (tests)."""
    with _lock:
        _cache.clear()
