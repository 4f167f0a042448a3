"""`slipway bootstrap --stage NAME`: the AWS resources Chalice does not create, for
`chalice deploy`.

Creates what is missing and corrects what differs, so a second run changes nothing:
- the DynamoDB table `<app>-<stage>` (`pk`/`sk` strings, on demand, TTL on `expires_at`);
- the FIFO queue `<app>-<stage>-publish.fifo` and its FIFO dead-letter queue
  (redrive after 5 receives, visibility timeout 6x the worker's Lambda timeout);
- the bucket `<app>-<stage>-blobs-<account>-<region>` (public access blocked,
  objects expire after a day, CORS for presigned browser PUT/GET);
- the key: an SSM SecureString `/<app>-<stage>/key` holding a new random key
  (never overwritten), or an existing Secrets Manager secret (`--key-secret`).

Then it writes their names into the stage's environment variables in
`.chalice/config.json`, and `.chalice/policy-<stage>.json`: the only permissions
the functions need, on exactly these resources. The WebSocket API's id is known
only after the first `chalice deploy`; until then the @connections permission
names any API id of this account at this stage name, and a run after the deploy
(then `chalice deploy` again) pins it to the stage's API.

The CloudFormation path (`make package`, infra/resources.json) creates the same
resources and the same policy inside the stack instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import aws

log = logging.getLogger("slipway_dev.bootstrap")

CONFIG = Path(".chalice/config.json")
# Key prefixes the code writes to the bucket (chalicelib/fanout.py _BLOB_PREFIX;
# chalicelib/grip/envelope.py UPLOAD_PREFIX and DOWNLOAD_PREFIX).
BLOB_PREFIXES = ("publish/", "uploads/", "downloads/")
MAX_RECEIVE_COUNT = 5
# AWS: an SQS event source's visibility timeout should be at least 6x the function's.
VISIBILITY_FACTOR = 6
DEAD_LETTER_RETENTION = 14 * 24 * 3600  # SQS's maximum: time to look at what failed
BLOB_EXPIRY_DAYS = 1
LIFECYCLE_RULE_ID = "slipway-expire-blobs"
DEFAULT_LAMBDA_TIMEOUT = 60  # Chalice's default
DEFAULT_API_STAGE = "api"  # Chalice's default API Gateway stage name
ANY_API = "*"

# What each function does with each resource; the policy names nothing else.
TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchWriteItem",
)
QUEUE_ACTIONS = (
    "sqs:SendMessage",
    # the worker's event source mapping polls with the function's role:
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
)
# PutObjectAcl: a presigned upload carries `x-amz-acl: bucket-owner-full-control`.
BLOB_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject")
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
SOCKET_METHODS = ("POST", "GET", "DELETE")


class BootstrapError(RuntimeError):
    """Something is in the way; the message says what and what to do."""


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
    bucket: str
    cors_origins: tuple[str, ...]
    key_parameter: str | None  # exactly one of these two
    key_secret: str | None

    @property
    def visibility_timeout(self) -> int:
        return VISIBILITY_FACTOR * self.worker_timeout

    def arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )


@dataclass
class Result:
    table: str
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    bucket: str
    key_variable: str
    key_name: str
    key_arn: str
    api_id: str | None
    rest_api_url: str | None
    policy_path: Path
    config_path: Path
    changes: list[str] = field(default_factory=list)


# -- the policy ---------------------------------------------------------------


def policy(plan: Plan, queue_arn: str, key_arn: str, api_id: str | None) -> dict[str, Any]:
    """The functions' IAM policy: exactly these actions on exactly these resources."""
    prefix = f"/aws/lambda/{plan.app}-{plan.stage}"
    api = api_id or ANY_API
    key_action = "ssm:GetParameter" if plan.key_parameter else "secretsmanager:GetSecretValue"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": list(LOG_ACTIONS),
                # the API handler is <app>-<stage>, the others <app>-<stage>-<name>
                "Resource": [
                    plan.arn("logs", f"log-group:{prefix}"),
                    plan.arn("logs", f"log-group:{prefix}:*"),
                    plan.arn("logs", f"log-group:{prefix}-*"),
                ],
            },
            {
                "Sid": "Table",
                "Effect": "Allow",
                "Action": list(TABLE_ACTIONS),
                "Resource": plan.arn("dynamodb", f"table/{plan.table}"),
            },
            {
                "Sid": "PublishQueue",
                "Effect": "Allow",
                "Action": list(QUEUE_ACTIONS),
                "Resource": queue_arn,
            },
            {
                "Sid": "Blobs",
                "Effect": "Allow",
                "Action": list(BLOB_ACTIONS),
                "Resource": [
                    plan.arn("s3", f"{plan.bucket}/{p}*", region=False, account=False)
                    for p in BLOB_PREFIXES
                ],
            },
            {
                "Sid": "Connections",
                "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": [
                    plan.arn("execute-api", f"{api}/{plan.api_stage}/{method}/@connections/*")
                    for method in SOCKET_METHODS
                ],
            },
            {"Sid": "Key", "Effect": "Allow", "Action": key_action, "Resource": key_arn},
        ],
    }


# -- resources ----------------------------------------------------------------


def ensure_table(ddb: Any, name: str, changes: list[str]) -> None:
    try:
        table = ddb.describe_table(TableName=name)["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        ddb.create_table(TableName=name, **aws.TABLE_SCHEMA)  # encrypted at rest by default
        ddb.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60}
        )
        changes.append(f"created DynamoDB table {name}")
    else:
        keys = {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]}
        if keys != {("pk", "HASH"), ("sk", "RANGE")}:
            raise BootstrapError(
                f"table {name} exists with key schema {sorted(keys)}, not pk (HASH), sk (RANGE): "
                "delete it or pick another stage name"
            )
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    status = ttl.get("TimeToLiveStatus", "DISABLED")
    if status in ("ENABLED", "ENABLING"):
        if ttl.get("AttributeName") != "expires_at":
            raise BootstrapError(
                f"table {name} has TTL on {ttl.get('AttributeName')!r}; slipway needs it on "
                "'expires_at' (a table has one TTL attribute): disable it first"
            )
        return
    ddb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    changes.append(f"enabled TTL on {name}.expires_at")


def _same_attribute(name: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if name == "RedrivePolicy":
        a, b = json.loads(current), json.loads(wanted)
        return a.get("deadLetterTargetArn") == b["deadLetterTargetArn"] and int(
            a.get("maxReceiveCount", 0)
        ) == int(b["maxReceiveCount"])
    return current.lower() == wanted.lower()


def ensure_queue(sqs: Any, name: str, attributes: dict[str, str], changes: list[str]) -> str:
    """The queue's URL; created with `attributes`, or corrected to them."""
    from botocore.exceptions import ClientError

    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in (
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ):
            raise
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        changes.append(f"created SQS queue {name}")
        return url
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    if current.get("FifoQueue", "false") != attributes.get("FifoQueue", "false"):
        raise BootstrapError(f"queue {name} exists but is not FIFO: delete it first")
    differ = {
        k: v
        for k, v in attributes.items()
        if k != "FifoQueue" and not _same_attribute(k, current.get(k), v)
    }
    if differ:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=differ)
        changes.append(f"set {', '.join(sorted(differ))} on SQS queue {name}")
    return url


def queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def lifecycle_rule() -> dict[str, Any]:
    return {
        "ID": LIFECYCLE_RULE_ID,
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "Expiration": {"Days": BLOB_EXPIRY_DAYS},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": BLOB_EXPIRY_DAYS},
    }


def cors_rules(origins: Sequence[str]) -> list[dict[str, Any]]:
    """Browsers PUT (upload) and GET (download) presigned URLs from any page by default."""
    return [
        {
            "AllowedMethods": ["GET", "HEAD", "PUT"],
            "AllowedOrigins": list(origins),
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3600,
        }
    ]


def _lifecycle_matches(rule: dict[str, Any]) -> bool:
    wanted = lifecycle_rule()
    prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix", ""))
    return (
        rule.get("Status") == "Enabled"
        and prefix == ""
        and set(rule.get("Filter", {})) <= {"Prefix"}
        and rule.get("Expiration", {}).get("Days") == wanted["Expiration"]["Days"]
        and rule.get("AbortIncompleteMultipartUpload") == wanted["AbortIncompleteMultipartUpload"]
    )


def _normal_cors(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("AllowedMethods", "AllowedOrigins", "AllowedHeaders", "ExposeHeaders")
    return [
        {**{k: sorted(r.get(k, [])) for k in keys}, "MaxAgeSeconds": r.get("MaxAgeSeconds")}
        for r in rules
    ]


def ensure_bucket(s3: Any, plan: Plan, changes: list[str]) -> None:
    from botocore.exceptions import ClientError

    name = plan.bucket
    try:
        s3.head_bucket(Bucket=name, ExpectedBucketOwner=plan.account)
    except ClientError as exc:
        code = _error_code(exc)
        if code in ("403", "AccessDenied"):
            raise BootstrapError(
                f"bucket {name} belongs to another account: choose a name with --bucket"
            ) from None
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        kwargs: dict[str, Any] = {"Bucket": name}
        if plan.region != "us-east-1":  # the one region that takes no LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": plan.region}
        s3.create_bucket(**kwargs)
        changes.append(f"created S3 bucket {name}")

    block = dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
        True,
    )
    try:
        current = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    except ClientError as exc:
        if _error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        current = {}
    if any(current.get(k) is not True for k in block):
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
        changes.append(f"blocked all public access to {name}")

    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    except ClientError as exc:
        if _error_code(exc) != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    ours = [r for r in rules if r.get("ID") == LIFECYCLE_RULE_ID]
    if len(ours) != 1 or not _lifecycle_matches(ours[0]):
        others = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": [*others, lifecycle_rule()]}
        )
        changes.append(f"set lifecycle rule {LIFECYCLE_RULE_ID} on {name}")

    wanted = cors_rules(plan.cors_origins)
    try:
        current_cors = s3.get_bucket_cors(Bucket=name)["CORSRules"]
    except ClientError as exc:
        if _error_code(exc) != "NoSuchCORSConfiguration":
            raise
        current_cors = []
    if _normal_cors(current_cors) != _normal_cors(wanted):
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": wanted})
        changes.append(f"set CORS on {name} for {', '.join(plan.cors_origins)}")


def ensure_key(ssm: Any, sm: Any, plan: Plan, changes: list[str]) -> tuple[str, str, str]:
    """`(variable, name, ARN)` of where the key is kept; a new SSM key when missing."""
    from botocore.exceptions import ClientError

    if plan.key_secret:
        try:
            arn = sm.describe_secret(SecretId=plan.key_secret)["ARN"]
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
            raise BootstrapError(
                f"no secret {plan.key_secret}: create it first, e.g. aws secretsmanager "
                f"create-secret --name {plan.key_secret} --secret-string <key>"
            ) from None
        # The ARN, not the name: unambiguous, and exactly what the policy names.
        return "SLIPWAY_KEY_SECRET", arn, arn
    name = plan.key_parameter or ""
    try:
        ssm.get_parameter(Name=name)  # no decryption: only whether it is there
    except ClientError as exc:
        if _error_code(exc) != "ParameterNotFound":
            raise
        ssm.put_parameter(
            Name=name,
            Type="SecureString",
            Value=secrets.token_urlsafe(32),
            Description=f"slipway {plan.stage}: Grip-Sig and control API key",
            Overwrite=False,
        )
        changes.append(f"created SSM SecureString {name} with a new random key")
    arn = name if name.startswith("arn:") else plan.arn("ssm", f"parameter/{name.lstrip('/')}")
    return "SLIPWAY_KEY_PARAMETER", name, arn


def deployed_apis(config_dir: Path, stage: str) -> tuple[str | None, str | None]:
    """`(WebSocket API id, REST API URL)` recorded by `chalice deploy`, if it ran."""
    path = config_dir / "deployed" / f"{stage}.json"
    try:
        resources = json.loads(path.read_text())["resources"]
    except (OSError, ValueError, KeyError):
        return None, None
    api_id = rest_url = None
    for resource in resources:
        if resource.get("resource_type") == "websocket_api":
            api_id = resource.get("websocket_api_id")
        elif resource.get("resource_type") == "rest_api":
            rest_url = resource.get("rest_api_url")
    return api_id, rest_url


# -- the config ---------------------------------------------------------------


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
        key_secret = env.get("SLIPWAY_KEY_SECRET") or None
        key_parameter = None if key_secret else env.get("SLIPWAY_KEY_PARAMETER")
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
    ensure_table(client("dynamodb"), plan.table, changes)

    sqs = client("sqs")
    common = {"FifoQueue": "true", "SqsManagedSseEnabled": "true"}
    dlq_url = ensure_queue(
        sqs,
        plan.dead_letter_queue,
        {**common, "MessageRetentionPeriod": str(DEAD_LETTER_RETENTION)},
        changes,
    )
    dlq_arn = queue_arn(sqs, dlq_url)
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
    queue_url = ensure_queue(
        sqs,
        plan.queue,
        {
            **common,
            "VisibilityTimeout": str(plan.visibility_timeout),
            "RedrivePolicy": json.dumps(redrive),
            # High-throughput FIFO: order (and deduplication) per group, which is all
            # slipway needs (a group per channel or connection), at far higher rates.
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
        },
        changes,
    )
    main_arn = queue_arn(sqs, queue_url)

    ensure_bucket(client("s3"), plan, changes)
    key_variable, key_name, key_arn = ensure_key(
        client("ssm"), client("secretsmanager"), plan, changes
    )

    config_dir = config_path.parent
    api_id, rest_url = deployed_apis(config_dir, stage)
    policy_file = f"policy-{stage}.json"
    policy_path = config_dir / policy_file
    _write_json(policy_path, policy(plan, main_arn, key_arn, api_id), changes)

    stage_config = config["stages"][stage]
    stage_config["autogen_policy"] = False
    stage_config["iam_policy_file"] = policy_file
    env = stage_config.setdefault("environment_variables", {})
    env.update(
        {
            "SLIPWAY_TABLE": plan.table,
            "SLIPWAY_QUEUE_NAME": plan.queue,
            "SLIPWAY_QUEUE_URL": queue_url,
            "SLIPWAY_BUCKET": plan.bucket,
            key_variable: key_name,
        }
    )
    other = (
        "SLIPWAY_KEY_PARAMETER" if key_variable == "SLIPWAY_KEY_SECRET" else "SLIPWAY_KEY_SECRET"
    )
    env.pop(other, None)
    _write_json(config_path, config, changes)

    return Result(
        table=plan.table,
        queue_url=queue_url,
        queue_arn=main_arn,
        dead_letter_queue_url=dlq_url,
        dead_letter_queue_arn=dlq_arn,
        bucket=plan.bucket,
        key_variable=key_variable,
        key_name=key_name,
        key_arn=key_arn,
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
    say(f"bucket: {result.bucket}")
    say(f"key: {result.key_variable}={result.key_name}")
    say(f"policy: {result.policy_path}")
    if result.api_id is None:
        say(
            f"next: chalice deploy --stage {stage}; then run this again and deploy once more: "
            "the policy names the WebSocket API only once its id is known"
        )
    else:
        say(f"WebSocket API: {result.api_id} (pinned in the policy)")
        say(f"next: chalice deploy --stage {stage}")
    if result.key_variable == "SLIPWAY_KEY_PARAMETER":
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
