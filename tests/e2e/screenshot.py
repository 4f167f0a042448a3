"""Takes docs/demo.png: the demo page in headless Chromium against `slipway local`,
after a short chat, a 1 MB line and a reconnection.

    .venv/bin/python -m tests.e2e.screenshot [docs/demo.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import requests

from .browser import chromium, unavailable
from .processes import KEY, ROOT, LocalStack
from .test_browser import TABLE, _connection_of, say, wait_line


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "demo.png"
    if reason := unavailable():
        sys.exit(reason)
    stack = LocalStack("--key", KEY, "--table", TABLE)
    try:
        with chromium(viewport={"width": 1100, "height": 620}) as browser:
            pages = {}
            for name in ("bob", "carol", "alice"):
                page = browser.new_page()
                page.goto(f"{stack.urls['demo']}?room=lobby&name={name}")
                wait_line(page, "you joined #lobby")
                pages[name] = page
            alice, bob, carol = pages["alice"], pages["bob"], pages["carol"]
            say(bob, "hi all! anyone tried the browser client yet?")
            wait_line(alice, "bob: hi all! anyone tried the browser client yet?")
            say(carol, "yes: big messages go through S3 by themselves")
            wait_line(alice, "carol: yes: big messages go through S3 by themselves")
            say(alice, "let me try one")
            alice.click("#big")
            alice.wait_for_function("window.chat.lines.some(l => l.length > 800000)")
            cid = _connection_of(stack, "lobby", "alice")
            requests.delete(
                f"{stack.control}/connections/{cid}",
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=10,
            )
            alice.wait_for_function("window.chat.client.reconnects >= 1")
            alice.wait_for_function(
                "window.chat.lines.filter(l => l === 'you joined #lobby').length === 2"
            )
            say(bob, "welcome back, alice")
            wait_line(alice, "bob: welcome back, alice")
            alice.wait_for_timeout(300)
            alice.screenshot(path=str(out))
    finally:
        stack.stop()
    print(out)


if __name__ == "__main__":
    main()
