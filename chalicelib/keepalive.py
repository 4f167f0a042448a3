"""The keep-alive scheduler: a scheduled function that, once a minute, handles
each second of its minute as it comes (docs/keepalive.md).

For each second it finds the connections whose keep-alive is due (one index
query per timeout in use: `grip.keepalive`), and queues their keep-alives as
`KeepAlive` jobs, which the SQS worker sends like any other message. Its window
overlaps the next invocation's by OVERLAP seconds, so a late start never leaves a
second out; each second is claimed once, so none is handled twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from . import executor, metrics, services
from .grip import delivery
from .grip import keepalive as ka
from .grip import metrics as m

log = logging.getLogger("slipway.keepalive")

PERIOD = 60  # the schedule's rate, in seconds: app.py's Rate(1, MINUTES)
OVERLAP = 20
_ATTEMPTS = 3  # tries of one second's keep-alives


def run_scheduled(iso_time: str | None, remaining: float) -> dict[str, int]:
    """The scheduled function: the window of the EventBridge event's `time` (now
    if absent), stopping a little before the invocation's time runs out."""
    now = time.time()
    start = datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp() if iso_time else now
    queued = run(services.current(), start, now + remaining - 2.0)
    return {"queued": queued}


def run(
    svc: services.Services,
    scheduled_at: float,
    stop_at: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Handle the seconds of the window that starts at `scheduled_at`, until the
    window ends or `stop_at` comes; the number of keep-alives queued."""
    second = int(scheduled_at)
    end = second + PERIOD + OVERLAP
    queued = 0
    while second < end:
        wait = second - ka.LEAD - clock()
        if clock() + max(wait, 0) >= stop_at:
            break
        if wait > 0:
            sleep(wait)
        # Read every second: a keep-alive with a new timeout is due a timeout later.
        timeouts = svc.store.keepalive_timeouts()
        if timeouts and svc.store.claim_tick(second):
            queued += _tick_retried(svc, second, timeouts, sleep)
        second += 1
    return queued


def _tick_retried(
    svc: services.Services, second: int, timeouts: list[int], sleep: Callable[[float], None]
) -> int:
    """This second is ours: try it again if AWS fails us (an extra keep-alive from a
    half-done try is harmless, a lost second is not), then log and go on."""
    for attempt in range(_ATTEMPTS):
        try:
            return tick(svc, second, timeouts)
        except Exception:
            if attempt + 1 == _ATTEMPTS:
                log.exception("keep-alives due at %d failed %d times", second, _ATTEMPTS)
            else:
                sleep(0.1 * 2**attempt)
    return 0


def tick(svc: services.Services, second: int, timeouts: list[int]) -> int:
    """Queue the keep-alives due at `second`; the number queued."""
    targets = [t for slot in ka.due_slots(second, timeouts) for t in svc.store.due(slot)]
    if not targets:
        return 0
    idle_channels = {c for t in targets if t.settings.mode == ka.IDLE for c in t.channels}
    sent_at = svc.store.last_delivered(idle_channels) if idle_channels else {}
    count, planned = delivery.tick(second, targets, sent_at)
    executor.execute(svc, planned)
    metrics.record(m.KEEPALIVES, count)
    return count
