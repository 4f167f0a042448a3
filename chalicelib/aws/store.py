"""Connections, meta and channel membership in one DynamoDB table.

Rows (partition key `pk`, sort key `sk`, both strings):
- `conn#<id>` / `conn`: the connection record; its `channels` set mirrors membership.
- `chan#<channel>` / `<id>`: one member of a channel, with what a sender needs.
- `chanmeta#<channel>` / `meta`: when the worker last delivered to the channel
  (idle keep-alives: docs/keepalive.md).
- `keepalive` / `timeouts`: the keep-alive timeouts in use; `keepalive` /
  `tick#<second>`: which scheduler took that second.
A connection with keep-alive carries `ka_slot`, the key of the `keepalive` index
(`grip.keepalive`). Every row carries `expires_at` (DynamoDB TTL) as a safety net
for missed $disconnects.
"""

from __future__ import annotations

import json
import time
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ..grip import keepalive as ka
from ..grip.errors import TooManyChannels, TooManyTimeouts, UnknownConnection
from ..grip.limits import MAX_KEEPALIVE_TIMEOUTS
from ..grip.model import Connection, Member
from ..grip.payload import Payload

KEEPALIVE_INDEX = "keepalive"
_REGISTRY = {"pk": {"S": "keepalive"}, "sk": {"S": "timeouts"}}

_CONN = "conn"

_ser, _de = TypeSerializer(), TypeDeserializer()


def _conn_key(connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"conn#{connection_id}"}, "sk": {"S": _CONN}}


def _member_key(channel: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"chan#{channel}"}, "sk": {"S": connection_id}}


class Store:
    def __init__(self, client: Any, table: str, ttl_seconds: int, max_channels: int) -> None:
        self._db = client
        self._table = table
        self._ttl = ttl_seconds
        self._max_channels = max_channels

    def _expires(self) -> dict[str, str]:
        return {"N": str(int(time.time()) + self._ttl)}

    # -- connections --------------------------------------------------------

    def put_connection(self, conn: Connection) -> None:
        item = {
            **_conn_key(conn.id),
            "endpoint": {"S": conn.endpoint},
            "headers": {"S": json.dumps(conn.headers)},
            "query": {"S": conn.query},
            "meta": _ser.serialize(conn.meta),
            "detached": {"BOOL": conn.detached},
            "envelope": {"BOOL": conn.envelope},
            "created_at": {"N": str(conn.created_at)},
            "expires_at": self._expires(),
        }
        if conn.grip_prefix is not None:
            item["grip_prefix"] = {"S": conn.grip_prefix}
        self._db.put_item(TableName=self._table, Item=item)

    def get_connection(self, connection_id: str) -> Connection | None:
        item = self._db.get_item(
            TableName=self._table, Key=_conn_key(connection_id), ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        row = {k: _de.deserialize(v) for k, v in item.items()}
        keep_alive = row.get("keep_alive")
        return Connection(
            id=connection_id,
            endpoint=row["endpoint"],
            headers=json.loads(row.get("headers", "{}")),
            query=row.get("query", ""),
            meta=dict(row.get("meta", {})),
            grip_prefix=row.get("grip_prefix"),
            detached=bool(row.get("detached", False)),
            created_at=int(row.get("created_at", 0)),
            channels=frozenset(row.get("channels", ())),
            keep_alive=json.loads(keep_alive) if keep_alive else None,
            close_code=int(row["close_code"]) if "close_code" in row else None,
            close_reason=row.get("close_reason", ""),
            envelope=bool(row.get("envelope", False)),
        )

    def _update(
        self, connection_id: str, expression: str, names: dict, values: dict | None
    ) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": _conn_key(connection_id),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": names,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._db.update_item(**kwargs)
        except self._db.exceptions.ConditionalCheckFailedException:
            raise UnknownConnection(connection_id) from None

    def set_meta(self, connection_id: str, name: str, value: str) -> None:
        """Store meta `name`; an empty value deletes it."""
        if value:
            self._update(
                connection_id, "SET #m.#n = :v", {"#m": "meta", "#n": name}, {":v": {"S": value}}
            )
        else:
            self._update(connection_id, "REMOVE #m.#n", {"#m": "meta", "#n": name}, None)

    def set_detached(self, connection_id: str) -> None:
        self._update(connection_id, "SET #d = :t", {"#d": "detached"}, {":t": {"BOOL": True}})

    def set_keep_alive(self, connection_id: str, settings: ka.Settings | None) -> None:
        """Schedule (or, with None, stop) a connection's keep-alive; TooManyTimeouts
        when the deployment already uses the most distinct timeouts it may."""
        if settings is None:
            self._update(
                connection_id, "REMOVE #k, #s", {"#k": "keep_alive", "#s": "ka_slot"}, None
            )
            return
        self._register_timeout(settings.timeout)
        self._update(
            connection_id,
            "SET #k = :k, #s = :s",
            {"#k": "keep_alive", "#s": "ka_slot"},
            {":k": {"S": json.dumps(settings.to_fields())}, ":s": {"S": settings.slot()}},
        )

    def _register_timeout(self, timeout: int) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_REGISTRY,
                UpdateExpression="ADD #t :ts",
                ConditionExpression="attribute_not_exists(#t) OR contains(#t, :t) "
                "OR size(#t) < :max",
                ExpressionAttributeNames={"#t": "timeouts"},
                ExpressionAttributeValues={
                    ":ts": {"NS": [str(timeout)]},
                    ":t": {"N": str(timeout)},
                    ":max": {"N": str(MAX_KEEPALIVE_TIMEOUTS)},
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            raise TooManyTimeouts(
                f"keep-alive timeout {timeout}: this deployment already uses "
                f"{MAX_KEEPALIVE_TIMEOUTS} distinct timeouts; use one of them"
            ) from None

    def keepalive_timeouts(self) -> list[int]:
        item = self._db.get_item(TableName=self._table, Key=_REGISTRY).get("Item", {})
        return sorted(int(t) for t in item.get("timeouts", {}).get("NS", []))

    def due(self, slot: str) -> list[ka.Target]:
        """The connections in a keep-alive slot (every page of the index)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": KEEPALIVE_INDEX,
            "KeyConditionExpression": "ka_slot = :s",
            "ExpressionAttributeValues": {":s": {"S": slot}},
        }
        found = []
        while True:
            page = self._db.query(**kwargs)
            for item in page.get("Items", []):
                fields = json.loads(item["keep_alive"]["S"])
                timeout, phase = (int(x) for x in item["ka_slot"]["S"].split("#")[1:])
                settings = ka.Settings(
                    Payload.from_fields(fields),
                    timeout,
                    fields.get("mode", ka.IDLE),
                    phase,
                    int(fields.get("since", 0)),
                )
                found.append(
                    ka.Target(
                        item["pk"]["S"][len("conn#") :],
                        item["endpoint"]["S"],
                        item.get("envelope", {}).get("BOOL", False),
                        settings,
                        frozenset(item.get("channels", {}).get("SS", [])),
                    )
                )
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def rephase(self, connection_id: str, old: str, new: str) -> None:
        """Move a keep-alive to another slot, unless it was replaced meanwhile."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_conn_key(connection_id),
                UpdateExpression="SET ka_slot = :new",
                ConditionExpression="ka_slot = :old",
                ExpressionAttributeValues={":new": {"S": new}, ":old": {"S": old}},
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            pass  # replaced, stopped or gone: nothing to move

    def claim_tick(self, second: int) -> bool:
        """Whether this scheduler is the first to take `second` (overlapping
        invocations share the work without sending anything twice)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": "keepalive"},
                    "sk": {"S": f"tick#{second}"},
                    "expires_at": {"N": str(second + 3600)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def delivered(self, channel: str, when: float) -> None:
        """Record that the channel's members were all sent something at `when`."""
        self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": f"chanmeta#{channel}"}, "sk": {"S": "meta"}},
            UpdateExpression="SET sent_at = :t, expires_at = :e",
            ExpressionAttributeValues={":t": {"N": repr(when)}, ":e": self._expires()},
        )

    def last_delivered(self, channels: set[str]) -> dict[str, float]:
        """When each channel was last delivered to (absent: not recently)."""
        out: dict[str, float] = {}
        names = sorted(channels)
        for start in range(0, len(names), 100):
            keys = [
                {"pk": {"S": f"chanmeta#{c}"}, "sk": {"S": "meta"}}
                for c in names[start : start + 100]
            ]
            request: dict[str, Any] = {self._table: {"Keys": keys}}
            for attempt in range(8):
                reply = self._db.batch_get_item(RequestItems=request)
                for item in reply.get("Responses", {}).get(self._table, []):
                    out[item["pk"]["S"][len("chanmeta#") :]] = float(item["sent_at"]["N"])
                request = reply.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
        return out

    def set_close(self, connection_id: str, code: int, reason: str) -> None:
        self._update(
            connection_id,
            "SET #c = :c, #r = :r",
            {"#c": "close_code", "#r": "close_reason"},
            {":c": {"N": str(code)}, ":r": {"S": reason}},
        )

    def remove_connection(self, connection_id: str) -> Connection | None:
        """Delete every row of the connection; returns what was stored, if anything."""
        conn = self.get_connection(connection_id)
        keys = [_member_key(ch, connection_id) for ch in (conn.channels if conn else ())]
        keys.append(_conn_key(connection_id))
        self._delete_keys(keys)
        return conn

    def _delete_keys(self, keys: list[dict[str, Any]]) -> None:
        for start in range(0, len(keys), 25):
            requests = [{"DeleteRequest": {"Key": k}} for k in keys[start : start + 25]]
            for attempt in range(8):
                unprocessed = self._db.batch_write_item(RequestItems={self._table: requests}).get(
                    "UnprocessedItems", {}
                )
                requests = unprocessed.get(self._table, [])
                if not requests:
                    break
                time.sleep(0.05 * 2**attempt)
            if requests:
                raise RuntimeError(f"DynamoDB left {len(requests)} deletes unprocessed")

    # -- channels -----------------------------------------------------------

    def subscribe(
        self, connection_id: str, channel: str, endpoint: str, envelope: bool = False
    ) -> None:
        """Idempotent. Raises TooManyChannels or UnknownConnection."""
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": _conn_key(connection_id),
                            "UpdateExpression": "ADD #c :cs",
                            "ConditionExpression": "attribute_exists(pk) AND "
                            "(attribute_not_exists(#c) OR contains(#c, :c) OR size(#c) < :max)",
                            "ExpressionAttributeNames": {"#c": "channels"},
                            "ExpressionAttributeValues": {
                                ":cs": {"SS": [channel]},
                                ":c": {"S": channel},
                                ":max": {"N": str(self._max_channels)},
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **_member_key(channel, connection_id),
                                "endpoint": {"S": endpoint},
                                "envelope": {"BOOL": envelope},
                                "expires_at": self._expires(),
                            },
                        }
                    },
                ]
            )
        except self._db.exceptions.TransactionCanceledException:
            if self.get_connection(connection_id) is None:
                raise UnknownConnection(connection_id) from None
            raise TooManyChannels(
                f"connection {connection_id} is in {self._max_channels} channels already"
            ) from None

    def unsubscribe(self, connection_id: str, channel: str) -> None:
        """Idempotent: unsubscribing from a channel never joined does nothing."""
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": _conn_key(connection_id),
                            "UpdateExpression": "DELETE #c :cs",
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeNames": {"#c": "channels"},
                            "ExpressionAttributeValues": {":cs": {"SS": [channel]}},
                        }
                    },
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": _member_key(channel, connection_id),
                        }
                    },
                ]
            )
        except self._db.exceptions.TransactionCanceledException:
            raise UnknownConnection(connection_id) from None

    def members(
        self, channel: str, start: str | None = None, limit: int = 1000
    ) -> tuple[list[Member], str | None]:
        """One page of a channel's members and the cursor for the next (None at the end)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": f"chan#{channel}"}},
            "Limit": limit,
        }
        if start is not None:
            kwargs["ExclusiveStartKey"] = _member_key(channel, start)
        page = self._db.query(**kwargs)
        members = [
            Member(i["sk"]["S"], i["endpoint"]["S"], i.get("envelope", {}).get("BOOL", False))
            for i in page.get("Items", [])
        ]
        last = page.get("LastEvaluatedKey")
        return members, (last["sk"]["S"] if last else None)
