"""`slipway bootstrap --stage NAME`: the AWS resources Chalice does not create, for
`chalice deploy`.

Creates what is missing and corrects what differs (slipway_dev/resources.py, the
same functions the local stack uses), so a second run changes nothing:
- the DynamoDB table `<app>-<stage>` (`pk`/`sk` strings, on demand, TTL on `expires_at`);
- the FIFO queue `<app>-<stage>-publish.fifo` and its FIFO dead-letter queue
  (redrive after 5 receives, visibility timeout 6x the worker's Lambda timeout);
- the FIFO queue `<app>-<stage>-ordered.fifo` of ordered delivery (docs/ordered.md),
  redriving to the same dead-letter queue;
- the bucket `<app>-<stage>-blobs-<account>-<region>` (public access blocked,
  objects expire after a day, CORS for presigned browser PUT/GET);
- the key: an SSM SecureString `/<app>-<stage>/key` holding a new random key
  (never overwritten), or an existing Secrets Manager secret (`--key-secret`).

Then it writes their names into the stage's environment variables in
`.chalice/config.json`, and `.chalice/policy-<stage>.json` (slipway_dev/policy.py):
the only permissions the functions need, on exactly these resources. The WebSocket
API's id is known only after the first `chalice deploy`; until then the
@connections permission names any API id of this account at this stage name, and
`slipway finish` (slipway_dev/postdeploy.py), after the deploy, pins it to the
stage's API.

The CloudFormation path (`make package`, infra/resources.json) creates the same
resources and the same policy inside the stack instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import policy, resources

log = logging.getLogger("slipway_dev.bootstrap")

CONFIG = Path(".chalice/config.json")
# AWS: an SQS event source's visibility timeout should be at least 6x the function's.
VISIBILITY_FACTOR = 6
DEFAULT_LAMBDA_TIMEOUT = 60  # Chalice's default
DEFAULT_API_STAGE = "api"  # Chalice's default API Gateway stage name


class BootstrapError(RuntimeError):
    """The config or the options are in the way; the message says what to do.
    (What is in the way in AWS raises resources.ResourceError.)"""


@dataclass(frozen=True)
class Plan:
    """Names and settings derived from the config, the account and the options."""

    app: str
    stage: str
    region: str
    partition: str
    account: str
    api_stage: str
    worker_timeout: int
    table: str
    queue: str
    dead_letter_queue: str
    ordered_queue: str
    bucket: str
    cors_origins: tuple[str, ...]
    key_parameter: str | None  # exactly one of these two
    key_secret: str | None

    @property
    def visibility_timeout(self) -> int:
        return VISIBILITY_FACTOR * self.worker_timeout

    def arn(self, service: str, resource: str) -> str:
        return policy.arn(self.partition, service, self.region, self.account, resource)

    @property
    def parameter_arn(self) -> str:
        """The key parameter's ARN (when the key is in SSM)."""
        name = self.key_parameter or ""
        return name if name.startswith("arn:") else self.arn("ssm", f"parameter/{name.lstrip('/')}")

    def scope(self, queue_arn: str, key_arn: str, api_id: str | None) -> policy.Scope:
        """What the stage's policy names."""
        return policy.Scope(
            partition=self.partition,
            region=self.region,
            account=self.account,
            functions=f"{self.app}-{self.stage}",
            table=self.table,
            queue_arn=queue_arn,
            bucket=self.bucket,
            key_arn=key_arn,
            api_stage=self.api_stage,
            api_id=api_id,
            ordered_queue_arn=self.arn("sqs", self.ordered_queue),
        )


@dataclass
class Result:
    table: str
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    ordered_queue_url: str
    bucket: str
    key_variable: str
    key_name: str
    key_arn: str
    api_id: str | None
    rest_api_url: str | None
    policy_path: Path
    config_path: Path
    changes: list[str] = field(default_factory=list)


# -- the config ---------------------------------------------------------------


def deployed_apis(config_dir: Path, stage: str) -> tuple[str | None, str | None]:
    """`(WebSocket API id, REST API URL)` recorded by `chalice deploy`, if it ran."""
    path = config_dir / "deployed" / f"{stage}.json"
    try:
        deployed = json.loads(path.read_text())["resources"]
    except (OSError, ValueError, KeyError):
        return None, None
    api_id = rest_url = None
    for resource in deployed:
        if resource.get("resource_type") == "websocket_api":
            api_id = resource.get("websocket_api_id")
        elif resource.get("resource_type") == "rest_api":
            rest_url = resource.get("rest_api_url")
    return api_id, rest_url


def _write_json(path: Path, data: Any, changes: list[str]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    try:
        if json.loads(path.read_text()) == data:
            return
    except (OSError, ValueError):
        pass
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    changes.append(f"wrote {path}")


def make_plan(
    config: dict[str, Any],
    stage: str,
    region: str,
    partition: str,
    account: str,
    bucket: str | None = None,
    key_parameter: str | None = None,
    key_secret: str | None = None,
    cors_origins: Sequence[str] = ("*",),
) -> Plan:
    from chalice.config import Config

    stages = config.get("stages", {})
    if stage not in stages:
        raise BootstrapError(
            f"no stage {stage!r} in .chalice/config.json (stages: {', '.join(sorted(stages))}): "
            "add it there first, with its TARGET_URL"
        )
    env = stages[stage].get("environment_variables", {})
    if env.get("SLIPWAY_KEY"):
        raise BootstrapError(
            f"stage {stage} sets SLIPWAY_KEY in plain text: remove it; bootstrap keeps the key "
            "in SSM Parameter Store (or Secrets Manager with --key-secret)"
        )
    if key_parameter and key_secret:
        raise BootstrapError("--key-parameter and --key-secret: choose one")
    app = config["app_name"]
    prefix = f"{app}-{stage}"
    worker = Config(chalice_stage=stage, function_name="worker", config_from_disk=config)
    if not key_secret and not key_parameter:
        key_secret = env.get(resources.KEY_SECRET_VARIABLE) or None
        key_parameter = None if key_secret else env.get(resources.KEY_PARAMETER_VARIABLE)
    return Plan(
        app=app,
        stage=stage,
        region=region,
        partition=partition,
        account=account,
        api_stage=worker.api_gateway_stage or DEFAULT_API_STAGE,
        worker_timeout=int(worker.lambda_timeout or DEFAULT_LAMBDA_TIMEOUT),
        table=prefix,
        queue=f"{prefix}-publish.fifo",
        dead_letter_queue=f"{prefix}-publish-dlq.fifo",
        ordered_queue=f"{prefix}-ordered.fifo",
        bucket=(bucket or f"{prefix}-blobs-{account}-{region}").lower(),
        cors_origins=tuple(cors_origins),
        key_parameter=None if key_secret else (key_parameter or f"/{prefix}/key"),
        key_secret=key_secret,
    )


def bootstrap(
    stage: str,
    session: Any,
    config_path: Path = CONFIG,
    *,
    endpoint_url: str | None = None,
    bucket: str | None = None,
    key_parameter: str | None = None,
    key_secret: str | None = None,
    cors_origins: Sequence[str] = ("*",),
) -> Result:
    """Create or correct the stage's resources, then write the stage config and policy."""
    config_path = Path(config_path)
    config = json.loads(config_path.read_text())
    region = session.region_name
    if not region:
        raise BootstrapError("no AWS region: pass --region or set AWS_DEFAULT_REGION")

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)

    account = client("sts").get_caller_identity()["Account"]
    plan = make_plan(
        config,
        stage,
        region,
        session.get_partition_for_region(region),
        account,
        bucket=bucket,
        key_parameter=key_parameter,
        key_secret=key_secret,
        cors_origins=cors_origins,
    )
    changes: list[str] = []
    report = changes.append
    resources.ensure_table(client("dynamodb"), plan.table, report)
    queues = resources.ensure_publish_queues(
        client("sqs"), plan.queue, plan.dead_letter_queue, plan.visibility_timeout, report=report
    )
    ordered_url, _ = resources.ensure_ordered_queue(
        client("sqs"),
        plan.ordered_queue,
        queues.dead_letter_arn,
        plan.visibility_timeout,
        report=report,
    )
    resources.ensure_bucket(
        client("s3"), plan.bucket, report, cors_origins=plan.cors_origins, owner=plan.account
    )
    key = resources.ensure_key(
        client("ssm"),
        client("secretsmanager"),
        secret=plan.key_secret,
        parameter=plan.key_parameter,
        parameter_arn=plan.parameter_arn,
        description=f"slipway {plan.stage}: Grip-Sig and control API key",
        report=report,
    )

    config_dir = config_path.parent
    api_id, rest_url = deployed_apis(config_dir, stage)
    policy_file = f"policy-{stage}.json"
    policy_path = config_dir / policy_file
    document = policy.document(plan.scope(queues.arn, key.arn, api_id))
    _write_json(policy_path, document, changes)

    stage_config = config["stages"][stage]
    stage_config["autogen_policy"] = False
    stage_config["iam_policy_file"] = policy_file
    env = stage_config.setdefault("environment_variables", {})
    env.update(
        {
            "SLIPWAY_TABLE": plan.table,
            "SLIPWAY_QUEUE_NAME": plan.queue,
            "SLIPWAY_QUEUE_URL": queues.url,
            "SLIPWAY_ORDERED_QUEUE_NAME": plan.ordered_queue,
            "SLIPWAY_ORDERED_QUEUE_URL": ordered_url,
            "SLIPWAY_BUCKET": plan.bucket,
            key.variable: key.name,
        }
    )
    for variable in (resources.KEY_PARAMETER_VARIABLE, resources.KEY_SECRET_VARIABLE):
        if variable != key.variable:
            env.pop(variable, None)
    _write_json(config_path, config, changes)

    return Result(
        table=plan.table,
        queue_url=queues.url,
        queue_arn=queues.arn,
        dead_letter_queue_url=queues.dead_letter_url,
        dead_letter_queue_arn=queues.dead_letter_arn,
        ordered_queue_url=ordered_url,
        bucket=plan.bucket,
        key_variable=key.variable,
        key_name=key.name,
        key_arn=key.arn,
        api_id=api_id,
        rest_api_url=rest_url,
        policy_path=policy_path,
        config_path=config_path,
        changes=changes,
    )


# -- the command ----------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slipway bootstrap",
        description="Create the stage's DynamoDB table, SQS queues, S3 bucket and key "
        "(idempotently), and write their names and a least-privilege IAM policy into "
        ".chalice/ for `chalice deploy`.",
    )
    add = parser.add_argument
    add("--stage", default="dev", help="Chalice stage in .chalice/config.json (default dev)")
    add("--config", type=Path, default=CONFIG, help=f"Chalice config file (default {CONFIG})")
    add("--region", help="AWS region (default: the profile's or AWS_DEFAULT_REGION)")
    add("--profile", help="AWS profile (default: the environment's credentials)")
    add("--endpoint-url", help="an AWS-compatible endpoint for every service (tests: moto)")
    add("--bucket", help="S3 bucket name (default <app>-<stage>-blobs-<account>-<region>)")
    add("--key-parameter", help="SSM parameter holding the key (default /<app>-<stage>/key)")
    add("--key-secret", help="read the key from this existing Secrets Manager secret instead")
    add(
        "--cors-origin",
        action="append",
        dest="cors_origins",
        help="origin allowed to PUT/GET presigned blob URLs from a browser; repeatable "
        "(default: any, *)",
    )
    return parser


def _report(result: Result, stage: str, say: Callable[[str], None]) -> None:
    for change in result.changes or ["nothing to change: everything was already in place"]:
        say(f"  {change}")
    say(f"table: {result.table}")
    say(f"queue: {result.queue_url}")
    say(f"dead-letter queue: {result.dead_letter_queue_url}")
    say(f"ordered queue: {result.ordered_queue_url}")
    say(f"bucket: {result.bucket}")
    say(f"key: {result.key_variable}={result.key_name}")
    say(f"policy: {result.policy_path}")
    if result.api_id is None:
        say(
            f"next: chalice deploy --stage {stage}; then slipway finish --stage {stage}, "
            "which also pins the WebSocket API's id in the policy once it is known"
        )
    else:
        say(f"WebSocket API: {result.api_id} (pinned in the policy)")
        say(f"next: chalice deploy --stage {stage}; then slipway finish --stage {stage}")
    if result.key_variable == resources.KEY_PARAMETER_VARIABLE:
        say(
            f"the key: aws ssm get-parameter --name {result.key_name} --with-decryption "
            "--query Parameter.Value --output text"
        )


def main(argv: Sequence[str] | None = None) -> int:
    import boto3

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
        result = bootstrap(
            args.stage,
            session,
            args.config,
            endpoint_url=args.endpoint_url,
            bucket=args.bucket,
            key_parameter=args.key_parameter,
            key_secret=args.key_secret,
            cors_origins=args.cors_origins or ("*",),
        )
    except Exception as exc:  # boto3's and ours alike: one line, no trace
        log.error("slipway bootstrap failed: %s", exc)
        return 1
    _report(result, args.stage, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
