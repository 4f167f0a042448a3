"""A process the stack starts, waits for, and stops with itself: the demo
backend and the SQS worker (started again when it dies: Keeper).

A child says it is ready with one line on stdout (`listening <port>`, `ready`);
everything else it prints goes to our log. It runs in its own session, so a
Ctrl-C in the terminal reaches only the stack, which then stops the children
in its own order (the backend must outlive the clients' $disconnect).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """Linux: have the kernel SIGTERM the child if the stack dies without cleaning up."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class NotReady(RuntimeError):
    """A child that died (`code`) or hung (`code` None) before it said it was ready."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


class Child:
    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        name: str,
        take: Callable[[str], bool] | None = None,
    ) -> None:
        """`take`: offered each line after the ready one; a line it takes (the
        worker's metric lines: slipway_dev/metrics.py) is not logged."""
        self.take = take
        self.argv = list(argv)
        self.env = dict(env)
        self.name = name
        self._proc: subprocess.Popen[str] | None = None

    def start(self, ready: Callable[[str], bool], timeout: float = 30.0) -> str:
        """Start the child; return the line that says it is ready."""
        self._proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        found: list[str] = []

        def read() -> None:
            assert self._proc is not None and self._proc.stdout is not None
            for line in self._proc.stdout:
                line = line.rstrip("\n")
                if not found and ready(line):
                    found.append(line)
                elif self.take is not None and self.take(line):
                    continue
                else:
                    log.info("%s: %s", self.name, line)

        reader = threading.Thread(target=read, name=f"{self.name}-stdout", daemon=True)
        reader.start()
        waited = 0.0
        while not found and waited < timeout and self._proc.poll() is None:
            reader.join(0.05)
            waited += 0.05
        if not found:
            died = self._proc.poll()
            self.stop()
            if died is not None:
                raise NotReady(f"{self.name} exited with code {died} before it was ready", died)
            raise NotReady(
                f"{self.name} did not start within {timeout:.0f}s: {' '.join(self.argv)}", None
            )
        return found[0]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def exited(self) -> int | None:
        """The exit code once the child has ended on its own, else None."""
        return self._proc.poll() if self._proc is not None else None

    def stop(self, timeout: float = 10.0) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s ignored SIGTERM: killing it", self.name)
            proc.kill()
            proc.wait(timeout)


class Keeper:
    """Starts a child again whenever it dies, as Lambda starts a new container when
    one dies: what the dead one had in flight is retried by whoever handed it out
    (SQS, for the worker). A child that dies `limit` times within `window` seconds,
    or cannot start again, is left dead, and `problem` says so."""

    def __init__(
        self,
        child: Child,
        ready: Callable[[str], bool],
        timeout: float = 60.0,
        limit: int = 10,
        window: float = 60.0,
    ) -> None:
        self.child = child
        self.restarts = 0
        self.problem: str | None = None
        self._ready = ready
        self._timeout = timeout
        self._limit = limit
        self._window = window
        self._recent: deque[float] = deque(maxlen=limit)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # held while a restart is under way
        self._thread: threading.Thread | None = None

    def start(self) -> Keeper:
        # The children it starts get PR_SET_PDEATHSIG from this thread: it lives
        # until stop(), which comes just before the child's own stop.
        self._thread = threading.Thread(target=self._run, name=f"{self.child.name}-keeper")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """No more restarts (one under way finishes first)."""
        self._stop.set()
        with self._lock:
            pass
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        name = self.child.name
        while not self._stop.wait(0.1):
            code = self.child.exited()
            if code is None:
                continue
            with self._lock:
                if self._stop.is_set():
                    return
                now = time.monotonic()
                if len(self._recent) == self._limit and now - self._recent[0] < self._window:
                    self.problem = (
                        f"the {name} died {self._limit} times within {self._window:.0f}s "
                        f"(last exit code {code}): not starting it again"
                    )
                    return
                self._recent.append(now)
                how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                log.warning(
                    "the %s (pid %s) died (%s): starting a new one, as Lambda starts a new "
                    "container",
                    name,
                    self.child.pid,
                    how,
                )
                try:
                    self.child.start(self._ready, self._timeout)
                except NotReady as exc:
                    if exc.code is not None:  # died while starting: next round starts it again
                        log.warning("%s", exc)
                        continue
                    self.problem = f"the {name} died ({how}) and could not start again: {exc}"
                    return
                except Exception as exc:
                    self.problem = f"the {name} died ({how}) and could not start again: {exc}"
                    return
                self.restarts += 1
                log.warning(
                    "the %s is back (pid %s) after %.1fs",
                    name,
                    self.child.pid,
                    time.monotonic() - now,
                )


def python(*args: str) -> list[str]:
    """argv for a Python child with this interpreter, unbuffered."""
    return [sys.executable, "-u", *args]
