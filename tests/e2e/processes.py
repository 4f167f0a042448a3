"""The processes an end-to-end test runs: `slipway local` and the gripcontrol
test backend, each a real subprocess on free loopback ports."""

from __future__ import annotations

import base64
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import requests

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-key-0123456789abcdef0123456789abcdef"
START_TIMEOUT = 60.0


def free_port() -> int:
    """A port free right now. The tiny race before the child binds it is accepted:
    the backend and the stack each need the other's address to start."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lines:
    """A child's stdout, line by line, read on a thread so waits can time out."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, done: Callable[[str], bool], timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waited {timeout:.0f}s; saw {seen}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise EOFError(f"the process exited; saw {seen}")
            seen.append(line)
            if done(line):
                return seen


class Process:
    """A child process whose stderr goes to a temp file (shown when a test fails)."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        stdin: int = subprocess.DEVNULL,
        cwd: Path = ROOT,
    ) -> None:
        self.argv = list(argv)
        self._stderr = tempfile.NamedTemporaryFile(
            "w+", prefix="slipway-e2e-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self.proc.stdout is not None
        self.lines = Lines(self.proc.stdout)

    def log(self) -> str:
        return Path(self._stderr.name).read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process and wait; kills it (and fails) if it does not stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(
                    f"{self.argv[:4]} ignored signal {sig}:\n{self.log()[-3000:]}"
                ) from None
        self._stderr.close()
        return self.proc.returncode


class LocalStack(Process):
    """`slipway local` on free ports; `urls` holds what it printed before `ready`.
    Run from the repository root unless `cwd` says otherwise."""

    def __init__(
        self,
        *args: str,
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        argv = list(command or [sys.executable, "-m", "slipway_dev.cli"])
        local = [*argv, "local", "--ws-port", "0", "--http-port", "0", "--demo-port", "0", *args]
        super().__init__(local, env, cwd=cwd)
        try:
            printed = self.lines.until(lambda line: line == "ready", START_TIMEOUT)
        except (TimeoutError, EOFError) as exc:
            self.stop(signal.SIGKILL)
            raise AssertionError(
                f"slipway local did not start: {exc}\n{self.log()[-3000:]}"
            ) from None
        self.urls = dict(line.split(": ", 1) for line in printed if ": " in line)

    @property
    def websocket(self) -> str:
        return self.urls["websocket"]

    @property
    def control(self) -> str:
        return self.urls["control"]


class GripBackend(Process):
    """tests/grip_backend.py on a given port; records every request it gets."""

    def __init__(self, port: int, key: str | Sequence[str], control_uri: str) -> None:
        keys = [key] if isinstance(key, str) else list(key)  # several: a rotation's overlap
        super().__init__(
            [
                sys.executable,
                "-m",
                "tests.grip_backend",
                "--port",
                str(port),
                *(arg for k in keys for arg in ("--key", k)),
                "--control-uri",
                control_uri,
            ]
        )
        line = self.lines.until(lambda line: line.startswith("listening"), START_TIMEOUT)[-1]
        self.url = f"http://127.0.0.1:{line.split()[1]}"

    def requests(self) -> list[dict]:
        got = requests.get(f"{self.url}/_requests", timeout=5).json()
        for r in got:
            r["body"] = base64.b64decode(r["body"])
            r["headers"] = {k.lower(): v for k, v in r["headers"].items()}
        return got

    def requests_with(self, marker: str) -> list[dict]:
        """The requests of the connection(s) whose query string holds `marker`."""
        return [r for r in self.requests() if marker in r["path"]]

    def wait_for(
        self, marker: str, done: Callable[[list[dict]], bool], timeout: float = 10.0
    ) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.requests_with(marker)
            if done(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"backend requests for {marker}: {got}")
            time.sleep(0.05)


def stack_with_backend(
    *args: str, env: dict[str, str] | None = None
) -> tuple[LocalStack, GripBackend]:
    """The stack in front of the gripcontrol test backend. The backend needs the
    stack's control URL and the stack the backend's: the backend's port is
    chosen first, and the stack only calls it once a client connects."""
    port = free_port()
    stack = LocalStack("--target", f"http://127.0.0.1:{port}/ws", "--key", KEY, *args, env=env)
    try:
        backend = GripBackend(port, KEY, stack.control)
    except BaseException:
        stack.stop()
        raise
    return stack, backend
