"""Path B's steps around `chalice deploy` that Chalice cannot do (docs/deploy.md):

- `slipway finish --stage NAME`, after every `chalice deploy`: what Chalice 1.34
  deploys differently from the CloudFormation path, made the same.
  - The SQS event sources of `worker` and `ordered_forwarder` report batch item
    failures (`FunctionResponseTypes: [ReportBatchItemFailures]`). Chalice creates
    them without it, and Lambda then ignores the `batchItemFailures` the functions
    return: a batch with a failed job would count as done and be deleted.
  - The API handler's log group, `/aws/lambda/<app>-<stage>` (Chalice names the
    function `<app>-<stage>` but would put the retention on
    `/aws/lambda/<app>-<stage>-api_handler`), gets the stage's log retention.
  - The policy names the WebSocket API that exists now: `.chalice/policy-<stage>.json`
    gets the id from `.chalice/deployed/<stage>.json` (nothing else in it changes),
    and the policy is put on every role of the deployment. A policy pinned to another API (left by
    `chalice delete` + `chalice deploy`, which denies every @connections call) is
    said loudly, then corrected.
  A second run changes nothing.
- `slipway teardown --stage NAME`, after `chalice delete`: deletes what bootstrap
  and finish made (table, the three queues, the bucket and its objects, the SSM key
  parameter) and the functions' log groups, which `chalice delete` keeps. A Secrets
  Manager secret named with `--key-secret` existed before bootstrap and is kept.
  It asks for the stage's name unless given `--yes`, and refuses while `chalice
  delete` has not run.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from . import alarms, bootstrap, policy

log = logging.getLogger("slipway_dev.postdeploy")

REPORT_BATCH_ITEM_FAILURES = ["ReportBatchItemFailures"]
CONNECTIONS_SID = "Connections"


class PostDeployError(RuntimeError):
    """What is in the way; the message says what to do."""


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def deployed_resources(config_dir: Path, stage: str) -> list[dict[str, Any]]:
    """What `chalice deploy` recorded for the stage (empty after `chalice delete`)."""
    path = config_dir / "deployed" / f"{stage}.json"
    try:
        return list(json.loads(path.read_text())["resources"])
    except (OSError, ValueError, KeyError):
        return []


def pinned_api_ids(document: dict[str, Any]) -> set[str]:
    """The WebSocket API ids the policy's @connections statement names."""
    ids = set()
    for statement in document.get("Statement", []):
        if statement.get("Sid") != CONNECTIONS_SID:
            continue
        arns = statement.get("Resource", [])
        for arn in [arns] if isinstance(arns, str) else arns:
            ids.add(arn.split(":", 5)[-1].split("/", 1)[0])
    return ids


def unknown_functions(
    config: dict[str, Any], stage: str, deployed: list[dict[str, Any]]
) -> list[str]:
    """The names under `lambda_functions` (top level and the stage's) that name no
    deployed function: Chalice silently ignores them."""
    names = {r["name"] for r in deployed if r.get("resource_type") == "lambda_function"}
    configured = set(config.get("lambda_functions", {}))
    configured |= set(config.get("stages", {}).get(stage, {}).get("lambda_functions", {}))
    return sorted(configured - names)


def pin_api(document: dict[str, Any], api_id: str) -> dict[str, Any]:
    """The policy with its @connections statement naming only this WebSocket API
    (bootstrap's policy names any API id until the first deploy)."""
    document = json.loads(json.dumps(document))
    for statement in document.get("Statement", []):
        if statement.get("Sid") != CONNECTIONS_SID:
            continue
        arns = statement["Resource"]
        pinned = []
        for arn in [arns] if isinstance(arns, str) else arns:
            head, resource = arn.rsplit(":", 1)
            pinned.append(f"{head}:{api_id}/{resource.split('/', 1)[1]}")
        statement["Resource"] = pinned if not isinstance(arns, str) else pinned[0]
    return document


def api_handler_log_group(app: str, stage: str) -> str:
    """Chalice names the API handler `<app>-<stage>`; Lambda logs to this group."""
    return f"/aws/lambda/{app}-{stage}"


def _stage_retention(config: dict[str, Any], stage: str) -> int | None:
    """The stage's `log_retention_in_days` (Chalice's lookup: the stage's, else the
    top level's), which the API handler's own setting of 0 does not override."""
    days = config.get("stages", {}).get(stage, {}).get("log_retention_in_days")
    if days is None:
        days = config.get("log_retention_in_days")
    return int(days) if days else None


# -- finish ----------------------------------------------------------------------


def finish(
    stage: str,
    session: Any,
    config_path: Path = bootstrap.CONFIG,
    *,
    endpoint_url: str | None = None,
    say: Callable[[str], None] = log.info,
    thresholds: alarms.Thresholds | None = None,
) -> list[str]:
    """Make the deployed stage what path A deploys; returns the changes made."""
    config_path = Path(config_path)
    config_dir = config_path.parent
    deployed = deployed_resources(config_dir, stage)
    if not deployed:
        raise PostDeployError(
            f"nothing deployed for stage {stage} (.chalice/deployed/{stage}.json): "
            f"run `chalice deploy --stage {stage}` first"
        )
    config = json.loads(config_path.read_text())
    app = config["app_name"]

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)

    changes: list[str] = []
    for name in unknown_functions(config, stage, deployed):
        say(
            f"WARNING: .chalice/config.json sets lambda_functions.{name} for stage {stage}, "
            "but no function has that name: Chalice ignores its settings (the WebSocket "
            "functions are websocket_connect, websocket_message, websocket_disconnect)"
        )
    policy_path = config_dir / f"policy-{stage}.json"
    try:
        before = json.loads(policy_path.read_text())
    except (OSError, ValueError):
        before = {}
    if pinned_api_ids(before) == set():
        raise PostDeployError(
            f"no @connections statement in {policy_path}: run `slipway bootstrap --stage "
            f"{stage}` (it writes the policy), then `chalice deploy` and this again"
        )
    api_id, _ = bootstrap.deployed_apis(config_dir, stage)
    if not api_id:
        raise PostDeployError(
            f"no WebSocket API in .chalice/deployed/{stage}.json: run `chalice deploy` first"
        )
    stale = pinned_api_ids(before) - {api_id, policy.ANY_API}
    if stale:
        say(
            f"WARNING: {policy_path} names the WebSocket API {', '.join(sorted(stale))}, "
            f"which is not this stage's ({api_id}): every @connections call was denied. "
            "Correcting it now."
        )
    document = pin_api(before, api_id)
    if document != before:
        policy_path.write_text(json.dumps(document, indent=2) + "\n")
        changes.append(f"wrote {policy_path}: @connections of the WebSocket API {api_id} only")

    iam = client("iam")
    text = json.dumps(document)
    for resource in deployed:
        if resource.get("resource_type") != "iam_role":
            continue
        role = resource["role_name"]
        # Chalice's own policy name for a role with a policy file: the role's name.
        try:
            current = iam.get_role_policy(RoleName=role, PolicyName=role)["PolicyDocument"]
            if isinstance(current, str):
                current = json.loads(current)
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise
            current = None
        if current != document:
            iam.put_role_policy(RoleName=role, PolicyName=role, PolicyDocument=text)
            changes.append(f"put the policy of {policy_path.name} on the role {role}")

    lam = client("lambda")
    for resource in deployed:
        if resource.get("resource_type") != "sqs_event":
            continue
        uuid = resource["event_uuid"]
        mapping = lam.get_event_source_mapping(UUID=uuid)
        if (mapping.get("FunctionResponseTypes") or []) != REPORT_BATCH_ITEM_FAILURES:
            lam.update_event_source_mapping(
                UUID=uuid, FunctionResponseTypes=REPORT_BATCH_ITEM_FAILURES
            )
            changes.append(
                f"the event source {resource['queue']} -> {resource['lambda_arn'].split(':')[-1]} "
                "now reports batch item failures"
            )

    days = _stage_retention(config, stage)
    if days and any(r.get("name") == "api_handler" for r in deployed):
        logs = client("logs")
        group = api_handler_log_group(app, stage)
        try:
            logs.create_log_group(logGroupName=group)
            changes.append(f"created the log group {group}")
        except ClientError as exc:
            if _code(exc) != "ResourceAlreadyExistsException":
                raise
        [found] = [
            g
            for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
            if g["logGroupName"] == group
        ]
        if found.get("retentionInDays") != days:
            logs.put_retention_policy(logGroupName=group, retentionInDays=days)
            changes.append(f"log retention of {group}: {days} days")

    # The alarms and the dashboard (docs/deploy.md#alarms), as the template's.
    names = alarms.names(app, stage, session.region_name or "us-east-1")
    changes += alarms.ensure(client("cloudwatch"), names, thresholds or alarms.Thresholds())
    return changes


# -- teardown --------------------------------------------------------------------


def teardown(
    stage: str,
    session: Any,
    config_path: Path = bootstrap.CONFIG,
    *,
    endpoint_url: str | None = None,
) -> list[str]:
    """Delete what bootstrap and finish made for the stage; returns what was deleted."""
    config_path = Path(config_path)
    if deployed_resources(config_path.parent, stage):
        raise PostDeployError(
            f"stage {stage} is still deployed (.chalice/deployed/{stage}.json): "
            f"run `chalice delete --stage {stage}` first"
        )
    config = json.loads(config_path.read_text())
    region = session.region_name
    if not region:
        raise PostDeployError("no AWS region: pass --region or set AWS_DEFAULT_REGION")

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)

    account = client("sts").get_caller_identity()["Account"]
    env = config.get("stages", {}).get(stage, {}).get("environment_variables", {})
    plan = bootstrap.make_plan(
        config,
        stage,
        region,
        session.get_partition_for_region(region),
        account,
        bucket=env.get("SLIPWAY_BUCKET"),
    )
    deleted: list[str] = []

    def gone(call: Callable[[], Any], what: str, *missing: str) -> None:
        try:
            call()
        except ClientError as exc:
            if _code(exc) not in missing:
                raise
            return
        deleted.append(what)

    ddb = client("dynamodb")
    gone(
        lambda: ddb.delete_table(TableName=plan.table),
        f"table {plan.table}",
        "ResourceNotFoundException",
    )

    sqs = client("sqs")
    for name in (plan.queue, plan.ordered_queue, plan.dead_letter_queue):

        def delete_queue(name: str = name) -> None:
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])

        gone(
            delete_queue,
            f"queue {name}",
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        )

    s3 = client("s3")

    def delete_bucket() -> None:
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=plan.bucket):
            objects = [
                {"Key": o["Key"], "VersionId": o["VersionId"]}
                for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if objects:
                s3.delete_objects(Bucket=plan.bucket, Delete={"Objects": objects, "Quiet": True})
        s3.delete_bucket(Bucket=plan.bucket)

    gone(delete_bucket, f"bucket {plan.bucket} and its objects", "NoSuchBucket")

    if plan.key_parameter:
        ssm = client("ssm")
        name = plan.key_parameter
        gone(lambda: ssm.delete_parameter(Name=name), f"key parameter {name}", "ParameterNotFound")
    else:
        log.info("kept the Secrets Manager secret %s: bootstrap did not create it", plan.key_secret)

    for what in alarms.delete(client("cloudwatch"), alarms.names(plan.app, stage, region)):
        deleted.append(what)

    logs = client("logs")
    for group in stage_log_groups(logs, plan.app, stage):
        gone(
            functools.partial(logs.delete_log_group, logGroupName=group),
            f"log group {group}",
            "ResourceNotFoundException",
        )
    return deleted


def stage_log_groups(logs: Any, app: str, stage: str) -> list[str]:
    """The log groups of the stage's functions, which `chalice delete` keeps:
    `/aws/lambda/<app>-<stage>` and `/aws/lambda/<app>-<stage>-<name>`, a Chalice
    function's name being a Python identifier (so stage `dev` never takes stage
    `dev-2`'s groups)."""
    base = api_handler_log_group(app, stage)
    found = []
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=base):
        for group in page["logGroups"]:
            name = group["logGroupName"]
            if name == base or (
                name.startswith(base + "-") and name[len(base) + 1 :].isidentifier()
            ):
                found.append(name)
    return found


# -- the commands ----------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--stage", default="dev", help="Chalice stage in .chalice/config.json (default dev)")
    add("--config", type=Path, default=bootstrap.CONFIG, help="Chalice config file")
    add("--region", help="AWS region (default: the profile's or AWS_DEFAULT_REGION)")
    add("--profile", help="AWS profile (default: the environment's credentials)")
    add("--endpoint-url", help="an AWS-compatible endpoint for every service (tests: moto)")


def _quiet_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for name in ("botocore", "boto3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _session(args: argparse.Namespace) -> Any:
    import boto3

    return boto3.session.Session(profile_name=args.profile, region_name=args.region)


def finish_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="slipway finish",
        description="After `chalice deploy`: SQS event sources that report batch item "
        "failures, the API handler's log retention, and the policy pinned to the "
        "WebSocket API deployed now (idempotent).",
    )
    _common(parser)
    defaults = alarms.Thresholds()
    add = parser.add_argument
    add(
        "--alarm-oldest-publish-seconds",
        type=int,
        default=defaults.oldest_publish_seconds,
        help="alarm when the oldest queued publish is older (default %(default)s)",
    )
    add(
        "--alarm-backend-error-percent",
        type=float,
        default=defaults.backend_error_percent,
        help="alarm above this percent of failed backend calls (default %(default)s)",
    )
    add(
        "--alarm-throttles",
        type=int,
        default=defaults.throttles,
        help="alarm at this many @connections throttles in 5 minutes (default %(default)s)",
    )
    add(
        "--alarm-worker-errors",
        type=int,
        default=defaults.worker_errors,
        help="alarm at this many failed worker invocations in 5 minutes (default %(default)s)",
    )
    args = parser.parse_args(argv)
    _quiet_logging()
    thresholds = alarms.Thresholds(
        oldest_publish_seconds=args.alarm_oldest_publish_seconds,
        backend_error_percent=args.alarm_backend_error_percent,
        throttles=args.alarm_throttles,
        worker_errors=args.alarm_worker_errors,
    )
    try:
        changes = finish(
            args.stage,
            _session(args),
            args.config,
            endpoint_url=args.endpoint_url,
            say=print,
            thresholds=thresholds,
        )
    except Exception as exc:  # boto3's and ours alike: one line, no trace
        log.error("slipway finish failed: %s", exc)
        return 1
    for change in changes or ["nothing to change: everything was already in place"]:
        print(f"  {change}")
    return 0


def teardown_main(argv: Sequence[str] | None = None, ask: Callable[[str], str] = input) -> int:
    parser = argparse.ArgumentParser(
        prog="slipway teardown",
        description="After `chalice delete`: delete the table, queues, bucket (with its "
        "objects), key parameter and log group that bootstrap and finish made.",
    )
    _common(parser)
    parser.add_argument("--yes", action="store_true", help="don't ask (scripts)")
    args = parser.parse_args(argv)
    _quiet_logging()
    if not args.yes:
        prompt = (
            f"This deletes stage {args.stage}'s table, queues, bucket and key, with all "
            f"their data. Type the stage's name ({args.stage}) to go on: "
        )
        try:
            answer = ask(prompt)
        except EOFError:
            print()
            answer = ""
        if answer.strip() != args.stage:
            log.error("slipway teardown: not confirmed, nothing deleted (--yes skips the question)")
            return 1
    try:
        deleted = teardown(args.stage, _session(args), args.config, endpoint_url=args.endpoint_url)
    except Exception as exc:
        log.error("slipway teardown failed: %s", exc)
        return 1
    for what in deleted or ["nothing to delete: nothing of the stage was left"]:
        print(f"  deleted {what}" if deleted else f"  {what}")
    return 0
