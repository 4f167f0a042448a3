"""The SQS queue that carries publishes and deferred deliveries to the worker."""

from __future__ import annotations

import json
import uuid
from typing import Any


class Queue:
    def __init__(self, client: Any, url: str) -> None:
        self._sqs = client
        self._url = url
        self._fifo = url.endswith(".fifo")

    def send(self, body: dict[str, Any], group: str, delay: int = 0) -> None:
        """Queue one message. On a FIFO queue, `group` orders messages that share it."""
        kwargs: dict[str, Any] = {"QueueUrl": self._url, "MessageBody": json.dumps(body)}
        if self._fifo:
            kwargs["MessageGroupId"] = group
            kwargs["MessageDeduplicationId"] = uuid.uuid4().hex
        elif delay:
            kwargs["DelaySeconds"] = delay
        self._sqs.send_message(**kwargs)
