"""The AWS resources slipway needs, created idempotently: the one set of `ensure_*`
functions behind both `slipway bootstrap` (slipway_dev/bootstrap.py, real AWS) and
the local stack (slipway_dev/aws.py, moto or another AWS-compatible endpoint).

Each takes a boto3 client and creates what is missing, fully configured. On what
already exists it refuses what the code cannot work with (another key schema, a
queue that is not FIFO, another account's bucket) and then either corrects every
setting that differs (`correct=True`, bootstrap) or leaves it as it is
(`correct=False`, the local stack against an endpoint of the user's). Every
change made is passed to `report`, one sentence each.

The settings themselves are defined here once (the table's with its key scheme, in
chalicelib/aws/table.py); infra/resources.json declares the same ones for the
CloudFormation path (tests/deploy/test_template.py and tests/test_table.py compare).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.aws.table import KEEPALIVE_INDEX_SCHEMA, TABLE_SCHEMA, TTL_ATTRIBUTE

log = logging.getLogger(__name__)

Report = Callable[[str], None]


def _log(change: str) -> None:
    log.info("%s", change)


class ResourceError(RuntimeError):
    """A resource is in the way; the message says what and what to do."""


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


# -- the table ------------------------------------------------------------------

# The one table's shape is defined with its key scheme (chalicelib/aws/table.py):
# pk/sk strings, on demand, items expire on TTL_ATTRIBUTE, and the keepalive index.


def _key_schema(schema: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(k["AttributeName"], k["KeyType"]) for k in schema}


def ensure_table(ddb: Any, name: str, report: Report = _log, *, correct: bool = True) -> None:
    """The table `name` with TABLE_SCHEMA and TTL on TTL_ATTRIBUTE."""
    try:
        table = ddb.describe_table(TableName=name)["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        ddb.create_table(TableName=name, **TABLE_SCHEMA)
        ddb.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        report(f"created DynamoDB table {name}")
        created = True
    else:
        keys, wanted = _key_schema(table["KeySchema"]), _key_schema(TABLE_SCHEMA["KeySchema"])
        if keys != wanted:
            raise ResourceError(
                f"table {name} exists with key schema {sorted(keys)}, not {sorted(wanted)}: "
                "delete it or pick another name"
            )
        created = False
    if not (created or correct):
        log.debug("table %s exists: left as it is", name)
        return
    indexes = (
        {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} if not created else set()
    )
    if not created and KEEPALIVE_INDEX_SCHEMA["IndexName"] not in indexes:
        ddb.update_table(
            TableName=name,
            AttributeDefinitions=TABLE_SCHEMA["AttributeDefinitions"],
            GlobalSecondaryIndexUpdates=[{"Create": KEEPALIVE_INDEX_SCHEMA}],
        )
        report(f"added the {KEEPALIVE_INDEX_SCHEMA['IndexName']} index to {name}")
    ttl = {} if created else ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus", "DISABLED") in ("ENABLED", "ENABLING"):
        if ttl.get("AttributeName") != TTL_ATTRIBUTE:
            raise ResourceError(
                f"table {name} has TTL on {ttl.get('AttributeName')!r}; slipway needs it on "
                f"{TTL_ATTRIBUTE!r} (a table has one TTL attribute): disable it first"
            )
        return
    ddb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    report(f"enabled TTL on {name}.{TTL_ATTRIBUTE}")


# -- the publish queue and its dead-letter queue ----------------------------------

MAX_RECEIVE_COUNT = 5  # receives before a message goes to the dead-letter queue
DEAD_LETTER_RETENTION = 14 * 24 * 3600  # SQS's maximum: time to look at what failed


def dead_letter_attributes() -> dict[str, str]:
    return {
        "FifoQueue": "true",
        "SqsManagedSseEnabled": "true",
        "MessageRetentionPeriod": str(DEAD_LETTER_RETENTION),
    }


def queue_attributes(
    visibility_timeout: int, dead_letter_arn: str, max_receive_count: int = MAX_RECEIVE_COUNT
) -> dict[str, str]:
    redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count}
    return {
        "FifoQueue": "true",
        "SqsManagedSseEnabled": "true",
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": json.dumps(redrive),
        # High-throughput FIFO: order (and deduplication) per group, which is all
        # slipway needs (a group per channel or connection), at far higher rates.
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
    }


_FIFO_ONLY = ("FifoQueue", "DeduplicationScope", "FifoThroughputLimit", "ContentBasedDeduplication")


def _same_attribute(name: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if name == "RedrivePolicy":
        a, b = json.loads(current), json.loads(wanted)
        return a.get("deadLetterTargetArn") == b["deadLetterTargetArn"] and int(
            a.get("maxReceiveCount", 0)
        ) == int(b["maxReceiveCount"])
    return current.lower() == wanted.lower()


def ensure_queue(
    sqs: Any,
    name: str,
    attributes: dict[str, str],
    report: Report = _log,
    *,
    correct: bool = True,
) -> str:
    """The queue's URL; created with `attributes`, or corrected to them. A `.fifo`
    name makes a FIFO queue; any other a standard one, without the FIFO-only
    attributes."""
    fifo = name.endswith(".fifo")  # SQS's own rule: the name says it
    if fifo:
        attributes = {**attributes, "FifoQueue": "true"}
    else:
        attributes = {k: v for k, v in attributes.items() if k not in _FIFO_ONLY}
    try:
        url: str = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        code = _error_code(exc)
        if "NonExistentQueue" not in code and "QueueDoesNotExist" not in code:
            raise
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        report(f"created SQS queue {name}")
        return url
    if not correct:
        log.debug("queue %s exists: left as it is", name)
        return url
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    if (current.get("FifoQueue", "false").lower() == "true") != fifo:
        raise ResourceError(f"queue {name} exists but is not FIFO: delete it first")
    differ = {
        k: v
        for k, v in attributes.items()
        if k != "FifoQueue" and not _same_attribute(k, current.get(k), v)
    }
    if differ:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=differ)
        report(f"set {', '.join(sorted(differ))} on SQS queue {name}")
    return url


def queue_arn(sqs: Any, url: str) -> str:
    return str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )


@dataclass(frozen=True)
class Queues:
    url: str
    arn: str
    dead_letter_url: str
    dead_letter_arn: str


def ensure_publish_queues(
    sqs: Any,
    name: str,
    dead_letter_name: str,
    visibility_timeout: int,
    max_receive_count: int = MAX_RECEIVE_COUNT,
    report: Report = _log,
    *,
    correct: bool = True,
) -> Queues:
    """The FIFO publish queue, redriving to its FIFO dead-letter queue."""
    dlq_url = ensure_queue(sqs, dead_letter_name, dead_letter_attributes(), report, correct=correct)
    dlq_arn = queue_arn(sqs, dlq_url)
    attributes = queue_attributes(visibility_timeout, dlq_arn, max_receive_count)
    url = ensure_queue(sqs, name, attributes, report, correct=correct)
    return Queues(url, queue_arn(sqs, url), dlq_url, dlq_arn)


def ensure_ordered_queue(
    sqs: Any,
    name: str,
    dead_letter_arn: str,
    visibility_timeout: int,
    max_receive_count: int = MAX_RECEIVE_COUNT,
    report: Report = _log,
    *,
    correct: bool = True,
) -> tuple[str, str]:
    """Ordered delivery's FIFO queue (docs/ordered.md), a message group per
    connection, redriving to the publish queue's dead-letter queue; (url, arn)."""
    attributes = queue_attributes(visibility_timeout, dead_letter_arn, max_receive_count)
    url = ensure_queue(sqs, name, attributes, report, correct=correct)
    return url, queue_arn(sqs, url)


# -- the bucket -------------------------------------------------------------------

BLOB_EXPIRY_DAYS = 1
LIFECYCLE_RULE_ID = "slipway-expire-blobs"
PUBLIC_ACCESS_BLOCK = dict.fromkeys(
    ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
)


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


def _setting(new: bool, get: Callable[[], Any], missing: str, default: Any) -> Any:
    """A bucket setting as it is: `default` on a new bucket (nothing set yet, no need
    to ask) or when S3 answers the `missing` error code."""
    if new:
        return default
    try:
        return get()
    except ClientError as exc:
        if _error_code(exc) != missing:
            raise
        return default


def ensure_bucket(
    s3: Any,
    name: str,
    report: Report = _log,
    *,
    cors_origins: Sequence[str] = ("*",),
    owner: str | None = None,
    correct: bool = True,
) -> None:
    """The bucket `name` in the client's region: public access blocked, objects
    expiring after BLOB_EXPIRY_DAYS, CORS for presigned browser PUT/GET from
    `cors_origins`. `owner`: the account it must belong to."""
    try:
        s3.head_bucket(Bucket=name, **({"ExpectedBucketOwner": owner} if owner else {}))
    except ClientError as exc:
        code = _error_code(exc)
        if code in ("403", "AccessDenied"):
            raise ResourceError(
                f"bucket {name} belongs to another account: choose a name with --bucket"
            ) from None
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        kwargs: dict[str, Any] = {"Bucket": name}
        region = s3.meta.region_name
        if region and region != "us-east-1":  # the one region without a LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        report(f"created S3 bucket {name}")
        created = True
    else:
        if not correct:
            log.debug("bucket %s exists: left as it is", name)
            return
        created = False

    block = _setting(
        created,
        lambda: s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
        "NoSuchPublicAccessBlockConfiguration",
        {},
    )
    if any(block.get(k) is not True for k in PUBLIC_ACCESS_BLOCK):
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=dict(PUBLIC_ACCESS_BLOCK)
        )
        report(f"blocked all public access to {name}")

    rules = _setting(
        created,
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"],
        "NoSuchLifecycleConfiguration",
        [],
    )
    ours = [r for r in rules if r.get("ID") == LIFECYCLE_RULE_ID]
    if len(ours) != 1 or not _lifecycle_matches(ours[0]):
        others = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": [*others, lifecycle_rule()]}
        )
        report(f"set lifecycle rule {LIFECYCLE_RULE_ID} on {name}")

    wanted = cors_rules(cors_origins)
    cors = _setting(
        created,
        lambda: s3.get_bucket_cors(Bucket=name)["CORSRules"],
        "NoSuchCORSConfiguration",
        [],
    )
    if _normal_cors(cors) != _normal_cors(wanted):
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": wanted})
        report(f"set CORS on {name} for {', '.join(cors_origins)}")


# -- the key ----------------------------------------------------------------------

KEY_PARAMETER_VARIABLE = "SLIPWAY_KEY_PARAMETER"
KEY_SECRET_VARIABLE = "SLIPWAY_KEY_SECRET"


@dataclass(frozen=True)
class Key:
    """Where the Grip-Sig and control API key is kept, as the functions find it."""

    variable: str  # KEY_PARAMETER_VARIABLE or KEY_SECRET_VARIABLE
    name: str  # the value of that variable
    arn: str  # what the policy names


def ensure_key(
    ssm: Any,
    sm: Any,
    *,
    secret: str | None = None,
    parameter: str | None = None,
    parameter_arn: str = "",
    description: str = "slipway: Grip-Sig and control API key",
    report: Report = _log,
) -> Key:
    """An existing Secrets Manager `secret` (never created here), or the SSM
    SecureString `parameter` (at `parameter_arn`), holding a new random key when
    it is missing; an existing key is never read or overwritten."""
    if secret:
        try:
            arn = sm.describe_secret(SecretId=secret)["ARN"]
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
            raise ResourceError(
                f"no secret {secret}: create it first, e.g. aws secretsmanager "
                f"create-secret --name {secret} --secret-string <key>"
            ) from None
        # The ARN, not the name: unambiguous, and exactly what the policy names.
        return Key(KEY_SECRET_VARIABLE, arn, arn)
    if not parameter or not parameter_arn:
        raise ValueError("ensure_key: a secret, or a parameter and its ARN")
    try:
        ssm.get_parameter(Name=parameter)  # no decryption: only whether it is there
    except ClientError as exc:
        if _error_code(exc) != "ParameterNotFound":
            raise
        ssm.put_parameter(
            Name=parameter,
            Type="SecureString",
            Value=secrets.token_urlsafe(32),
            Description=description,
            Overwrite=False,
        )
        report(f"created SSM SecureString {parameter} with a new random key")
    return Key(KEY_PARAMETER_VARIABLE, parameter, parameter_arn)
