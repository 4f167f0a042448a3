"""`chalice local` runs the whole local stack (docs/local-stack.md).

Chalice's local mode serves only HTTP routes: no WebSocket API (Chalice issues
1674 and 2007), no SQS event source, no AWS. app.py calls `attach(app)` when the
Chalice CLI imports it (`AWS_CHALICE_CLI_MODE`, never set on Lambda; nothing
here is in the deployment package). `attach` does nothing unless it runs inside
`chalice local`'s server process: it finds the call to
`chalice.cli.create_local_server(factory, host, port, stage)` on its own stack,
so it takes `--host`, `--port` and `--stage` exactly as Chalice parsed them.
There it

1. checks that `--port` is free (before any AWS resource exists);
2. starts `slipway local --control-url http://HOST:PORT --ws-port 0` as a child
   process: the same Stack as `slipway local` (moto, the WebSocket emulator, the
   SQS worker, the demo backend...), with the same handlers, minus its own HTTP
   server: Chalice's serves the control routes;
3. points this process at it (AWS endpoint, SLIPWAY_* settings), so the control
   routes Chalice serves use the same table, queue and bucket;
4. makes Chalice's server answer with slipway_dev.http.GatewayRequestHandler:
   a WebSocket upgrade on `--port` goes to the emulator, so one port serves
   `ws://` and the control API; unknown routes are 404 `{"error": ...}`;
5. prints the stack's lines (`websocket:`, `control:`, `grip:`, `key:`, ...),
   then `ready`, once Chalice's server is bound.

The stack is a child process, not threads of Chalice's: it then has a main
thread of its own for SIGTERM/SIGINT and stops in its usual order (clients,
worker, backend, AWS). It dies with Chalice's server process (Linux
PR_SET_PDEATHSIG, and a watcher thread), and that process dies with the
autoreloader's parent: so a SIGTERM or Ctrl-C to `chalice local`, or a reload
after a file changed, stops everything, and a reload starts a fresh stack.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from chalice.app import Chalice

from . import aws, logs
from .target import placeholder

# The rest of slipway_dev (moto, websockets...) is imported only inside `chalice
# local`: `chalice package` and `chalice deploy` import app.py too.
log = logging.getLogger("slipway_dev.chalice_local")

# Directories whose changes never mean "reload": tools' caches, the venv, bytecode.
_NOT_WATCHED = {"__pycache__", "node_modules", "build", "dist"}
_READY_TIMEOUT = 120.0

_started: subprocess.Popen[str] | None = None


def attach(app: Chalice) -> None:
    """app.py's hook: in `chalice local`'s server process, start the stack."""
    found = _local_server_call()
    if found is None:
        return  # chalice package / deploy / invoke, or not the Chalice CLI at all
    host, port, stage, project = found
    try:
        _run(app, host, port, stage, project)
    except SystemExit as exc:
        # Raised on Chalice's server thread, an exception would leave the reloader
        # waiting forever: say what is wrong and end the process.
        logging.getLogger("slipway_dev.chalice_local").error("%s", exc.code)
        sys.stderr.flush()
        os._exit(2)


def _local_server_call() -> tuple[str, int, str, Path] | None:
    cli = sys.modules.get("chalice.cli")
    target = getattr(getattr(cli, "create_local_server", None), "__code__", None)
    if target is None:
        return None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is target:
            args = frame.f_locals
            factory = args["factory"]
            return (
                str(args["host"]),
                int(args["port"]),
                str(args["stage"]),
                Path(factory.project_dir),
            )
        frame = frame.f_back
    return None


def _run(app: Chalice, host: str, port: int, stage: str, project: Path) -> None:
    from .cli import check_port
    from .stack import DEV_KEY, _public, aws_environment

    global _started
    level = os.environ.get("SLIPWAY_LOG_LEVEL") or "INFO"
    _logging(app, level)
    # The control routes' metric lines, printed here on AWS: to the DEBUG log, not
    # the terminal (`chalice local` serves no GET /metrics: docs/operations.md).
    metrics = sys.modules.get("chalicelib.metrics")
    if metrics is not None:
        setattr(metrics, "sink", lambda line: log.debug("metrics: %s", line))  # noqa: B010
    check_port(host, port, "--port")
    _die_with_parent()
    _quiet_reloader()

    first = _initial_environment()
    stage_env = _stage_environment(project, stage)
    target = first.get("TARGET_URL") or stage_env.get("TARGET_URL")
    # .chalice/config.json's placeholder is not a backend: the demo backend runs instead.
    if target and placeholder(target):
        log.info(
            "TARGET_URL %s (stage %s in .chalice/config.json) is a placeholder: running the "
            "demo backend; set TARGET_URL to use yours",
            target,
            stage,
        )
        target = None
    key = first.get("SLIPWAY_KEY") or stage_env.get("SLIPWAY_KEY") or DEV_KEY
    # Locally the key is the stack's (--key, kept in its SSM): the stage's store is on AWS.
    for name in ("SLIPWAY_KEY", "SLIPWAY_KEY_PARAMETER", "SLIPWAY_KEY_SECRET", "SLIPWAY_QUEUE_URL"):
        os.environ.pop(name, None)
    names = aws.Names()
    table = os.environ.get("SLIPWAY_TABLE") or names.table
    queue = os.environ.get("SLIPWAY_QUEUE_NAME") or names.queue
    bucket = os.environ.get("SLIPWAY_BUCKET") or names.bucket

    public = _public(host)
    control = f"http://{public}:{port}"
    argv = [
        sys.executable,
        "-u",
        "-m",
        "slipway_dev.cli",
        "local",
        "--control-url",
        control,
        "--host",
        "127.0.0.1",  # the emulator: reached through --port only
        "--ws-port",
        "0",
        "--demo-port",  # Chalice has no flag for it: any free port, printed as `demo:`
        "0",
        "--stage",
        stage,
        "--key",
        key,
        "--project-dir",
        str(project),
        "--table",
        table,
        "--queue",
        queue,
        "--bucket",
        bucket,
        "--log-level",
        level,
    ]
    if target:
        argv += ["--target", target]
    env = {k: v for k, v in os.environ.items() if k not in ("TARGET_URL", "CHALICE_WORKER")}
    # No bytecode written into the project by the stack: it would look like an edit
    # to the autoreloader, which restarts on any new file.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a Ctrl-C reaches it through us, in order
        preexec_fn=_pdeathsig if sys.platform == "linux" else None,
    )
    _started = proc
    atexit.register(_stop)
    lines = _read_until_ready(proc)
    _follow(proc)

    # The control routes run here: same AWS, table, queue, bucket, backend and key.
    aws_environment(lines["aws"], ours=True)
    queue_url = aws.client("sqs", lines["aws"]).get_queue_url(QueueName=queue)["QueueUrl"]
    os.environ.update(
        {
            # The keys as the stack keeps them (SSM): `slipway rotate-key` reaches these routes.
            "SLIPWAY_KEY_PARAMETER": names.key_parameter,
            "SLIPWAY_TABLE": table,
            "SLIPWAY_QUEUE_NAME": queue,
            "SLIPWAY_QUEUE_URL": queue_url,
            "SLIPWAY_BUCKET": bucket,
            "SLIPWAY_CONNECTIONS_ENDPOINT": lines["connections"],
            "TARGET_URL": lines["target"],
        }
    )
    ws_port = int(urlsplit(lines["websocket"]).port or 0)
    websocket = f"ws://{public}:{port}/"
    _serve_websockets_on_port(ws_port, websocket)

    def announce() -> None:
        # The stack's lines, in its order; clients reach the emulator through --port.
        for name, value in {**lines, "websocket": websocket}.items():
            print(f"{name}: {value}")
        print("ready", flush=True)
        if not target:
            from .cli import websocket_command

            log.info(
                "try it: %s in two terminals, then /join lobby",
                websocket_command(f"{websocket}?ordered=1"),
            )

    _after_bind(announce)
    _stop_on_signals()


def _stop_on_signals() -> None:
    """SIGTERM and SIGINT stop the server and, through atexit, the stack.

    A background job of a non-interactive shell (`chalice local &` in a script)
    starts with SIGINT ignored, and Python then installs no KeyboardInterrupt
    handler: SIGINT, the script's Ctrl-C included, did nothing. With
    --no-autoreload this is the main thread: both signals exit cleanly. Under the
    autoreloader this is a server thread, where Python sets no handler: SIGINT gets
    its default action back (the process ends; the stack, its child, is told by
    PR_SET_PDEATHSIG and stops in order; the autoreloader's parent then exits).
    That parent never imports the app: a SIGINT sent to it alone stays ignored
    (docs/local-stack.md)."""
    if threading.current_thread() is threading.main_thread():  # --no-autoreload
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: sys.exit(0))  # atexit stops the stack
    elif signal.getsignal(signal.SIGINT) == signal.SIG_IGN and sys.platform == "linux":
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).signal(signal.SIGINT, signal.SIG_DFL)
        except OSError:
            pass


def _logging(app: Chalice, level: str) -> None:
    """`chalice local` logs bare messages to stdout: use the stack's format, on stderr."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    from .functions import _logs_to_stderr

    logs.configure(level, process="chalice ")
    _logs_to_stderr(app)


def _initial_environment() -> dict[str, str]:
    """This process's environment as it started: Chalice has since copied the
    stage's `environment_variables` over it, and the user's shell wins here."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:  # not Linux: the stage's config wins, as in plain `chalice local`
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def _stage_environment(project: Path, stage: str) -> dict[str, str]:
    from chalice.cli.factory import CLIFactory

    try:
        config = CLIFactory(str(project)).create_config_obj(chalice_stage_name=stage)
        return dict(config.environment_variables)
    except Exception:  # Chalice itself has read it already: it will say what is wrong
        return {}


def _read_until_ready(proc: subprocess.Popen[str]) -> dict[str, str]:
    assert proc.stdout is not None
    lines: dict[str, str] = {}
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line == "ready":
                done.set()
                return
            name, sep, value = line.partition(": ")
            if sep:
                lines[name] = value
            else:
                log.info("stack: %s", line)
        done.set()

    reader = threading.Thread(target=read, name="stack-stdout", daemon=True)
    reader.start()
    if not done.wait(_READY_TIMEOUT) or "websocket" not in lines:
        _stop()
        raise SystemExit(f"the local stack did not start (exit code {proc.poll()}): see above")
    return lines


def _follow(proc: subprocess.Popen[str]) -> None:
    """The stack's later stdout to our log; if it ends on its own, so do we."""

    def follow() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.info("stack: %s", line.rstrip("\n"))
        code = proc.wait()
        if _started is proc:  # not stopped by us
            log.error("the local stack exited with code %s: stopping", code)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=follow, name="stack-follow", daemon=True).start()


def _stop() -> None:
    global _started
    proc, _started = _started, None
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


# -- Chalice's server --------------------------------------------------------


def _serve_websockets_on_port(ws_port: int, websocket_url: str) -> None:
    """Chalice's server, about to be made, answers with GatewayRequestHandler."""
    import chalice.local

    from .http import use_handler

    original = chalice.local.create_local_server

    def create_local_server(app_obj: Chalice, config: Any, host: str, port: int) -> Any:
        chalice.local.create_local_server = original  # once: a reload starts afresh
        dev = original(app_obj, config, host, port)
        use_handler(dev, config, ws_port, websocket_url)
        for call in _bound:
            call()
        return dev

    chalice.local.create_local_server = create_local_server


_bound: list[Callable[[], None]] = []


def _after_bind(call: Callable[[], None]) -> None:
    _bound.append(call)


# -- staying together ----------------------------------------------------------


def _pdeathsig() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _die_with_parent() -> None:
    """The autoreloader's child outlives a killed parent, still serving --port:
    end it with its parent (Linux: the kernel's SIGTERM; elsewhere a watcher)."""
    if not os.environ.get("CHALICE_WORKER"):
        return
    parent = os.getppid()
    if sys.platform == "linux":
        _pdeathsig()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        _stop()
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _quiet_reloader() -> None:
    """The stat-based reloader restarts on any file added under the project, .venv
    and __pycache__ included: have it look at the project's own files only."""
    try:
        from chalice.cli.filewatch.stat import StatFileWatcher
    except ImportError:
        return

    def watched(root: str, path: str) -> bool:
        parts = Path(os.path.relpath(path, root)).parts[:-1]
        return not any(
            d in _NOT_WATCHED or d.endswith(".egg-info") or (d.startswith(".") and d != ".chalice")
            for d in parts
        )

    def walk(self: Any, root_dir: str) -> Any:
        for rootdir, dirs, filenames in os.walk(root_dir):
            dirs[:] = [d for d in dirs if watched(root_dir, os.path.join(rootdir, d, "-"))]
            for filename in filenames:
                yield os.path.join(rootdir, filename)

    poll = StatFileWatcher._single_pass_poll

    def single_pass_poll(self: Any, root_dir: str, callback: Any) -> None:
        # The cache may have been seeded with every file before this patch.
        self._mtime_cache = {p: m for p, m in self._mtime_cache.items() if watched(root_dir, p)}
        poll(self, root_dir, callback)

    StatFileWatcher._recursive_walk_files = walk  # type: ignore[method-assign]
    StatFileWatcher._single_pass_poll = single_pass_poll  # type: ignore[method-assign]
