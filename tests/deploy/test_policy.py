"""Least privilege: the policies (the stage files for `chalice deploy`, what bootstrap
writes, the stack's) grant every action the code needs, on named resources only.
(The policy builder's own output, statement by statement: test_policy_document.py.)"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.grip import delivery, envelope, uploads
from slipway_dev import bootstrap, policy, resources

from . import iam
from .conftest import REGION, ROOT, STAGES
from .test_template import ATTRIBUTES, REFS, resolved

ACCOUNT = "123456789012"


def stage_policy(stage: str) -> dict[str, Any]:
    config = json.loads((ROOT / ".chalice/config.json").read_text())["stages"][stage]
    assert config["autogen_policy"] is False
    return json.loads((ROOT / ".chalice" / config["iam_policy_file"]).read_text())


def rendered(stage: str, api_id: str | None, secret: bool = False) -> dict[str, Any]:
    config = json.loads((ROOT / ".chalice/config.json").read_text())
    plan = bootstrap.make_plan(
        config,
        stage,
        REGION,
        "aws",
        ACCOUNT,
        key_secret=f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:k-AbCdEf" if secret else None,
    )
    key_arn = plan.key_secret or plan.parameter_arn
    return policy.document(plan.scope(plan.arn("sqs", plan.queue), key_arn, api_id))


def stack_policy(packaged: dict[str, Any], stage: str, from_parameter: bool) -> dict[str, Any]:
    document = packaged[stage]["Resources"]["FunctionPolicy"]["Properties"]["PolicyDocument"]
    return resolved(document, from_parameter)


def all_policies(packaged: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    """(what, document, whether the API id must be pinned) for every policy we ship."""
    found = []
    for stage in STAGES:
        found.append((f"committed policy-{stage}.json", stage_policy(stage), False))
        found.append((f"bootstrap {stage}, before deploy", rendered(stage, None), False))
        found.append((f"bootstrap {stage}, after deploy", rendered(stage, "a1b2c3d4e5"), True))
        found.append((f"bootstrap {stage}, secret", rendered(stage, "a1b2c3d4e5", True), True))
        for from_parameter in (True, False):
            document = stack_policy(packaged, stage, from_parameter)
            found.append((f"stack {stage}, key parameter={from_parameter}", document, True))
    return found


def test_no_wildcard_beyond_what_aws_requires(packaged):
    for what, document, pinned in all_policies(packaged):
        assert iam.problems(document, pinned) == [], what


def test_the_checker_sees_wildcards():
    document = rendered("dev", None)
    assert iam.problems(document, pinned=False) == []
    assert len(iam.problems(document, pinned=True)) == 3  # POST, GET, DELETE on any API
    document["Statement"].append({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    document["Statement"].append(
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:*:1:q"}
    )
    assert len(iam.problems(document, pinned=False)) == 3


def test_code_scan_finds_the_adapters_calls():
    used = iam.code_operations()
    assert {"dynamodb:TransactWriteItems", "sqs:SendMessageBatch", "s3:GetObject"} <= set(used)
    assert "chalicelib/aws/membership.py" in used["dynamodb:Query"]


def test_every_action_the_code_uses_is_granted(packaged):
    needed = iam.required_actions(iam.code_operations()) - iam.KEY_ACTIONS
    needed |= iam.EVENT_SOURCE | iam.LOGS
    for what, document, _ in all_policies(packaged):
        granted = iam.grants(document)
        assert needed - set(granted) == set(), what
        # the key: from exactly one store, the one configured
        assert len(iam.KEY_ACTIONS & set(granted)) == 1, what
        # @connections: send, info and close
        connections = granted["execute-api:ManageConnections"]
        for method in iam.SOCKET_METHODS:
            assert any(f"/{method}/@connections/" in arn for arn in connections), what


def test_nothing_is_granted_that_the_code_does_not_use(packaged):
    used = iam.required_actions(iam.code_operations())
    allowed = used | iam.EVENT_SOURCE | iam.LOGS | {"execute-api:ManageConnections"}
    allowed |= {"logs:CreateLogGroup", "sqs:ChangeMessageVisibility"}  # see docs/deploy.md
    for what, document, _ in all_policies(packaged):
        assert set(iam.grants(document)) - allowed == set(), what


def test_resources_are_this_stages(packaged):
    for stage in STAGES:
        granted = iam.grants(rendered(stage, "a1b2c3d4e5"))
        prefix = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:"
        table = prefix.format("dynamodb") + f"table/slipway-{stage}"
        assert granted["dynamodb:Query"] == [table, f"{table}/index/keepalive"]
        assert granted["sqs:SendMessage"] == [
            prefix.format("sqs") + f"slipway-{stage}-publish.fifo",
            prefix.format("sqs") + f"slipway-{stage}-ordered.fifo",
        ]
        assert granted["ssm:GetParameter"] == [
            prefix.format("ssm") + f"parameter/slipway-{stage}/key"
        ]
        bucket = f"arn:aws:s3:::slipway-{stage}-blobs-{ACCOUNT}-{REGION}"
        assert granted["s3:PutObject"] == [
            f"{bucket}/publish/*",
            f"{bucket}/uploads/*",
            f"{bucket}/downloads/*",
            f"{bucket}/backend-uploads/*",
        ]
        for arn in granted["execute-api:ManageConnections"]:
            assert arn.startswith(prefix.format("execute-api") + "a1b2c3d4e5/api/")

        granted = iam.grants(stack_policy(packaged, stage, True))
        table = ATTRIBUTES["Table.Arn"]
        assert granted["dynamodb:Query"] == [table, f"{table}/index/keepalive"]
        assert granted["sqs:SendMessage"] == [
            ATTRIBUTES["PublishQueue.Arn"],
            ATTRIBUTES["OrderedQueue.Arn"],
        ]
        assert granted["ssm:GetParameter"] == [
            prefix.format("ssm") + "parameter" + REFS["KeyParameterName"]
        ]
        assert granted["s3:PutObject"] == [
            ATTRIBUTES["BlobBucket.Arn"] + f"/{p}*"
            for p in ("publish/", "uploads/", "downloads/", "backend-uploads/")
        ]
        for arn in granted["execute-api:ManageConnections"]:
            assert arn.startswith(prefix.format("execute-api") + REFS["WebsocketAPI"] + "/api/")
        granted = iam.grants(stack_policy(packaged, stage, False))
        assert granted["secretsmanager:GetSecretValue"] == [REFS["GripKey"]]


def test_stack_and_bootstrap_grant_the_same(packaged):
    """Both paths: the same statements, with the same actions."""

    def by_sid(document: dict[str, Any]) -> dict[str, set[str]]:
        out = {}
        for statement in iam.statements(document):
            actions = statement["Action"]
            out[statement["Sid"]] = {actions} if isinstance(actions, str) else set(actions)
        return out

    for stage in STAGES:
        assert by_sid(stack_policy(packaged, stage, True)) == by_sid(rendered(stage, "x1"))
        assert by_sid(stack_policy(packaged, stage, False)) == by_sid(rendered(stage, "x1", True))


def test_blob_prefixes_cover_the_codes():
    assert delivery.BLOB_PREFIX in policy.BLOB_PREFIXES
    assert envelope.UPLOAD_PREFIX in policy.BLOB_PREFIXES
    assert envelope.DOWNLOAD_PREFIX in policy.BLOB_PREFIXES
    assert uploads.PREFIX in policy.BLOB_PREFIXES


def test_the_bucket_rules_cover_every_prefix():
    """Lifecycle (what is left expires) and CORS (browser PUT and GET of presigned
    URLs) are bucket-wide: every prefix the code writes is under them."""
    rule = resources.lifecycle_rule()
    assert all(p.startswith(rule["Filter"]["Prefix"]) for p in policy.BLOB_PREFIXES)
    [cors] = resources.cors_rules(["https://app.example"])
    assert {"GET", "PUT"} <= set(cors["AllowedMethods"]) and cors["AllowedHeaders"] == ["*"]


def test_code_scan_counts_presigned_urls():
    used = iam.code_operations()
    assert "chalicelib/aws/blobs.py" in used["s3:PutObjectAcl"]
    assert "chalicelib/aws/blobs.py" in used["s3:PutObject"]
