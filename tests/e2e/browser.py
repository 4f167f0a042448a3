"""Headless Chromium for the browser tests, driven by Playwright's Python package.

The browser is the system's (Debian's `chromium` package, /usr/bin/chromium), or
the one `SLIPWAY_CHROMIUM` names; Playwright never downloads one here. Without
it the browser tests fail when CI is set (so CI cannot pass without running
them) and are skipped otherwise, saying why.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

DEFAULT_CHROMIUM = "/usr/bin/chromium"
ENV = "SLIPWAY_CHROMIUM"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL = "apt-get update && apt-get install -y chromium"


def chromium_path() -> str:
    return os.environ.get(ENV) or DEFAULT_CHROMIUM


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unavailable() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is missing: make install (it is a dev dependency)"
    path = chromium_path()
    if not (Path(path).is_file() and os.access(path, os.X_OK)) and not shutil.which(path):
        return f"no Chromium at {path} ({ENV} overrides the path): {INSTALL}"
    return None


def require_browser() -> None:
    reason = unavailable()
    if reason is None:
        return
    if _in_ci():
        pytest.fail(f"the browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def chromium(**context: Any) -> Iterator[Any]:
    """A Playwright BrowserContext of headless Chromium with a fresh user-data dir."""
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="slipway-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            headless=True,
            args=ARGS,
            **context,
        )
        try:
            yield browser
        finally:
            browser.close()
