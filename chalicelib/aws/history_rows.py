"""Channel history rows (docs/resume.md): the head that gives each publish its
offset, and one row per kept message (`grip.history`)."""

from __future__ import annotations

import time
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from ..grip import history
from ..grip.jobs import Stored
from ..grip.limits import HISTORY_HEAD_EXTRA
from ..grip.payload import Payload
from . import table
from .table import Item, Table

_de = TypeDeserializer()


def to_item(content: Payload | Stored, item_id: str | None, prev_id: str | None) -> Item:
    """A kept message's content and GRIP ids as row attributes."""
    item: Item
    if isinstance(content, Payload):
        item = {"bin": {"B": content.data}} if content.binary else {"text": {"S": content.text}}
    else:
        item = {"stored": {"S": content.key}, "binary": {"BOOL": content.binary}}
    if item_id is not None:
        item["id"] = {"S": item_id}
    if prev_id is not None:
        item["prev_id"] = {"S": prev_id}
    return item


def entry(item: Item) -> history.Entry:
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


def _head(item: Item) -> history.Head:
    return history.Head(item["epoch"]["S"], int(item["top"]["N"]))


class HistoryRows:
    def __init__(self, t: Table) -> None:
        self._t = t

    def take_offset(
        self, channel: str, message_id: str, keep: int, new_epoch: str
    ) -> history.Position:
        """A publish's position in its channel. The queue message `message_id` that
        took an offset keeps it when it is handed out again (`history.RECENT`)."""
        t = self._t
        key = table.head_key(channel)
        try:
            # One write: the next offset, unless this message took one already.
            head = t.db.update_item(
                TableName=t.name,
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
                    ":x": {"N": str(int(time.time()) + keep + HISTORY_HEAD_EXTRA)},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except t.db.exceptions.ConditionalCheckFailedException:
            # Handed out again: the offset it took.
            head = t.get(key)
            assert head is not None  # the condition found it
            recent = [v["S"] for v in head["recent"]["L"]]
            taken = history.recent_offset(recent, int(head["top"]["N"]), message_id)
            assert taken is not None  # the condition found it there
            return history.Position(head["epoch"]["S"], taken)
        top = int(head["top"]["N"])
        recent = [v["S"] for v in head["recent"]["L"]]
        drop = history.to_trim(recent)
        if drop:
            try:  # only if nobody wrote since: their own write trims next time
                t.db.update_item(
                    TableName=t.name,
                    Key=key,
                    UpdateExpression="REMOVE " + ", ".join(f"recent[{i}]" for i in range(drop)),
                    ConditionExpression="#top = :top",
                    ExpressionAttributeNames={"#top": "top"},
                    ExpressionAttributeValues={":top": {"N": str(top)}},
                )
            except t.db.exceptions.ConditionalCheckFailedException:
                pass
        return history.Position(head["epoch"]["S"], top)

    def keep_entry(
        self,
        channel: str,
        position: history.Position,
        content: Payload | Stored,
        keep: int,
        item_id: str | None = None,
        prev_id: str | None = None,
    ) -> None:
        """Keep the publish at `position` for `keep` seconds: its content (inline,
        or the key of its S3 object) and its GRIP id and prev-id."""
        t = self._t
        now = time.time()
        t.db.put_item(
            TableName=t.name,
            Item={
                **table.history_key(channel, position.offset),
                "epoch": {"S": position.epoch},
                "offset": {"N": str(position.offset)},
                "at": {"N": repr(now)},
                "expires_at": {"N": str(int(now) + keep)},
                **to_item(content, item_id, prev_id),
            },
        )

    def head(self, channel: str) -> history.Head | None:
        item = self._t.get(table.head_key(channel))
        if item is None or "top" not in item:
            return None
        return _head(item)

    def entries(
        self,
        channel: str,
        epoch: str,
        after: int,
        upto: int | None = None,
        limit: int | None = None,
    ) -> list[history.Entry]:
        """The unexpired messages of `epoch` with `after` < offset (<= `upto`),
        oldest first, at most `limit`."""
        t = self._t
        upper = history.sort_key(upto) if upto is not None else "9" * 12
        kwargs: dict[str, Any] = {
            "TableName": t.name,
            "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
            "FilterExpression": "epoch = :e AND expires_at > :now",
            "ExpressionAttributeValues": {
                ":p": {"S": table.history_partition(channel)},
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
            page = t.db.query(**kwargs)
            out += [entry(i) for i in page.get("Items", [])]
            last = page.get("LastEvaluatedKey")
            if last is None or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out
            kwargs["ExclusiveStartKey"] = last

    def offset_of(self, channel: str, epoch: str, item_id: str) -> int | None:
        """The offset of the unexpired message whose GRIP id is `item_id` (the
        latest, if ids repeat): a read of the channel's whole history."""
        items = self._t.query(
            KeyConditionExpression="pk = :p",
            FilterExpression="epoch = :e AND #id = :i AND expires_at > :now",
            ProjectionExpression="#id, #o",
            ExpressionAttributeNames={"#id": "id", "#o": "offset"},
            ExpressionAttributeValues={
                ":p": {"S": table.history_partition(channel)},
                ":e": {"S": epoch},
                ":i": {"S": item_id},
                ":now": {"N": str(int(time.time()))},
            },
            ConsistentRead=True,
        )
        return int(items[-1]["offset"]["N"]) if items else None

    def start(self, channel: str, epoch: str, keep: int) -> history.Head:
        """The channel's history head, made (empty, in `epoch`) if it has none."""
        t = self._t
        head = t.db.update_item(
            TableName=t.name,
            Key=table.head_key(channel),
            UpdateExpression="SET epoch = if_not_exists(epoch, :e), top = if_not_exists(top, :z), "
            "expires_at = if_not_exists(expires_at, :x)",
            ExpressionAttributeValues={
                ":e": {"S": epoch},
                ":z": {"N": "0"},
                ":x": {"N": str(int(time.time()) + keep)},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return _head(head)
