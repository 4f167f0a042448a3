"""Path B rehearsed against a moto server standing in for an AWS account: the real
`slipway bootstrap`, `chalice deploy` (twice), `slipway finish`, `chalice delete`
and `slipway teardown`, each in its own process as an operator runs them, then
what exists inspected through boto3. moto's gaps that stop `chalice deploy` are
bridged in this process's moto server only (tests/deploy/moto_gaps.py).

What a rehearsal on moto cannot prove (quotas, real API Gateway and S3 behaviour,
IAM evaluation): docs/deploy.md, "What the rehearsal proves"."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from slipway_dev.moto_server import MotoServer

from . import expected, moto_gaps
from .conftest import DUMMY, REGION, ROOT, offline_env

# The fixture's deploys (about 40 s of CPU) run before the first test, in its time.
pytestmark = pytest.mark.timeout(600)

APP = "slipway"
BIN = Path(sys.executable).parent
# The Chalice stages rehearsed: a fresh name for each (moto's state is per process,
# shared with other test modules), with the settings of the committed stage it copies.
SOURCES = ("dev", "prod")


@dataclass
class Rehearsal:
    endpoint: str
    projects: dict[str, Path]  # the rehearsal's stage -> its own copy of the project
    stages: dict[str, str]  # committed stage -> the rehearsal's copy of it
    outputs: dict[str, list[str]] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = offline_env()
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID=DUMMY["aws_access_key_id"],
            AWS_SECRET_ACCESS_KEY=DUMMY["aws_secret_access_key"],
        )
        return env

    def project(self, stage: str) -> Path:
        return self.projects[stage]

    def run(self, *command: str) -> str:
        stage = command[command.index("--stage") + 1]
        proc = subprocess.run(
            [str(BIN / command[0]), *command[1:]],
            cwd=self.project(stage),
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{' '.join(command)}:\n{output}"
        return output

    def client(self, service: str) -> Any:
        # a session each: the stages are deployed from two threads
        session = boto3.session.Session(region_name=REGION, **DUMMY)
        return session.client(service, endpoint_url=self.endpoint)

    def deployed(self, stage: str) -> dict[str, dict[str, Any]]:
        path = self.project(stage) / ".chalice" / "deployed" / f"{stage}.json"
        return {r["name"]: r for r in json.loads(path.read_text())["resources"]}


def _project(tmp: Path, stages: dict[str, str]) -> Path:
    """A copy of what `chalice deploy` reads, with the rehearsal's stages (one copy
    a stage: bootstrap rewrites .chalice/config.json, and the stages run at once)."""
    project = tmp / "project"
    (project / ".chalice").mkdir(parents=True)
    shutil.copy(ROOT / "app.py", project)
    shutil.copy(ROOT / "requirements.txt", project)
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib")
    # The dependencies' zip `chalice package` built (the `packaged` fixture): the same
    # requirements give the same file name, so the deploys build no wheels.
    shutil.copytree(ROOT / ".chalice" / "deployments", project / ".chalice" / "deployments")
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for source, stage in stages.items():
        copy = json.loads(json.dumps(config["stages"][source]))
        copy["environment_variables"] = {"TARGET_URL": copy["environment_variables"]["TARGET_URL"]}
        copy.pop("iam_policy_file", None)
        config["stages"][stage] = copy
    (project / ".chalice" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return project


def snapshot(rehearsal: Rehearsal, stage: str) -> dict[str, Any]:
    """Everything of the stage that exists, by name, as boto3 describes it."""
    prefix = f"{APP}-{stage}"
    lam = rehearsal.client("lambda")
    functions = {
        f["FunctionName"]: f
        for f in lam.list_functions()["Functions"]
        if f["FunctionName"] == prefix or f["FunctionName"].startswith(prefix + "-")
    }
    mappings = [
        m
        for m in lam.list_event_source_mappings()["EventSourceMappings"]
        if m["FunctionArn"].split(":")[-1] in functions
        or m["EventSourceArn"].split(":")[-1].startswith(prefix + "-")
    ]
    v2 = rehearsal.client("apigatewayv2")
    websocket_apis = [a for a in v2.get_apis()["Items"] if a["Name"].startswith(prefix + "-")]
    rest_apis = [
        a
        for a in rehearsal.client("apigateway").get_rest_apis()["items"]
        if _serves(rehearsal, a, prefix)
    ]
    rules = [
        r
        for r in rehearsal.client("events").list_rules()["Rules"]
        if r["Name"].startswith(prefix + "-")
    ]
    iam = rehearsal.client("iam")
    roles = {
        r["RoleName"]: [
            iam.get_role_policy(RoleName=r["RoleName"], PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"]
        ]
        for r in iam.list_roles()["Roles"]
        if r["RoleName"] == prefix or r["RoleName"].startswith(prefix + "-")
    }
    logs = rehearsal.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{prefix}")
    log_groups = {
        g["logGroupName"]: g.get("retentionInDays")
        for g in logs["logGroups"]
        if g["logGroupName"] == f"/aws/lambda/{prefix}"
        or g["logGroupName"].startswith(f"/aws/lambda/{prefix}-")
    }
    tables = [t for t in rehearsal.client("dynamodb").list_tables()["TableNames"] if t == prefix]
    queues = [
        u
        for u in rehearsal.client("sqs")
        .list_queues(QueueNamePrefix=prefix + "-")
        .get("QueueUrls", [])
    ]
    buckets = [
        b["Name"]
        for b in rehearsal.client("s3").list_buckets()["Buckets"]
        if b["Name"].startswith(prefix + "-")
    ]
    parameters = [
        p["Name"]
        for p in rehearsal.client("ssm").describe_parameters()["Parameters"]
        if p["Name"].startswith(f"/{prefix}/")
    ]
    cloudwatch = rehearsal.client("cloudwatch")
    alarms = {
        a["AlarmName"]: a
        for a in cloudwatch.describe_alarms(AlarmNamePrefix=prefix + "-")["MetricAlarms"]
    }
    dashboards = [
        d["DashboardName"]
        for d in cloudwatch.list_dashboards(DashboardNamePrefix=prefix)["DashboardEntries"]
        if d["DashboardName"] == prefix
    ]
    return {
        "alarms": alarms,
        "dashboards": dashboards,
        "functions": functions,
        "mappings": mappings,
        "websocket_apis": websocket_apis,
        "rest_apis": rest_apis,
        "rules": rules,
        "roles": roles,
        "log_groups": log_groups,
        "tables": tables,
        "queues": queues,
        "buckets": buckets,
        "parameters": parameters,
    }


def _serves(rehearsal: Rehearsal, api: dict[str, Any], function: str) -> bool:
    """Whether a REST API integrates the function (Chalice names every stage's REST
    API after the app alone)."""
    if api["name"] != APP:
        return False
    gateway = rehearsal.client("apigateway")
    for resource in gateway.get_resources(restApiId=api["id"], limit=500)["items"]:
        for method in resource.get("resourceMethods", {}):
            integration = gateway.get_integration(
                restApiId=api["id"], resourceId=resource["id"], httpMethod=method
            )
            return f":function:{function}/invocations" in integration.get("uri", "")
    return False


def counts(state: dict[str, Any]) -> dict[str, int]:
    return {kind: len(things) for kind, things in state.items()}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory, packaged: Any) -> Iterator[Rehearsal]:
    """Path B, as docs/deploy.md has it, for a copy of each committed stage, the two
    at once: prod deployed and finished twice; dev then deleted, deployed again (a
    new WebSocket API) and finished. States recorded along the way."""
    moto_gaps.install()
    server = MotoServer()
    endpoint = server.start()
    tag = uuid.uuid4().hex[:6]
    stages = {source: f"r{source}{tag}" for source in SOURCES}
    projects = {
        stage: _project(tmp_path_factory.mktemp("rehearsal"), {source: stage})
        for source, stage in stages.items()
    }
    r = Rehearsal(endpoint=endpoint, projects=projects, stages=stages)

    def deploy(source: str, stage: str) -> None:
        out = r.outputs.setdefault(stage, [])
        out.append(r.run("slipway", "bootstrap", "--stage", stage))
        out.append(r.run("chalice", "deploy", "--stage", stage))
        out.append(r.run("slipway", "finish", "--stage", stage))
        r.states[f"{stage}/first"] = snapshot(r, stage)
        if source == "prod":  # a second deploy, then finish: nothing duplicated
            out.append(r.run("chalice", "deploy", "--stage", stage))
            out.append(r.run("slipway", "finish", "--stage", stage))
        r.states[f"{stage}/second"] = snapshot(r, stage)
        if source == "dev":  # delete and deploy again: a new WebSocket API
            r.states[f"{stage}/old_api"] = {
                "id": r.deployed(stage)["websocket_api"]["websocket_api_id"]
            }
            out.append(r.run("chalice", "delete", "--stage", stage))
            out.append(r.run("chalice", "deploy", "--stage", stage))
            r.states[f"{stage}/redeployed"] = snapshot(r, stage)
            out.append(r.run("slipway", "finish", "--stage", stage))
            r.states[f"{stage}/refinished"] = snapshot(r, stage)

    try:
        with ThreadPoolExecutor(len(stages)) as pool:  # the two stages at once: 2 cores
            for done in [pool.submit(deploy, *item) for item in stages.items()]:
                done.result()
        yield r
    finally:
        server.stop()


def _function_names(stage: str) -> dict[str, str]:
    return {name: expected.function_name(APP, stage, name) for name in expected.SETTINGS["dev"]}


@pytest.mark.parametrize("source", SOURCES)
def test_seven_functions_with_the_stages_memory_and_timeout(rehearsal, source):
    stage = rehearsal.stages[source]
    functions = rehearsal.states[f"{stage}/second"]["functions"]
    names = _function_names(stage)
    assert set(functions) == set(names.values())
    got = {
        name: (functions[function]["Timeout"], functions[function]["MemorySize"])
        for name, function in names.items()
    }
    assert got == expected.SETTINGS[source]


def test_a_second_deploy_duplicates_nothing(rehearsal):
    stage = rehearsal.stages["prod"]
    first, second = rehearsal.states[f"{stage}/first"], rehearsal.states[f"{stage}/second"]
    assert counts(second) == counts(first)
    assert counts(second) | {"functions": 7, "mappings": 2, "websocket_apis": 1} == counts(second)
    assert "nothing to change" in rehearsal.outputs[stage][4]  # the second finish


@pytest.mark.parametrize("source", SOURCES)
def test_both_event_sources_report_batch_item_failures(rehearsal, source):
    """Chalice creates them without FunctionResponseTypes: Lambda would ignore the
    functions' batchItemFailures and delete a batch with a failed job."""
    stage = rehearsal.stages[source]
    mappings = rehearsal.states[f"{stage}/second"]["mappings"]
    by_function = {m["FunctionArn"].split(":")[-1]: m for m in mappings}
    assert len(by_function) == len(mappings) == 2
    for name, queue in expected.SQS_SOURCES.items():
        mapping = by_function[expected.function_name(APP, stage, name)]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["EventSourceArn"].endswith(f":{APP}-{stage}-{queue}")
        assert mapping["BatchSize"] == 10


def test_websocket_routes_and_their_integrations(rehearsal):
    stage = rehearsal.stages["dev"]
    [api] = rehearsal.states[f"{stage}/refinished"]["websocket_apis"]
    v2 = rehearsal.client("apigatewayv2")
    integrations = {i["IntegrationId"]: i for i in v2.get_integrations(ApiId=api["ApiId"])["Items"]}
    routes = {r["RouteKey"]: r for r in v2.get_routes(ApiId=api["ApiId"])["Items"]}
    handlers = {
        "$connect": "websocket_connect",
        "$default": "websocket_message",
        "$disconnect": "websocket_disconnect",
    }
    assert set(routes) == set(handlers)
    for key, name in handlers.items():
        integration = integrations[routes[key]["Target"].removeprefix("integrations/")]
        function = expected.function_name(APP, stage, name)
        assert f":function:{function}/invocations" in integration["IntegrationUri"]
    [api_stage] = v2.get_stages(ApiId=api["ApiId"])["Items"]
    assert api_stage["StageName"] == "api"


def test_every_control_route_is_on_the_rest_api(rehearsal):
    import app

    stage = rehearsal.stages["dev"]
    [api] = rehearsal.states[f"{stage}/refinished"]["rest_apis"]
    resources = rehearsal.client("apigateway").get_resources(restApiId=api["id"], limit=500)
    deployed = {r["path"]: set(r.get("resourceMethods", {})) for r in resources["items"]}
    for path, methods in app.app.routes.items():
        assert set(methods) <= deployed.get(path, set()), path


def test_the_keepalive_schedule(rehearsal):
    stage = rehearsal.stages["dev"]
    [rule] = rehearsal.states[f"{stage}/refinished"]["rules"]
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    assert rule["State"] == "ENABLED"
    [target] = rehearsal.client("events").list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"].endswith(
        f":function:{expected.function_name(APP, stage, 'keepalive_scheduler')}"
    )


def _connections_resources(document: dict[str, Any]) -> list[str]:
    [statement] = [s for s in document["Statement"] if s.get("Sid") == "Connections"]
    return list(statement["Resource"])


def _pinned(state: dict[str, Any]) -> set[str]:
    """The WebSocket API ids the roles' policies allow @connections on."""
    return {
        arn.split(":")[-1].split("/")[0]
        for documents in state["roles"].values()
        for document in documents
        for arn in _connections_resources(document)
    }


@pytest.mark.parametrize("source", SOURCES)
def test_every_role_names_the_websocket_api_that_exists(rehearsal, source):
    stage = rehearsal.stages[source]
    state = rehearsal.states[f"{stage}/second"]
    [api] = state["websocket_apis"]
    assert len(state["roles"]) == 7
    assert all(len(documents) == 1 for documents in state["roles"].values())
    assert _pinned(state) == {api["ApiId"]}


def test_a_redeploy_after_delete_gets_its_new_api_id_into_the_policy(rehearsal):
    """`chalice delete` + `chalice deploy` makes a new WebSocket API while the policy
    names the old one: every @connections call would be denied. `slipway finish`
    says so and corrects it."""
    stage = rehearsal.stages["dev"]
    old = rehearsal.states[f"{stage}/old_api"]["id"]
    redeployed = rehearsal.states[f"{stage}/redeployed"]
    [api] = redeployed["websocket_apis"]
    assert api["ApiId"] != old
    assert _pinned(redeployed) == {old}  # what Chalice alone leaves
    assert "WARNING" in rehearsal.outputs[stage][-1] and old in rehearsal.outputs[stage][-1]
    assert _pinned(rehearsal.states[f"{stage}/refinished"]) == {api["ApiId"]}
    assert rehearsal.states[f"{stage}/refinished"]["mappings"][0]["FunctionResponseTypes"] == [
        "ReportBatchItemFailures"
    ]


@pytest.mark.parametrize("source", SOURCES)
def test_log_retention_on_the_groups_the_functions_write_to(rehearsal, source):
    stage = rehearsal.stages[source]
    groups = rehearsal.states[f"{stage}/second"]["log_groups"]
    assert groups == {
        f"/aws/lambda/{function}": expected.LOG_RETENTION_DAYS
        for function in _function_names(stage).values()
    }


def _attempt(rehearsal: Rehearsal, stage: str, *args: str, answer: str = "") -> Any:
    return subprocess.run(
        [str(BIN / "slipway"), "teardown", "--stage", stage, *args],
        cwd=rehearsal.project(stage),
        env=rehearsal.env(),
        input=answer,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_chalice_delete_and_teardown_leave_nothing(rehearsal):
    """Runs last (it deletes the rehearsal's stages), both stages at once."""

    def remove(stage: str) -> dict[str, Any]:
        refused = _attempt(rehearsal, stage, "--yes")
        assert refused.returncode == 1 and "chalice delete" in refused.stderr
        rehearsal.run("chalice", "delete", "--stage", stage)
        unconfirmed = _attempt(rehearsal, stage, answer="no\n")
        assert unconfirmed.returncode == 1 and "not confirmed" in unconfirmed.stderr
        assert snapshot(rehearsal, stage)["tables"] == [f"{APP}-{stage}"]
        rehearsal.run("slipway", "teardown", "--stage", stage, "--yes")
        return {kind: things for kind, things in snapshot(rehearsal, stage).items() if things}

    with ThreadPoolExecutor(len(rehearsal.stages)) as pool:
        left = dict(
            zip(rehearsal.stages.values(), pool.map(remove, rehearsal.stages.values()), strict=True)
        )
    assert left == {stage: {} for stage in rehearsal.stages.values()}


@pytest.mark.parametrize("source", SOURCES)
def test_finish_puts_the_alarms_and_the_dashboard(rehearsal, source):
    """The same alarms as the template's (slipway_dev/alarms.py), on the stage's own
    queues and worker, with the default thresholds; a second finish changes none."""
    stage = rehearsal.stages[source]
    state = rehearsal.states[f"{stage}/second"]
    prefix = f"{APP}-{stage}"
    assert set(state["alarms"]) == {
        f"{prefix}-dead-letters",
        f"{prefix}-oldest-publish",
        f"{prefix}-worker-errors",
        f"{prefix}-backend-errors",
        f"{prefix}-connections-throttles",
    }
    dead = state["alarms"][f"{prefix}-dead-letters"]
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": f"{prefix}-publish-dlq.fifo"}]
    oldest = state["alarms"][f"{prefix}-oldest-publish"]
    assert oldest["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert oldest["Threshold"] == 300
    worker = state["alarms"][f"{prefix}-worker-errors"]
    assert worker["Dimensions"] == [{"Name": "FunctionName", "Value": f"{prefix}-worker"}]
    assert worker["Dimensions"][0]["Value"] in state["functions"]
    throttles = state["alarms"][f"{prefix}-connections-throttles"]
    assert {"Name": "stage", "Value": stage} in throttles["Dimensions"]
    assert state["dashboards"] == [prefix]
    assert rehearsal.states[f"{stage}/first"]["alarms"].keys() == state["alarms"].keys()
