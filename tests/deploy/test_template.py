"""The CloudFormation path: `chalice package --merge-template infra/resources.json`
gives one valid stack with every resource, wired into every function."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest

from chalicelib import settings
from chalicelib.aws.table import KEEPALIVE_INDEX
from slipway_dev import bootstrap
from slipway_dev import resources as slipway_resources

from . import expected, iam
from .conftest import REGION, ROOT, STAGES

FUNCTIONS = {
    "WebsocketConnect": "app.ws_connect",
    "WebsocketMessage": "app.ws_message",
    "WebsocketDisconnect": "app.ws_disconnect",
    "APIHandler": "app.app",
    "Worker": "app.worker",
    "KeepaliveScheduler": "app.keepalive_scheduler",
    "OrderedForwarder": "app.ordered_forwarder",
}
API_STAGE = "api"
# Stand-in values for what CloudFormation fills in at deploy time.
REFS = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "slipway-test",
    "AWS::URLSuffix": "amazonaws.com",
    "WebsocketAPI": "wsapi12345",
    "RestAPI": "restapi123",
    "Table": "slipway-test",
    "PublishQueue": "https://sqs.us-east-1.amazonaws.com/123456789012/slipway-test-publish.fifo",
    "OrderedQueue": "https://sqs.us-east-1.amazonaws.com/123456789012/slipway-test-ordered.fifo",
    "BlobBucket": "slipway-test-blobbucket-1a2b3c",
    "GripKey": "arn:aws:secretsmanager:us-east-1:123456789012:secret:GripKey-AbCdEf",
    "KeyParameterName": "/slipway-test/key",
}
ATTRIBUTES = {
    "Table.Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/slipway-test",
    "PublishQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:slipway-test-publish.fifo",
    "PublishQueue.QueueName": "slipway-test-publish.fifo",
    "OrderedQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:slipway-test-ordered.fifo",
    "OrderedQueue.QueueName": "slipway-test-ordered.fifo",
    "BlobBucket.Arn": "arn:aws:s3:::slipway-test-blobbucket-1a2b3c",
}
KEY_SOURCES = {  # KeyFromParameter -> what the functions read the key from
    True: ("SLIPWAY_KEY_PARAMETER", "ssm:GetParameter"),
    False: ("SLIPWAY_KEY_SECRET", "secretsmanager:GetSecretValue"),
}


def resolved(value: Any, from_parameter: bool) -> Any:
    conditions = {"KeyFromParameter": from_parameter, "KeyFromSecret": not from_parameter}
    return iam.resolve(value, REFS, ATTRIBUTES, conditions)


def lint(template: dict[str, Any]) -> list[str]:
    from cfnlint.api import lint as cfn_lint

    return [str(m) for m in cfn_lint(json.dumps(template, indent=1), regions=[REGION])]


@pytest.mark.parametrize("stage", STAGES)
def test_merged_template_passes_cfn_lint(packaged, stage):
    assert lint(packaged[stage]) == []


@pytest.mark.parametrize("stage", STAGES)
def test_translated_template_passes_cfn_lint(translated, stage):
    """cfn-lint skips some checks (IAM actions, event source mappings) on SAM
    templates; the translated template gets all of them."""
    assert lint(translated[stage]) == []


def test_cfn_lint_catches_a_broken_template(packaged):
    """The lint above is not vacuous: a dangling reference fails it."""
    broken = copy.deepcopy(packaged["dev"])
    broken["Resources"]["PublishQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] = {
        "Fn::GetAtt": ["NoSuchQueue", "Arn"]
    }
    assert any("NoSuchQueue" in m for m in lint(broken))


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_is_merged_with_chalices(packaged, stage):
    resources = packaged[stage]["Resources"]
    functions = {k for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}
    assert functions == set(FUNCTIONS)
    for name, handler in FUNCTIONS.items():
        assert resources[name]["Properties"]["Handler"] == handler
    untyped = [k for k, v in resources.items() if "Type" not in v]
    assert untyped == [], "the merge template names resources chalice no longer makes"


@pytest.mark.parametrize("stage", STAGES)
def test_sqs_event_sources_report_batch_item_failures(translated, stage):
    mappings = {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in translated[stage]["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    queues = {"Worker": "PublishQueue.Arn", "OrderedForwarder": "OrderedQueue.Arn"}
    assert set(mappings) == set(queues)
    for function, queue in queues.items():
        mapping = mappings[function]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert resolved(mapping["EventSourceArn"], True) == ATTRIBUTES[queue]
        assert mapping["BatchSize"] == 10


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_has_the_stages_memory_and_timeout(packaged, stage):
    """docs/deploy.md's table, in the template `make package STAGE=<stage>` writes to
    build/package/sam.json (prod: the WebSocket functions' 512 MB)."""
    resources = packaged[stage]["Resources"]
    got = {
        name: (
            resources[logical]["Properties"]["Timeout"],
            resources[logical]["Properties"]["MemorySize"],
        )
        for name, logical in expected.LOGICAL_IDS.items()
    }
    assert got == expected.SETTINGS[stage]


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_logs_to_a_group_with_retention(translated, stage):
    """Each function's log group, /aws/lambda/<the function's name>, is in the stack
    with the documented retention."""
    resources = translated[stage]["Resources"]
    groups = {
        r["Properties"]["LogGroupName"]["Fn::Sub"]: r["Properties"]["RetentionInDays"]
        for r in resources.values()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    assert groups == {
        f"/aws/lambda/${{{logical}}}": expected.LOG_RETENTION_DAYS
        for logical in expected.LOGICAL_IDS.values()
    }


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("from_parameter", [True, False])
def test_every_function_gets_the_stacks_resources(packaged, stage, from_parameter):
    variable, _ = KEY_SOURCES[from_parameter]
    key = REFS["KeyParameterName"] if from_parameter else REFS["GripKey"]
    for name in FUNCTIONS:
        props = packaged[stage]["Resources"][name]["Properties"]
        env = resolved(props["Environment"]["Variables"], from_parameter)
        assert env["SLIPWAY_TABLE"] == REFS["Table"]
        assert env["SLIPWAY_QUEUE_URL"] == REFS["PublishQueue"]
        assert env["SLIPWAY_QUEUE_NAME"] == ATTRIBUTES["PublishQueue.QueueName"]
        assert env["SLIPWAY_ORDERED_QUEUE_URL"] == REFS["OrderedQueue"]
        assert env["SLIPWAY_ORDERED_QUEUE_NAME"] == ATTRIBUTES["OrderedQueue.QueueName"]
        assert env["SLIPWAY_BUCKET"] == REFS["BlobBucket"]
        assert env[variable] == key
        assert {"SLIPWAY_KEY", "SLIPWAY_KEY_PARAMETER", "SLIPWAY_KEY_SECRET"} & set(env) == {
            variable
        }
        assert env["TARGET_URL"].startswith("https://")


@pytest.mark.parametrize("stage", STAGES)
def test_every_functions_environment_is_valid_settings(packaged, stage):
    for name in FUNCTIONS:
        props = packaged[stage]["Resources"][name]["Properties"]
        env = resolved(props["Environment"]["Variables"], True)
        try:
            settings.load(env)
        except settings.SettingsError as exc:
            if "unknown setting SLIPWAY_KEY_" in str(exc):
                pytest.skip("chalicelib/settings.py does not take SLIPWAY_KEY_PARAMETER yet")
            raise


@pytest.mark.parametrize("stage", STAGES)
def test_queues_tables_and_bucket(packaged, stage):
    resources = packaged[stage]["Resources"]
    worker_timeout = resources["Worker"]["Properties"]["Timeout"]
    for name in FUNCTIONS:
        if name not in ("Worker", "KeepaliveScheduler", "OrderedForwarder"):  # API Gateway's
            assert resources[name]["Properties"]["Timeout"] < worker_timeout
            assert resources[name]["Properties"]["Timeout"] <= 29  # API Gateway's limit

    queue = resources["PublishQueue"]["Properties"]
    dlq = resources["PublishDeadLetterQueue"]["Properties"]
    assert queue["FifoQueue"] is True and dlq["FifoQueue"] is True
    assert queue["VisibilityTimeout"] >= bootstrap.VISIBILITY_FACTOR * worker_timeout
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["PublishDeadLetterQueue", "Arn"]},
        "maxReceiveCount": slipway_resources.MAX_RECEIVE_COUNT,
    }
    assert resolved(queue["QueueName"], True) == "slipway-test-publish.fifo"
    ordered = resources["OrderedQueue"]["Properties"]
    forwarder_timeout = resources["OrderedForwarder"]["Properties"]["Timeout"]
    assert ordered["FifoQueue"] is True
    assert ordered["VisibilityTimeout"] >= bootstrap.VISIBILITY_FACTOR * forwarder_timeout
    assert ordered["RedrivePolicy"] == queue["RedrivePolicy"]
    assert resolved(ordered["QueueName"], True) == "slipway-test-ordered.fifo"

    table = resources["Table"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
        ("ka_slot", "S"),
    }
    # The one index, named as the store queries it (chalicelib.grip.limits).
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == [KEEPALIVE_INDEX]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}

    bucket = resources["BlobBucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == 1
    assert rule["Prefix"] == ""
    (cors,) = bucket["CorsConfiguration"]["CorsRules"]
    assert {"GET", "PUT"} <= set(cors["AllowedMethods"])
    assert cors["AllowedOrigins"] == {"Ref": "BlobCorsOrigins"}
    assert packaged[stage]["Parameters"]["BlobCorsOrigins"]["Default"] == "*"


def _sqs_attributes(properties: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation queue's properties as SQS attributes (strings; the redrive
    policy parsed, its target left out: the template names it by reference)."""
    out: dict[str, Any] = {}
    for name, value in properties.items():
        if name == "QueueName":
            continue
        if name == "RedrivePolicy":
            value = {"maxReceiveCount": value["maxReceiveCount"]}
        elif isinstance(value, bool):
            value = str(value).lower()
        else:
            value = str(value)
        out[name] = value
    return out


def _wanted_queue(attributes: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(attributes)
    if "RedrivePolicy" in out:
        out["RedrivePolicy"] = {
            "maxReceiveCount": json.loads(out["RedrivePolicy"])["maxReceiveCount"]
        }
    return out


def test_template_declares_what_bootstrap_and_the_local_stack_create():
    """infra/resources.json and slipway_dev/resources.py: the same table, queues and
    bucket settings, each written twice (CloudFormation's spelling, the API's)."""
    template = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]
    made = slipway_resources

    table = template["Table"]["Properties"]
    assert {k: v for k, v in table.items() if k in made.TABLE_SCHEMA} == made.TABLE_SCHEMA
    assert set(table) == {*made.TABLE_SCHEMA, "TableName", "TimeToLiveSpecification"}
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": made.TTL_ATTRIBUTE,
        "Enabled": True,
    }

    dlq = template["PublishDeadLetterQueue"]["Properties"]
    assert _sqs_attributes(dlq) == made.dead_letter_attributes()
    queue = template["PublishQueue"]["Properties"]
    wanted = made.queue_attributes(queue["VisibilityTimeout"], "arn:of:the:dlq")
    assert _sqs_attributes(queue) == _wanted_queue(wanted)
    ordered = template["OrderedQueue"]["Properties"]
    assert _sqs_attributes(ordered) == _wanted_queue(wanted)

    bucket = template["BlobBucket"]["Properties"]
    # The template spells out two settings that AWS gives every new bucket (since
    # 2023) and that bootstrap therefore leaves to AWS: no ACLs, SSE-S3.
    assert set(bucket) == {
        "PublicAccessBlockConfiguration",
        "LifecycleConfiguration",
        "CorsConfiguration",
        "OwnershipControls",
        "BucketEncryption",
    }
    assert bucket["PublicAccessBlockConfiguration"] == made.PUBLIC_ACCESS_BLOCK
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    ours = made.lifecycle_rule()
    assert rule == {
        "Id": ours["ID"],
        "Status": ours["Status"],
        "Prefix": ours["Filter"]["Prefix"],
        "ExpirationInDays": ours["Expiration"]["Days"],
        "AbortIncompleteMultipartUpload": ours["AbortIncompleteMultipartUpload"],
    }
    (cors,) = bucket["CorsConfiguration"]["CorsRules"]
    (api_cors,) = made.cors_rules(["*"])
    assert cors == {
        "AllowedMethods": api_cors["AllowedMethods"],
        "AllowedOrigins": {"Ref": "BlobCorsOrigins"},
        "AllowedHeaders": api_cors["AllowedHeaders"],
        "ExposedHeaders": api_cors["ExposeHeaders"],
        "MaxAge": api_cors["MaxAgeSeconds"],
    }


@pytest.mark.parametrize("stage", STAGES)
def test_urls_name_the_api_stage(packaged, stage):
    """The stage name is spelt out where a reference would make a cycle (the role's
    policy) or lose the trailing-slash-free form gripcontrol needs."""
    template = packaged[stage]
    resources = template["Resources"]
    assert resources["WebsocketAPIStage"]["Properties"]["StageName"] == API_STAGE
    assert resources["RestAPI"]["Properties"]["StageName"] == API_STAGE
    outputs = {
        name: resolved(template["Outputs"][name]["Value"], False)
        for name in ("EndpointURL", "GripControlURI", "WebsocketConnectEndpointURL")
    }
    assert outputs["EndpointURL"] == outputs["GripControlURI"] + "/"
    assert outputs["GripControlURI"] == f"https://restapi123.execute-api.{REGION}.amazonaws.com/api"
    assert outputs["WebsocketConnectEndpointURL"] == (
        f"wss://wsapi12345.execute-api.{REGION}.amazonaws.com/{API_STAGE}/"
    )


@pytest.mark.parametrize("stage", STAGES)
def test_functions_have_only_the_stacks_policy(packaged, stage):
    resources = packaged[stage]["Resources"]
    roles = {k: v for k, v in resources.items() if v.get("Type") == "AWS::IAM::Role"}
    assert len(roles) == len(FUNCTIONS)  # chalice: one role per function without autogen
    for name, role in roles.items():
        assert role["Properties"]["Policies"] == [], name
        assert role["Properties"]["ManagedPolicyArns"] == [{"Ref": "FunctionPolicy"}], name
    for name in FUNCTIONS:
        role = resources[name]["Properties"]["Role"]["Fn::GetAtt"][0]
        assert role in roles


def test_makefile_packages_with_the_merge_template():
    out = subprocess.run(
        ["make", "-n", "package", "STAGE=prod", "PACKAGE_DIR=/tmp/x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    command = " ".join(out.replace("\\\n", " ").split())
    assert "chalice package --stage prod --merge-template infra/resources.json /tmp/x" in command
    assert "AWS_DEFAULT_REGION=" in command


def test_the_documented_deploy_uploads_the_template(packaged):
    """CloudFormation takes at most 51,200 bytes of template inline; slipway's is
    close to it (`aws cloudformation package` only shortens the code URIs), so the
    documented `aws cloudformation deploy` passes --s3-bucket."""
    size = max(len(json.dumps(t, indent=2)) for t in packaged.values())
    assert size > 51_200 - 16_000  # close enough to the limit to need the bucket
    docs = (ROOT / "docs" / "deploy.md").read_text()
    command = docs.split("aws cloudformation deploy ", 1)[1].split("\n```", 1)[0]
    assert "--s3-bucket" in command.split("aws ", 1)[0]


ALARMS = {
    "DeadLetterAlarm",
    "OldestPublishAlarm",
    "WorkerErrorsAlarm",
    "BackendErrorsAlarm",
    "ThrottlesAlarm",
}


@pytest.mark.parametrize("stage", STAGES)
def test_the_alarms_and_the_dashboard_are_in_the_template(packaged, stage):
    """Path A's alarms and dashboard are slipway_dev/alarms.py's, as `slipway finish`
    puts them (path B), with the thresholds as parameters of the same defaults."""
    from slipway_dev import alarms

    template = packaged[stage]
    resources = template["Resources"]
    assert {n for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"} == ALARMS
    for name, resource in alarms.template_resources().items():
        assert resources[name] == resource
    for name, parameter in alarms.TEMPLATE_PARAMETERS.items():
        assert template["Parameters"][name]["Default"] == parameter["Default"]
    # Our metrics' stage dimension is the stack's name: every function is told it.
    for name in FUNCTIONS:
        env = resources[name]["Properties"]["Environment"]["Variables"]
        assert env["SLIPWAY_STAGE"] == {"Ref": "AWS::StackName"}
    throttles = resources["ThrottlesAlarm"]["Properties"]
    assert throttles["Namespace"] == "slipway" and throttles["MetricName"] == "Deliveries"
    assert {"Name": "outcome", "Value": "throttled"} in throttles["Dimensions"]
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert '"Deliveries"' in body and "${PublishQueue.QueueName}" in body
    json.loads(body)  # valid JSON once CloudFormation substitutes
