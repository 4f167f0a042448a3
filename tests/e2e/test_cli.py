"""`slipway local` as a user runs it: the console script with the demo chat
backend, the printed URLs, a clean stop on Ctrl-C, an app with no routes, and
an external AWS endpoint whose resources already exist."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE
from urllib.parse import urlsplit

import boto3
import jwt
import pytest
import requests
from gripcontrol import parse_grip_uri
from websockets.sync.client import ClientConnection, connect

from slipway_dev import aws
from slipway_dev.moto_server import MotoServer

from .processes import KEY, ROOT, LocalStack, Process

TIMEOUT = 10.0
SLIPWAY = Path(sys.executable).with_name("slipway")


def recv_until(ws: ClientConnection, text: str) -> list[str]:
    """Messages up to and including `text`; fails on a timeout."""
    got: list[str] = []
    while not got or got[-1] != text:
        got.append(str(ws.recv(timeout=TIMEOUT)))
    return got


def test_console_script_runs_the_demo_chat_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """From any directory: the stack finds the project's app.py (not installed) itself."""
    command = [str(SLIPWAY)] if SLIPWAY.exists() else [sys.executable, "-m", "slipway_dev.cli"]
    stack = LocalStack("--key", KEY, command=command, cwd=tmp_path)
    try:
        for name in ("websocket", "control", "grip", "target"):
            assert ":0/" not in stack.urls[name] + "/", stack.urls
        assert parse_grip_uri(stack.urls["grip"]) == {
            "control_uri": stack.control,
            "key": KEY,
        }
        # The demo backend takes events only from the gateway: Grip-Sig with the key.
        events = {"Content-Type": "application/websocket-events", "Connection-Id": "x"}
        forged = jwt.encode(
            {"iss": "slipway", "exp": time.time() + 60}, "a-different-key-of-at-least-32-bytes!"
        )
        for headers in (events, {**events, "Grip-Sig": forged}):
            reply = requests.post(stack.urls["target"], data=b"OPEN\r\n", headers=headers)
            assert reply.status_code == 403
        with (
            connect(f"{stack.websocket}?name=alice", open_timeout=TIMEOUT) as alice,
            connect(f"{stack.websocket}?name=bob", open_timeout=TIMEOUT) as bob,
        ):
            assert alice.recv(timeout=TIMEOUT).startswith("welcome, alice!")
            assert bob.recv(timeout=TIMEOUT).startswith("welcome, bob!")
            # The joiner may also see its own announcement, before or after the reply.
            alice.send("/join lobby")
            # An unordered connection is told how to keep its lines in order.
            notice = "(this connection is unordered: lines sent quickly may be handled"
            assert any(got.startswith(notice) for got in recv_until(alice, "you joined #lobby"))
            bob.send("/join lobby")
            recv_until(bob, "you joined #lobby")
            recv_until(alice, "* bob joined #lobby")
            alice.send("hello bob")
            recv_until(bob, "alice: hello bob")
            recv_until(alice, "alice: hello bob")
            # Lines pasted at once, as the README's command sends them (ordered mode):
            # the backend handles them in order, whatever API Gateway's concurrency.
            with connect(f"{stack.websocket}?ordered=1&name=carol", open_timeout=TIMEOUT) as carol:
                assert carol.recv(timeout=TIMEOUT).startswith("welcome, carol!")
                for line in ("/join lobby", "/name cat", "hi from a paste"):
                    carol.send(line)
                seen = recv_until(bob, "cat: hi from a paste")
                assert seen[-3:] == ["* carol joined #lobby", "* carol is now cat", seen[-1]]
                # Her own line may miss her: the backend publishes it while the request
                # that subscribes her is still open, and a response's subscriptions apply
                # when it returns (GRIP's rule; Pushpin's too). Her direct replies come.
                assert "connect with ?ordered=1" not in recv_until(carol, "you joined #lobby")
        # The hint names a command that works: this interpreter has websockets.
        hint = next(line for line in stack.log().splitlines() if "try it: " in line)
        command = shlex.split(hint.split("try it: ", 1)[1].split(" in two terminals")[0])
        assert command[1:] == ["-m", "websockets", f"{stack.websocket}?ordered=1"], hint
        assert subprocess.run([command[0], "-c", "import websockets"]).returncode == 0
    finally:
        code = stack.stop(signal.SIGINT)
    assert code == 0, stack.log()[-3000:]
    # The demo backend went with it.
    with pytest.raises(requests.ConnectionError):
        requests.post(stack.urls["target"], timeout=2)


@pytest.fixture(scope="module")
def external_aws() -> Iterator[str]:
    """Another AWS-compatible endpoint, here a moto server in the test process,
    holding a table (with an item) before the stack starts."""
    server = MotoServer()
    url = server.start()
    client = boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    aws.ensure_table(client, "existing")
    client.put_item(TableName="existing", Item={"pk": {"S": "keep"}, "sk": {"S": "me"}})
    yield url
    server.stop()


def test_an_app_without_routes_against_an_existing_endpoint(external_aws: str) -> None:
    stack = LocalStack(
        "--app",
        "tests.e2e.empty_app:app",
        "--aws-endpoint",
        external_aws,
        "--table",
        "existing",
        "--target",
        "http://127.0.0.1:9/unused",
    )
    try:
        assert stack.urls["aws"] == external_aws
        reply = requests.get(f"{stack.control}/anything", timeout=TIMEOUT)
        # API Gateway's 403 "Missing Authentication Token", in the control API's shape.
        assert reply.status_code == 404
        assert reply.json() == {"error": "no route GET /anything: GET / lists the routes"}
        # No $connect route: API Gateway accepts; no $default: messages go nowhere.
        with connect(stack.websocket, open_timeout=TIMEOUT) as ws:
            ws.send("into the void")
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)
    finally:
        code = stack.stop()
    assert code == 0, stack.log()[-3000:]
    session = boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1"
    )
    ddb = session.client("dynamodb", endpoint_url=external_aws)
    item = ddb.get_item(TableName="existing", Key={"pk": {"S": "keep"}, "sk": {"S": "me"}})
    assert "Item" in item, "an existing table must be left alone"
    sqs = session.client("sqs", endpoint_url=external_aws)
    queues = sqs.list_queues()["QueueUrls"]
    assert {urlsplit(q).path.rsplit("/", 1)[1] for q in queues} >= {
        "slipway-publish.fifo",
        "slipway-publish-dlq.fifo",
    }


class ChatClient(Process):
    """examples/chat_client.py (the slipway_client library) in a terminal of its own."""

    def __init__(self, stack: LocalStack, name: str) -> None:
        script = str(ROOT / "examples" / "chat_client.py")
        super().__init__([sys.executable, script, stack.websocket, "--name", name], stdin=PIPE)

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def until(self, text: str) -> list[str]:
        return self.lines.until(lambda line: line == text, 30)

    def quit(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(30)


def test_the_demo_chat_client_carries_a_large_line_to_the_room() -> None:
    stack = LocalStack("--key", KEY)
    alice = bob = None
    try:
        alice, bob = ChatClient(stack, "alice"), ChatClient(stack, "bob")
        bob.lines.until(lambda line: line.startswith("welcome, "), 30)
        bob.say("/join lobby")
        bob.until("you joined #lobby")
        # Three lines pasted at once reach the backend in order (the client asks for
        # ordered mode): the line is said in the room, under the new name.
        alice.lines.until(lambda line: line.startswith("welcome, "), 30)
        alice.say("/join lobby\n/name ann\nhello from a paste")
        seen = bob.until("ann: hello from a paste")
        assert seen[-3:] == ["* alice joined #lobby", "* alice is now ann", seen[-1]], seen
        assert not any("connect with ?ordered=1" in got for got in alice.until("you joined #lobby"))
        alice.say("/name alice")
        bob.until("* ann is now alice")
        alice.say("/big 300")  # 300 KB: uploaded, published through S3, downloaded
        line = "alice: " + "0123456789abcdef" * 7
        bob.lines.until(lambda got: got.startswith(line[:60]) and "(307,207 characters)" in got, 30)
        alice.say("small again")
        bob.until("alice: small again")
        assert alice.quit() == 0 and bob.quit() == 0
    finally:
        for who in (alice, bob):
            if who is not None:
                who.stop(signal.SIGKILL)
        code = stack.stop()
    assert code == 0, stack.log()[-3000:]
