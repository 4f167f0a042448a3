"""A process the stack starts, waits for, and stops with itself: the demo
backend and the SQS worker.

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
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """Linux: have the kernel SIGTERM the child if the stack dies without cleaning up."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Child:
    def __init__(self, argv: Sequence[str], env: Mapping[str, str], name: str) -> None:
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
                else:
                    log.info("%s: %s", self.name, line)

        reader = threading.Thread(target=read, name=f"{self.name}-stdout", daemon=True)
        reader.start()
        waited = 0.0
        while not found and waited < timeout and self._proc.poll() is None:
            reader.join(0.05)
            waited += 0.05
        if not found:
            self.stop()
            raise RuntimeError(
                f"{self.name} did not start within {timeout:.0f}s: {' '.join(self.argv)}"
            )
        return found[0]

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


def python(*args: str) -> list[str]:
    """argv for a Python child with this interpreter, unbuffered."""
    return [sys.executable, "-u", *args]
