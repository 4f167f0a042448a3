"""`slipway finish`'s policy pinning, without AWS (the rehearsal runs it on moto)."""

from __future__ import annotations

from slipway_dev import policy, postdeploy


def _document(api_id: str | None) -> dict:
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/slipway-dev/key"
    return policy.document(
        policy.Scope(
            partition="aws",
            region="us-east-1",
            account="123456789012",
            functions="slipway-dev",
            table="slipway-dev",
            queue_arn="arn:aws:sqs:us-east-1:123456789012:slipway-dev-publish.fifo",
            bucket="slipway-dev-blobs",
            key_arn=arn,
            api_stage="api",
            api_id=api_id,
            ordered_queue_arn="arn:aws:sqs:us-east-1:123456789012:slipway-dev-ordered.fifo",
        )
    )


def test_pinning_is_what_bootstrap_writes_once_the_id_is_known():
    before = _document(None)
    assert postdeploy.pinned_api_ids(before) == {policy.ANY_API}
    assert postdeploy.pin_api(before, "abc123") == _document("abc123")
    assert before == _document(None)  # not changed in place


def test_a_stale_id_is_replaced_and_nothing_else_changes():
    stale = _document("old999")
    assert postdeploy.pinned_api_ids(stale) == {"old999"}
    assert postdeploy.pin_api(stale, "new123") == _document("new123")
    assert postdeploy.pinned_api_ids(postdeploy.pin_api(stale, "new123")) == {"new123"}
