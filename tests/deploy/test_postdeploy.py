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


def test_settings_under_a_name_chalice_does_not_know_are_named():
    """The bug of `ws_connect` (Chalice's name is `websocket_connect`): the settings
    were silently ignored."""
    deployed = [
        {"resource_type": "lambda_function", "name": n}
        for n in ("api_handler", "websocket_connect", "worker")
    ]
    deployed.append({"resource_type": "iam_role", "name": "ws_connect"})
    config = {
        "lambda_functions": {"worker": {}},
        "stages": {"dev": {"lambda_functions": {"ws_connect": {}, "websocket_connect": {}}}},
    }
    assert postdeploy.unknown_functions(config, "dev", deployed) == ["ws_connect"]
    assert postdeploy.unknown_functions(config, "prod", deployed) == []


def test_the_committed_config_names_only_real_functions():
    import json

    from .conftest import ROOT
    from .expected import LOGICAL_IDS

    config = json.loads((ROOT / ".chalice/config.json").read_text())
    deployed = [{"resource_type": "lambda_function", "name": n} for n in LOGICAL_IDS]
    for stage in config["stages"]:
        assert postdeploy.unknown_functions(config, stage, deployed) == []
