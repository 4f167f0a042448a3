"""Connection rows: a `Connection` in and out, its meta, and the listing of every
open connection (table.py has the key scheme)."""

from __future__ import annotations

import json
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ..grip import history, introspection
from ..grip.errors import UnknownConnection
from ..grip.model import Connection
from . import table
from .table import Item, Table

_ser, _de = TypeSerializer(), TypeDeserializer()


def to_item(conn: Connection) -> Item:
    """A connection's row, without its key and `expires_at`. Its channels, joins
    and keep-alive are not written here: membership and keep-alive change them."""
    item: Item = {
        "endpoint": {"S": conn.endpoint},
        "headers": {"S": json.dumps(conn.headers)},
        "query": {"S": conn.query},
        "meta": _ser.serialize(conn.meta),
        "detached": {"BOOL": conn.detached},
        "envelope": {"BOOL": conn.envelope},
        "ordered": {"BOOL": conn.ordered},
        "created_at": {"N": str(conn.created_at)},
    }
    if conn.grip_prefix is not None:
        item["grip_prefix"] = {"S": conn.grip_prefix}
    if conn.resume:
        item["resume"] = {"BOOL": True}
    if conn.since:
        item["since"] = {
            "M": {c: {"L": [{"S": p.epoch}, {"N": str(p.offset)}]} for c, p in conn.since.items()}
        }
    if conn.floors:
        item["floors"] = {"M": {c: {"N": str(f)} for c, f in conn.floors.items()}}
    return item


def from_item(connection_id: str, item: Item) -> Connection:
    """A connection row as the domain type."""
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
        resume=bool(row.get("resume", False)),
        since={c: history.Position(str(e), int(o)) for c, (e, o) in row.get("since", {}).items()},
        ordered=bool(row.get("ordered", False)),
        joins=int(row.get("joins", 0)),
        floors={c: int(f) for c, f in row.get("floors", {}).items()},
    )


class Connections:
    def __init__(self, t: Table) -> None:
        self._t = t

    def put(self, conn: Connection) -> None:
        """Store a new connection, and list it (one transaction)."""
        t = self._t
        item = {**table.conn_key(conn.id), **to_item(conn), "expires_at": t.expires()}
        listed = {**table.listing_key(conn.id), "expires_at": item["expires_at"]}
        t.db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": t.name, "Item": item}},
                {"Put": {"TableName": t.name, "Item": listed}},
            ]
        )

    def get(self, connection_id: str) -> Connection | None:
        item = self._t.get(table.conn_key(connection_id))
        return None if item is None else from_item(connection_id, item)

    def many(self, ids: list[str]) -> dict[str, Connection]:
        """The stored connections among `ids`."""
        keys = [table.conn_key(cid) for cid in dict.fromkeys(ids)]
        out: dict[str, Connection] = {}
        for item in self._t.get_many(keys):
            cid = table.unprefix(item, table.CONN)
            out[cid] = from_item(cid, item)
        return out

    def ids(
        self, shard: int, after: str | None, limit: int
    ) -> tuple[list[str], tuple[int, str] | None]:
        """A page of every open connection's id, shard after shard, each in id order;
        and where the next page starts (None at the end)."""
        t = self._t
        ids: list[str] = []
        while shard < introspection.CONNECTION_SHARDS:
            partition = table.listing_partition(shard)
            kwargs: dict[str, Any] = {
                "TableName": t.name,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": partition}},
                "Limit": limit - len(ids),
            }
            if after is not None:
                kwargs["ExclusiveStartKey"] = {"pk": {"S": partition}, "sk": {"S": after}}
            page = t.db.query(**kwargs)
            ids.extend(i["sk"]["S"] for i in page.get("Items", []))
            if "LastEvaluatedKey" in page:
                after = page["LastEvaluatedKey"]["sk"]["S"]
            else:
                shard, after = shard + 1, None
            if len(ids) >= limit:
                break
        if shard >= introspection.CONNECTION_SHARDS:
            return ids, None
        return ids, (shard, after or "")  # "": from the start of that shard

    def update(
        self,
        connection_id: str,
        expression: str,
        names: dict[str, str],
        values: dict[str, Any] | None,
        returning: str = "NONE",
    ) -> Item:
        """Update an existing connection row (UnknownConnection if there is none);
        what DynamoDB answers."""
        t = self._t
        kwargs: dict[str, Any] = {
            "TableName": t.name,
            "Key": table.conn_key(connection_id),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": names,
            "ReturnValues": returning,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            reply: Item = t.db.update_item(**kwargs)
        except t.db.exceptions.ConditionalCheckFailedException:
            raise UnknownConnection(connection_id) from None
        return reply

    def update_meta(self, connection_id: str, changes: dict[str, str | None]) -> dict[str, str]:
        """Set (a value) or clear (None) several meta names at once; the meta after."""
        names = {"#m": "meta"}
        values: dict[str, Any] = {}
        sets, removes = [], []
        for k, (name, value) in enumerate(sorted(changes.items())):
            names[f"#n{k}"] = name
            if value:
                values[f":v{k}"] = {"S": value}
                sets.append(f"#m.#n{k} = :v{k}")
            else:
                removes.append(f"#m.#n{k}")
        expression = " ".join(
            part
            for part in (
                "SET " + ", ".join(sets) if sets else "",
                "REMOVE " + ", ".join(removes) if removes else "",
            )
            if part
        )
        reply = self.update(connection_id, expression, names, values, "ALL_NEW")
        meta = reply.get("Attributes", {}).get("meta", {"M": {}})
        return {k: str(v) for k, v in _de.deserialize(meta).items()}

    def set_meta(self, connection_id: str, name: str, value: str) -> None:
        """Store meta `name`; an empty value deletes it."""
        names = {"#m": "meta", "#n": name}
        if value:
            self.update(connection_id, "SET #m.#n = :v", names, {":v": {"S": value}})
        else:
            self.update(connection_id, "REMOVE #m.#n", names, None)

    def set_detached(self, connection_id: str) -> None:
        self.update(connection_id, "SET #d = :t", {"#d": "detached"}, {":t": {"BOOL": True}})

    def set_close(self, connection_id: str, code: int, reason: str) -> None:
        self.update(
            connection_id,
            "SET #c = :c, #r = :r",
            {"#c": "close_code", "#r": "close_reason"},
            {":c": {"N": str(code)}, ":r": {"S": reason}},
        )

    def used_since(self, connection_id: str, channel: str) -> None:
        """A presented position was used: a later subscribe to `channel` starts afresh."""
        try:
            self.update(connection_id, "REMOVE since.#c", {"#c": channel}, None)
        except UnknownConnection:
            pass
