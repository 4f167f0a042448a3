"""slipway's one DynamoDB table: its schema, the key of every kind of row, and
the few calls every repository makes the same way.

The schema is defined here once: the store reads and writes by it, slipway_dev
creates the table from it (resources.py, policy.py), and tests/test_table.py
checks infra/resources.json (the CloudFormation path) against it.

Rows (partition key `pk`, sort key `sk`, both strings):
- `conn#<id>` / `conn`: the connection record; its `channels` set mirrors
  membership (connections.py).
- `conns#<shard>` / `<id>`: one per open connection, written and deleted with the
  connection row, so every connection is listed page by page without a scan
  (`grip.introspection`).
- `chan#<channel>` / `<id>`: one member of a channel, with what a sender needs
  (membership.py).
- `chancount#<k>#<channel>` / `count`: shard k of the channel's member count
  (`n`), k < COUNT_SHARDS chosen by the connection id (`count_shard_of`), changed
  in the same transaction as the member rows; `v` counts the changes. Each shard
  has its own partition key, so subscribes to one channel are not serialised on
  one item (grip/limits.py).
- `chanmeta#<channel>` / `count`: the channel's single counter before the shards
  (deployments from before them): read, and only ever decremented, until it reaches
  0 or expires (membership.py).
- `chanmeta#<channel>` / `meta`: when the worker last delivered to the channel
  (idle keep-alives: docs/keepalive.md, keepalive_slots.py).
- `keepalive` / `timeouts`: the keep-alive timeouts in use; `keepalive` /
  `tick#<second>`: which scheduler took that second.
- `chanmeta#<channel>` / `hist`: the channel history's head: its `epoch`, the
  offset of its last message (`top`), and the queue messages that took the last
  offsets (history_rows.py).
- `hist#<channel>` / `<offset, 12 digits>`: one published message, kept for resume
  (`grip.history`, docs/resume.md) until its `expires_at`.
- `upload#<key>` / `claim`: a client's envelope upload (`[4]`) being taken
  (upload_claims.py).
A connection with keep-alive carries `ka_slot`, the key of the `keepalive` index
(`grip.keepalive`). Every row carries `expires_at` (DynamoDB TTL) as a safety net
for missed $disconnects.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from ..grip import history, introspection
from ..grip.errors import Throttled
from ..grip.limits import COUNT_SHARDS

Key = dict[str, dict[str, str]]  # a row's key as DynamoDB takes it
Item = dict[str, Any]  # a row as DynamoDB takes and gives it

# -- the schema ---------------------------------------------------------------------

TTL_ATTRIBUTE = "expires_at"
SLOT_ATTRIBUTE = "ka_slot"
# The `keepalive` index finds the connections whose keep-alive is due at a second
# (chalicelib/grip/keepalive.py), with what sending needs.
KEEPALIVE_INDEX = "keepalive"
KEEPALIVE_INDEX_SCHEMA: dict[str, Any] = {
    "IndexName": KEEPALIVE_INDEX,
    "KeySchema": [{"AttributeName": SLOT_ATTRIBUTE, "KeyType": "HASH"}],
    "Projection": {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["endpoint", "envelope", "keep_alive", "channels"],
    },
}
# pk/sk strings, on demand, items expire on TTL_ATTRIBUTE (epoch seconds).
# Encrypted at rest by default.
TABLE_SCHEMA: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
        {"AttributeName": SLOT_ATTRIBUTE, "AttributeType": "S"},
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "GlobalSecondaryIndexes": [KEEPALIVE_INDEX_SCHEMA],
    "BillingMode": "PAY_PER_REQUEST",
}

# -- the key scheme -----------------------------------------------------------------

CONN, CONNS, CHAN, CHANMETA, HIST = "conn#", "conns#", "chan#", "chanmeta#", "hist#"
CHANCOUNT = "chancount#"


def _key(pk: str, sk: str) -> Key:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def conn_key(connection_id: str) -> Key:
    return _key(CONN + connection_id, "conn")


def listing_key(connection_id: str) -> Key:
    """The connection's row in the listing of every connection."""
    return _key(f"{CONNS}{introspection.shard_of(connection_id)}", connection_id)


def listing_partition(shard: int) -> str:
    return f"{CONNS}{shard}"


def member_key(channel: str, connection_id: str) -> Key:
    return _key(CHAN + channel, connection_id)


def members_partition(channel: str) -> str:
    return CHAN + channel


def count_shard_of(connection_id: str) -> int:
    """The counter shard a connection is counted in: stable across processes and
    versions, so its unsubscribe takes back what its subscribe added."""
    return zlib.crc32(connection_id.encode("utf-8")) % COUNT_SHARDS


def count_key(channel: str, shard: int) -> Key:
    """Shard `shard` of the channel's member count (its own partition key; the
    shard number first, so no channel name can make two channels' keys meet)."""
    return _key(f"{CHANCOUNT}{shard}#{channel}", "count")


def legacy_count_key(channel: str) -> Key:
    """The channel's single counter of deployments from before the shards."""
    return _key(CHANMETA + channel, "count")


def delivered_key(channel: str) -> Key:
    return _key(CHANMETA + channel, "meta")


def head_key(channel: str) -> Key:
    return _key(CHANMETA + channel, "hist")


def history_partition(channel: str) -> str:
    return HIST + channel


def history_key(channel: str, offset: int) -> Key:
    return _key(HIST + channel, history.sort_key(offset))


TIMEOUTS_KEY = _key("keepalive", "timeouts")


def tick_key(second: int) -> Key:
    return _key("keepalive", f"tick#{second}")


def upload_key(key: str) -> Key:
    return _key(f"upload#{key}", "claim")


def unprefix(item: Item, prefix: str) -> str:
    """What follows `prefix` in a row's partition key (a connection id, a channel)."""
    pk: str = item["pk"]["S"]
    return pk[len(prefix) :]


# -- the calls every repository shares ------------------------------------------------

# A batch call's attempts while DynamoDB leaves part of it unprocessed (throttling),
# waiting 50 ms, 100 ms, ... in between.
_BATCH_ATTEMPTS = 8


class Table:
    """The table's name and client, and what every row written to it carries."""

    def __init__(self, client: Any, name: str, ttl_seconds: int) -> None:
        self.db = client
        self.name = name
        self.ttl = ttl_seconds

    def expires(self) -> dict[str, str]:
        """A row's `expires_at`: the connection TTL from now."""
        return {"N": str(int(time.time()) + self.ttl)}

    def get(self, key: Key, consistent: bool = True) -> Item | None:
        item: Item | None = self.db.get_item(
            TableName=self.name, Key=key, ConsistentRead=consistent
        ).get("Item")
        return item

    def put_once(self, item: Item) -> bool:
        """Put `item` unless its key is there already: False then."""
        try:
            self.db.put_item(
                TableName=self.name, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except self.db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def query(self, **kwargs: Any) -> list[Item]:
        """Every page of a query."""
        out: list[Item] = []
        while True:
            page = self.db.query(TableName=self.name, **kwargs)
            out += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get_many(self, keys: list[Key], complete: bool = True) -> list[Item]:
        """The rows there are of `keys` (BatchGetItem, 100 keys a call); Throttled
        when DynamoDB keeps leaving some unread (unless not `complete`: then
        without them)."""
        out: list[Item] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self.name: {"Keys": keys[start : start + 100]}}
            for attempt in range(_BATCH_ATTEMPTS):
                reply = self.db.batch_get_item(RequestItems=request)
                out += reply.get("Responses", {}).get(self.name, [])
                request = reply.get("UnprocessedKeys") or {}
                if not request:
                    break
                self.pause(attempt)
            if request and complete:
                left = len(request[self.name]["Keys"])
                raise Throttled(f"DynamoDB left {left} reads of table {self.name} unprocessed")
        return out

    def delete_many(self, keys: list[Key]) -> None:
        """Delete `keys` (BatchWriteItem, 25 a call); Throttled as `get_many`."""
        for start in range(0, len(keys), 25):
            requests = [{"DeleteRequest": {"Key": k}} for k in keys[start : start + 25]]
            for attempt in range(_BATCH_ATTEMPTS):
                reply = self.db.batch_write_item(RequestItems={self.name: requests})
                requests = reply.get("UnprocessedItems", {}).get(self.name, [])
                if not requests:
                    break
                self.pause(attempt)
            if requests:
                raise Throttled(
                    f"DynamoDB left {len(requests)} deletes of table {self.name} unprocessed"
                )

    def pause(self, attempt: int) -> None:
        time.sleep(0.05 * 2**attempt)
