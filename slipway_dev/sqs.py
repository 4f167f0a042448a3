"""Lambda's SQS event source mapping for one queue, as threads.

One thread receives; a small pool runs batches. Receiving from a single thread
is what keeps FIFO order: moto (like SQS) hides a message group while any of its
messages is in flight, but moto decides that without a lock, so two concurrent
receives could both take messages of one group. The pool still lets a slow
batch of one group run beside batches of other groups.

Partial batch responses follow Lambda's ReportBatchItemFailures rules; failed
messages are left in flight until the visibility timeout returns them, and the
queue's redrive policy moves them to the dead-letter queue (moto applies it on
receive, as SQS does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import events
from .runtime import InvocationError

log = logging.getLogger(__name__)

Function = Callable[[dict[str, Any]], Any]

# Pauses between short polls that found nothing: the latency of an idle queue.
_MIN_PAUSE = 0.01
_MAX_PAUSE = 0.1


@dataclass
class Stats:
    batches: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0


class SqsEventSource:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        function: Function,
        *,
        batch_size: int = 10,
        concurrency: int = 3,
        visibility_timeout: float = 30.0,
        region: str = "us-east-1",
        report_batch_item_failures: bool = True,
        wait_seconds: int = 1,
        short_poll_when_busy: bool = True,
    ) -> None:
        if not 1 <= batch_size <= 10:
            raise ValueError("batch_size must be 1..10 (one ReceiveMessage call)")
        self._sqs = sqs
        self._url = queue_url
        self._arn = queue_arn
        self._function = function
        self._batch_size = batch_size
        self._visibility_timeout = visibility_timeout
        self._region = region
        self._report_failures = report_batch_item_failures
        # 0: short polls, pausing a little longer each time nothing came (for a
        # server that must not hold a request open); else long polls this long,
        # which also bounds how long stop() waits for a receive in progress.
        # The stack's own moto (slipway_dev/moto_server.py) answers a long poll as
        # SQS does, the moment a message is there: no pause, no idle request.
        self._wait_seconds = wait_seconds
        # Another moto server busy-waits through a long poll while batches are in
        # flight (below): short polls then, unless told this one does not.
        self._short_poll_when_busy = short_poll_when_busy
        self._pause = _MIN_PAUSE
        self._slots = threading.Semaphore(concurrency)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="sqs-batch")
        self._stop = threading.Event()
        self._done = threading.Event()  # a batch finished: its FIFO groups are free
        self._lock = threading.Lock()
        self._in_flight = 0
        self._failed_until = 0.0
        self._thread: threading.Thread | None = None
        self.stats = Stats()

    def start(self) -> SqsEventSource:
        self._thread = threading.Thread(target=self._receive_loop, name="sqs-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop receiving; wait for batches already running (up to `timeout`)."""
        self._stop.set()
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- receiving ----------------------------------------------------------

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.2):
                continue
            try:
                messages = self._receive()
            except Exception as exc:
                self._slots.release()
                if not self._stop.is_set():
                    log.warning("receive from %s failed: %s", self._url, exc)
                    self._stop.wait(1.0)
                continue
            if not messages:
                self._slots.release()
                continue
            with self._lock:
                self._in_flight += 1
            try:
                self._pool.submit(self._run_and_release, messages)
            except RuntimeError:  # the pool shut down under us: stopping
                self._slots.release()
                return

    def _receive(self) -> list[dict[str, Any]]:
        # moto's long poll spins (busy-waits) while the only visible messages
        # belong to locked FIFO groups, i.e. while we hold batches in flight or
        # failed messages wait out their visibility timeout. Short-poll then.
        busy = self._short_poll_when_busy and (
            self._in_flight > 0 or time.monotonic() < self._failed_until
        )
        wait = 0 if busy else self._wait_seconds
        reply = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = reply.get("Messages", [])
        if messages:
            self._pause = _MIN_PAUSE
        elif wait == 0:
            if self._done.wait(self._pause):
                self._pause = _MIN_PAUSE
            else:
                self._pause = min(self._pause * 2, _MAX_PAUSE)
            self._done.clear()
        return messages

    # -- running a batch ----------------------------------------------------

    def _run_and_release(self, messages: list[dict[str, Any]]) -> None:
        try:
            self.run_batch(messages)
        except Exception:
            log.exception("batch handling failed")
        finally:
            with self._lock:
                self._in_flight -= 1
            self._slots.release()
            self._done.set()

    def run_batch(self, messages: list[dict[str, Any]]) -> set[str]:
        """Invoke the function with one batch, delete what succeeded; returns the
        ids of the messages left to SQS for a retry."""
        ids = [m["MessageId"] for m in messages]
        event = events.sqs_event(messages, self._arn, self._region)
        try:
            result = self._function(event)
        except InvocationError:
            failed = set(ids)  # a raised exception fails the whole batch
        except Exception:
            log.exception("the function failed")  # a bare callable, not a LambdaFunction
            failed = set(ids)
        else:
            failed = self.failures(result, ids)
        done = [m for m in messages if m["MessageId"] not in failed]
        self._delete(done)
        with self._lock:
            self.stats.batches += 1
            self.stats.received += len(messages)
            self.stats.deleted += len(done)
            self.stats.failed += len(failed)
            if failed:
                self._failed_until = time.monotonic() + self._visibility_timeout
        if failed:
            log.info("%d of %d messages failed; SQS retries them", len(failed), len(messages))
        return failed

    def failures(self, result: Any, ids: list[str]) -> set[str]:
        """Lambda's reading of a partial batch response.

        Success: None, {}, or batchItemFailures null or empty. Whole-batch failure:
        anything malformed, an empty or missing itemIdentifier, or an id that is
        not in the batch."""
        if not self._report_failures or result is None:
            return set()
        if not isinstance(result, dict):
            log.error("partial batch response is not an object: %r; failing the batch", result)
            return set(ids)
        items = result.get("batchItemFailures")
        if not items:
            return set()
        if not isinstance(items, list):
            log.error("batchItemFailures is not a list: %r; failing the batch", items)
            return set(ids)
        failed: set[str] = set()
        for item in items:
            ident = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not ident or ident not in ids:
                log.error("bad itemIdentifier in %r; failing the batch", item)
                return set(ids)
            failed.add(ident)
        return failed

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            reply = self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
            for error in reply.get("Failed", []):
                log.warning("could not delete a message: %s", error.get("Message"))
