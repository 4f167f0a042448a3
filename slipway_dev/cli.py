"""`slipway local`: the whole stack on this machine, until Ctrl-C or SIGTERM.

On start it prints, one per line, what clients and backends need, then `ready`:

    websocket: ws://127.0.0.1:8000/
    control: http://127.0.0.1:8001
    grip: http://127.0.0.1:8001/?key=...
    ...
    ready

Logs go to stderr, so stdout stays parseable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import aws, logs
from .stack import DEV_KEY, Options, Stack

log = logging.getLogger("slipway_dev.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slipway")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(
        dest="command",
        metavar="{bootstrap,finish,teardown,check-target,local,redrive,rotate-key,status}",
    )
    commands.add_parser(
        "bootstrap", add_help=False, help="create the AWS resources for chalice deploy"
    )
    commands.add_parser(
        "finish", add_help=False, help="after each chalice deploy: what Chalice leaves out"
    )
    commands.add_parser(
        "teardown", add_help=False, help="after chalice delete: delete what bootstrap made"
    )
    commands.add_parser(
        "check-target",
        add_help=False,
        help="check that a stage's TARGET_URL is not the placeholder (make package runs it)",
    )
    commands.add_parser(
        "rotate-key",
        add_help=False,
        help="add a new key to a stage, or retire the old one (docs/security.md#key-rotation)",
    )
    commands.add_parser(
        "redrive",
        add_help=False,
        help="move a stage's dead-letter jobs back to their queues (docs/reliability.md)",
    )
    commands.add_parser(
        "status",
        add_help=False,
        help="one screen: connections, queues, deliveries, backend errors, alarms",
    )
    local = commands.add_parser(
        "local",
        help="run slipway on this machine: API Gateway, Lambda, SQS and DynamoDB emulated",
        description="Run API Gateway (WebSocket + @connections), the Lambda handlers, "
        "the SQS event source and AWS (moto) on this machine.",
    )
    add = local.add_argument
    add("--target", help="the backend's URL (default: start the demo chat backend)")
    add("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    add("--ws-port", type=int, default=8000, help="WebSocket port, 0 for any (default 8000)")
    add("--http-port", type=int, default=8001, help="control API port, 0 for any (default 8001)")
    add(
        "--demo-port",
        type=int,
        default=8002,
        help="demo chat page port, 0 for any (default 8002; with the demo backend only)",
    )
    add("--key", default=DEV_KEY, help="the control API / Grip-Sig key (a dev default)")
    add("--aws-endpoint", help="use this AWS-compatible endpoint instead of an in-process moto")
    add("--app", default="app:app", help="the Chalice app, module:attribute (default app:app)")
    add(
        "--project-dir",
        type=Path,
        help="the directory --app is imported from (default: this checkout of slipway, "
        "wherever slipway runs from)",
    )
    add("--stage", default="local", help="API Gateway stage name in events (default local)")
    env = os.environ.get
    names = aws.Names()
    add("--table", default=env("SLIPWAY_TABLE") or names.table, help="DynamoDB table name")
    add("--queue", default=env("SLIPWAY_QUEUE_NAME") or names.queue, help="publish queue name")
    add("--dead-letter-queue", help="dead-letter queue name (default: <queue>-dlq)")
    add("--bucket", default=env("SLIPWAY_BUCKET") or names.bucket, help="S3 bucket name")
    add(
        "--visibility-timeout",
        type=int,
        default=names.visibility_timeout,
        help="publish queue visibility timeout, seconds (default 30)",
    )
    add(
        "--max-receive-count",
        type=int,
        default=names.max_receive_count,
        help="receives before a message goes to the dead-letter queue (default 5)",
    )
    idle, lifetime = Options.idle_timeout, Options.max_lifetime
    add("--idle-timeout", type=float, default=idle, help=f"seconds (default {idle:g}, as AWS)")
    add(
        "--max-lifetime",
        type=float,
        default=lifetime,
        help=f"seconds (default {lifetime:g}, as AWS)",
    )
    add("--pollers", type=int, default=3, help="SQS batches run at once (default 3)")
    add(
        "--serial-events",
        action="store_true",
        help="run a connection's $default events one at a time, in order (AWS runs them "
        "concurrently; docs/ordered.md)",
    )
    add("--log-level", default="INFO", help="DEBUG, INFO, WARNING... (default INFO)")
    add(
        "--faults",
        default=os.environ.get("SLIPWAY_LOCAL_FAULTS", ""),
        metavar="SPEC",
        help="fail this fraction of the emulated AWS's calls as AWS does, e.g. "
        "'connections:429:0.1,dynamodb:500:0.05' (docs/local-stack.md#faults)",
    )
    add(
        "--aws-outage-limit",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="stop if the AWS endpoint does not answer for this long (default 10)",
    )
    # `chalice local` (slipway_dev/chalice_local.py): Chalice serves the control routes.
    add("--control-url", help=argparse.SUPPRESS)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("slipway-dev")
    except PackageNotFoundError:
        return "unknown"


def check_port(host: str, port: int, flag: str) -> None:
    """Fail, naming the flag that picks another port, if `port` is taken: before
    anything (AWS resources, children) is started."""
    if port == 0:
        return
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the servers bind: a port in TIME_WAIT is free to them.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SystemExit(
                f"port {port} on {host} is in use ({exc.strerror}): pick another with "
                f"{flag} PORT (0 for any free port)"
            ) from None


def websocket_command(url: str) -> str:
    """The shell command that opens a chat on `url`: `python -m websockets` with this
    interpreter (the venv's: a system Python has no `websockets`), relative when it is
    under the working directory, so the hint works as printed."""
    import shlex

    python, here = Path(sys.executable), Path.cwd()
    shown = str(python.relative_to(here)) if here in python.parents and here.parent != here else ""
    shown = shown or str(python)
    return f"{shlex.quote(shown)} -m websockets {shlex.quote(url)}"


def _dead_letter_name(queue: str) -> str:
    base, fifo, _ = queue.partition(".fifo")
    return f"{base}-dlq{fifo}"


def options(args: argparse.Namespace) -> Options:
    return Options(
        host=args.host,
        ws_port=args.ws_port,
        http_port=args.http_port,
        demo_port=args.demo_port,
        target=args.target,
        key=args.key,
        aws_endpoint=args.aws_endpoint,
        names=aws.Names(
            table=args.table,
            queue=args.queue,
            dead_letter_queue=args.dead_letter_queue or _dead_letter_name(args.queue),
            bucket=args.bucket,
            visibility_timeout=args.visibility_timeout,
            max_receive_count=args.max_receive_count,
        ),
        idle_timeout=args.idle_timeout,
        max_lifetime=args.max_lifetime,
        stage=args.stage,
        app=args.app,
        project_dir=args.project_dir,
        pollers=args.pollers,
        serial_events=args.serial_events,
        control_url=args.control_url,
        faults=args.faults,
        aws_outage_limit=args.aws_outage_limit,
    )


async def run(opts: Options) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:  # a second Ctrl-C: the user does not want to wait
            os._exit(130)
        log.info("stopping")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    stack = Stack(opts)
    start = asyncio.ensure_future(stack.start())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([start, stopped], return_when=asyncio.FIRST_COMPLETED)
    if not start.done():  # a signal during start: abandon it; it cleans up after itself
        start.cancel()
        await asyncio.gather(start, return_exceptions=True)
        await stack.stop()
        return 0
    stopped.cancel()
    urls = start.result()
    print(f"websocket: {urls.websocket}")
    print(f"control: {urls.control}")
    print(f"grip: {urls.grip}")
    print(f"key: {opts.key}")
    print(f"connections: {urls.connections}")
    print(f"aws: {urls.aws}")
    print(f"target: {urls.target}")
    if urls.demo:
        print(f"demo: {urls.demo}")
    print(f"faults: {urls.faults}")
    print("ready", flush=True)
    if opts.target is None and not opts.control_url:  # chalice local says it itself
        log.info(
            "try it: %s in two terminals, then /join lobby",
            websocket_command(f"{urls.websocket}?ordered=1"),
        )
        log.info("or open %s in two browser tabs", urls.demo)
    stopped = asyncio.ensure_future(stop.wait())
    died = asyncio.ensure_future(stack.trouble())
    await asyncio.wait([stopped, died], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if died.done():
        log.error("%s: stopping", died.result())
        code = 1
    for task in (stopped, died):
        task.cancel()
    await stack.stop()
    log.info("stopped")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bootstrap"]:
        from . import bootstrap

        return bootstrap.main(argv[1:])
    if argv[:1] == ["finish"]:
        from . import postdeploy

        return postdeploy.finish_main(argv[1:])
    if argv[:1] == ["teardown"]:
        from . import postdeploy

        return postdeploy.teardown_main(argv[1:])
    if argv[:1] == ["rotate-key"]:
        from . import rotation

        return rotation.main(argv[1:])
    if argv[:1] == ["redrive"]:
        from . import redrive

        return redrive.main(argv[1:])
    if argv[:1] == ["status"]:
        from . import status

        return status.main(argv[1:])
    if argv[:1] == ["check-target"]:
        from . import target

        return target.main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `slipway`: what it can do
        parser.print_help()
        return 0
    logs.configure(args.log_level)
    try:  # every port this run binds, before anything starts (the demo page's came ~15 s late)
        check_port(args.host, args.ws_port, "--ws-port")
        if not args.control_url:
            check_port(args.host, args.http_port, "--http-port")
        if args.target is None:  # the demo backend itself takes any free port
            check_port(args.host, args.demo_port, "--demo-port")
    except SystemExit as exc:
        log.error("%s", exc.code)
        return 2
    try:
        return asyncio.run(run(options(args)))
    except Exception as exc:
        log.error("slipway local failed: %s", exc, exc_info=logging.root.level <= logging.DEBUG)
        return 1


if __name__ == "__main__":
    sys.exit(main())
