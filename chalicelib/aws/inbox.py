"""Ordered delivery's inbox (docs/ordered.md): a connection's events waiting for
the forwarder, in the table, sorted by API Gateway's receipt time.

Rows: `ord#<connection id>` / `<receipt ms, 13 digits>#<message id>`, holding the
job (`grip.ordered.encode`) and `expires_at` (TTL) like every row. The sort key
puts a query's answer in receipt order; DynamoDB returns it that way.
"""

from __future__ import annotations

import time
from typing import Any

from ..grip import ordered as o


def _pk(connection_id: str) -> dict[str, str]:
    return {"S": f"ord#{connection_id}"}


class Inbox:
    def __init__(self, client: Any, table: str, ttl_seconds: int) -> None:
        self._db = client
        self._table = table
        self._ttl = ttl_seconds

    def put(self, job: o.Job, message_id: str) -> None:
        self._db.put_item(
            TableName=self._table,
            Item={
                "pk": _pk(job.connection_id),
                "sk": {"S": o.sort_key(job.received_ms, message_id)},
                "job": {"S": o.encode(job)},
                "expires_at": {"N": str(int(time.time()) + self._ttl)},
            },
        )

    def take(self, connection_id: str, until_ms: int) -> list[o.Job]:
        """Every job received at or before `until_ms`, in receipt order, removed
        from the inbox (before it is forwarded: the backend never gets one twice)."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk < :after",
            "ExpressionAttributeValues": {
                ":pk": _pk(connection_id),
                ":after": {"S": o.sort_key(until_ms + 1, "")},
            },
            "ConsistentRead": True,
        }
        while True:
            page = self._db.query(**query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        self._delete([{"pk": i["pk"], "sk": i["sk"]} for i in items])
        return [o.decode(i["job"]["S"]) for i in items]

    def _delete(self, keys: list[dict[str, Any]]) -> None:
        for start in range(0, len(keys), 25):
            requests = [{"DeleteRequest": {"Key": k}} for k in keys[start : start + 25]]
            for attempt in range(5):
                left = self._db.batch_write_item(RequestItems={self._table: requests})
                requests = left.get("UnprocessedItems", {}).get(self._table, [])
                if not requests:
                    break
                time.sleep(0.05 * 2**attempt)
