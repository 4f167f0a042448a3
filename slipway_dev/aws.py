"""The AWS resources slipway expects (table, publish queue with its dead-letter
queue, bucket), at moto (slipway_dev/moto_server.py) or another AWS-compatible endpoint.

Everything is created only if missing, so `slipway local --aws-endpoint URL`
leaves what is already there untouched.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

REGION = "us-east-1"
# Values moto accepts; never real credentials.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


# The one table's shape (chalicelib/aws/store.py): pk/sk strings, on demand.
TABLE_SCHEMA: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


@dataclass(frozen=True)
class Names:
    table: str = "slipway"
    queue: str = "slipway-publish.fifo"
    dead_letter_queue: str = "slipway-publish-dlq.fifo"
    bucket: str = "slipway-blobs"
    visibility_timeout: int = 30
    max_receive_count: int = 5


@dataclass(frozen=True)
class Resources:
    endpoint: str
    table: str
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    bucket: str


def client(service: str, endpoint: str) -> Any:
    """A client for `service` at `endpoint`, with retries that suit a local server."""
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def ensure(endpoint: str, names: Names) -> Resources:
    """Create what is missing and return where everything is."""
    ensure_table(client("dynamodb", endpoint), names.table)
    sqs = client("sqs", endpoint)
    dlq_url = ensure_queue(sqs, names.dead_letter_queue, {})
    dlq_arn = _queue_arn(sqs, dlq_url)
    queue_url = ensure_queue(
        sqs,
        names.queue,
        {
            "VisibilityTimeout": str(names.visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": names.max_receive_count}
            ),
        },
    )
    ensure_bucket(client("s3", endpoint), names.bucket)
    return Resources(
        endpoint=endpoint,
        table=names.table,
        queue_url=queue_url,
        queue_arn=_queue_arn(sqs, queue_url),
        dead_letter_queue_url=dlq_url,
        bucket=names.bucket,
    )


def ensure_table(ddb: Any, name: str) -> None:
    try:
        ddb.describe_table(TableName=name)
        log.info("table %s exists", name)
        return
    except ddb.exceptions.ResourceNotFoundException:
        pass
    ddb.create_table(TableName=name, **TABLE_SCHEMA)
    ddb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    ddb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
    log.info("created table %s", name)


def ensure_queue(sqs: Any, name: str, attributes: dict[str, str]) -> str:
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        log.info("queue %s exists", name)
        return url
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if "NonExistentQueue" not in code and "QueueDoesNotExist" not in code:
            raise
    if name.endswith(".fifo"):
        attributes = {**attributes, "FifoQueue": "true"}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    log.info("created queue %s", name)
    return url


def _queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def ensure_bucket(s3: Any, name: str) -> None:
    try:
        s3.head_bucket(Bucket=name)
        log.info("bucket %s exists", name)
        return
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
    s3.create_bucket(Bucket=name)  # us-east-1 takes no LocationConstraint
    log.info("created bucket %s", name)
