"""The SQS queue that carries publishes and deferred deliveries to the worker."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..grip.errors import Unavailable
from ..grip.limits import QUEUE_MESSAGE


class QueueError(Unavailable):
    """SQS did not take every message, even after retries: nothing was lost, retry."""


@dataclass(frozen=True)
class Message:
    body: str  # ASCII (`jobs.encode`): its length is its size, as SQS counts it
    group: str  # on a FIFO queue, messages that share a group keep their order
    dedup: str | None = None  # FIFO deduplication id; a fresh one when None


class Queue:
    def __init__(self, client: Any, url: str, batch_bytes: int = QUEUE_MESSAGE) -> None:
        self._sqs = client
        self._url = url
        self._fifo = url.endswith(".fifo")
        self._batch_bytes = batch_bytes

    def send(self, message: Message) -> None:
        self.send_all([message])

    def send_all(self, messages: list[Message]) -> None:
        """Queue every message, in order, in as few calls as SQS allows."""
        batch: list[dict[str, Any]] = []
        size = 0
        for msg in messages:
            entry = self._entry(len(batch), msg)
            entry_size = len(msg.body)
            if batch and (len(batch) == 10 or size + entry_size > self._batch_bytes):
                self._send_batch(batch)
                batch, size = [], 0
                entry["Id"] = "0"
            batch.append(entry)
            size += entry_size
        if batch:
            self._send_batch(batch)

    def _entry(self, index: int, msg: Message) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": msg.body}
        if self._fifo:
            entry["MessageGroupId"] = msg.group
            entry["MessageDeduplicationId"] = msg.dedup or uuid.uuid4().hex
        return entry

    def _send_batch(self, entries: list[dict[str, Any]]) -> None:
        for attempt in range(4):
            failed = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries).get(
                "Failed", []
            )
            if not failed:
                return
            ids = {f["Id"] for f in failed}
            entries = [e for e in entries if e["Id"] in ids]
            time.sleep(0.1 * 2**attempt)
        raise QueueError(
            f"not queued, retry: SQS refused {len(entries)} messages: {failed[0].get('Message')}"
        )
