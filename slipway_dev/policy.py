"""The functions' least-privilege IAM policy, from names and ARNs. Pure: no I/O,
no boto3; `slipway bootstrap` writes it to `.chalice/policy-<stage>.json`.

Every statement names exactly the actions the code needs (tests/deploy/iam.py
scans chalicelib for them) on exactly one stage's resources. A `*` appears only
where the resource's shape needs one: the end of an object key, a connection
id, a log group's streams, and the WebSocket API id until the first deploy
makes it known. infra/resources.json's FunctionPolicy is the same policy for
the CloudFormation path (tests/deploy/test_policy.py compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.aws.table import KEEPALIVE_INDEX

# Key prefixes the code writes to the bucket (chalicelib/grip/delivery.py BLOB_PREFIX;
# chalicelib/grip/envelope.py UPLOAD_PREFIX and DOWNLOAD_PREFIX; backends' uploads,
# chalicelib/grip/uploads.py PREFIX: presigned PUTs, and the refs' ranged GETs).
BLOB_PREFIXES = ("publish/", "uploads/", "downloads/", "backend-uploads/")
# Before the first `chalice deploy` the WebSocket API's id is unknown.
ANY_API = "*"

# What each function does with each resource; the policy names nothing else.
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchWriteItem",
    "dynamodb:BatchGetItem",
)
# The keep-alive scheduler queries the table's one index (chalicelib/aws/table.py).
TABLE_INDEX = KEEPALIVE_INDEX
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
# S3 answers a GET of a missing key with 404 only to a caller allowed to list it,
# else 403 (the key's absence is not disclosed): the gateway tells "not uploaded"
# from a denial by listing, on the bucket, under its own prefixes only (the
# `s3:prefix` condition; S3 sets it to the key asked for). docs/security.md.
LIST_ACTION = "s3:ListBucket"
CONNECTIONS_ACTION = "execute-api:ManageConnections"
# @connections: POST sends, GET asks about, DELETE closes (chalicelib/aws/sockets.py).
SOCKET_METHODS = ("POST", "GET", "DELETE")
# The key is read from exactly one store: the one its ARN names.
KEY_ACTIONS = {
    "ssm": "ssm:GetParameter",
    "secretsmanager": "secretsmanager:GetSecretValue",
}


def arn(partition: str, service: str, region: str, account: str, resource: str) -> str:
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def key_action(key_arn: str) -> str:
    """The one action that reads the key from where `key_arn` keeps it."""
    parts = key_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] not in KEY_ACTIONS:
        raise ValueError(f"not an SSM parameter's or a Secrets Manager secret's ARN: {key_arn!r}")
    return KEY_ACTIONS[parts[2]]


@dataclass(frozen=True)
class Scope:
    """What the policy names: one stage's resources in one account and region."""

    partition: str
    region: str
    account: str
    functions: str  # "<app>-<stage>": Chalice names the functions <app>-<stage>[-<name>]
    table: str  # a name
    queue_arn: str
    bucket: str  # a name
    key_arn: str  # an SSM parameter's or a Secrets Manager secret's
    api_stage: str  # API Gateway's stage name (Chalice's default: api)
    api_id: str | None = None  # the WebSocket API's, once deployed
    ordered_queue_arn: str | None = None  # ordered delivery's queue (docs/ordered.md)

    def arn(self, service: str, resource: str) -> str:
        return arn(self.partition, service, self.region, self.account, resource)


def document(scope: Scope) -> dict[str, Any]:
    """The functions' IAM policy: exactly these actions on exactly these resources."""
    logs = f"/aws/lambda/{scope.functions}"
    api = scope.api_id or ANY_API
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": list(LOG_ACTIONS),
                # the API handler is <app>-<stage>, the others <app>-<stage>-<name>
                "Resource": [
                    scope.arn("logs", f"log-group:{logs}"),
                    scope.arn("logs", f"log-group:{logs}:*"),
                    scope.arn("logs", f"log-group:{logs}-*"),
                ],
            },
            {
                "Sid": "Table",
                "Effect": "Allow",
                "Action": list(TABLE_ACTIONS),
                "Resource": scope.arn("dynamodb", f"table/{scope.table}"),
            },
            {
                "Sid": "TableIndex",
                "Effect": "Allow",
                "Action": ["dynamodb:Query"],
                "Resource": scope.arn("dynamodb", f"table/{scope.table}/index/{TABLE_INDEX}"),
            },
            {
                "Sid": "PublishQueue",
                "Effect": "Allow",
                "Action": list(QUEUE_ACTIONS),
                "Resource": scope.queue_arn,
            },
            *(
                [
                    {
                        "Sid": "OrderedQueue",
                        "Effect": "Allow",
                        "Action": list(QUEUE_ACTIONS),
                        "Resource": scope.ordered_queue_arn,
                    }
                ]
                if scope.ordered_queue_arn
                else []
            ),
            {
                "Sid": "Blobs",
                "Effect": "Allow",
                "Action": list(BLOB_ACTIONS),
                # S3 ARNs name neither region nor account: the bucket name is global.
                "Resource": [
                    arn(scope.partition, "s3", "", "", f"{scope.bucket}/{prefix}*")
                    for prefix in BLOB_PREFIXES
                ],
            },
            {
                "Sid": "BlobsList",
                "Effect": "Allow",
                "Action": [LIST_ACTION],
                "Resource": arn(scope.partition, "s3", "", "", scope.bucket),
                "Condition": {"StringLike": {"s3:prefix": [f"{p}*" for p in BLOB_PREFIXES]}},
            },
            {
                "Sid": "Connections",
                "Effect": "Allow",
                "Action": CONNECTIONS_ACTION,
                "Resource": [
                    scope.arn("execute-api", f"{api}/{scope.api_stage}/{method}/@connections/*")
                    for method in SOCKET_METHODS
                ],
            },
            {
                "Sid": "Key",
                "Effect": "Allow",
                "Action": key_action(scope.key_arn),
                "Resource": scope.key_arn,
            },
        ],
    }
