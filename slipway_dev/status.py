"""`slipway status --stage S`: one screen for an operator (docs/operations.md#status).

- connections open: slipway's own count, the store's connection index
  (`conns#<shard>` rows, one per open connection: chalicelib/aws/table.py);
- the publish queue's depth and its oldest job's age, the dead-letter queue's depth;
- deliveries by outcome and backend calls that failed, over the last hour:
  CloudWatch (GetMetricData on slipway's metrics); against the local stack, its
  collected metrics (`GET /metrics` on the control port: totals since it started);
- the alarms' states (slipway_dev/alarms.py; the local stack has none).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib.grip import metrics as m
from chalicelib.grip.introspection import CONNECTION_SHARDS

from . import alarms, aws, redrive

log = logging.getLogger("slipway_dev.status")

HOUR = 3600
BACKEND_FAILED = ("5xx", "error")


@dataclass
class Status:
    stage: str
    connections: int | None = None
    queued: int | None = None
    oldest_seconds: float | None = None
    dead_letters: int | None = None
    deliveries: dict[str, float] = field(default_factory=dict)
    backend_calls: float | None = None
    backend_failed: float | None = None
    window: str = "last hour"
    alarms: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _n(value: float | None) -> str:
    if value is None:
        return "unknown"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def render(s: Status) -> str:
    """The screen, one fact a line."""
    age = "unknown" if s.oldest_seconds is None else f"{s.oldest_seconds:.0f} s"
    sent = s.deliveries.get(m.SENT)
    failures = sum(s.deliveries.get(o, 0) for o in (m.GONE, m.THROTTLED, m.FAILED))
    lines = [
        f"slipway stage {s.stage}",
        f"  connections open:      {_n(s.connections)}",
        f"  publish queue:         {_n(s.queued)} waiting, oldest {age}",
        f"  dead-letter queue:     {_n(s.dead_letters)}"
        + ("  (fix the cause, then `slipway redrive`)" if s.dead_letters else ""),
        f"  deliveries ({s.window}): {_n(sent or 0)} sent, {_n(failures)} not delivered ("
        + ", ".join(f"{o} {_n(s.deliveries.get(o, 0))}" for o in (m.GONE, m.THROTTLED, m.FAILED))
        + ")",
        f"  backend ({s.window}):    {_n(s.backend_failed)} failed (5xx or no answer) "
        f"of {_n(s.backend_calls)} calls",
    ]
    if s.alarms:
        lines.append("  alarms:")
        lines += [f"    {state:<17} {name}" for name, state in sorted(s.alarms.items())]
    else:
        lines.append("  alarms:                none found")
    lines += [f"  note: {note}" for note in s.notes]
    return "\n".join(lines)


# -- gathering ---------------------------------------------------------------------


def open_connections(ddb: Any, table: str) -> int:
    """The store's connection index, counted shard by shard."""
    total = 0
    for shard in range(CONNECTION_SHARDS):
        kwargs: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"conns#{shard}"}},
            "Select": "COUNT",
        }
        while True:
            page = ddb.query(**kwargs)
            total += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return total


def queue_depths(sqs: Any, queues: redrive.Queues) -> tuple[int, int]:
    return redrive.waiting(sqs, queues.publish_url), redrive.waiting(sqs, queues.dead_letter_url)


def from_prometheus(text: str) -> tuple[dict[str, float], float, float]:
    """(deliveries by outcome, backend calls, backend calls failed) from the local
    stack's `GET /metrics` (slipway_dev/metrics.py writes it)."""
    deliveries: dict[str, float] = {}
    calls = failed = 0.0
    for raw in text.splitlines():
        if not raw or raw.startswith("#"):
            continue
        name_labels, _, value = raw.rpartition(" ")
        name, _, labels = name_labels.partition("{")
        label = labels.rstrip("}").partition("=")[2].strip('"') if labels else ""
        if name == "slipway_deliveries_total":
            deliveries[label] = deliveries.get(label, 0) + float(value)
        elif name == "slipway_backend_calls_total":
            calls += float(value)
            if label in BACKEND_FAILED:
                failed += float(value)
    return deliveries, calls, failed


def from_cloudwatch(
    cloudwatch: Any, stage: str, now: datetime
) -> tuple[dict[str, float], float, float]:
    """The same over the last hour, from CloudWatch (the stage-only dimension set)."""
    queries = []
    for k, outcome in enumerate(m.OUTCOMES):
        queries.append((f"d{k}", m.DELIVERIES, outcome))
    statuses = ("2xx", "3xx", "4xx", "5xx", "error")
    for k, status in enumerate(statuses):
        queries.append((f"b{k}", m.BACKEND_CALLS, status))
    reply = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": qid,
                "MetricStat": {
                    "Metric": {
                        "Namespace": m.NAMESPACE,
                        "MetricName": metric.name,
                        "Dimensions": [
                            {"Name": "stage", "Value": stage},
                            {"Name": str(metric.label), "Value": label},
                        ],
                    },
                    "Period": HOUR,
                    "Stat": "Sum",
                },
            }
            for qid, metric, label in queries
        ],
        StartTime=now - timedelta(seconds=HOUR),
        EndTime=now,
    )
    sums = {r["Id"]: sum(r.get("Values", [])) for r in reply.get("MetricDataResults", [])}
    deliveries = {o: sums.get(f"d{k}", 0.0) for k, o in enumerate(m.OUTCOMES)}
    calls = sum(sums.get(f"b{k}", 0.0) for k in range(len(statuses)))
    failed = sum(sums.get(f"b{k}", 0.0) for k, s in enumerate(statuses) if s in BACKEND_FAILED)
    return deliveries, calls, failed


def oldest_age(cloudwatch: Any, queue: str, now: datetime) -> float | None:
    reply = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "age",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateAgeOfOldestMessage",
                        "Dimensions": [{"Name": "QueueName", "Value": queue}],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=now - timedelta(minutes=10),
        EndTime=now,
    )
    for result in reply.get("MetricDataResults", []):
        values = result.get("Values", [])
        if values:
            return float(values[0])  # newest first
    return None


def alarm_states(cloudwatch: Any, app: str, stage: str, region: str) -> dict[str, str]:
    names = alarms.alarm_names(alarms.names(app, stage, region))
    found = cloudwatch.describe_alarms(AlarmNames=names).get("MetricAlarms", [])
    return {a["AlarmName"]: a["StateValue"] for a in found}


def _table_of(stage: str, project: Path, local: bool) -> tuple[str, str]:
    """(app name, table) of a stage, as redrive.names_of finds its queues."""
    config = project / ".chalice" / "config.json"
    data = json.loads(config.read_text()) if config.exists() else {}
    app = data.get("app_name", "slipway")
    stages = data.get("stages", {})
    if stage in stages:
        env = {
            **data.get("environment_variables", {}),
            **stages[stage].get("environment_variables", {}),
        }
        return app, env.get("SLIPWAY_TABLE") or f"{app}-{stage}"
    if local:
        return app, aws.Names().table
    raise redrive.RedriveError(f"no stage {stage!r} in {config}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slipway status",
        description="One screen: open connections, queues, deliveries and backend errors "
        "in the last hour, alarms (docs/operations.md#status).",
    )
    add = parser.add_argument
    add("--stage", required=True, help="the Chalice stage (.chalice/config.json)")
    add("--project-dir", type=Path, default=Path("."), help="where .chalice/ is (default .)")
    add("--table", help="the table's name (default: the stage's)")
    add("--queue", help="the publish queue's name (default: the stage's)")
    add("--profile", help="AWS profile")
    add("--region", help="AWS region")
    add("--endpoint-url", help="an AWS-compatible endpoint, e.g. the local stack's `aws:` URL")
    add(
        "--control-url",
        help="the local stack's control URL: its metrics come from GET /metrics there",
    )
    add("--key", help="the key for GET /metrics (default: $SLIPWAY_KEY)")
    add(
        "--metrics-stage",
        help="the metrics' stage dimension (default: --stage; path A: the stack's name)",
    )
    return parser


def _client(args: argparse.Namespace, service: str) -> Any:
    import boto3

    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    if not args.endpoint_url:
        return session.client(service)
    options: dict[str, Any] = {"region_name": session.region_name or aws.REGION}
    if session.get_credentials() is None:  # the local stack's moto takes any
        options["aws_access_key_id"] = aws.DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]
        options["aws_secret_access_key"] = aws.DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    return session.client(service, endpoint_url=args.endpoint_url, **options)


def gather(args: argparse.Namespace) -> Status:
    local = bool(args.endpoint_url)
    status = Status(args.stage)
    app, table = _table_of(args.stage, args.project_dir, local)
    publish, ordered = redrive.names_of(args.stage, args.project_dir, local)
    sqs, ddb = _client(args, "sqs"), _client(args, "dynamodb")
    queues = redrive.find(sqs, args.queue or publish, ordered)
    status.connections = open_connections(ddb, args.table or table)
    status.queued, status.dead_letters = queue_depths(sqs, queues)
    now = datetime.now(UTC)
    if args.control_url:
        import requests

        key = args.key or os.environ.get("SLIPWAY_KEY", "")
        reply = requests.get(
            f"{args.control_url.rstrip('/')}/metrics",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        if reply.status_code != 200:
            raise redrive.RedriveError(
                f"GET /metrics answered {reply.status_code}: {reply.text[:200]} (--key?)"
            )
        status.deliveries, status.backend_calls, status.backend_failed = from_prometheus(reply.text)
        status.window = "since start"
        status.notes.append(
            "the local stack: metrics since it started; no queue age (a CloudWatch metric)"
        )
    else:
        cloudwatch = _client(args, "cloudwatch")
        status.deliveries, status.backend_calls, status.backend_failed = from_cloudwatch(
            cloudwatch, args.metrics_stage or args.stage, now
        )
        status.oldest_seconds = oldest_age(cloudwatch, args.queue or publish, now)
        region = cloudwatch.meta.region_name
        status.alarms = alarm_states(cloudwatch, app, args.stage, region)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    started = time.monotonic()
    try:
        status = gather(args)
    except redrive.RedriveError as exc:
        log.error("slipway status: %s", exc)
        return 1
    except Exception as exc:  # boto3's and requests': one line, no trace
        log.error("slipway status failed: %s", exc)
        return 1
    print(render(status))
    log.debug("took %.1fs", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
