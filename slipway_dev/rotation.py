"""`slipway rotate-key --stage S`: a new key without downtime (docs/security.md#key-rotation).

Two runs, with an overlap between them:

    slipway rotate-key --stage S            # a new key first: it signs, the old one verifies
    slipway rotate-key --stage S --retire   # later: the old key is dropped

The keys are where `slipway bootstrap` keeps them: the stage's SSM SecureString
(SLIPWAY_KEY_PARAMETER) or Secrets Manager secret (SLIPWAY_KEY_SECRET) named in
.chalice/config.json; with `--endpoint-url` (the `aws:` line `slipway local`
prints) and no such stage, the local stack's parameter. They are read with the
code the Lambda functions read them with (chalicelib/secrets.py), and every
function picks the change up within SLIPWAY_KEY_TTL seconds, without a deploy.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets as random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chalicelib import secrets
from chalicelib.grip import keys

from . import aws

log = logging.getLogger("slipway_dev.rotation")


class RotationError(Exception):
    """Why the keys were left as they were; says what to do."""


def store_of(
    stage: str,
    project: Path,
    parameter: str | None,
    secret: str | None,
    local: bool,
) -> tuple[str, str]:
    """(variable, name) of where the stage's keys are kept."""
    if parameter and secret:
        raise RotationError("--key-parameter and --key-secret: choose one")
    if parameter:
        return secrets.PARAMETER, parameter
    if secret:
        return secrets.SECRET, secret
    env = _stage_environment(project, stage)
    for variable in (secrets.PARAMETER, secrets.SECRET):
        if env.get(variable):
            return variable, env[variable]
    if env.get(secrets.PLAIN):
        raise RotationError(
            f"stage {stage} keeps its key in SLIPWAY_KEY (plain text in .chalice/config.json): "
            "a change needs a deploy; move it to SSM with `slipway bootstrap` first"
        )
    if local:
        return secrets.PARAMETER, aws.Names().key_parameter
    raise RotationError(
        f"stage {stage} names no key store in .chalice/config.json: run `slipway bootstrap "
        f"--stage {stage}`, or pass --key-parameter or --key-secret"
    )


def _stage_environment(project: Path, stage: str) -> dict[str, str]:
    config = project / ".chalice" / "config.json"
    if not config.exists():
        return {}
    data = json.loads(config.read_text())
    env: dict[str, str] = dict(data.get("environment_variables", {}))
    env.update(data.get("stages", {}).get(stage, {}).get("environment_variables", {}))
    return env


def rotate(client: secrets.ClientFactory, variable: str, name: str, new: str) -> keys.Keys:
    """Add `new` first; the keys as stored now."""
    try:
        listed = keys.rotated(secrets.read(variable, name, client), new)
    except keys.KeyListError as exc:
        raise RotationError(str(exc)) from None
    _write(client, variable, name, listed)
    return listed


def retire(client: secrets.ClientFactory, variable: str, name: str) -> keys.Keys:
    """Keep the first key only; the keys as stored now."""
    try:
        listed = keys.retired(secrets.read(variable, name, client))
    except keys.KeyListError as exc:
        raise RotationError(str(exc)) from None
    _write(client, variable, name, listed)
    return listed


def _write(client: secrets.ClientFactory, variable: str, name: str, listed: keys.Keys) -> None:
    if variable == secrets.PARAMETER:
        ssm = client("ssm")
        found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])
        extra: dict[str, Any] = {}
        for parameter in found.get("Parameters", []):
            if parameter.get("KeyId"):  # the KMS key it is encrypted with stays
                extra["KeyId"] = parameter["KeyId"]
        ssm.put_parameter(
            Name=name, Type="SecureString", Value=keys.text(listed), Overwrite=True, **extra
        )
        return
    sm = client("secretsmanager")
    value = sm.get_secret_value(SecretId=name).get("SecretString", "")
    document = _json_object(value)
    if document is not None:  # the other members stay; "keys" replaces "key"
        document.pop("key", None)
        document["keys"] = list(listed)
        sm.put_secret_value(SecretId=name, SecretString=json.dumps(document))
    else:
        sm.put_secret_value(SecretId=name, SecretString=keys.text(listed))


def _json_object(value: str) -> dict[str, Any] | None:
    if not value.lstrip().startswith("{"):
        return None
    try:
        document = json.loads(value)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _new_key(path: str | None) -> str:
    if path is None:
        return random.token_urlsafe(32)
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    key = text.strip()
    if not key or "\n" in key:
        raise RotationError(f"{path}: expected one key on one line")
    return key


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slipway rotate-key",
        description="Add a new key to a stage (it signs; the old one still verifies), or "
        "with --retire drop the old one. docs/security.md#key-rotation gives the procedure.",
    )
    add = parser.add_argument
    add("--stage", required=True, help="the Chalice stage (.chalice/config.json)")
    add("--retire", action="store_true", help="drop every key but the first")
    add(
        "--new-key-file",
        metavar="PATH",
        help="the new key, one line ('-': stdin); default: a new random key. Give it to "
        "backends that check Grip-Sig before adding it",
    )
    add("--key-parameter", help="the SSM parameter holding the keys (default: the stage's)")
    add("--key-secret", help="the Secrets Manager secret holding the keys (default: the stage's)")
    add("--project-dir", type=Path, default=Path("."), help="where .chalice/ is (default .)")
    add("--profile", help="AWS profile")
    add("--region", help="AWS region")
    add(
        "--endpoint-url",
        help="an AWS-compatible endpoint, e.g. the local stack's (`aws:` as slipway local prints)",
    )
    return parser


def _client_factory(args: argparse.Namespace) -> secrets.ClientFactory:
    import boto3

    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    options: dict[str, Any] = {}
    if args.endpoint_url:
        options["endpoint_url"] = args.endpoint_url
        options["region_name"] = session.region_name or aws.REGION
        if session.get_credentials() is None:  # the local stack's moto takes any
            options["aws_access_key_id"] = aws.DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]
            options["aws_secret_access_key"] = aws.DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]

    def client(service: str) -> Any:
        return session.client(service, **options)

    return client


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        variable, name = store_of(
            args.stage,
            args.project_dir,
            args.key_parameter,
            args.key_secret,
            local=bool(args.endpoint_url),
        )
        client = _client_factory(args)
        if args.retire:
            listed = retire(client, variable, name)
        else:
            listed = rotate(client, variable, name, _new_key(args.new_key_file))
    except (RotationError, secrets.SecretError) as exc:
        log.error("slipway rotate-key: %s", exc)
        return 1
    except Exception as exc:  # boto3's: one line, no trace
        log.error("slipway rotate-key failed: %s", exc)
        return 1
    print(f"store: {variable}={name}")
    for position, key in enumerate(listed):
        role = "signs and verifies" if position == 0 else "verifies only"
        print(f"key {position + 1}: {keys.fingerprint(key)} ({role})")
    read = (
        f"aws ssm get-parameter --with-decryption --name {name} --query Parameter.Value"
        if variable == secrets.PARAMETER
        else f"aws secretsmanager get-secret-value --secret-id {name} --query SecretString"
    )
    print(f"read the keys: {read} --output text")
    ttl = f"SLIPWAY_KEY_TTL (default {secrets.KEY_TTL} s)"
    if args.retire:
        print(f"the retired key stops working everywhere within {ttl}")
    else:
        print(
            f"every function signs with the new key within {ttl}; move publishers to it, "
            "then run again with --retire (docs/security.md#key-rotation)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
