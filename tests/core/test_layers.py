"""The pure core's tests stand alone: loading them, with the conftest files pytest
loads for them, imports nothing of moto, AWS's SDK, the local stack or the app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
# What an adapter's, a handler's or an end-to-end test needs, and the core's must not.
ADAPTERS = ("moto", "boto3", "botocore", "werkzeug", "app", "chalicelib.aws", "slipway_dev")
ADAPTERS += ("chalicelib.services", "chalicelib.handlers", "chalicelib.control", "tests.harness")

_PROBE = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {roots!r}
                        or any(m == a or m.startswith(a + ".") for a in {adapters!r}))))
"""


def core_test_modules() -> list[str]:
    return sorted(f"tests.core.{p.stem}" for p in (ROOT / "tests" / "core").glob("test_*.py"))


def loaded_by(modules: list[str]) -> list[str]:
    roots = tuple(a for a in ADAPTERS if "." not in a)
    code = _PROBE.format(modules=modules, roots=roots, adapters=ADAPTERS)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_core_tests_and_their_conftests_import_no_adapter() -> None:
    modules = core_test_modules()
    assert "tests.core.test_codec" in modules and "tests.core.test_parity" in modules
    assert loaded_by(["tests.conftest", "tests.core.conftest", *modules]) == []


def test_the_probe_sees_an_adapter() -> None:
    """The check above can fail: an adapter's test module is seen for what it is."""
    assert "tests.harness" in loaded_by(["tests.test_fanout"])
