"""The AWS resources the local stack needs (table, publish queue with its
dead-letter queue, ordered delivery's queue, bucket), at moto
(slipway_dev/moto_server.py) or another AWS-compatible endpoint: created by
slipway_dev/resources.py, the same functions `slipway bootstrap` uses, so they
are configured as on AWS.

What is missing is created; what exists is only checked, never changed, so
`slipway local --aws-endpoint URL` leaves what is already there untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from . import resources

# Re-exported for the tests' and the benchmarks' own resources (tests/harness.py,
# bench/): the same functions, with their defaults.
from .resources import ensure_bucket, ensure_queue, ensure_table

__all__ = [
    "DUMMY_CREDENTIALS",
    "REGION",
    "Names",
    "Resources",
    "client",
    "ensure",
    "ensure_bucket",
    "ensure_queue",
    "ensure_table",
]

log = logging.getLogger(__name__)

REGION = "us-east-1"
# Values moto accepts; never real credentials.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


@dataclass(frozen=True)
class Names:
    table: str = "slipway"
    queue: str = "slipway-publish.fifo"
    dead_letter_queue: str = "slipway-publish-dlq.fifo"
    ordered_queue: str = "slipway-ordered.fifo"  # docs/ordered.md
    bucket: str = "slipway-blobs"
    # The keys (SSM SecureString), as on AWS: `slipway rotate-key` changes them.
    key_parameter: str = "/slipway-local/key"
    visibility_timeout: int = 30
    max_receive_count: int = resources.MAX_RECEIVE_COUNT


@dataclass(frozen=True)
class Resources:
    endpoint: str
    table: str
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    bucket: str
    ordered_queue_url: str = ""
    ordered_queue_arn: str = ""


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
    resources.ensure_table(client("dynamodb", endpoint), names.table, correct=False)
    queues = resources.ensure_publish_queues(
        client("sqs", endpoint),
        names.queue,
        names.dead_letter_queue,
        names.visibility_timeout,
        names.max_receive_count,
        correct=False,
    )
    ordered_url, ordered_arn = resources.ensure_ordered_queue(
        client("sqs", endpoint),
        names.ordered_queue,
        queues.dead_letter_arn,
        names.visibility_timeout,
        names.max_receive_count,
        correct=False,
    )
    resources.ensure_bucket(client("s3", endpoint), names.bucket, correct=False)
    return Resources(
        endpoint=endpoint,
        table=names.table,
        queue_url=queues.url,
        queue_arn=queues.arn,
        dead_letter_queue_url=queues.dead_letter_url,
        bucket=names.bucket,
        ordered_queue_url=ordered_url,
        ordered_queue_arn=ordered_arn,
    )
