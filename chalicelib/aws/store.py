"""Connections, meta and channel membership in one DynamoDB table.

Rows (partition key `pk`, sort key `sk`, both strings):
- `conn#<id>` / `conn`: the connection record; its `channels` set mirrors membership.
- `chan#<channel>` / `<id>`: one member of a channel, with what a sender needs.
- `chanmeta#<channel>` / `meta`: when the worker last delivered to the channel
  (idle keep-alives: docs/keepalive.md).
- `chanmeta#<channel>` / `count`: how many members the channel has (`n`), changed
  in the same transaction as the member rows; `v` counts the changes.
- `conns#<shard>` / `<id>`: one per open connection, written and deleted with the
  connection row, so every connection is listed page by page without a scan
  (`grip.introspection`).
- `keepalive` / `timeouts`: the keep-alive timeouts in use; `keepalive` /
  `tick#<second>`: which scheduler took that second.
- `chanmeta#<channel>` / `hist`: the channel history's head: its `epoch`, the
  offset of its last message (`top`), and the queue message that took it.
- `hist#<channel>` / `<offset, 12 digits>`: one published message, kept for resume
  (`grip.history`, docs/resume.md) until its `expires_at`.
- `upload#<key>` / `claim`: a client's envelope upload (`[4]`) being taken: the
  conditional put that lets one announcement of it through (`claim_upload`).
A connection with keep-alive carries `ka_slot`, the key of the `keepalive` index
(`grip.keepalive`). Every row carries `expires_at` (DynamoDB TTL) as a safety net
for missed $disconnects.
"""

from __future__ import annotations

import json
import time
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ..grip import history, introspection
from ..grip import keepalive as ka
from ..grip.errors import TooManyChannels, TooManyJoins, TooManyTimeouts, UnknownConnection
from ..grip.limits import (
    HISTORY_HEAD_EXTRA,
    KEEPALIVE_INDEX,
    MAX_KEEPALIVE_TIMEOUTS,
    MAX_QUEUED_JOINS,
)
from ..grip.model import Connection, Member
from ..grip.payload import Payload

_REGISTRY = {"pk": {"S": "keepalive"}, "sk": {"S": "timeouts"}}

_CONN = "conn"

_ser, _de = TypeSerializer(), TypeDeserializer()


def _conn_key(connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"conn#{connection_id}"}, "sk": {"S": _CONN}}


def _member_key(channel: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"chan#{channel}"}, "sk": {"S": connection_id}}


def _count_key(channel: str) -> dict[str, Any]:
    return {"pk": {"S": f"chanmeta#{channel}"}, "sk": {"S": "count"}}


def _index_key(connection_id: str) -> dict[str, Any]:
    shard = introspection.shard_of(connection_id)
    return {"pk": {"S": f"conns#{shard}"}, "sk": {"S": connection_id}}


# A transaction holds at most 100 items: the connection row, and for each channel
# its member row and its counter.
_CHANNELS_PER_TRANSACTION = 49
_ATTEMPTS = 5


def _connection(connection_id: str, item: dict[str, Any]) -> Connection:
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


def _head_key(channel: str) -> dict[str, Any]:
    return {"pk": {"S": f"chanmeta#{channel}"}, "sk": {"S": "hist"}}


def _entry(item: dict[str, Any]) -> history.Entry:
    row = {k: _de.deserialize(v) for k, v in item.items()}
    payload = None
    if "text" in row:
        payload = Payload.of_text(row["text"])
    elif "bin" in row:
        payload = Payload.of_bytes(bytes(row["bin"]))
    return history.Entry(
        offset=int(row["offset"]),
        published_at=float(row["at"]),
        payload=payload,
        stored=row.get("stored"),
        binary=bool(row.get("binary", False)),
        id=row.get("id"),
        prev_id=row.get("prev_id"),
    )


class Store:
    def __init__(self, client: Any, table: str, ttl_seconds: int, max_channels: int) -> None:
        self._db = client
        self._table = table
        self._ttl = ttl_seconds
        self._max_channels = max_channels
        self._max_joins = max(max_channels, MAX_QUEUED_JOINS)

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
            "ordered": {"BOOL": conn.ordered},
            "created_at": {"N": str(conn.created_at)},
            "expires_at": self._expires(),
        }
        if conn.grip_prefix is not None:
            item["grip_prefix"] = {"S": conn.grip_prefix}
        if conn.resume:
            item["resume"] = {"BOOL": True}
        if conn.since:
            item["since"] = {
                "M": {
                    c: {"L": [{"S": p.epoch}, {"N": str(p.offset)}]} for c, p in conn.since.items()
                }
            }
        if conn.floors:
            item["floors"] = {"M": {c: {"N": str(f)} for c, f in conn.floors.items()}}
        index = {**_index_key(conn.id), "expires_at": item["expires_at"]}
        self._db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": self._table, "Item": item}},
                {"Put": {"TableName": self._table, "Item": index}},
            ]
        )

    def get_connection(self, connection_id: str) -> Connection | None:
        item = self._db.get_item(
            TableName=self._table, Key=_conn_key(connection_id), ConsistentRead=True
        ).get("Item")
        return None if item is None else _connection(connection_id, item)

    def connections(self, ids: list[str]) -> dict[str, Connection]:
        """The stored connections among `ids` (BatchGetItem, 100 keys a call)."""
        out: dict[str, Connection] = {}
        for start in range(0, len(ids), 100):
            keys = [_conn_key(cid) for cid in dict.fromkeys(ids[start : start + 100])]
            request: dict[str, Any] = {self._table: {"Keys": keys}}
            for attempt in range(8):
                reply = self._db.batch_get_item(RequestItems=request)
                for item in reply.get("Responses", {}).get(self._table, []):
                    cid = item["pk"]["S"][len("conn#") :]
                    out[cid] = _connection(cid, item)
                request = reply.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            if request:
                raise RuntimeError("DynamoDB left connection reads unprocessed")
        return out

    def connection_ids(
        self, shard: int, after: str | None, limit: int
    ) -> tuple[list[str], tuple[int, str] | None]:
        """A page of every open connection's id, shard after shard, each in id order;
        and where the next page starts (None at the end)."""
        ids: list[str] = []
        while shard < introspection.CONNECTION_SHARDS:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": f"conns#{shard}"}},
                "Limit": limit - len(ids),
            }
            if after is not None:
                kwargs["ExclusiveStartKey"] = {"pk": {"S": f"conns#{shard}"}, "sk": {"S": after}}
            page = self._db.query(**kwargs)
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
        reply = self._update(connection_id, expression, names, values, "ALL_NEW")
        meta = reply.get("Attributes", {}).get("meta", {"M": {}})
        return {k: str(v) for k, v in _de.deserialize(meta).items()}

    def _update(
        self,
        connection_id: str,
        expression: str,
        names: dict,
        values: dict | None,
        returning: str = "NONE",
    ) -> dict[str, Any]:
        """Update an existing connection row (UnknownConnection if there is none)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": _conn_key(connection_id),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": names,
            "ReturnValues": returning,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            reply: dict[str, Any] = self._db.update_item(**kwargs)
        except self._db.exceptions.ConditionalCheckFailedException:
            raise UnknownConnection(connection_id) from None
        return reply

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
        """Delete every row of the connection, and count it out of its channels, in
        one transaction (several above 49 channels); returns what was stored."""
        stale: set[str] = set()
        for _ in range(_ATTEMPTS):
            conn = self.get_connection(connection_id)
            if conn is None:
                self._delete_keys([_conn_key(connection_id), _index_key(connection_id)])
                return None
            channels = sorted(conn.channels)
            try:
                while len(channels) > _CHANNELS_PER_TRANSACTION:
                    chunk = channels[:_CHANNELS_PER_TRANSACTION]
                    self._leave(connection_id, chunk, stale, delete_connection=False)
                    channels = channels[_CHANNELS_PER_TRANSACTION:]
                self._leave(connection_id, channels, stale, delete_connection=True)
                return conn
            except self._db.exceptions.TransactionCanceledException:
                stale = {c for c in conn.channels if self._count_stale(c)}
        raise RuntimeError(f"connection {connection_id} kept changing while being removed")

    def _leave(
        self, connection_id: str, channels: list[str], stale: set[str], delete_connection: bool
    ) -> None:
        """One transaction: out of `channels` (member rows deleted, counters down),
        and with `delete_connection` the connection's own rows too, provided it is
        in exactly those channels still."""
        names = {"#c": "channels"}
        values: dict[str, Any] = {f":c{k}": {"S": c} for k, c in enumerate(channels)}
        held = " AND ".join(f"contains(#c, :c{k})" for k in range(len(channels)))
        items: list[dict[str, Any]] = []
        if delete_connection:
            if channels:
                values[":n"] = {"N": str(len(channels))}
                condition = f"attribute_exists(pk) AND size(#c) = :n AND {held}"
            else:
                condition = "attribute_exists(pk) AND attribute_not_exists(#c)"
            items.append(
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": _conn_key(connection_id),
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": names,
                        **({"ExpressionAttributeValues": values} if values else {}),
                    }
                }
            )
            items.append({"Delete": {"TableName": self._table, "Key": _index_key(connection_id)}})
        else:
            values[":cs"] = {"SS": channels}
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _conn_key(connection_id),
                        "UpdateExpression": "DELETE #c :cs",
                        "ConditionExpression": f"attribute_exists(pk) AND {held}",
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        for channel in channels:
            items.append(
                {"Delete": {"TableName": self._table, "Key": _member_key(channel, connection_id)}}
            )
            items.append(self._count_change(channel, -1, channel in stale))
        self._db.transact_write_items(TransactItems=items)

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

    # -- envelope uploads -------------------------------------------------

    def claim_upload(self, key: str, until: int) -> bool:
        """Take the client upload under `key`, once: False if an announcement took
        it already. A conditional put, which DynamoDB (and moto) apply atomically;
        the row expires with the upload URL (`until`), after which the key is
        refused as expired anyway."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"upload#{key}"},
                    "sk": {"S": "claim"},
                    "expires_at": {"N": str(until + 60)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release_upload(self, key: str) -> None:
        """Give a claim back: the object was not there to take (not uploaded yet,
        or S3 failed), so the client may announce it again."""
        self._db.delete_item(
            TableName=self._table, Key={"pk": {"S": f"upload#{key}"}, "sk": {"S": "claim"}}
        )

    # -- channels -----------------------------------------------------------

    def _count_change(self, channel: str, delta: int, stale: bool) -> dict[str, Any]:
        """The counter's part of a membership transaction. The counter expires (TTL)
        no earlier than any member row it counted: an expired counter counted only
        expired members, so a `stale` change starts it again from 0 instead. A
        decrement needs a live counter, an increment a live or absent one: when
        that does not hold, the transaction fails and is retried with `stale`."""
        now = {"N": str(int(time.time()))}
        names = {"#n": "n", "#v": "v", "#e": "expires_at"}
        if stale:
            return {
                "Update": {
                    "TableName": self._table,
                    "Key": _count_key(channel),
                    "UpdateExpression": "SET #n = :n, #e = :e ADD #v :one",
                    "ConditionExpression": "attribute_not_exists(#e) OR #e <= :now",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {
                        ":n": {"N": str(max(delta, 0))},
                        ":e": self._expires(),
                        ":one": {"N": "1"},
                        ":now": now,
                    },
                }
            }
        live = "#e > :now" if delta < 0 else "attribute_not_exists(#e) OR #e > :now"
        return {
            "Update": {
                "TableName": self._table,
                "Key": _count_key(channel),
                "UpdateExpression": "SET #e = :e ADD #n :d, #v :one",
                "ConditionExpression": live,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {
                    ":d": {"N": str(delta)},
                    ":e": self._expires(),
                    ":one": {"N": "1"},
                    ":now": now,
                },
            }
        }

    def _count_stale(self, channel: str) -> bool:
        """Whether the channel's counter is absent or expired (not yet deleted by TTL)."""
        item = self._db.get_item(
            TableName=self._table, Key=_count_key(channel), ConsistentRead=True
        ).get("Item")
        return item is None or int(item.get("expires_at", {}).get("N", "0")) <= time.time()

    def count(self, channel: str) -> int:
        """How many connections the channel has: one item read, whatever the size."""
        item = self._db.get_item(
            TableName=self._table, Key=_count_key(channel), ConsistentRead=True
        ).get("Item")
        if item is None or int(item.get("expires_at", {}).get("N", "0")) <= time.time():
            return 0
        return max(0, int(item.get("n", {}).get("N", "0")))

    def subscribe(
        self,
        connection_id: str,
        channel: str,
        endpoint: str,
        envelope: bool = False,
        resume: bool = False,
        joining: bool = False,
    ) -> bool:
        """Idempotent: counted once; True when the connection was not a member yet.
        Raises TooManyChannels, TooManyJoins or UnknownConnection.

        `resume`: the member is sent positions. `joining`: publishes pass it by
        until its `Join` job has run (`joined`), which replays what it missed; the
        connection's count of queued joins goes up by one (`join_done` takes it
        down), and the subscribe is refused when it is at its limit. A repeat
        subscribe refreshes the member row and changes neither its joining flag
        nor that count: it queues nothing."""
        stale = False
        row = {
            **_member_key(channel, connection_id),
            "endpoint": {"S": endpoint},
            "envelope": {"BOOL": envelope},
        }
        if resume:
            row["resume"] = {"BOOL": True}
        if joining:
            row["joining"] = {"BOOL": True}
        for _ in range(_ATTEMPTS):
            member = {
                "Put": {
                    "TableName": self._table,
                    "Item": {**row, "expires_at": self._expires()},
                }
            }
            values = {":cs": {"SS": [channel]}, ":c": {"S": channel}}
            join: dict[str, Any] = {
                "Update": {
                    "TableName": self._table,
                    "Key": _conn_key(connection_id),
                    "UpdateExpression": "ADD #c :cs",
                    "ConditionExpression": "attribute_exists(pk) AND NOT contains(#c, :c) AND "
                    "(attribute_not_exists(#c) OR size(#c) < :max)",
                    "ExpressionAttributeNames": {"#c": "channels"},
                    "ExpressionAttributeValues": {
                        **values,
                        ":max": {"N": str(self._max_channels)},
                    },
                }
            }
            if joining:
                update = join["Update"]
                update["UpdateExpression"] = "ADD #c :cs, #j :one"
                update["ConditionExpression"] += " AND (attribute_not_exists(#j) OR #j < :mj)"
                update["ExpressionAttributeNames"]["#j"] = "joins"
                update["ExpressionAttributeValues"].update(
                    {":one": {"N": "1"}, ":mj": {"N": str(self._max_joins)}}
                )
            try:
                self._db.transact_write_items(
                    TransactItems=[join, member, self._count_change(channel, 1, stale)]
                )
                return True
            except self._db.exceptions.TransactionCanceledException:
                pass
            conn = self.get_connection(connection_id)
            if conn is None:
                raise UnknownConnection(connection_id) from None
            if channel in conn.channels:
                # A member already: refresh its row (and TTL), counted once; its
                # joining flag stays as it is (a Join queued earlier clears it).
                again = {
                    "Update": {
                        "TableName": self._table,
                        "Key": _conn_key(connection_id),
                        "UpdateExpression": "ADD #c :cs",
                        "ConditionExpression": "contains(#c, :c)",
                        "ExpressionAttributeNames": {"#c": "channels"},
                        "ExpressionAttributeValues": values,
                    }
                }
                fields = {k: v for k, v in row.items() if k not in ("pk", "sk", "joining")}
                fields["expires_at"] = self._expires()
                names = {f"#f{k}": name for k, name in enumerate(fields)}
                refresh = {
                    "Update": {
                        "TableName": self._table,
                        "Key": _member_key(channel, connection_id),
                        "UpdateExpression": "SET "
                        + ", ".join(f"#f{k} = :f{k}" for k in range(len(fields))),
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": {
                            f":f{k}": value for k, value in enumerate(fields.values())
                        },
                    }
                }
                try:
                    self._db.transact_write_items(TransactItems=[again, refresh])
                    return False
                except self._db.exceptions.TransactionCanceledException:
                    continue
            if len(conn.channels) >= self._max_channels:
                raise TooManyChannels(
                    f"connection {connection_id} is in {self._max_channels} channels already"
                )
            if joining and conn.joins >= self._max_joins:
                raise TooManyJoins(
                    f"connection {connection_id} has {conn.joins} joins queued already "
                    f"(at most {self._max_joins}): subscribe again once they have run"
                )
            stale = self._count_stale(channel)
        raise RuntimeError(f"subscribe {connection_id} to {channel!r}: too many conflicts")

    def unsubscribe(self, connection_id: str, channel: str) -> None:
        """Idempotent: unsubscribing from a channel never joined does nothing."""
        stale = False
        for _ in range(_ATTEMPTS):
            try:
                self._db.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": _conn_key(connection_id),
                                "UpdateExpression": "DELETE #c :cs",
                                "ConditionExpression": "attribute_exists(pk) AND contains(#c, :c)",
                                "ExpressionAttributeNames": {"#c": "channels"},
                                "ExpressionAttributeValues": {
                                    ":cs": {"SS": [channel]},
                                    ":c": {"S": channel},
                                },
                            }
                        },
                        {
                            "Delete": {
                                "TableName": self._table,
                                "Key": _member_key(channel, connection_id),
                            }
                        },
                        self._count_change(channel, -1, stale),
                    ]
                )
                return
            except self._db.exceptions.TransactionCanceledException:
                pass
            conn = self.get_connection(connection_id)
            if conn is None:
                raise UnknownConnection(connection_id) from None
            if channel not in conn.channels:
                # Not a member: a stray member row (none, normally) goes, uncounted.
                self._db.delete_item(TableName=self._table, Key=_member_key(channel, connection_id))
                return
            stale = self._count_stale(channel)
        raise RuntimeError(f"unsubscribe {connection_id} from {channel!r}: too many conflicts")

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
            Member(
                i["sk"]["S"],
                i["endpoint"]["S"],
                i.get("envelope", {}).get("BOOL", False),
                i.get("resume", {}).get("BOOL", False),
                i.get("joining", {}).get("BOOL", False),
            )
            for i in page.get("Items", [])
        ]
        last = page.get("LastEvaluatedKey")
        return members, (last["sk"]["S"] if last else None)

    def joined(self, channel: str, connection_id: str) -> None:
        """The member's recovery is done: publishes reach it from now on."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_member_key(channel, connection_id),
                UpdateExpression="REMOVE joining",
                ConditionExpression="attribute_exists(pk)",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            pass  # unsubscribed or gone meanwhile

    def join_done(self, connection_id: str, channel: str | None = None) -> None:
        """One of the connection's queued joins has run (or was given up): its
        count goes down; with `channel`, the position it presented there was used
        too (a later subscribe to it starts afresh). Nothing if it is gone."""
        expression = "ADD #j :minus"
        names = {"#j": "joins"}
        if channel is not None:
            expression += " REMOVE since.#c"
            names["#c"] = channel
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_conn_key(connection_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND #j > :zero",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":minus": {"N": "-1"}, ":zero": {"N": "0"}},
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            # Gone, or counted down already (SQS handed the job out twice).
            if channel is not None:
                self.used_since(connection_id, channel)

    def used_since(self, connection_id: str, channel: str) -> None:
        """A presented position was used: a later subscribe to `channel` starts afresh."""
        try:
            self._update(connection_id, "REMOVE since.#c", {"#c": channel}, None)
        except UnknownConnection:
            pass

    # -- channel history (docs/resume.md) -------------------------------------

    def append_history(
        self, channel: str, message_id: str, fields: dict[str, Any], keep: int, new_epoch: str
    ) -> history.Position:
        """Give a publish its position and keep it for `keep` seconds."""
        position = self.take_offset(channel, message_id, keep, new_epoch)
        self.keep_entry(channel, position, fields, keep)
        return position

    def take_offset(
        self, channel: str, message_id: str, keep: int, new_epoch: str
    ) -> history.Position:
        """A publish's position in its channel. The queue message `message_id` that
        took an offset keeps it when it is handed out again (`history.RECENT`)."""
        now = time.time()
        key = _head_key(channel)
        try:
            # One write: the next offset, unless this message took one already.
            head = self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET epoch = if_not_exists(epoch, :e), expires_at = :x, "
                "recent = list_append(if_not_exists(recent, :none), :m) ADD #top :one",
                ConditionExpression="attribute_not_exists(recent) OR NOT contains(recent, :id)",
                ExpressionAttributeNames={"#top": "top"},
                ExpressionAttributeValues={
                    ":e": {"S": new_epoch},
                    ":none": {"L": []},
                    ":m": {"L": [{"S": message_id}]},
                    ":id": {"S": message_id},
                    ":one": {"N": "1"},
                    # The head outlives its messages: a client back after a quiet
                    # spell still finds its epoch (a new one would fail its recovery).
                    ":x": {"N": str(int(now) + keep + HISTORY_HEAD_EXTRA)},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except self._db.exceptions.ConditionalCheckFailedException:
            # Handed out again: the offset it took.
            head = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True)["Item"]
            recent = [v["S"] for v in head["recent"]["L"]]
            taken = history.recent_offset(recent, int(head["top"]["N"]), message_id)
            assert taken is not None  # the condition found it there
            return history.Position(head["epoch"]["S"], taken)
        top = int(head["top"]["N"])
        recent = [v["S"] for v in head["recent"]["L"]]
        drop = history.to_trim(recent)
        if drop:
            try:  # only if nobody wrote since: their own write trims next time
                self._db.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="REMOVE " + ", ".join(f"recent[{i}]" for i in range(drop)),
                    ConditionExpression="#top = :top",
                    ExpressionAttributeNames={"#top": "top"},
                    ExpressionAttributeValues={":top": {"N": str(top)}},
                )
            except self._db.exceptions.ConditionalCheckFailedException:
                pass
        return history.Position(head["epoch"]["S"], top)

    def keep_entry(
        self, channel: str, position: history.Position, fields: dict[str, Any], keep: int
    ) -> None:
        """Keep the publish at `position` for `keep` seconds. `fields`: its content
        (`text`, `bin`, or `stored` and `binary`) and `id`/`prev_id`, as DynamoDB
        attribute values."""
        now = time.time()
        self._db.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": f"hist#{channel}"},
                "sk": {"S": history.sort_key(position.offset)},
                "epoch": {"S": position.epoch},
                "offset": {"N": str(position.offset)},
                "at": {"N": repr(now)},
                "expires_at": {"N": str(int(now) + keep)},
                **fields,
            },
        )

    def history_head(self, channel: str) -> history.Head | None:
        item = self._db.get_item(
            TableName=self._table, Key=_head_key(channel), ConsistentRead=True
        ).get("Item")
        if item is None or "top" not in item:
            return None
        return history.Head(item["epoch"]["S"], int(item["top"]["N"]))

    def history(
        self,
        channel: str,
        epoch: str,
        after: int,
        upto: int | None = None,
        limit: int | None = None,
    ) -> list[history.Entry]:
        """The unexpired messages of `epoch` with `after` < offset (<= `upto`),
        oldest first, at most `limit`."""
        upper = history.sort_key(upto) if upto is not None else "9" * 12
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
            "FilterExpression": "epoch = :e AND expires_at > :now",
            "ExpressionAttributeValues": {
                ":p": {"S": f"hist#{channel}"},
                ":a": {"S": history.sort_key(after + 1)},
                ":b": {"S": upper},
                ":e": {"S": epoch},
                ":now": {"N": str(int(time.time()))},
            },
            "ConsistentRead": True,
        }
        if limit is not None:
            kwargs["Limit"] = limit  # rows read a page; expired ones are then filtered out
        out: list[history.Entry] = []
        while True:
            page = self._db.query(**kwargs)
            out += [_entry(i) for i in page.get("Items", [])]
            last = page.get("LastEvaluatedKey")
            if last is None or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out
            kwargs["ExclusiveStartKey"] = last

    def history_offset_of(self, channel: str, epoch: str, item_id: str) -> int | None:
        """The offset of the unexpired message whose GRIP id is `item_id` (the
        latest, if ids repeat): a read of the channel's whole history."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :p",
            "FilterExpression": "epoch = :e AND #id = :i AND expires_at > :now",
            "ProjectionExpression": "#id, #o",
            "ExpressionAttributeNames": {"#id": "id", "#o": "offset"},
            "ExpressionAttributeValues": {
                ":p": {"S": f"hist#{channel}"},
                ":e": {"S": epoch},
                ":i": {"S": item_id},
                ":now": {"N": str(int(time.time()))},
            },
            "ConsistentRead": True,
        }
        found = None
        while True:
            page = self._db.query(**kwargs)
            for item in page.get("Items", []):
                found = int(item["offset"]["N"])
            last = page.get("LastEvaluatedKey")
            if last is None:
                return found
            kwargs["ExclusiveStartKey"] = last

    def start_history(self, channel: str, epoch: str, keep: int) -> history.Head:
        """The channel's history head, made (empty, in `epoch`) if it has none."""
        head = self._db.update_item(
            TableName=self._table,
            Key=_head_key(channel),
            UpdateExpression="SET epoch = if_not_exists(epoch, :e), top = if_not_exists(top, :z), "
            "expires_at = if_not_exists(expires_at, :x)",
            ExpressionAttributeValues={
                ":e": {"S": epoch},
                ":z": {"N": "0"},
                ":x": {"N": str(int(time.time()) + keep)},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return history.Head(head["epoch"]["S"], int(head["top"]["N"]))
