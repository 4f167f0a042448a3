"""The gateway's one DynamoDB table, behind one narrow interface.

`Store` composes the repositories, each of which owns a kind of row and takes
and returns the domain's types (`grip.model`, `grip.history`, `grip.keepalive`):
- connections.py: connection rows, meta, the listing of every connection;
- membership.py: channel membership, counts, queued joins, a connection's removal;
- keepalive_slots.py: keep-alives, the timeouts in use, scheduler ticks, deliveries;
- history_rows.py: channel history (docs/resume.md);
- upload_claims.py: envelope uploads taken once.
table.py holds the schema and the key scheme of every row.
"""

from __future__ import annotations

from typing import Any

from ..grip import keepalive as ka
from ..grip.errors import TooManyChannels, TooManyJoins, TooManyTimeouts, UnknownConnection
from ..grip.history import Entry, Head, Position
from ..grip.jobs import Stored
from ..grip.model import Connection, Member
from ..grip.payload import Payload
from .connections import Connections
from .history_rows import HistoryRows
from .keepalive_slots import KeepAliveSlots
from .membership import Membership
from .table import KEEPALIVE_INDEX, Table
from .upload_claims import UploadClaims

__all__ = [
    "KEEPALIVE_INDEX",
    "Connection",
    "Member",
    "Store",
    "TooManyChannels",
    "TooManyJoins",
    "TooManyTimeouts",
    "UnknownConnection",
]


class Store:
    def __init__(self, client: Any, table: str, ttl_seconds: int, max_channels: int) -> None:
        t = Table(client, table, ttl_seconds)
        self._table = t
        self._conns = Connections(t)
        self._members = Membership(t, self._conns, max_channels)
        self._slots = KeepAliveSlots(t, self._conns)
        self._history = HistoryRows(t)
        self._uploads = UploadClaims(t)

    # -- connections (connections.py) ------------------------------------------------

    def put_connection(self, conn: Connection) -> None:
        self._conns.put(conn)

    def get_connection(self, connection_id: str) -> Connection | None:
        return self._conns.get(connection_id)

    def connections(self, ids: list[str]) -> dict[str, Connection]:
        """The stored connections among `ids` (BatchGetItem, 100 keys a call)."""
        return self._conns.many(ids)

    def connection_ids(
        self, shard: int, after: str | None, limit: int
    ) -> tuple[list[str], tuple[int, str] | None]:
        """A page of every open connection's id and where the next page starts."""
        return self._conns.ids(shard, after, limit)

    def update_meta(self, connection_id: str, changes: dict[str, str | None]) -> dict[str, str]:
        """Set (a value) or clear (None) several meta names at once; the meta after."""
        return self._conns.update_meta(connection_id, changes)

    def set_meta(self, connection_id: str, name: str, value: str) -> None:
        """Store meta `name`; an empty value deletes it."""
        self._conns.set_meta(connection_id, name, value)

    def set_detached(self, connection_id: str) -> None:
        self._conns.set_detached(connection_id)

    def set_close(self, connection_id: str, code: int, reason: str) -> None:
        self._conns.set_close(connection_id, code, reason)

    def used_since(self, connection_id: str, channel: str) -> None:
        """A presented position was used: a later subscribe to `channel` starts afresh."""
        self._conns.used_since(connection_id, channel)

    def remove_connection(self, connection_id: str) -> Connection | None:
        """Delete every row of the connection, counted out of its channels; returns
        what was stored."""
        return self._members.remove(connection_id)

    # -- membership and counts (membership.py) ---------------------------------------

    def subscribe(
        self,
        connection_id: str,
        channel: str,
        endpoint: str,
        envelope: bool = False,
        resume: bool = False,
        joining: bool = False,
    ) -> bool:
        """Idempotent: True when the connection was not a member yet (Membership.subscribe)."""
        return self._members.subscribe(connection_id, channel, endpoint, envelope, resume, joining)

    def unsubscribe(self, connection_id: str, channel: str) -> None:
        """Idempotent: unsubscribing from a channel never joined does nothing."""
        self._members.unsubscribe(connection_id, channel)

    def members(
        self, channel: str, start: str | None = None, limit: int = 1000
    ) -> tuple[list[Member], str | None]:
        """One page of a channel's members and the cursor for the next (None at the end)."""
        return self._members.members(channel, start, limit)

    def joined(self, channel: str, connection_id: str) -> None:
        """The member's recovery is done: publishes reach it from now on."""
        self._members.joined(channel, connection_id)

    def join_done(self, connection_id: str, channel: str | None = None) -> None:
        """One of the connection's queued joins has run (Membership.join_done)."""
        self._members.join_done(connection_id, channel)

    def count(self, channel: str) -> int:
        """How many connections the channel has: one BatchGetItem of its counter
        shards, whatever the size (Membership.count)."""
        return self._members.count(channel)

    # -- keep-alive (keepalive_slots.py) ------------------------------------------

    def set_keep_alive(self, connection_id: str, settings: ka.Settings | None) -> None:
        """Schedule (or, with None, stop) a connection's keep-alive."""
        self._slots.schedule(connection_id, settings)

    def keepalive_timeouts(self) -> list[int]:
        return self._slots.timeouts()

    def due(self, slot: str) -> list[ka.Target]:
        """The connections in a keep-alive slot."""
        return self._slots.due(slot)

    def rephase(self, connection_id: str, old: str, new: str) -> None:
        """Move a keep-alive to another slot, unless it was replaced meanwhile."""
        self._slots.rephase(connection_id, old, new)

    def claim_tick(self, second: int) -> bool:
        """Whether this scheduler is the first to take `second`."""
        return self._slots.claim_tick(second)

    def delivered(self, channel: str, when: float) -> None:
        """Record that the channel's members were all sent something at `when`."""
        self._slots.delivered(channel, when)

    def last_delivered(self, channels: set[str]) -> dict[str, float]:
        """When each channel was last delivered to (absent: not recently)."""
        return self._slots.last_delivered(channels)

    # -- channel history (history_rows.py, docs/resume.md) -------------------------

    def take_offset(self, channel: str, message_id: str, keep: int, new_epoch: str) -> Position:
        """A publish's position in its channel; the same again for a queue message
        handed out again."""
        return self._history.take_offset(channel, message_id, keep, new_epoch)

    def keep_entry(
        self,
        channel: str,
        position: Position,
        content: Payload | Stored,
        keep: int,
        item_id: str | None = None,
        prev_id: str | None = None,
    ) -> None:
        """Keep the publish at `position` for `keep` seconds: inline, or the key of
        its S3 object; with its GRIP id and prev-id."""
        self._history.keep_entry(channel, position, content, keep, item_id, prev_id)

    def history_head(self, channel: str) -> Head | None:
        return self._history.head(channel)

    # Named `history` for its callers; HistoryRows.entries is the same.
    def history(
        self,
        channel: str,
        epoch: str,
        after: int,
        upto: int | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """The unexpired messages of `epoch` with `after` < offset (<= `upto`),
        oldest first, at most `limit`."""
        return self._history.entries(channel, epoch, after, upto, limit)

    def history_offset_of(self, channel: str, epoch: str, item_id: str) -> int | None:
        """The offset of the unexpired message whose GRIP id is `item_id`."""
        return self._history.offset_of(channel, epoch, item_id)

    def start_history(self, channel: str, epoch: str, keep: int) -> Head:
        """The channel's history head, made (empty, in `epoch`) if it has none."""
        return self._history.start(channel, epoch, keep)

    # -- envelope uploads (upload_claims.py) -----------------------------------------

    def claim_upload(self, key: str, until: int) -> bool:
        """Take the client upload under `key`, once: False if taken already."""
        return self._uploads.claim(key, until)

    def release_upload(self, key: str) -> None:
        """Give a claim back, so the client may announce the upload again."""
        self._uploads.release(key)
