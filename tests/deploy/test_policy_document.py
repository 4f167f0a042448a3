"""slipway_dev/policy.py on its own: the policy a user finds in
.chalice/policy-<stage>.json for a given set of names, statement by statement.
Pure: no AWS, no files."""

from __future__ import annotations

import json

import pytest

from slipway_dev import bootstrap, policy

from . import iam

ACCOUNT = "123456789012"
QUEUE_ARN = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:shop-prod-publish.fifo"
PARAMETER_ARN = f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/shop-prod/key"
SECRET_ARN = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:shop/key-AbCdEf"


def scope(**changes: object) -> policy.Scope:
    values: dict[str, object] = {
        "partition": "aws",
        "region": "eu-west-1",
        "account": ACCOUNT,
        "functions": "shop-prod",
        "table": "shop-prod",
        "queue_arn": QUEUE_ARN,
        "bucket": "shop-prod-blobs",
        "key_arn": PARAMETER_ARN,
        "api_stage": "api",
        "api_id": "k2j3h4g5f6",
    }
    values.update(changes)
    return policy.Scope(**values)  # type: ignore[arg-type]


def by_sid(document: dict) -> dict[str, tuple[object, object]]:
    return {s["Sid"]: (s["Action"], s["Resource"]) for s in document["Statement"]}


def test_every_statement_for_a_deployed_stage():
    document = policy.document(scope())
    assert document["Version"] == "2012-10-17"
    assert all(s["Effect"] == "Allow" for s in document["Statement"])
    logs = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/shop-prod"
    api = f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:k2j3h4g5f6/api"
    assert by_sid(document) == {
        "Logs": (
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            [logs, f"{logs}:*", f"{logs}-*"],
        ),
        "Table": (
            [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
                "dynamodb:BatchWriteItem",
                "dynamodb:BatchGetItem",
            ],
            f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/shop-prod",
        ),
        "TableIndex": (
            ["dynamodb:Query"],
            f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/shop-prod/index/keepalive",
        ),
        "PublishQueue": (
            [
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ],
            QUEUE_ARN,
        ),
        "Blobs": (
            ["s3:GetObject", "s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject"],
            [
                "arn:aws:s3:::shop-prod-blobs/publish/*",
                "arn:aws:s3:::shop-prod-blobs/uploads/*",
                "arn:aws:s3:::shop-prod-blobs/downloads/*",
                "arn:aws:s3:::shop-prod-blobs/backend-uploads/*",
            ],
        ),
        "BlobsList": (["s3:ListBucket"], "arn:aws:s3:::shop-prod-blobs"),
        "Connections": (
            "execute-api:ManageConnections",
            [
                f"{api}/POST/@connections/*",
                f"{api}/GET/@connections/*",
                f"{api}/DELETE/@connections/*",
            ],
        ),
        "Key": ("ssm:GetParameter", PARAMETER_ARN),
    }


def _listed(value: object) -> list[str]:
    return [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]


def test_a_wildcard_only_ends_a_resource():
    """No `*` in an action, no `*` resource: in an ARN a `*` stands only at the end
    (any object under a prefix, any connection, the log groups' streams)."""
    for statement in policy.document(scope())["Statement"]:
        for action in _listed(statement["Action"]):
            assert "*" not in action, statement
        for resource in _listed(statement["Resource"]):
            assert resource.startswith("arn:aws:"), statement
            assert "*" not in resource[:-1], statement
    assert iam.problems(policy.document(scope()), pinned=True) == []


def test_the_bucket_is_listed_under_the_gateways_prefixes_only():
    """So that S3 answers a missing upload with 404, not 403 (docs/security.md), and
    the functions list nothing else of the bucket."""
    [listing] = [s for s in policy.document(scope())["Statement"] if s["Sid"] == "BlobsList"]
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": ["publish/*", "uploads/*", "downloads/*", "backend-uploads/*"]}
    }
    unscoped = {"Version": "2012-10-17", "Statement": [{**listing, "Condition": {}}]}
    assert iam.problems(unscoped, pinned=True) == [
        "s3:ListBucket on arn:aws:s3:::shop-prod-blobs: no s3:prefix condition naming key prefixes"
    ]


def test_before_the_first_deploy_only_the_api_id_is_open():
    before = by_sid(policy.document(scope(api_id=None)))
    after = by_sid(policy.document(scope()))
    assert {sid for sid in after if before[sid] != after[sid]} == {"Connections"}
    for arn in before["Connections"][1]:
        assert arn.startswith(f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:*/api/")


def test_the_key_is_read_from_the_store_its_arn_names():
    assert by_sid(policy.document(scope(key_arn=SECRET_ARN)))["Key"] == (
        "secretsmanager:GetSecretValue",
        SECRET_ARN,
    )
    for wrong in ("/shop-prod/key", f"arn:aws:s3:::{ACCOUNT}/key", "*"):
        with pytest.raises(ValueError, match="not an SSM parameter"):
            policy.document(scope(key_arn=wrong))


def test_partition_and_api_stage_are_the_scopes():
    china = f"cn-north-1:{ACCOUNT}"
    document = policy.document(
        scope(
            partition="aws-cn",
            region="cn-north-1",
            api_stage="v1",
            queue_arn=f"arn:aws-cn:sqs:{china}:shop-prod-publish.fifo",
            key_arn=f"arn:aws-cn:ssm:{china}:parameter/shop-prod/key",
        )
    )
    text = json.dumps(document)
    assert "arn:aws:" not in text
    assert "arn:aws-cn:s3:::shop-prod-blobs/publish/*" in text
    assert ":k2j3h4g5f6/v1/POST/@connections/*" in text


def test_bootstrap_scopes_the_policy_to_the_stage():
    """What bootstrap derives from .chalice/config.json, the account and the options."""
    config = {
        "app_name": "shop",
        "stages": {"prod": {"api_gateway_stage": "v1", "environment_variables": {}}},
    }
    plan = bootstrap.make_plan(config, "prod", "eu-west-1", "aws", ACCOUNT)
    assert plan.scope(QUEUE_ARN, plan.parameter_arn, None) == scope(
        bucket=f"shop-prod-blobs-{ACCOUNT}-eu-west-1",
        api_stage="v1",
        api_id=None,
        ordered_queue_arn=QUEUE_ARN.replace("-publish.fifo", "-ordered.fifo"),
    )


def test_ordered_deliverys_queue_gets_the_queue_actions():
    ordered = QUEUE_ARN.replace("-publish.fifo", "-ordered.fifo")
    statements = by_sid(policy.document(scope(ordered_queue_arn=ordered)))
    assert statements["OrderedQueue"] == (list(policy.QUEUE_ACTIONS), ordered)
