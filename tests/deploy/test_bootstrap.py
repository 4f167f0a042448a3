"""`slipway bootstrap` against moto: every resource with the right attributes, their
names in the stage config, and a second run that changes nothing."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from slipway_dev import bootstrap, resources

from . import iam
from .conftest import DUMMY, REGION, ROOT


@pytest.fixture
def config(tmp_path: Path) -> tuple[Path, str]:
    """A copy of .chalice/ with a fresh stage (moto's state is shared across tests)."""
    chalice = tmp_path / ".chalice"
    chalice.mkdir()
    shutil.copy(ROOT / ".chalice/config.json", chalice / "config.json")
    data = json.loads((chalice / "config.json").read_text())
    stage = f"t{uuid.uuid4().hex[:8]}"
    dev = json.loads(json.dumps(data["stages"]["dev"]))
    dev["environment_variables"] = {"TARGET_URL": "https://backend.example.com/ws"}
    del dev["iam_policy_file"]
    data["stages"][stage] = dev
    (chalice / "config.json").write_text(json.dumps(data, indent=2) + "\n")
    return chalice / "config.json", stage


def client(session: Any, moto: str, service: str) -> Any:
    return session.client(service, endpoint_url=moto)


def snapshot(chalice: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(chalice.iterdir()) if p.is_file()}


def test_creates_everything_and_writes_the_stage_config(moto, session, config):
    path, stage = config
    result = bootstrap.bootstrap(stage, session, path, endpoint_url=moto)
    prefix = f"slipway-{stage}"

    ddb = client(session, moto, "dynamodb")
    table = ddb.describe_table(TableName=prefix)["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
        ("ka_slot", "S"),
    }
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "keepalive"
    assert index["KeySchema"] == [{"AttributeName": "ka_slot", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName=prefix)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    sqs = client(session, moto, "sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=result.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert result.queue_url.endswith(f"/{prefix}-publish.fifo")
    assert attributes["FifoQueue"] == "true"
    assert attributes["VisibilityTimeout"] == str(6 * 60)  # the worker's 60 s, times 6
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": result.dead_letter_queue_arn,
        "maxReceiveCount": 5,
    }
    assert attributes["DeduplicationScope"] == "messageGroup"
    assert attributes["FifoThroughputLimit"] == "perMessageGroupId"
    dlq = sqs.get_queue_attributes(QueueUrl=result.dead_letter_queue_url, AttributeNames=["All"])
    assert dlq["Attributes"]["FifoQueue"] == "true"
    assert result.dead_letter_queue_arn.endswith(f":{prefix}-publish-dlq.fifo")

    s3 = client(session, moto, "s3")
    bucket = f"{prefix}-blobs-123456789012-{REGION}"
    assert result.bucket == bucket
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True
    )
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Status"] == "Enabled" and rule["Expiration"] == {"Days": 1}
    (cors,) = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert {"GET", "PUT"} <= set(cors["AllowedMethods"])
    assert cors["AllowedOrigins"] == ["*"]

    ssm = client(session, moto, "ssm")
    parameter = ssm.get_parameter(Name=f"/{prefix}/key", WithDecryption=True)["Parameter"]
    assert parameter["Type"] == "SecureString" and len(parameter["Value"]) >= 32

    written = json.loads(path.read_text())["stages"][stage]
    assert written["autogen_policy"] is False
    assert written["iam_policy_file"] == f"policy-{stage}.json"
    assert written["environment_variables"] == {
        "TARGET_URL": "https://backend.example.com/ws",
        "SLIPWAY_TABLE": prefix,
        "SLIPWAY_QUEUE_NAME": f"{prefix}-publish.fifo",
        "SLIPWAY_QUEUE_URL": result.queue_url,
        "SLIPWAY_ORDERED_QUEUE_NAME": f"{prefix}-ordered.fifo",
        "SLIPWAY_ORDERED_QUEUE_URL": result.ordered_queue_url,
        "SLIPWAY_BUCKET": bucket,
        "SLIPWAY_KEY_PARAMETER": f"/{prefix}/key",
    }
    policy = json.loads((path.parent / f"policy-{stage}.json").read_text())
    assert iam.problems(policy, pinned=False) == []
    ordered_arn = result.queue_arn.replace("-publish.fifo", "-ordered.fifo")
    assert iam.grants(policy)["sqs:SendMessage"] == [result.queue_arn, ordered_arn]
    ordered = sqs.get_queue_attributes(QueueUrl=result.ordered_queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert ordered["FifoQueue"] == "true" and ordered["QueueArn"] == ordered_arn
    assert json.loads(ordered["RedrivePolicy"])["deadLetterTargetArn"] == (
        result.dead_letter_queue_arn
    )


def test_a_second_run_changes_nothing(moto, session, config):
    path, stage = config
    first = bootstrap.bootstrap(stage, session, path, endpoint_url=moto)
    assert len(first.changes) >= 8
    before = snapshot(path.parent)
    second = bootstrap.bootstrap(stage, session, path, endpoint_url=moto)
    assert second.changes == []
    assert snapshot(path.parent) == before
    assert second.queue_url == first.queue_url


def test_drift_is_corrected(moto, session, config):
    path, stage = config
    result = bootstrap.bootstrap(stage, session, path, endpoint_url=moto)
    sqs = client(session, moto, "sqs")
    sqs.set_queue_attributes(QueueUrl=result.queue_url, Attributes={"VisibilityTimeout": "30"})
    s3 = client(session, moto, "s3")
    s3.delete_bucket_cors(Bucket=result.bucket)
    again = bootstrap.bootstrap(stage, session, path, endpoint_url=moto)
    assert len(again.changes) == 2, again.changes
    attributes = sqs.get_queue_attributes(QueueUrl=result.queue_url, AttributeNames=["All"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "360"
    assert bootstrap.bootstrap(stage, session, path, endpoint_url=moto).changes == []


def test_the_deployed_api_is_pinned_in_the_policy(moto, session, config):
    path, stage = config
    bootstrap.bootstrap(stage, session, path, endpoint_url=moto)
    deployed = path.parent / "deployed"
    deployed.mkdir()
    (deployed / f"{stage}.json").write_text(
        json.dumps(
            {
                "schema_version": "2.0",
                "resources": [
                    {
                        "name": "websocket_api",
                        "resource_type": "websocket_api",
                        "websocket_api_id": "k2j3h4g5f6",
                    },
                    {
                        "name": "rest_api",
                        "resource_type": "rest_api",
                        "rest_api_url": "https://r1.execute-api.us-east-1.amazonaws.com/api/",
                    },
                ],
            }
        )
    )
    result = bootstrap.bootstrap(stage, session, path, endpoint_url=moto)
    assert result.api_id == "k2j3h4g5f6"
    assert result.changes == [f"wrote {result.policy_path}"]
    policy = json.loads(result.policy_path.read_text())
    assert iam.problems(policy, pinned=True) == []
    for arn in iam.grants(policy)["execute-api:ManageConnections"]:
        assert ":123456789012:k2j3h4g5f6/api/" in arn


def test_key_from_an_existing_secret(moto, session, config):
    path, stage = config
    sm = client(session, moto, "secretsmanager")
    arn = sm.create_secret(Name=f"{stage}/key", SecretString="s3cr3t")["ARN"]
    bootstrap.bootstrap(stage, session, path, endpoint_url=moto)  # the SSM default first
    result = bootstrap.bootstrap(stage, session, path, endpoint_url=moto, key_secret=f"{stage}/key")
    assert (result.key_variable, result.key_name, result.key_arn) == (
        "SLIPWAY_KEY_SECRET",
        arn,
        arn,
    )
    env = json.loads(path.read_text())["stages"][stage]["environment_variables"]
    assert env["SLIPWAY_KEY_SECRET"] == arn
    assert "SLIPWAY_KEY_PARAMETER" not in env
    granted = iam.grants(json.loads(result.policy_path.read_text()))
    assert granted["secretsmanager:GetSecretValue"] == [arn]
    assert "ssm:GetParameter" not in granted
    # the config now names the secret: a plain run keeps it
    assert bootstrap.bootstrap(stage, session, path, endpoint_url=moto).changes == []


def test_refusals_say_what_to_do(moto, session, config):
    path, stage = config
    with pytest.raises(bootstrap.BootstrapError, match="no stage 'nope'.*add it"):
        bootstrap.bootstrap("nope", session, path, endpoint_url=moto)
    with pytest.raises(resources.ResourceError, match="create it first"):
        bootstrap.bootstrap(stage, session, path, endpoint_url=moto, key_secret="missing/key")
    data = json.loads(path.read_text())
    data["stages"][stage]["environment_variables"]["SLIPWAY_KEY"] = "plain"
    path.write_text(json.dumps(data))
    with pytest.raises(bootstrap.BootstrapError, match="SLIPWAY_KEY in plain text"):
        bootstrap.bootstrap(stage, session, path, endpoint_url=moto)


def test_command_line(moto, config, monkeypatch, capsys):
    path, stage = config
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY["aws_secret_access_key"])
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    args = ["--stage", stage, "--config", str(path), "--endpoint-url", moto]
    args += ["--region", "eu-west-1", "--cors-origin", "https://app.example.com"]
    assert bootstrap.main(args) == 0
    out = capsys.readouterr().out
    assert f"bucket: slipway-{stage}-blobs-123456789012-eu-west-1" in out
    assert f"next: chalice deploy --stage {stage}" in out
    s3 = boto3.session.Session(region_name="eu-west-1", **DUMMY).client("s3", endpoint_url=moto)
    bucket = f"slipway-{stage}-blobs-123456789012-eu-west-1"
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    (cors,) = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert cors["AllowedOrigins"] == ["https://app.example.com"]
    assert bootstrap.main(args) == 0
    assert "nothing to change" in capsys.readouterr().out
    args[1] = "nope"
    assert bootstrap.main(args) == 1
