"""Keep-alive rows (docs/keepalive.md): a connection's keep-alive and the slot the
`keepalive` index finds it by, the timeouts in use, which scheduler took a second,
and when each channel was last delivered to (idle keep-alives)."""

from __future__ import annotations

import json

from ..grip import keepalive as ka
from ..grip.errors import TooManyTimeouts
from ..grip.limits import MAX_KEEPALIVE_TIMEOUTS
from ..grip.payload import Payload
from . import table
from .connections import Connections
from .table import Item, Table

# A tick row outlives its second by an hour: overlapping schedulers are long done.
_TICK_KEPT = 3600


def target(item: Item) -> ka.Target:
    """A connection's row as the `keepalive` index gives it."""
    fields = json.loads(item["keep_alive"]["S"])
    timeout, phase = (int(x) for x in item[table.SLOT_ATTRIBUTE]["S"].split("#")[1:])
    settings = ka.Settings(
        Payload.from_fields(fields),
        timeout,
        fields.get("mode", ka.IDLE),
        phase,
        int(fields.get("since", 0)),
    )
    return ka.Target(
        table.unprefix(item, table.CONN),
        item["endpoint"]["S"],
        item.get("envelope", {}).get("BOOL", False),
        settings,
        frozenset(item.get("channels", {}).get("SS", [])),
    )


class KeepAliveSlots:
    def __init__(self, t: Table, connections: Connections) -> None:
        self._t = t
        self._connections = connections

    def schedule(self, connection_id: str, settings: ka.Settings | None) -> None:
        """Schedule (or, with None, stop) a connection's keep-alive; TooManyTimeouts
        when the deployment already uses the most distinct timeouts it may."""
        names = {"#k": "keep_alive", "#s": table.SLOT_ATTRIBUTE}
        if settings is None:
            self._connections.update(connection_id, "REMOVE #k, #s", names, None)
            return
        self._register_timeout(settings.timeout)
        self._connections.update(
            connection_id,
            "SET #k = :k, #s = :s",
            names,
            {":k": {"S": json.dumps(settings.to_fields())}, ":s": {"S": settings.slot()}},
        )

    def _register_timeout(self, timeout: int) -> None:
        t = self._t
        try:
            t.db.update_item(
                TableName=t.name,
                Key=table.TIMEOUTS_KEY,
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
        except t.db.exceptions.ConditionalCheckFailedException:
            raise TooManyTimeouts(
                f"keep-alive timeout {timeout}: this deployment already uses "
                f"{MAX_KEEPALIVE_TIMEOUTS} distinct timeouts; use one of them"
            ) from None

    def timeouts(self) -> list[int]:
        item = self._t.get(table.TIMEOUTS_KEY, consistent=False) or {}
        return sorted(int(t) for t in item.get("timeouts", {}).get("NS", []))

    def due(self, slot: str) -> list[ka.Target]:
        """The connections in a keep-alive slot (every page of the index)."""
        items = self._t.query(
            IndexName=table.KEEPALIVE_INDEX,
            KeyConditionExpression=f"{table.SLOT_ATTRIBUTE} = :s",
            ExpressionAttributeValues={":s": {"S": slot}},
        )
        return [target(item) for item in items]

    def rephase(self, connection_id: str, old: str, new: str) -> None:
        """Move a keep-alive to another slot, unless it was replaced meanwhile."""
        t = self._t
        try:
            t.db.update_item(
                TableName=t.name,
                Key=table.conn_key(connection_id),
                UpdateExpression="SET #s = :new",
                ConditionExpression="#s = :old",
                ExpressionAttributeNames={"#s": table.SLOT_ATTRIBUTE},
                ExpressionAttributeValues={":new": {"S": new}, ":old": {"S": old}},
            )
        except t.db.exceptions.ConditionalCheckFailedException:
            pass  # replaced, stopped or gone: nothing to move

    def claim_tick(self, second: int) -> bool:
        """Whether this scheduler is the first to take `second` (overlapping
        invocations share the work without sending anything twice)."""
        row = {**table.tick_key(second), "expires_at": {"N": str(second + _TICK_KEPT)}}
        return self._t.put_once(row)

    def delivered(self, channel: str, when: float) -> None:
        """Record that the channel's members were all sent something at `when`."""
        t = self._t
        t.db.update_item(
            TableName=t.name,
            Key=table.delivered_key(channel),
            UpdateExpression="SET sent_at = :t, expires_at = :e",
            ExpressionAttributeValues={":t": {"N": repr(when)}, ":e": t.expires()},
        )

    def last_delivered(self, channels: set[str]) -> dict[str, float]:
        """When each channel was last delivered to (absent: not recently, or not
        read: DynamoDB kept it unprocessed, and a keep-alive is sent for nothing)."""
        keys = [table.delivered_key(c) for c in sorted(channels)]
        items = self._t.get_many(keys, complete=False)
        return {table.unprefix(i, table.CHANMETA): float(i["sent_at"]["N"]) for i in items}
