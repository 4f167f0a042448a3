"""The browser client's unit tests (client/js/test/: the envelope framing, the client
and its rotation against a fake WebSocket and a fake clock) under Node, when Node 20
or later is installed. The same tests run in Chromium in tests/e2e/test_browser.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "client" / "js" / "test" / "node.js"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on PATH (the same tests run in Chromium: tests/e2e/test_browser.py)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(re.match(r"v(\d+)", version.stdout.strip()).group(1))  # type: ignore[union-attr]
    if major < 20:
        pytest.skip(f"node {version.stdout.strip()} is older than 20")
    return node


def test_the_browser_clients_unit_tests_pass_under_node() -> None:
    run = subprocess.run(
        [_node(), str(RUNNER)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    failures = [line for line in run.stdout.splitlines() if line.startswith("FAIL")]
    assert run.returncode == 0 and not failures, "\n".join(failures) + run.stderr[-3000:]
    passed = re.search(r"^(\d+) passed, 0 failed$", run.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) >= 40, run.stdout[-2000:]
