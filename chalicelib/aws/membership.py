"""Channel membership and counts: a connection's `channels` set, its member rows
and the channel's counter shard it hashes to, changed together in one transaction; the joins a
connection has queued (docs/resume.md); and a connection's removal, which counts
it out of every channel (table.py has the key scheme)."""

from __future__ import annotations

import time
from typing import Any

from ..grip.errors import Contended, TooManyChannels, TooManyJoins, UnknownConnection
from ..grip.limits import COUNT_SHARDS, MAX_QUEUED_JOINS
from ..grip.model import Connection, Member
from . import table
from .connections import Connections
from .table import Item, Table

# A transaction holds at most 100 items: the connection row, and for each channel
# its member row and its counter.
_CHANNELS_PER_TRANSACTION = 49
_ATTEMPTS = 5  # transactions tried while the rows change under them

# What a membership change does to a counter (_count_change, _count_target):
# LIVE adds to the connection's shard; STALE starts an expired or absent shard
# again; LEGACY takes one from the channel's counter of before the shards
# (table.legacy_count_key); NONE leaves the counters as they are.
LIVE, STALE, LEGACY, NONE = "live", "stale", "legacy", "none"


class Membership:
    def __init__(self, t: Table, connections: Connections, max_channels: int) -> None:
        self._t = t
        self._connections = connections
        self._max_channels = max_channels
        self._max_joins = max(max_channels, MAX_QUEUED_JOINS)

    # -- joining and leaving --------------------------------------------------------

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
        Raises TooManyChannels, TooManyJoins, UnknownConnection or Contended.

        `resume`: the member is sent positions. `joining`: publishes pass it by
        until its `Join` job has run (`joined`), which replays what it missed; the
        connection's count of queued joins goes up by one (`join_done` takes it
        down), and the subscribe is refused when it is at its limit. A repeat
        subscribe refreshes the member row and changes neither its joining flag
        nor that count: it queues nothing."""
        t = self._t
        target = LIVE
        row: Item = {"endpoint": {"S": endpoint}, "envelope": {"BOOL": envelope}}
        if resume:
            row["resume"] = {"BOOL": True}
        for _ in range(_ATTEMPTS):
            member = {**table.member_key(channel, connection_id), **row}
            if joining:
                member["joining"] = {"BOOL": True}
            member["expires_at"] = t.expires()
            try:
                t.db.transact_write_items(
                    TransactItems=[
                        self._join(connection_id, channel, joining),
                        {"Put": {"TableName": t.name, "Item": member}},
                        *self._count_change(channel, connection_id, 1, target),
                    ]
                )
                return True
            except t.db.exceptions.TransactionCanceledException:
                pass
            conn = self._connections.get(connection_id)
            if conn is None:
                raise UnknownConnection(connection_id) from None
            if channel in conn.channels:
                if self._refresh(connection_id, channel, row):
                    return False
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
            target = self._count_target(channel, connection_id, 1)
        raise Contended(f"subscribe {connection_id} to {channel!r}: too many conflicts, retry")

    def _join(self, connection_id: str, channel: str, joining: bool) -> dict[str, Any]:
        """The connection row's part of a subscribe: the channel added, provided it
        is new and under the cap (and with `joining`, a join counted, under its cap)."""
        names = {"#c": "channels"}
        values: dict[str, Any] = {
            ":cs": {"SS": [channel]},
            ":c": {"S": channel},
            ":max": {"N": str(self._max_channels)},
        }
        expression = "ADD #c :cs"
        condition = (
            "attribute_exists(pk) AND NOT contains(#c, :c) AND "
            "(attribute_not_exists(#c) OR size(#c) < :max)"
        )
        if joining:
            expression = "ADD #c :cs, #j :one"
            condition += " AND (attribute_not_exists(#j) OR #j < :mj)"
            names["#j"] = "joins"
            values.update({":one": {"N": "1"}, ":mj": {"N": str(self._max_joins)}})
        return {
            "Update": {
                "TableName": self._t.name,
                "Key": table.conn_key(connection_id),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _refresh(self, connection_id: str, channel: str, row: Item) -> bool:
        """A member already: refresh its row (and TTL), counted once; its joining
        flag stays as it is (a Join queued earlier clears it). False when the
        connection left the channel meanwhile."""
        t = self._t
        again = {
            "Update": {
                "TableName": t.name,
                "Key": table.conn_key(connection_id),
                "UpdateExpression": "ADD #c :cs",
                "ConditionExpression": "contains(#c, :c)",
                "ExpressionAttributeNames": {"#c": "channels"},
                "ExpressionAttributeValues": {":cs": {"SS": [channel]}, ":c": {"S": channel}},
            }
        }
        fields = {**row, "expires_at": t.expires()}
        refresh = {
            "Update": {
                "TableName": t.name,
                "Key": table.member_key(channel, connection_id),
                "UpdateExpression": "SET "
                + ", ".join(f"#f{k} = :f{k}" for k in range(len(fields))),
                "ExpressionAttributeNames": {f"#f{k}": name for k, name in enumerate(fields)},
                "ExpressionAttributeValues": {f":f{k}": v for k, v in enumerate(fields.values())},
            }
        }
        try:
            t.db.transact_write_items(TransactItems=[again, refresh])
        except t.db.exceptions.TransactionCanceledException:
            return False
        return True

    def unsubscribe(self, connection_id: str, channel: str) -> None:
        """Idempotent: unsubscribing from a channel never joined does nothing.
        Raises UnknownConnection or Contended."""
        t = self._t
        target = LIVE
        for _ in range(_ATTEMPTS):
            leave = {
                "Update": {
                    "TableName": t.name,
                    "Key": table.conn_key(connection_id),
                    "UpdateExpression": "DELETE #c :cs",
                    "ConditionExpression": "attribute_exists(pk) AND contains(#c, :c)",
                    "ExpressionAttributeNames": {"#c": "channels"},
                    "ExpressionAttributeValues": {":cs": {"SS": [channel]}, ":c": {"S": channel}},
                }
            }
            gone = {
                "Delete": {"TableName": t.name, "Key": table.member_key(channel, connection_id)}
            }
            try:
                t.db.transact_write_items(
                    TransactItems=[
                        leave,
                        gone,
                        *self._count_change(channel, connection_id, -1, target),
                    ]
                )
                return
            except t.db.exceptions.TransactionCanceledException:
                pass
            conn = self._connections.get(connection_id)
            if conn is None:
                raise UnknownConnection(connection_id) from None
            if channel not in conn.channels:
                # Not a member: a stray member row (none, normally) goes, uncounted.
                t.db.delete_item(TableName=t.name, Key=table.member_key(channel, connection_id))
                return
            target = self._count_target(channel, connection_id, -1)
        raise Contended(f"unsubscribe {connection_id} from {channel!r}: too many conflicts, retry")

    def remove(self, connection_id: str) -> Connection | None:
        """Delete every row of the connection, and count it out of its channels, in
        one transaction (several above 49 channels); returns what was stored."""
        t = self._t
        targets: dict[str, str] = {}  # by channel; LIVE unless named
        for _ in range(_ATTEMPTS):
            conn = self._connections.get(connection_id)
            if conn is None:
                t.delete_many([table.conn_key(connection_id), table.listing_key(connection_id)])
                return None
            channels = sorted(conn.channels)
            try:
                while len(channels) > _CHANNELS_PER_TRANSACTION:
                    chunk = channels[:_CHANNELS_PER_TRANSACTION]
                    self._leave(connection_id, chunk, targets, delete_connection=False)
                    channels = channels[_CHANNELS_PER_TRANSACTION:]
                self._leave(connection_id, channels, targets, delete_connection=True)
                return conn
            except t.db.exceptions.TransactionCanceledException:
                targets = {c: self._count_target(c, connection_id, -1) for c in conn.channels}
        raise Contended(f"connection {connection_id} kept changing while being removed, retry")

    def _leave(
        self,
        connection_id: str,
        channels: list[str],
        targets: dict[str, str],
        delete_connection: bool,
    ) -> None:
        """One transaction: out of `channels` (member rows deleted, counters down),
        and with `delete_connection` the connection's own rows too, provided it is
        in exactly those channels still."""
        t = self._t
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
            delete: dict[str, Any] = {
                "TableName": t.name,
                "Key": table.conn_key(connection_id),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
            }
            if values:
                delete["ExpressionAttributeValues"] = values
            items.append({"Delete": delete})
            items.append({"Delete": {"TableName": t.name, "Key": table.listing_key(connection_id)}})
        else:
            values[":cs"] = {"SS": channels}
            items.append(
                {
                    "Update": {
                        "TableName": t.name,
                        "Key": table.conn_key(connection_id),
                        "UpdateExpression": "DELETE #c :cs",
                        "ConditionExpression": f"attribute_exists(pk) AND {held}",
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        for channel in channels:
            key = table.member_key(channel, connection_id)
            items.append({"Delete": {"TableName": t.name, "Key": key}})
            target = targets.get(channel, LIVE)
            items += self._count_change(channel, connection_id, -1, target)
        t.db.transact_write_items(TransactItems=items)

    # -- members --------------------------------------------------------------------

    def members(
        self, channel: str, start: str | None = None, limit: int = 1000
    ) -> tuple[list[Member], str | None]:
        """One page of a channel's members and the cursor for the next (None at the end)."""
        t = self._t
        kwargs: dict[str, Any] = {
            "TableName": t.name,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": table.members_partition(channel)}},
            "Limit": limit,
        }
        if start is not None:
            kwargs["ExclusiveStartKey"] = table.member_key(channel, start)
        page = t.db.query(**kwargs)
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
        t = self._t
        try:
            t.db.update_item(
                TableName=t.name,
                Key=table.member_key(channel, connection_id),
                UpdateExpression="REMOVE joining",
                ConditionExpression="attribute_exists(pk)",
            )
        except t.db.exceptions.ConditionalCheckFailedException:
            pass  # unsubscribed or gone meanwhile

    def join_done(self, connection_id: str, channel: str | None = None) -> None:
        """One of the connection's queued joins has run (or was given up): its
        count goes down; with `channel`, the position it presented there was used
        too (a later subscribe to it starts afresh). Nothing if it is gone."""
        t = self._t
        expression = "ADD #j :minus"
        names = {"#j": "joins"}
        if channel is not None:
            expression += " REMOVE since.#c"
            names["#c"] = channel
        try:
            t.db.update_item(
                TableName=t.name,
                Key=table.conn_key(connection_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND #j > :zero",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":minus": {"N": "-1"}, ":zero": {"N": "0"}},
            )
        except t.db.exceptions.ConditionalCheckFailedException:
            # Gone, or counted down already (SQS handed the job out twice).
            if channel is not None:
                self._connections.used_since(connection_id, channel)

    # -- counts ---------------------------------------------------------------------

    def count(self, channel: str) -> int:
        """How many connections the channel has: its counter shards and its counter
        of before the shards, read in one BatchGetItem whatever the size (eventually
        consistent: a change shows within a second or so)."""
        keys = [table.count_key(channel, k) for k in range(COUNT_SHARDS)]
        items = self._t.get_many([*keys, table.legacy_count_key(channel)])
        return sum(_n(i) for i in items if not _expired(i))

    def _count_target(self, channel: str, connection_id: str, delta: int) -> str:
        """Which counter change a retried transaction makes, from what the counters
        hold now (the transaction's conditions check it still holds)."""
        shard = self._t.get(table.count_key(channel, table.count_shard_of(connection_id)))
        live = shard is not None and not _expired(shard)
        if delta > 0:
            return LIVE if shard is None or live else STALE
        if shard is not None and live and _n(shard) > 0:
            return LIVE
        legacy = self._t.get(table.legacy_count_key(channel))
        if legacy is not None and not _expired(legacy) and _n(legacy) > 0:
            return LEGACY
        return STALE if not live else NONE

    def _count_change(
        self, channel: str, connection_id: str, delta: int, target: str
    ) -> list[dict[str, Any]]:
        """The counter's part of a membership transaction (none, or one item).

        A shard expires (TTL) no earlier than any member row it counted: an expired
        shard counted only expired members, so a STALE change starts it again from
        0 instead. An increment needs a live or absent shard; a decrement a live
        shard above 0 (LIVE), else the counter of before the shards, live and above
        0 (LEGACY): the total is what is read, so it does not matter which member a
        counter counted. When the condition fails, the transaction fails and is
        retried with the target `_count_target` finds. The counter of before the
        shards is never added to and keeps its TTL: it is gone one connection TTL
        after the upgrade, when every connection it counted has closed."""
        t = self._t
        if target == NONE:
            return []
        now = {"N": str(int(time.time()))}
        names = {"#n": "n", "#v": "v", "#e": "expires_at"}
        values: dict[str, Any] = {":one": {"N": "1"}, ":now": now}
        key = table.count_key(channel, table.count_shard_of(connection_id))
        if target == STALE:
            expression = "SET #n = :n, #e = :e ADD #v :one"
            condition = "attribute_not_exists(#e) OR #e <= :now"
            values.update({":n": {"N": str(max(delta, 0))}, ":e": t.expires()})
        elif target == LEGACY:
            key = table.legacy_count_key(channel)
            expression = "ADD #n :d, #v :one"
            condition = "#e > :now AND #n > :zero"
            values.update({":d": {"N": str(delta)}, ":zero": {"N": "0"}})
        else:
            expression = "SET #e = :e ADD #n :d, #v :one"
            values.update({":d": {"N": str(delta)}, ":e": t.expires()})
            if delta < 0:
                condition = "#e > :now AND #n > :zero"
                values[":zero"] = {"N": "0"}
            else:
                condition = "attribute_not_exists(#e) OR #e > :now"
        return [
            {
                "Update": {
                    "TableName": t.name,
                    "Key": key,
                    "UpdateExpression": expression,
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
        ]


def _n(item: Item) -> int:
    return max(0, int(item.get("n", {}).get("N", "0")))


def _expired(item: Item) -> bool:
    return int(item.get("expires_at", {}).get("N", "0")) <= time.time()
