"""The publish queue's Lambda function in a process of its own, behind the SQS
event source, and the app's scheduled functions (EventBridge: slipway_dev/schedule.py):
`python -m slipway_dev.worker ...` (the stack starts it; it prints `ready`, and
stops on SIGTERM after the batches in flight).

Lambda runs the SQS worker in containers apart from the WebSocket functions, so
nothing a $connect leaves in memory can reach it; here neither. It also puts
the fan-out's boto3 work on another core than the gateway's. The environment
(AWS endpoint, SLIPWAY_*) comes from the stack.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

from . import aws, logs
from .functions import load_app, project_dir, sqs_function
from .schedule import Schedules
from .sqs import SqsEventSource

log = logging.getLogger("slipway_dev.worker")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slipway_dev.worker")
    parser.add_argument("--app", default="app:app")
    parser.add_argument("--project-dir", help="where the app is (default: as slipway local)")
    parser.add_argument("--stage", default="local")
    parser.add_argument("--queue", required=True, help="queue name, as the app's decorator has it")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--queue-arn", required=True)
    parser.add_argument("--visibility-timeout", type=float, default=30.0)
    parser.add_argument("--pollers", type=int, default=3)
    parser.add_argument("--wait-seconds", type=int, default=0)
    parser.add_argument(
        "--long-poll-when-busy",
        action="store_true",
        help="long polls even with batches in flight (the stack's own moto answers them well)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logs.configure(args.log_level, process="worker ")

    stop = _Stop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop.handle)

    app = load_app(args.app, project_dir(args.project_dir))
    schedules = Schedules(app, args.stage, aws.REGION).start()
    found = sqs_function(app, args.stage, args.queue, args.queue_arn)
    if found is None:
        log.warning("the app has no SQS handler for %s: nothing polls it", args.queue)
        print("ready", flush=True)
        stop.wait()
        schedules.stop()
        return 0
    function, source = found
    # Only for a value the user chose: the local stack's default is short on purpose.
    if args.visibility_timeout < function.timeout and args.visibility_timeout != float(
        aws.Names().visibility_timeout
    ):
        log.info(
            "note: visibility timeout %gs < function timeout %gs: AWS refuses such an event "
            "source mapping, and here a batch that runs longer is received again while it runs",
            args.visibility_timeout,
            function.timeout,
        )
    poller = SqsEventSource(
        aws.client("sqs", os.environ["AWS_ENDPOINT_URL"]),
        args.queue_url,
        args.queue_arn,
        function,
        batch_size=source.batch_size,
        concurrency=source.maximum_concurrency or args.pollers,
        visibility_timeout=args.visibility_timeout,
        region=aws.REGION,
        wait_seconds=args.wait_seconds,
        short_poll_when_busy=not args.long_poll_when_busy,
    ).start()
    print("ready", flush=True)
    stop.wait()
    _exit_after(_STOP_GRACE)
    schedules.stop()
    poller.stop()
    return 0


class _Stop:
    """Told to stop by a signal. The handler only sets a flag: an Event's set()
    takes a lock, and a handler runs in the main thread between two bytecodes,
    maybe while that thread holds the same lock inside Event.wait(): the worker
    then waited for ever, its stack long gone (seen under load)."""

    def __init__(self) -> None:
        self.told = False

    def handle(self, signum: int, frame: object) -> None:
        self.told = True

    def wait(self) -> None:
        while not self.told:
            time.sleep(0.1)


# Seconds the worker may take to stop once told to (batches in flight finish):
# past it, it exits anyway. A batch stuck on an endpoint that died with the stack
# (moto runs in the stack's process) must not keep the process after its stack.
_STOP_GRACE = 12.0


def _exit_after(seconds: float) -> None:
    def give_up() -> None:
        log.warning("worker: still stopping after %gs: exiting", seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()


if __name__ == "__main__":
    sys.exit(main())
