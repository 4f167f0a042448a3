"""`slipway status` against an account (moto): deliveries and backend errors of the
last hour from CloudWatch, read from the metrics as the functions' EMF lines
name them (the stage-only dimension set), and the states of `slipway finish`'s
alarms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.grip import metrics as m
from slipway_dev import alarms, status


def _put(cloudwatch, metric: m.Metric, stage: str, label: str, value: float, when) -> None:
    cloudwatch.put_metric_data(
        Namespace=m.NAMESPACE,
        MetricData=[
            {
                "MetricName": metric.name,
                "Dimensions": [
                    {"Name": "stage", "Value": stage},
                    {"Name": str(metric.label), "Value": label},
                ],
                "Timestamp": when,
                "Value": value,
                "Unit": metric.unit,
            }
        ],
    )


def test_status_reads_the_last_hour_and_the_alarms(moto, session) -> None:
    cloudwatch = session.client("cloudwatch", endpoint_url=moto)
    now = datetime.now(UTC)
    recent = now - timedelta(minutes=5)
    _put(cloudwatch, m.DELIVERIES, "prod", "sent", 40, recent)
    _put(cloudwatch, m.DELIVERIES, "prod", "gone", 3, recent)
    _put(cloudwatch, m.DELIVERIES, "prod", "throttled", 2, recent)
    _put(cloudwatch, m.DELIVERIES, "dev", "sent", 1000, recent)  # another stage
    _put(cloudwatch, m.BACKEND_CALLS, "prod", "2xx", 20, recent)
    _put(cloudwatch, m.BACKEND_CALLS, "prod", "5xx", 4, recent)
    _put(cloudwatch, m.BACKEND_CALLS, "prod", "error", 1, recent)

    deliveries, calls, failed = status.from_cloudwatch(cloudwatch, "prod", now)
    assert deliveries == {"sent": 40, "gone": 3, "throttled": 2, "failed": 0}
    assert (calls, failed) == (25, 5)

    alarms.ensure(cloudwatch, alarms.names("slipway", "prod", "us-east-1"), alarms.Thresholds())
    states = status.alarm_states(cloudwatch, "slipway", "prod", "us-east-1")
    assert set(states) == set(alarms.alarm_names(alarms.names("slipway", "prod", "us-east-1")))

    screen = status.render(
        status.Status(
            "prod",
            connections=7,
            queued=2,
            oldest_seconds=12,
            dead_letters=1,
            deliveries=deliveries,
            backend_calls=calls,
            backend_failed=failed,
            alarms=states,
        )
    )
    assert "connections open:      7" in screen
    assert "oldest 12 s" in screen
    assert "slipway redrive" in screen  # a dead letter says what to do
    assert "40 sent, 5 not delivered (gone 3, throttled 2, failed 0)" in screen
    assert "5 failed (5xx or no answer) of 25 calls" in screen
    assert "slipway-prod-dead-letters" in screen
