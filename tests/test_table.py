"""The table's schema and key scheme (chalicelib/aws/table.py) are the ones every
way of creating the table uses: infra/resources.json (CloudFormation) and
slipway_dev (bootstrap, the local stack). Pure: no AWS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chalicelib.aws import table
from slipway_dev import policy, resources

ROOT = Path(__file__).resolve().parent.parent


def template() -> dict[str, Any]:
    resources_: dict[str, Any] = json.loads((ROOT / "infra" / "resources.json").read_text())
    return resources_["Resources"]


def test_the_cloudformation_table_is_the_one_the_store_uses() -> None:
    properties = template()["Table"]["Properties"]
    declared = {k: v for k, v in properties.items() if k not in ("TableName",)}
    assert declared == {
        **table.TABLE_SCHEMA,
        "TimeToLiveSpecification": {"AttributeName": table.TTL_ATTRIBUTE, "Enabled": True},
    }
    [index] = properties["GlobalSecondaryIndexes"]
    assert index["IndexName"] == table.KEEPALIVE_INDEX
    assert index["KeySchema"] == [{"AttributeName": table.SLOT_ATTRIBUTE, "KeyType": "HASH"}]


def test_the_cloudformation_policy_lets_the_functions_query_that_index() -> None:
    statements = template()["FunctionPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [granted] = [s for s in statements if s.get("Sid") == "TableIndex"]
    assert granted["Resource"] == {"Fn::Sub": f"${{Table.Arn}}/index/{table.KEEPALIVE_INDEX}"}


def test_slipway_dev_creates_the_same_table() -> None:
    assert resources.TABLE_SCHEMA is table.TABLE_SCHEMA
    assert resources.TTL_ATTRIBUTE == table.TTL_ATTRIBUTE
    assert policy.TABLE_INDEX == table.KEEPALIVE_INDEX


def test_row_kinds_never_share_a_key() -> None:
    """Whatever a client names a channel or an id, rows of two kinds never meet."""
    names = ["a", "conn", "meta", "count", "hist", "#", "conn#x", "chanmeta#a", "", "1#a"]
    names += ["chancount#1#a", "count#1#a", "0#a#11"]
    keys: dict[tuple[str, str], str] = {}
    for name in names:
        for kind, key in {
            "connection": table.conn_key(name),
            "listing": table.listing_key(name),
            "member": table.member_key(name, "conn"),
            "count": table.count_key(name, 0),
            "count shard": table.count_key(name, 11),
            "count of before the shards": table.legacy_count_key(name),
            "delivered": table.delivered_key(name),
            "head": table.head_key(name),
            "history": table.history_key(name, 1),
            "upload": table.upload_key(name),
        }.items():
            pair = (key["pk"]["S"], key["sk"]["S"])
            assert keys.setdefault(pair, f"{kind} {name!r}") == f"{kind} {name!r}", pair
    for pair in (table.TIMEOUTS_KEY, table.tick_key(0)):
        assert (pair["pk"]["S"], pair["sk"]["S"]) not in keys


def test_history_rows_sort_as_their_offsets() -> None:
    offsets = [1, 9, 10, 99, 100, 12345, 10**12 - 1]  # the limit: docs/resume.md
    keys = [table.history_key("c", o)["sk"]["S"] for o in offsets]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
