"""slipway_dev/resources.py against moto: the one set of ensure_* functions, as the
local stack (slipway_dev/aws.py: create what is missing, leave what exists) and
bootstrap (create, and correct what differs) use them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from slipway_dev import aws, resources


@pytest.fixture
def clients(moto: str, session: Any) -> Any:
    return lambda service: session.client(service, endpoint_url=moto)


def names() -> aws.Names:
    tag = uuid.uuid4().hex[:8]
    return aws.Names(
        table=f"t-{tag}",
        queue=f"q-{tag}.fifo",
        dead_letter_queue=f"q-{tag}-dlq.fifo",
        bucket=f"b-{tag}",
        visibility_timeout=30,
        max_receive_count=4,
    )


def attributes(sqs: Any, url: str) -> dict[str, str]:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_the_local_stack_uses_the_shared_functions():
    assert aws.ensure_table is resources.ensure_table
    assert aws.ensure_queue is resources.ensure_queue
    assert aws.ensure_bucket is resources.ensure_bucket


def test_the_local_stack_gets_the_deployed_settings(moto, clients, monkeypatch):
    for name, value in aws.DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    wanted = names()
    got = aws.ensure(moto, wanted)

    ddb = clients("dynamodb")
    table = ddb.describe_table(TableName=wanted.table)["Table"]
    assert table["KeySchema"] == resources.TABLE_SCHEMA["KeySchema"]
    ttl = ddb.describe_time_to_live(TableName=wanted.table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": resources.TTL_ATTRIBUTE}

    sqs = clients("sqs")
    queue = attributes(sqs, got.queue_url)
    for name, value in resources.queue_attributes(30, "x", 4).items():
        if name != "RedrivePolicy":
            assert queue[name] == value, name
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": attributes(sqs, got.dead_letter_queue_url)["QueueArn"],
        "maxReceiveCount": 4,
    }
    dlq = attributes(sqs, got.dead_letter_queue_url)
    for name, value in resources.dead_letter_attributes().items():
        assert dlq[name] == value, name

    s3 = clients("s3")
    block = s3.get_public_access_block(Bucket=wanted.bucket)["PublicAccessBlockConfiguration"]
    assert block == resources.PUBLIC_ACCESS_BLOCK
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=wanted.bucket)["Rules"]
    assert rule["ID"] == resources.LIFECYCLE_RULE_ID
    (cors,) = s3.get_bucket_cors(Bucket=wanted.bucket)["CORSRules"]
    assert cors["AllowedOrigins"] == ["*"]


def test_what_exists_is_left_alone_or_corrected(moto, clients, monkeypatch):
    for name, value in aws.DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    wanted = names()
    got = aws.ensure(moto, wanted)
    sqs, s3 = clients("sqs"), clients("s3")
    sqs.set_queue_attributes(QueueUrl=got.queue_url, Attributes={"VisibilityTimeout": "7"})
    s3.delete_bucket_cors(Bucket=wanted.bucket)

    assert aws.ensure(moto, wanted) == got  # the local stack: used as they are
    assert attributes(sqs, got.queue_url)["VisibilityTimeout"] == "7"

    changes: list[str] = []
    queues = resources.ensure_publish_queues(
        sqs, wanted.queue, wanted.dead_letter_queue, 30, 4, changes.append
    )
    resources.ensure_bucket(s3, wanted.bucket, changes.append)
    resources.ensure_table(clients("dynamodb"), wanted.table, changes.append)
    assert changes == [
        f"set VisibilityTimeout on SQS queue {wanted.queue}",
        f"set CORS on {wanted.bucket} for *",
    ]
    assert queues.url == got.queue_url
    assert attributes(sqs, got.queue_url)["VisibilityTimeout"] == "30"


def test_a_queue_name_without_fifo_makes_a_standard_queue(clients):
    sqs = clients("sqs")
    name = f"plain-{uuid.uuid4().hex[:8]}"
    fifo = {"FifoQueue": "true", "DeduplicationScope": "messageGroup"}
    url = resources.ensure_queue(sqs, name, {**fifo, "VisibilityTimeout": "5"})
    got = attributes(sqs, url)
    assert "FifoQueue" not in got and "DeduplicationScope" not in got
    assert got["VisibilityTimeout"] == "5"


@pytest.mark.parametrize("correct", [True, False])
def test_a_table_with_another_key_is_refused(clients, correct):
    ddb = clients("dynamodb")
    name = f"other-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(resources.ResourceError, match="key schema.*pick another name"):
        resources.ensure_table(ddb, name, correct=correct)


def test_a_new_key_is_made_once_and_never_overwritten(clients):
    ssm, sm = clients("ssm"), clients("secretsmanager")
    name = f"/t-{uuid.uuid4().hex[:8]}/key"
    arn = f"arn:aws:ssm:us-east-1:123456789012:parameter{name}"
    changes: list[str] = []
    key = resources.ensure_key(ssm, sm, parameter=name, parameter_arn=arn, report=changes.append)
    assert key == resources.Key("SLIPWAY_KEY_PARAMETER", name, arn)
    value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    assert len(value) >= 32 and len(changes) == 1
    assert resources.ensure_key(ssm, sm, parameter=name, parameter_arn=arn) == key
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == value
