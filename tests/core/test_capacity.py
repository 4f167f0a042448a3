"""bench/capacity.py's arithmetic on one workload, so the model cannot silently rot
(docs/scale.md): a model, not a measurement."""

from __future__ import annotations

import pytest

from bench import capacity as cap


def test_a_publish_to_a_1000_member_room_costs_what_the_code_makes() -> None:
    u = cap.publish(1_000, 1_024)
    # one @connections post a member, each one 32 KB message unit
    assert u.posts == 1_000 and u.apigw_messages == 1_000
    # history head (1) + history row of 1 KB + its ids (2) + `delivered` (1)
    assert u.ddb_wru == 4
    # one eventually consistent page of 1,000 ~100-byte member rows: 25 x 4 KB x 1/2
    assert u.ddb_rru == 12.5
    # the control route's send, then the event source's receive and delete
    assert u.sqs_requests == 3
    # the control route and the worker
    assert u.lambda_requests == 2


def test_the_room_at_10_per_second_is_not_sustained_today() -> None:
    today = cap.evaluate(cap.Workload("room", 1, 1_000, 10.0))
    assert today.bottleneck.startswith("FIFO group chan#<c>")
    assert today.sustained == pytest.approx(1.22, abs=0.05)  # ~1 / 0.79 s, bench/README.md
    sharded = cap.evaluate(cap.Workload("room", 1, 1_000, 10.0, shards=16))
    assert sharded.bottleneck.startswith("API Gateway")


def test_a_month_of_one_post_a_second_is_priced_at_the_list_price() -> None:
    assert cap.Usage(apigw_messages=1).monthly_cost() == pytest.approx(2.592)


def test_the_delivery_time_is_fitted_to_the_measured_part() -> None:
    # bench/README.md: one 1,000-member part in 0.79 s (20 ms latency, concurrency 32)
    assert cap.deliver_s(1_000) == pytest.approx(cap.PART_S)
    assert cap.deliver_s(10) < cap.deliver_s(125) < cap.deliver_s(1_000)
