"""The local stack's watch over its AWS endpoint.

Every second it asks the endpoint for the publish queue and the table. Two
things stop the stack, loudly, rather than leave it running on without them:

- the queue or the table is gone: the endpoint restarted and lost its data (a
  moto or LocalStack container restarted, say), and every connection and
  subscription with it; nothing can be recovered, so the stack stops at once;
- the endpoint refuses or drops connections for `outage_limit` seconds (a slow
  answer is an answer: the in-process moto takes one request at a time).

A shorter outage it rides out: it logs when the endpoint stops answering and
when it answers again; what failed meanwhile failed as on AWS (a rejected
handshake, a publish answered 5xx, a worker job retried by SQS). An answer that
is an error (an injected 5xx, a throttle) counts as answering.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

from . import aws

log = logging.getLogger(__name__)

_GONE = {
    "ResourceNotFoundException",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
}


class AwsWatch:
    def __init__(
        self,
        endpoint: str,
        table: str,
        queue_url: str,
        outage_limit: float = 10.0,
        interval: float = 1.0,
    ) -> None:
        self.endpoint = endpoint
        self.problem: str | None = None
        self._table = table
        self._queue_url = queue_url
        self._outage_limit = outage_limit
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        config = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=3)
        session = boto3.session.Session()
        self._dynamodb = session.client(
            "dynamodb", endpoint_url=endpoint, region_name=aws.REGION, config=config
        )
        self._sqs = session.client(
            "sqs", endpoint_url=endpoint, region_name=aws.REGION, config=config
        )

    def start(self) -> AwsWatch:
        self._thread = threading.Thread(target=self._run, name="aws-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def check(self) -> str | None:
        """None if the endpoint answers with both resources; else what is wrong,
        beginning "gone" if a resource is gone, "no answer" if nothing answered."""
        calls: list[tuple[str, Any]] = [
            (
                f"the queue {self._queue_url}",
                lambda: self._sqs.get_queue_attributes(
                    QueueUrl=self._queue_url, AttributeNames=["QueueArn"]
                ),
            ),
            (
                f"the table {self._table}",
                lambda: self._dynamodb.describe_table(TableName=self._table),
            ),
        ]
        for what, call in calls:
            try:
                call()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _GONE:
                    return f"gone: {what}"
                # Any other error answer (a throttle, a 5xx) still means it is there.
            except ReadTimeoutError:
                pass  # it took the request: alive, if slow (the in-process moto under load)
            except BotoCoreError as exc:  # refused, dropped, or no connection in time
                return f"no answer: {exc}"
        return None

    def _run(self) -> None:
        down_since: float | None = None
        while not self._stop.wait(self._interval):
            wrong = self.check()
            now = time.monotonic()
            if wrong is None:
                if down_since is not None:
                    log.warning(
                        "the AWS endpoint %s answers again, after %.1fs",
                        self.endpoint,
                        now - down_since,
                    )
                down_since = None
            elif wrong.startswith("gone"):
                self.problem = (
                    f"the AWS endpoint {self.endpoint} lost {wrong[6:]} (restarted without its "
                    "data?): every connection and subscription is gone with it, "
                    "start slipway local again"
                )
                return
            elif down_since is None:
                down_since = now
                log.warning(
                    "the AWS endpoint %s does not answer (%s): stopping in %.0fs unless it "
                    "comes back",
                    self.endpoint,
                    wrong[11:],
                    self._outage_limit,
                )
            elif now - down_since >= self._outage_limit:
                self.problem = (
                    f"the AWS endpoint {self.endpoint} has not answered for "
                    f"{now - down_since:.0f}s ({wrong[11:]})"
                )
                return
