"""The stage's CloudWatch alarms and dashboard (docs/deploy.md#alarms), defined
once for both deploy paths: `slipway finish` puts them (path B), and
infra/resources.json declares the same (path A; tests/deploy/test_template.py
compares it with `template_resources()`).

The functions are given names as plain strings (path B) or as CloudFormation
values (`{"Ref": ...}`, path A); the alarms' properties are put_metric_alarm's
arguments, which are also AWS::CloudWatch::Alarm's properties.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.grip import metrics as m

Value = Any  # a string, a number, or a CloudFormation intrinsic ({"Ref": ...})

PERIOD = 300  # seconds: each alarm looks at 5-minute periods
_NOT_FOUND = ("ResourceNotFound", "ResourceNotFoundException")


@dataclass(frozen=True)
class Thresholds:
    """The alarms' thresholds: `slipway finish --alarm-...` (path B), the template's
    Alarm* parameters (path A); these defaults in both."""

    oldest_publish_seconds: Value = 300  # the oldest queued publish is older than this
    backend_error_percent: Value = 5  # of backend calls, 5xx or unanswered, in 5 minutes
    throttles: Value = 10  # @connections posts throttled after retries, in 5 minutes
    worker_errors: Value = 1  # failed worker invocations in 5 minutes


@dataclass(frozen=True)
class Names:
    stage: Value  # the metrics' stage dimension
    prefix: Value  # alarm and dashboard names start with it
    queue: Value  # the publish queue's name
    dead_letter_queue: Value
    worker: Value  # the worker function's name
    region: Value


def names(app: str, stage: str, region: str) -> Names:
    """Path B's names (slipway_dev/bootstrap.py's plan, Chalice's function naming)."""
    prefix = f"{app}-{stage}"
    return Names(
        stage=stage,
        prefix=prefix,
        queue=f"{prefix}-publish.fifo",
        dead_letter_queue=f"{prefix}-publish-dlq.fifo",
        worker=f"{prefix}-worker",
        region=region,
    )


def _join(*parts: Value) -> Value:
    """A string, or Fn::Join when a part is a CloudFormation value."""
    if all(isinstance(p, str) for p in parts):
        return "".join(parts)
    return {"Fn::Join": ["", list(parts)]}


def _ours(metric: m.Metric, stage: Value, label: str | None = None) -> dict[str, Any]:
    dims = [{"Name": "stage", "Value": stage}]
    if label is not None:
        assert metric.label is not None
        dims.append({"Name": metric.label, "Value": label})
    return {"Namespace": m.NAMESPACE, "MetricName": metric.name, "Dimensions": dims}


def alarms(n: Names, t: Thresholds) -> dict[str, dict[str, Any]]:
    """Logical name -> the alarm's properties."""
    common = {"TreatMissingData": "notBreaching", "ActionsEnabled": True}
    statuses = ["2xx", "3xx", "4xx", "5xx", "error"]
    calls = [
        {
            "Id": f"s{status.replace('xx', '')}",
            "MetricStat": {
                "Metric": _ours(m.BACKEND_CALLS, n.stage, status),
                "Period": PERIOD,
                "Stat": "Sum",
            },
            "ReturnData": False,
        }
        for status in statuses
    ]
    everything = "+".join(f"FILL({c['Id']},0)" for c in calls)
    return {
        "DeadLetterAlarm": {
            **common,
            "AlarmName": _join(n.prefix, "-dead-letters"),
            "AlarmDescription": "Publish jobs are in the dead-letter queue: look at them, "
            "fix the cause, then `slipway redrive` (docs/deploy.md#alarms).",
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": n.dead_letter_queue}],
            "Statistic": "Maximum",
            "Period": PERIOD,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
        "OldestPublishAlarm": {
            **common,
            "AlarmName": _join(n.prefix, "-oldest-publish"),
            "AlarmDescription": "Publishes wait in the queue: the worker is failing, "
            "throttled or too slow (docs/deploy.md#alarms).",
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateAgeOfOldestMessage",
            "Dimensions": [{"Name": "QueueName", "Value": n.queue}],
            "Statistic": "Maximum",
            "Period": PERIOD,
            "EvaluationPeriods": 1,
            "Threshold": t.oldest_publish_seconds,
            "ComparisonOperator": "GreaterThanThreshold",
        },
        "WorkerErrorsAlarm": {
            **common,
            "AlarmName": _join(n.prefix, "-worker-errors"),
            "AlarmDescription": "Worker invocations failed (docs/deploy.md#alarms).",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": n.worker}],
            "Statistic": "Sum",
            "Period": PERIOD,
            "EvaluationPeriods": 1,
            "Threshold": t.worker_errors,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
        "BackendErrorsAlarm": {
            **common,
            "AlarmName": _join(n.prefix, "-backend-errors"),
            "AlarmDescription": "The backend answers 5xx or not at all, in percent of "
            "calls (docs/deploy.md#alarms).",
            "Metrics": [
                *calls,
                {
                    "Id": "rate",
                    "Expression": f"100*(FILL(s5,0)+FILL(serror,0))/({everything})",
                    "Label": "backend errors (%)",
                    "ReturnData": True,
                },
            ],
            "EvaluationPeriods": 1,
            "Threshold": t.backend_error_percent,
            "ComparisonOperator": "GreaterThanThreshold",
        },
        "ThrottlesAlarm": {
            **common,
            "AlarmName": _join(n.prefix, "-connections-throttles"),
            "AlarmDescription": "@connections throttled posts even after retries "
            "(LimitExceededException): messages were not delivered (docs/deploy.md#alarms).",
            **_ours(m.DELIVERIES, n.stage, m.THROTTLED),
            "Statistic": "Sum",
            "Period": PERIOD,
            "EvaluationPeriods": 1,
            "Threshold": t.throttles,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    }


def dashboard_body(n: Names) -> dict[str, Any]:
    """The dashboard's widgets; n's values as they go into its JSON."""

    def ours(metric: m.Metric, stat: str, labels: tuple[str, ...] = ()) -> list[list[Any]]:
        if not labels:
            return [[m.NAMESPACE, metric.name, "stage", n.stage, {"stat": stat}]]
        assert metric.label is not None
        return [
            [m.NAMESPACE, metric.name, "stage", n.stage, metric.label, v, {"stat": stat}]
            for v in labels
        ]

    def widget(title: str, metrics: list[list[Any]], x: int, y: int) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": n.region,
                "period": 60,
                "view": "timeSeries",
                "metrics": metrics,
            },
        }

    reasons = ("normal", "dropped", "other")
    statuses = ("2xx", "3xx", "4xx", "5xx", "error")
    panels = [
        (
            "Connections opened, closed, messages in",
            ours(m.CONNECTIONS_OPENED, "Sum")
            + ours(m.CONNECTIONS_CLOSED, "Sum", reasons)
            + ours(m.MESSAGES_IN, "Sum"),
        ),
        ("Deliveries by outcome", ours(m.DELIVERIES, "Sum", m.OUTCOMES)),
        (
            "Publishes accepted, keep-alives, large messages",
            ours(m.PUBLISHES, "Sum") + ours(m.KEEPALIVES, "Sum") + ours(m.LARGE_MESSAGES, "Sum"),
        ),
        ("Backend calls by status", ours(m.BACKEND_CALLS, "Sum", statuses)),
        (
            "Recoveries by result",
            ours(m.RECOVERIES, "Sum", ("recovered", "too_old", "epoch_changed", "unknown_id")),
        ),
        ("Backend latency (ms)", ours(m.BACKEND_LATENCY, "p50") + ours(m.BACKEND_LATENCY, "p99")),
        (
            "Publish to delivery, fan-out batch (ms)",
            ours(m.DELIVERY_LATENCY, "p50")
            + ours(m.DELIVERY_LATENCY, "p99")
            + ours(m.FANOUT_DURATION, "p99"),
        ),
        (
            "Publish queue and dead letters",
            [
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", n.queue],
                ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", n.queue],
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", n.dead_letter_queue],
            ],
        ),
        (
            "Worker",
            [
                ["AWS/Lambda", "Errors", "FunctionName", n.worker, {"stat": "Sum"}],
                ["AWS/Lambda", "Throttles", "FunctionName", n.worker, {"stat": "Sum"}],
                ["AWS/Lambda", "Duration", "FunctionName", n.worker, {"stat": "p99"}],
            ],
        ),
    ]
    return {
        "widgets": [
            widget(title, metrics, 12 * (k % 2), 6 * (k // 2))
            for k, (title, metrics) in enumerate(panels)
        ]
    }


# -- path A: the template's resources ----------------------------------------------

TEMPLATE_PARAMETERS: dict[str, dict[str, Any]] = {
    "AlarmOldestPublishSeconds": {
        "Type": "Number",
        "Default": Thresholds.oldest_publish_seconds,
        "Description": "Alarm when the oldest queued publish is older than this (seconds).",
    },
    "AlarmBackendErrorPercent": {
        "Type": "Number",
        "Default": Thresholds.backend_error_percent,
        "Description": "Alarm when more than this percent of backend calls fail (5xx, none).",
    },
    "AlarmThrottles": {
        "Type": "Number",
        "Default": Thresholds.throttles,
        "Description": "Alarm at this many @connections throttles in 5 minutes.",
    },
    "AlarmWorkerErrors": {
        "Type": "Number",
        "Default": Thresholds.worker_errors,
        "Description": "Alarm at this many failed worker invocations in 5 minutes.",
    },
}


def template_resources() -> dict[str, dict[str, Any]]:
    """The alarms and the dashboard as infra/resources.json declares them."""
    stack = {"Ref": "AWS::StackName"}
    cfn = Names(
        stage=stack,
        prefix=stack,
        queue={"Fn::GetAtt": ["PublishQueue", "QueueName"]},
        dead_letter_queue={"Fn::GetAtt": ["PublishDeadLetterQueue", "QueueName"]},
        worker={"Ref": "Worker"},
        region={"Ref": "AWS::Region"},
    )
    params = Thresholds(
        oldest_publish_seconds={"Ref": "AlarmOldestPublishSeconds"},
        backend_error_percent={"Ref": "AlarmBackendErrorPercent"},
        throttles={"Ref": "AlarmThrottles"},
        worker_errors={"Ref": "AlarmWorkerErrors"},
    )
    out: dict[str, dict[str, Any]] = {
        name: {"Type": "AWS::CloudWatch::Alarm", "Properties": props}
        for name, props in alarms(cfn, params).items()
    }
    subs = Names(
        stage="${AWS::StackName}",
        prefix="${AWS::StackName}",
        queue="${PublishQueue.QueueName}",
        dead_letter_queue="${PublishDeadLetterQueue.QueueName}",
        worker="${Worker}",
        region="${AWS::Region}",
    )
    out["Dashboard"] = {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": {"Ref": "AWS::StackName"},
            "DashboardBody": {"Fn::Sub": json.dumps(dashboard_body(subs), separators=(",", ":"))},
        },
    }
    return out


# -- path B: slipway finish and teardown --------------------------------------------


def ensure(cloudwatch: Any, n: Names, t: Thresholds) -> list[str]:
    """Put the alarms and the dashboard where they differ; the changes made."""
    changes: list[str] = []
    wanted = {p["AlarmName"]: p for p in alarms(n, t).values()}
    found = {
        a["AlarmName"]: a
        for page in cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNames=list(wanted), AlarmTypes=["MetricAlarm"]
        )
        for a in page.get("MetricAlarms", [])
    }
    for name, props in wanted.items():
        if name not in found or not _same_alarm(found[name], props):
            cloudwatch.put_metric_alarm(**props)
            changes.append(f"{'updated' if name in found else 'created'} the alarm {name}")
    body = json.dumps(dashboard_body(n), separators=(",", ":"))
    try:
        current = cloudwatch.get_dashboard(DashboardName=n.prefix)["DashboardBody"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "ResourceNotFound",
            "ResourceNotFoundException",
        ):
            raise
        current = None
    if current is None or json.loads(current) != json.loads(body):
        cloudwatch.put_dashboard(DashboardName=n.prefix, DashboardBody=body)
        changes.append(f"{'updated' if current else 'created'} the dashboard {n.prefix}")
    return changes


def _same_alarm(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    keys = ("Threshold", "ComparisonOperator", "EvaluationPeriods", "MetricName", "Namespace")
    if any(found.get(k) != wanted.get(k) for k in keys if k in wanted):
        return False
    if float(found.get("Threshold", 0)) != float(wanted["Threshold"]):
        return False
    return found.get("AlarmDescription") == wanted.get("AlarmDescription")


def alarm_names(n: Names) -> list[str]:
    return [p["AlarmName"] for p in alarms(n, Thresholds()).values()]


def delete(cloudwatch: Any, n: Names) -> list[str]:
    """Delete the stage's alarms and dashboard; what was there."""
    deleted: list[str] = []
    names_ = alarm_names(n)
    present = [
        a["AlarmName"]
        for a in cloudwatch.describe_alarms(AlarmNames=names_).get("MetricAlarms", [])
    ]
    if present:
        cloudwatch.delete_alarms(AlarmNames=present)
        deleted += [f"alarm {name}" for name in present]
    listed = cloudwatch.list_dashboards(DashboardNamePrefix=n.prefix).get("DashboardEntries", [])
    if any(d["DashboardName"] == n.prefix for d in listed):
        cloudwatch.delete_dashboards(DashboardNames=[n.prefix])
        deleted.append(f"dashboard {n.prefix}")
    return deleted
