"""Connections, meta and channel membership in one DynamoDB table.

Rows (partition key `pk`, sort key `sk`, both strings):
- `conn#<id>` / `conn`: the connection record; its `channels` set mirrors membership.
- `chan#<channel>` / `<id>`: one member of a channel, with what a sender needs.
Every row carries `expires_at` (DynamoDB TTL) as a safety net for missed $disconnects.
"""

from __future__ import annotations

import json
import time
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ..grip.errors import TooManyChannels, UnknownConnection
from ..grip.model import Connection, Member

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

    def set_keep_alive(self, connection_id: str, settings: dict[str, Any] | None) -> None:
        if settings is None:
            self._update(connection_id, "REMOVE #k", {"#k": "keep_alive"}, None)
        else:
            value = {":k": {"S": json.dumps(settings)}}
            self._update(connection_id, "SET #k = :k", {"#k": "keep_alive"}, value)

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
