"""chalicelib/grip/metrics.py: names, units, dimensions and the EMF documents."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.grip import metrics as m


def test_a_buffer_is_one_emf_document_per_dimension_set() -> None:
    buf = m.Buffer()
    buf.add(m.DELIVERIES, 3, m.SENT)
    buf.add(m.DELIVERIES, 2, m.SENT)
    buf.add(m.DELIVERIES, 1, m.GONE)
    buf.add(m.MESSAGES_IN)
    buf.add(m.BACKEND_LATENCY, 12.5)
    buf.add(m.BACKEND_LATENCY, 7)
    docs = m.documents(buf, "prod", "websocket_message", 1_700_000_000_000)
    by_outcome = {d.get("outcome"): d for d in docs}
    assert set(by_outcome) == {"sent", "gone", None}
    sent = by_outcome["sent"]
    assert sent["Deliveries"] == 5
    assert sent["_aws"] == {
        "Timestamp": 1_700_000_000_000,
        "CloudWatchMetrics": [
            {
                "Namespace": "slipway",
                "Dimensions": [["stage", "function", "outcome"], ["stage", "outcome"]],
                "Metrics": [{"Name": "Deliveries", "Unit": "Count"}],
            }
        ],
    }
    assert (sent["stage"], sent["function"]) == ("prod", "websocket_message")
    plain = by_outcome[None]
    assert plain["MessagesIn"] == 1
    assert plain["BackendLatency"] == [12.5, 7]
    assert plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["stage", "function"], ["stage"]]
    units = {x["Name"]: x["Unit"] for x in plain["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"MessagesIn": "Count", "BackendLatency": "Milliseconds"}


def test_an_empty_buffer_is_no_document() -> None:
    assert not m.Buffer()
    assert m.documents(m.Buffer(), "dev", "api", 0) == []


def test_a_timing_holds_at_most_100_values() -> None:
    buf = m.Buffer()
    for k in range(150):
        buf.add(m.FANOUT_DURATION, k)
    (doc,) = m.documents(buf, "dev", "worker", 0)
    assert len(doc["FanoutBatchDuration"]) == m.MAX_VALUES


def test_a_label_of_a_metric_without_one_is_dropped() -> None:
    buf = m.Buffer()
    buf.add(m.MESSAGES_IN, 1, "c0nn3ct10n-id")
    (doc,) = m.documents(buf, "dev", "websocket_message", 0)
    assert "c0nn3ct10n-id" not in json.dumps(doc)


@given(
    st.lists(
        st.tuples(st.sampled_from(m.ALL), st.integers(1, 1000), st.sampled_from(m.OUTCOMES)),
        max_size=30,
    )
)
def test_read_gives_back_what_the_documents_hold(adds: list[tuple[m.Metric, int, str]]) -> None:
    buf = m.Buffer()
    expected: dict[tuple[str, str | None], float] = {}
    for metric, value, label in adds:
        buf.add(metric, value, label)
        key = (metric.name, label if metric.label else None)
        expected[key] = expected.get(key, 0) + value
    got: dict[tuple[str, str | None], float] = {}
    for doc in m.documents(buf, "dev", "worker", 0):
        for sample in m.read(m.line(doc)):
            assert (sample.stage, sample.function) == ("dev", "worker")
            key = (sample.metric.name, sample.label)
            got[key] = got.get(key, 0) + sum(sample.values)
    assert got == expected


def test_read_ignores_other_lines() -> None:
    for text in ["", "plain log line", '{"_aws": 1}', '{"a": 1}', "{not json _aws"]:
        assert m.read(text) == []
    other = {"_aws": {"CloudWatchMetrics": [{"Namespace": "theirs", "Metrics": []}]}}
    assert m.read(json.dumps(other)) == []


def test_outcomes_status_classes_and_close_reasons() -> None:
    assert [m.delivery_outcome(s) for s in (200, 204, 410, 429, 500, 403, 0)] == [
        "sent",
        "sent",
        "gone",
        "throttled",
        "failed",
        "failed",
        "failed",
    ]
    assert [m.status_class(s) for s in (200, 302, 404, 503, 0)] == [
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "error",
    ]
    assert [m.close_reason(c) for c in (1000, "1001", 1006, 1005, 4000, None)] == [
        "normal",
        "normal",
        "dropped",
        "dropped",
        "other",
        "dropped",
    ]


def test_where_splits_chalices_function_names() -> None:
    handlers = {"websocket_connect", "worker", "keepalive_scheduler", "api_handler"}
    assert m.where("slipway-prod-worker", "slipway", handlers) == ("prod", "worker")
    assert m.where("slipway-my-stage-websocket_connect", "slipway", handlers) == (
        "my-stage",
        "websocket_connect",
    )
    assert m.where("slipway-prod", "slipway", handlers) == ("prod", "api")
    assert m.handler_function("app.worker") == "worker"
    assert m.handler_function("app.app") == "api"


def test_publish_latency_counts_delivered_publish_jobs_only() -> None:
    def rec(mid: str, group: str, sent: int) -> dict[str, object]:
        attrs = {"MessageGroupId": group, "SentTimestamp": str(sent)}
        return {"messageId": mid, "attributes": attrs}

    records = [
        rec("a", "chan#news", 1000),
        rec("b", "conn#x", 1000),
        rec("c", "chan#news#p1", 1500),
        rec("d", "chan#other", 1200),
    ]
    assert m.publish_latencies(records, {"d"}, 2000) == [1000.0, 500.0]


def test_recovery_results() -> None:
    assert m.recovery_result("recovered", None) == "recovered"
    assert m.recovery_result("failed", "too_old") == "too_old"
    assert m.recovery_result("none", None) is None
