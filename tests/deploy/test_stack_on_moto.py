"""Path A created on moto: each stage's template, translated as CloudFormation
translates it (the `translated` fixture), created as a stack on a moto server,
then what exists read through boto3: the same facts the path B rehearsal checks
(tests/deploy/test_rehearsal.py), where moto's CloudFormation can create them."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

import boto3
import pytest

from . import expected
from .conftest import DUMMY, REGION, STAGES

# moto's CloudFormation cannot create these: AWS::ApiGatewayV2::* is not
# implemented, and AWS::ApiGateway::RestApi needs a Name where the template has a
# Body (the OpenAPI document). They are left out, with the Lambda permissions that
# name them, and every reference to them is replaced by a stand-in id. The APIs
# themselves are checked on the translated template (test_template.py) and
# deployed by Chalice in the path B rehearsal.
UNSUPPORTED = ("AWS::ApiGateway::", "AWS::ApiGatewayV2::")
ARTIFACTS = "artifacts-bucket"  # the translated template's CodeUri
KEY_PARAMETER = "/slipway-stack/key"  # KeyFromParameter: moto has no AWS::SecretsManager::Secret


def _stand_in(value: Any, dropped: set[str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in dropped:
            return f"standin{value['Ref'].lower()}"
        if set(value) == {"Fn::GetAtt"} and value["Fn::GetAtt"][0] in dropped:
            return f"standin{value['Fn::GetAtt'][0].lower()}"
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            text = value["Fn::Sub"]
            for name in dropped:
                text = text.replace("${" + name + "}", f"standin{name.lower()}")
            return {"Fn::Sub": text}
        return {k: _stand_in(v, dropped) for k, v in value.items()}
    if isinstance(value, list):
        return [_stand_in(v, dropped) for v in value]
    return value


def for_moto(template: dict[str, Any]) -> dict[str, Any]:
    resources = template["Resources"]
    dropped = {
        name
        for name, resource in resources.items()
        if resource["Type"].startswith(UNSUPPORTED) or resource["Type"] == "AWS::Lambda::Permission"
    }
    kept = {k: v for k, v in resources.items() if k not in dropped}
    out = {k: v for k, v in template.items() if k not in ("Resources", "Outputs")}
    out["Resources"] = _stand_in(kept, dropped)
    return out


@pytest.fixture(scope="module")
def stacks(moto: str, translated: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """stage -> {"name": the stack's, "resources": logical id -> physical id}."""
    session = boto3.session.Session(region_name=REGION, **DUMMY)
    s3 = session.client("s3", endpoint_url=moto)
    s3.create_bucket(Bucket=ARTIFACTS)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "")
    s3.put_object(Bucket=ARTIFACTS, Key="deployment.zip", Body=code.getvalue())
    cloudformation = session.client("cloudformation", endpoint_url=moto)
    out = {}
    for stage in STAGES:
        name = f"slipway-{stage}-{uuid.uuid4().hex[:6]}"
        cloudformation.create_stack(
            StackName=name,
            TemplateBody=json.dumps(for_moto(translated[stage])),
            Parameters=[{"ParameterKey": "KeyParameterName", "ParameterValue": KEY_PARAMETER}],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        [stack] = cloudformation.describe_stacks(StackName=name)["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
        summaries = cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
        out[stage] = {
            "name": name,
            "resources": {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in summaries},
        }
    return out


def client(moto: str, service: str) -> Any:
    return boto3.session.Session(region_name=REGION, **DUMMY).client(service, endpoint_url=moto)


@pytest.mark.parametrize("stage", STAGES)
def test_functions_with_the_stages_memory_timeout_and_log_retention(moto, stacks, stage):
    physical = stacks[stage]["resources"]
    lam, logs = client(moto, "lambda"), client(moto, "logs")
    got = {}
    for name, logical in expected.LOGICAL_IDS.items():
        function = lam.get_function(FunctionName=physical[logical])["Configuration"]
        got[name] = (function["Timeout"], function["MemorySize"])
        group = f"/aws/lambda/{function['FunctionName']}"
        [found] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        assert found["retentionInDays"] == expected.LOG_RETENTION_DAYS, group
    assert got == expected.SETTINGS[stage]


@pytest.mark.parametrize("stage", STAGES)
def test_both_event_sources_report_batch_item_failures(moto, stacks, stage):
    physical = stacks[stage]["resources"]
    lam = client(moto, "lambda")
    for name, queue in expected.SQS_SOURCES.items():
        function = physical[expected.LOGICAL_IDS[name]]
        [mapping] = lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["EventSourceArn"].endswith(f":{stacks[stage]['name']}-{queue}")


@pytest.mark.parametrize("stage", STAGES)
def test_the_keepalive_schedule(moto, stacks, stage):
    physical = stacks[stage]["resources"]
    events = client(moto, "events")
    scheduler = physical["KeepaliveScheduler"]
    rules = [
        r for r in events.list_rules()["Rules"] if r["Name"].startswith(stacks[stage]["name"] + "-")
    ]
    [rule] = rules
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    [target] = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"].endswith(f":function:{scheduler}")


@pytest.mark.parametrize("stage", STAGES)
def test_the_policy_names_the_stacks_resources(moto, stacks, stage):
    name = stacks[stage]["name"]
    iam = client(moto, "iam")
    [policy] = [
        p for p in iam.list_policies(Scope="Local")["Policies"] if p["PolicyName"].startswith(name)
    ]
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])[
        "PolicyVersion"
    ]["Document"]
    document = json.loads(version) if isinstance(version, str) else version
    resources = {statement["Sid"]: statement["Resource"] for statement in document["Statement"]}
    assert resources["Table"].endswith(f":table/{name}")
    assert resources["PublishQueue"].endswith(f":{name}-publish.fifo")
    assert resources["OrderedQueue"].endswith(f":{name}-ordered.fifo")
    assert resources["Key"].endswith(f":parameter{KEY_PARAMETER}")
    assert all(":standinwebsocketapi/api/" in arn for arn in resources["Connections"])
