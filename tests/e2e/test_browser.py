"""The browser client (client/js/) and the demo page in headless Chromium, against
a real `slipway local` with the demo chat backend: the client's own unit tests,
two pages chatting, a 1 MB line through S3 (presigned PUT and GET from the page's
origin: the local bucket's CORS), a page whose socket the gateway closes
reconnecting by itself, and a client rotating its connection before the gateway's
cut (a stack whose connections live 8 s). How the browser is found:
tests/e2e/browser.py."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from slipway_client import ControlClient

from slipway_dev import aws

from .browser import chromium, require_browser
from .processes import KEY, LocalStack

TABLE = "slipway-browser-e2e"
TIMEOUT_MS = 30_000
MIB = 1024 * 1024
# The demo page's bigLine(): 1 MiB of UTF-8, not all ASCII (examples/chat.html).
PATTERN = "slipway carries this line through S3 · ünïcødé ✓ 🚀 "


def big_line() -> str:
    line = PATTERN * (MIB // len(PATTERN.encode()))
    return line + "." * (MIB - len(line.encode()))


@pytest.fixture(scope="module")
def demo() -> Iterator[LocalStack]:
    require_browser()
    stack = LocalStack("--key", KEY, "--table", TABLE)
    try:
        assert stack.urls.get("demo", "").startswith("http://127.0.0.1:"), stack.urls
        yield stack
    finally:
        code = stack.stop()
        if code != 0:
            print(f"\n--- slipway local log (exit {code}) ---\n{stack.log()[-6000:]}")
    assert code == 0, "slipway local did not exit cleanly on SIGTERM"


@pytest.fixture(scope="module")
def browser(demo: LocalStack) -> Iterator[Any]:
    with chromium(viewport={"width": 1100, "height": 640}) as context:
        yield context


def open_page(browser: Any, demo: LocalStack, room: str, name: str) -> Any:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.page_errors = errors
    page.goto(f"{demo.urls['demo']}?room={room}&name={name}")
    wait_line(page, f"you joined #{room}")
    return page


def wait_line(page: Any, line: str) -> None:
    """Until the page's #log shows `line` (as a whole line)."""
    page.wait_for_function(
        "line => [...document.querySelectorAll('#log .line')].some(e => e.textContent === line)",
        arg=line,
        timeout=TIMEOUT_MS,
    )


def say(page: Any, text: str) -> None:
    page.fill("#message", text)
    page.press("#message", "Enter")


def test_the_clients_unit_tests_pass_in_the_browser(browser: Any, demo: LocalStack) -> None:
    page = browser.new_page()
    page.goto(f"{demo.urls['demo']}client/test/")
    page.wait_for_function("window.testResults && window.testResults.done", timeout=TIMEOUT_MS)
    results = page.evaluate("window.testResults")
    assert results["failed"] == 0, "\n".join(results["failures"])
    assert results["passed"] >= 20, results["names"]
    page.close()


def test_two_pages_chat(browser: Any, demo: LocalStack) -> None:
    alice = open_page(browser, demo, "kitchen", "alice")
    bob = open_page(browser, demo, "kitchen", "bob")
    say(alice, "hello bob, from a browser")
    wait_line(bob, "alice: hello bob, from a browser")
    say(bob, "hi alice ✓")
    wait_line(alice, "bob: hi alice ✓")
    # Who is there: bob saw alice speak; alice saw bob join and speak.
    assert "alice" in bob.text_content("#who")
    assert "bob" in alice.text_content("#who")
    assert alice.text_content("#state") == "open"
    assert not alice.page_errors and not bob.page_errors
    alice.close()
    bob.close()


def test_a_1_mb_line_reaches_the_other_page_byte_exact(browser: Any, demo: LocalStack) -> None:
    alice = open_page(browser, demo, "big", "alice")
    bob = open_page(browser, demo, "big", "bob")
    bucket = urlsplit(demo.urls["aws"]).netloc
    transfers: list[Any] = []
    for page in (alice, bob):
        page.on("requestfinished", lambda r: transfers.append(r) if bucket in r.url else None)
        page.on("requestfailed", lambda r: transfers.append(r) if bucket in r.url else None)
    assert alice.evaluate("window.chat.bigLine()") == big_line()

    alice.click("#big")
    wanted = "alice: " + big_line()
    js_length = len(wanted.encode("utf-16-le")) // 2  # a JavaScript string's length
    bob.wait_for_function(
        "n => window.chat.lines.some(l => l.length === n)", arg=js_length, timeout=60_000
    )
    digest = bob.evaluate(
        """async n => {
            const line = window.chat.lines.find(l => l.length === n);
            const bytes = new TextEncoder().encode(line);
            const hash = await crypto.subtle.digest("SHA-256", bytes);
            const hex = [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, "0"));
            return [bytes.length, hex.join("")];
        }""",
        js_length,
    )
    assert digest == [len(wanted.encode()), hashlib.sha256(wanted.encode()).hexdigest()]
    assert f"({js_length:,} characters)" in bob.text_content("#log")

    # Through S3, from the page's origin: the upload's PUT (after a CORS preflight)
    # and the download's GET, both answered with the bucket's CORS headers.
    origin = demo.urls["demo"].rstrip("/")
    puts = [r for r in transfers if r.method == "PUT"]
    gets = [r for r in transfers if r.method == "GET" and r.frame.page is bob]
    assert len(puts) == 1 and gets, [(r.method, r.url, r.failure) for r in transfers]
    put = puts[0]
    assert put.failure is None and put.response().status == 200
    headers = put.all_headers()
    assert headers["content-type"] == "application/json"
    assert headers["x-amz-acl"] == "bucket-owner-full-control"
    assert put.response().all_headers().get("access-control-allow-origin") in (origin, "*")
    assert put.post_data_buffer == json.dumps(big_line(), ensure_ascii=False).encode()
    for get in gets:
        assert get.failure is None and get.response().status == 200
        assert get.response().all_headers().get("access-control-allow-origin") in (origin, "*")

    say(alice, "small again")
    wait_line(bob, "alice: small again")
    assert not alice.page_errors and not bob.page_errors
    alice.close()
    bob.close()


def _connection_of(demo: LocalStack, room: str, user: str) -> str:
    """The id of `user`'s connection in `room`: the room's channel rows, then the
    control API's inspect of each."""
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=demo.urls["aws"],
        region_name=aws.REGION,
        **{k.lower(): v for k, v in aws.DUMMY_CREDENTIALS.items()},
    )
    rows = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": f"chan#{room}"}},
    )["Items"]
    auth = {"Authorization": f"Bearer {KEY}"}
    for row in rows:
        cid = row["sk"]["S"]
        got = requests.get(f"{demo.control}/connections/{cid}", headers=auth, timeout=10)
        if got.ok and got.json().get("meta", {}).get("user") == user:
            return cid
    raise AssertionError(f"no connection of {user} in #{room}: {rows}")


def test_a_page_closed_by_the_gateway_reconnects_by_itself(browser: Any, demo: LocalStack) -> None:
    alice = open_page(browser, demo, "porch", "alice")
    bob = open_page(browser, demo, "porch", "bob")
    say(alice, "before the drop")
    wait_line(bob, "alice: before the drop")

    cid = _connection_of(demo, "porch", "alice")
    closed = requests.delete(
        f"{demo.control}/connections/{cid}", headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )
    assert closed.status_code == 200, closed.text

    # State events: reconnecting, then open again; the page rejoins its room.
    alice.wait_for_function("window.chat.client.reconnects >= 1", timeout=TIMEOUT_MS)
    kinds = alice.evaluate("window.chat.events.map(e => e.kind)")
    assert "reconnecting" in kinds and kinds.count("open") >= 2, kinds
    assert alice.text_content("#reconnects") == "1"
    wait_line(bob, "* alice joined #porch")
    alice.wait_for_function(
        "window.chat.lines.filter(l => l === 'you joined #porch').length === 2",
        timeout=TIMEOUT_MS,
    )

    say(bob, "welcome back")
    wait_line(alice, "bob: welcome back")
    say(alice, "back again")
    wait_line(bob, "alice: back again")
    assert alice.text_content("#state") == "open"
    assert _connection_of(demo, "porch", "alice") != cid
    assert not alice.page_errors and not bob.page_errors
    alice.close()
    bob.close()


def test_the_demo_page_rotates_and_stays_in_its_room(browser: Any, demo: LocalStack) -> None:
    alice = open_page(browser, demo, "deck", "alice")
    bob = open_page(browser, demo, "deck", "bob")
    say(alice, "before the rotation")
    wait_line(bob, "alice: before the rotation")
    old = _connection_of(demo, "deck", "alice")

    # The page's "open" listener rejoins the room on the new connection; the client
    # switches once the room's [6] came on it, and closes the old one.
    assert alice.evaluate("window.chat.client.rotate()") is True
    assert alice.evaluate("window.chat.client.rotations") == 1
    alice.wait_for_function(
        "window.chat.lines.filter(l => l === 'you joined #deck').length === 2",
        timeout=TIMEOUT_MS,
    )
    say(bob, "after the rotation")
    wait_line(alice, "bob: after the rotation")
    say(alice, "still here")
    wait_line(bob, "alice: still here")
    assert _connection_of(demo, "deck", "alice") != old
    # No reconnection, and bob was not told alice left: her new connection is in the room.
    assert alice.evaluate("window.chat.client.reconnects") == 0
    assert "reconnecting" not in alice.evaluate("window.chat.events.map(e => e.kind)")
    assert "* alice left" not in bob.evaluate("window.chat.lines")
    assert "alice" in bob.text_content("#who")
    assert (
        bob.evaluate("window.chat.lines.filter(l => l === 'alice: before the rotation').length")
        == 1
    )
    assert not alice.page_errors and not bob.page_errors
    alice.close()
    bob.close()


# -- rotation before the gateway's cut -------------------------------------------------

LIFETIME = 8.0  # the short-lived stack's cut (API Gateway's 2 hours)

# In the page: a client of the demo backend that joins `room` from its "open" listener
# (as the demo page does, so a rotation's new connection joins too), rotating each
# connection 1 to 1.5 s after it opened; what it receives goes to window.rot.
ROTATING_CLIENT = """async ([ws, room]) => {
    const { SlipwayClient } = await import("/client/index.js");
    const client = new SlipwayClient(ws + "?ordered=1&name=rot", { rotateWindow: [1000, 1500] });
    const rot = (window.rot = { client, got: [], opens: [], errors: [], joined: 0 });
    client.addEventListener("message", (e) => {
        if (/^\\d+$/.test(e.data)) rot.got.push(e.data);
        if (e.data === `you joined #${room}`) rot.joined++;
    });
    client.addEventListener("open", (e) => {
        rot.opens.push(e.rotation ? "rotation" : e.reconnected ? "reconnected" : "first");
        client.send(`/join ${room}`);
    });
    client.addEventListener("error", (e) => rot.errors.push(`${e.error.code}: ${e.message}`));
    await client.connect();
}"""


@pytest.fixture
def short_lived() -> Iterator[LocalStack]:
    require_browser()
    stack = LocalStack(
        "--key", KEY, "--table", f"{TABLE}-rotation", "--max-lifetime", str(LIFETIME)
    )
    try:
        yield stack
    finally:
        code = stack.stop()
        if code != 0:
            print(f"\n--- slipway local log (exit {code}) ---\n{stack.log()[-6000:]}")
    assert code == 0, "slipway local did not exit cleanly on SIGTERM"


def test_a_page_rotates_before_the_cut_with_no_gap_and_no_duplicate(
    browser: Any, short_lived: LocalStack
) -> None:
    room = "rotation"
    page = browser.new_page()
    page.goto(short_lived.urls["demo"])
    page.evaluate(ROTATING_CLIENT, [short_lived.websocket, room])
    page.wait_for_function("window.rot.joined === 1", timeout=TIMEOUT_MS)
    # The first [6] of the room gives the client a position, which a rotation waits for.
    page.wait_for_function("Object.keys(window.rot.client.positions).length === 1")
    control = ControlClient(short_lived.control, KEY)
    sent: list[str] = []
    started = time.monotonic()
    # Past the stack's cut: every connection of the client would reach it without rotation.
    while time.monotonic() - started < LIFETIME + 2:
        sent.append(str(len(sent)))
        control.publish_many([{"channel": room, "formats": {"ws-message": {"content": sent[-1]}}}])
        time.sleep(0.05)
    page.wait_for_function(f"window.rot.got.length >= {len(sent)}", timeout=TIMEOUT_MS)
    time.sleep(0.3)  # anything twice would have arrived by now
    rot = page.evaluate(
        "({got: rot.got, opens: rot.opens, errors: rot.errors, rotations: rot.client.rotations,"
        " reconnects: rot.client.reconnects, state: rot.client.state})"
    )
    assert rot["rotations"] >= 3, rot
    assert rot["got"] == sent  # no gap, no duplicate, in order, across every rotation
    # Each rotation beat the gateway's cut: no reconnection, no error.
    assert rot["reconnects"] == 0 and rot["state"] == "open", rot
    assert rot["opens"] == ["first"] + ["rotation"] * rot["rotations"], rot
    assert rot["errors"] == [], rot
    page.close()
