"""`chalice local` (Chalice's own command and flags) runs the whole local stack:
the control routes on --port, WebSocket clients on the same port, the worker and
the backend; and Ctrl-C or SIGTERM leaves no process behind. Also the errors a
new user meets first, each checked by its text."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from gripcontrol import GripPubControl, WebSocketMessageFormat
from pubcontrol import Item
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .processes import KEY, ROOT, START_TIMEOUT, GripBackend, Lines, Process, free_port

CHALICE = Path(sys.executable).with_name("chalice")
TIMEOUT = 10.0


class ChaliceLocal(Process):
    """`chalice local --port <free>`; `urls` holds what it printed before `ready`."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.port = free_port()
        super().__init__([str(CHALICE), "local", "--port", str(self.port), *args], env, cwd=cwd)
        try:
            printed = self.lines.until(lambda line: line == "ready", START_TIMEOUT)
        except (TimeoutError, EOFError) as exc:
            self.stop(signal.SIGKILL)
            raise AssertionError(
                f"chalice local did not start: {exc}\n{self.log()[-4000:]}"
            ) from None
        self.urls = dict(line.split(": ", 1) for line in printed if ": " in line)


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[ChaliceLocal, GripBackend]]:
    """TARGET_URL=<gripcontrol backend> SLIPWAY_KEY=k chalice local --port N --no-autoreload."""
    backend_port = free_port()
    env = {"TARGET_URL": f"http://127.0.0.1:{backend_port}/ws", "SLIPWAY_KEY": KEY}
    chalice = ChaliceLocal("--no-autoreload", env=env)
    try:
        backend = GripBackend(backend_port, KEY, chalice.urls["control"])
    except BaseException:
        chalice.stop()
        raise
    tree = descendants(chalice.proc.pid)
    yield chalice, backend
    code = chalice.stop(signal.SIGTERM)
    backend.stop()
    assert code == 0, chalice.log()[-4000:]
    assert wait_gone(tree) == [], chalice.log()[-4000:]


def test_prints_one_port_for_websockets_and_control(gateway) -> None:
    chalice, backend = gateway
    urls = chalice.urls
    assert urls["websocket"] == f"ws://127.0.0.1:{chalice.port}/"
    assert urls["control"] == f"http://127.0.0.1:{chalice.port}"
    assert urls["key"] == KEY
    assert urls["target"] == f"{backend.url}/ws"  # TARGET_URL from the environment
    assert {"grip", "connections", "aws"} <= set(urls)


def test_connect_echo_subscribe_and_publish_with_gripcontrol(gateway) -> None:
    chalice, backend = gateway
    with connect(f"{chalice.urls['websocket']}?m=echo1", open_timeout=TIMEOUT) as ws:
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == "hello"
        ws.send("sub room1")
        assert ws.recv(timeout=TIMEOUT) == "subscribed room1"
        pub = GripPubControl({"control_uri": f"http://127.0.0.1:{chalice.port}", "key": KEY})
        pub.publish("room1", Item(WebSocketMessageFormat("to the room")), blocking=True)
        assert ws.recv(timeout=TIMEOUT) == "to the room"
        cid = backend.requests_with("m=echo1")[0]["headers"]["connection-id"]
    deadline = time.monotonic() + TIMEOUT
    log = chalice.log()
    while f"disconnect {cid}" not in log and time.monotonic() < deadline:
        time.sleep(0.1)
        log = chalice.log()
    # One INFO line each, in the stack's one format (with a timestamp).
    for line in (
        f"INFO    slipway.handlers: connect {cid} from 127.0.0.1, query 'm=echo1'",
        f"INFO    slipway.executor: subscribe {cid} to 'room1'",  # the executor subscribes
        f"INFO    slipway.handlers: disconnect {cid}, code 1000",
    ):
        assert line in log, log[-3000:]
    assert "visibility timeout" not in log  # the stack's defaults do not warn about themselves


def test_control_api_errors_are_all_json_error(gateway) -> None:
    chalice, _ = gateway
    base = chalice.urls["control"]
    auth = {"Authorization": f"Bearer {KEY}"}

    index = requests.get(f"{base}/", timeout=TIMEOUT)
    assert index.status_code == 200
    assert "POST /publish" in index.json()["routes"]

    missing = requests.get(f"{base}/nowhere", timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no route GET /nowhere: GET / lists the routes"}

    wrong_type = requests.post(
        f"{base}/publish/", data="{}", headers={**auth, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert wrong_type.json() == {"error": "Unsupported media type: text/plain"}

    wrong_method = requests.put(f"{base}/publish", json={}, headers=auth, timeout=TIMEOUT)
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"error": "Unsupported method: PUT"}

    typo = requests.post(
        f"{base}/publish/",
        json={"items": [{"channel": "lobby", "formats": {"ws_message": {"content": "hi"}}}]},
        headers=auth,
        timeout=TIMEOUT,
    )
    assert typo.status_code == 200
    body = typo.json()
    assert body["skipped"] == [0]
    assert "no ws-message format: item 0 (ws_message)" in body["warning"]


# -- a backend that is not a WebSocket-over-HTTP endpoint -------------------------


@pytest.fixture
def html_backend() -> Iterator[str]:
    class Html(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html>a web page</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_a_backend_answering_html_is_named_in_the_log(html_backend: str) -> None:
    chalice = ChaliceLocal("--no-autoreload", env={"TARGET_URL": html_backend})
    try:
        with pytest.raises(InvalidStatus) as refused:
            connect(chalice.urls["websocket"], open_timeout=TIMEOUT)
        response = refused.value.response
        assert response.status_code == 502
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        problem = "backend answered Content-Type 'text/html', not application/websocket-events"
        assert response.body.decode() == f"Bad Gateway: {problem}"
        time.sleep(0.5)
        log = chalice.log()
        assert "WARNING slipway.handlers: rejecting" in log
        assert f"with 502: {problem} (is TARGET_URL {html_backend} the backend's" in log
        assert "backend rejected" not in log
    finally:
        assert chalice.stop() == 0


def test_a_busy_port_names_the_flag_before_starting_anything() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [str(CHALICE), "local", "--port", str(port), "--no-autoreload"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode != 0
    assert f"port {port} on 127.0.0.1 is in use" in proc.stderr
    assert "pick another with --port PORT" in proc.stderr
    assert "created DynamoDB table" not in proc.stderr  # nothing was started


# -- stopping -------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def descendants(root: int) -> dict[int, str]:
    """Every process below `root`: pid -> its command line."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children.setdefault(stat[1], []).append(int(entry))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            found[child] = cmd
            todo.append(child)
    return found


def wait_gone(processes: dict[int, str], timeout: float = 30.0) -> list[str]:
    """The processes still alive (zombies count as gone) after up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [
            f"{pid} {cmd}"
            for pid, cmd in processes.items()
            if (stat := _stat(pid)) is not None and stat[0] != "Z"
        ]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the Chalice project: the autoreloader restarts on any edit under its
    project, and other work may be editing this checkout."""
    copy = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "app.py", copy / "app.py")
    shutil.copytree(
        ROOT / "chalicelib", copy / "chalicelib", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / ".chalice", copy / ".chalice", ignore=shutil.ignore_patterns("deploy*"))
    return copy


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "sig, group, background, flags",
    [
        (signal.SIGTERM, False, False, ()),
        (signal.SIGINT, False, False, ()),
        (signal.SIGINT, True, False, ()),
        # `chalice local &` in a script: it starts with SIGINT ignored (POSIX), and
        # did nothing on the script's Ctrl-C, nor on a SIGINT with --no-autoreload.
        (signal.SIGINT, True, True, ()),
        (signal.SIGINT, False, True, ("--no-autoreload",)),
        (signal.SIGTERM, False, True, ("--no-autoreload",)),
    ],
    ids=[
        "sigterm",
        "sigint",
        "ctrl-c-to-the-process-group",
        "background-ctrl-c-to-the-process-group",
        "background-sigint-no-autoreload",
        "background-sigterm-no-autoreload",
    ],
)
def test_stopping_chalice_local_leaves_no_process(
    project: Path, sig: int, group: bool, background: bool, flags: tuple[str, ...]
) -> None:
    """With the autoreloader (the default): its parent, its server process, the stack
    and the stack's children (worker, demo backend) all end; without it, the same."""
    port = free_port()
    proc = subprocess.Popen(
        [str(CHALICE), "local", "--port", str(port), *flags],
        preexec_fn=_ignore_sigint if background else None,
        cwd=project,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TARGET_URL": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal
    )
    assert proc.stdout is not None
    try:
        printed = Lines(proc.stdout).until(lambda line: line == "ready", START_TIMEOUT)
        urls = dict(line.split(": ", 1) for line in printed if ": " in line)
        assert urls["websocket"] == f"ws://127.0.0.1:{port}/"
        with connect(urls["websocket"], open_timeout=TIMEOUT) as ws:  # the demo backend
            assert "your connection id is" in str(ws.recv(timeout=TIMEOUT))
        tree = descendants(proc.pid)
        commands = " ".join(tree.values())
        assert "slipway_dev.cli local --control-url" in commands, tree
        assert "slipway_dev.worker" in commands and "chat_backend.py" in commands, tree
    finally:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    try:
        proc.wait(30)  # the autoreloader's parent ends by SIGTERM's default action: -15
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *tree]:  # leave nothing behind, then fail
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait(10)
        raise AssertionError(f"chalice local ignored signal {sig}") from None
    assert wait_gone(tree) == []
    with socket.socket() as probe:  # and the port is free again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def test_chalice_package_holds_no_local_stack(tmp_path: Path) -> None:
    out = tmp_path / "package"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    (ROOT / ".chalice" / "deployments").mkdir(exist_ok=True)
    subprocess.run(
        [str(CHALICE), "package", "--stage", "dev", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    import zipfile

    names = zipfile.ZipFile(out / "deployment.zip").namelist()
    assert "app.py" in names
    assert not [n for n in names if n.startswith("slipway_dev") or "moto" in n.split("/")[0]]
    # app.py imports slipway_dev only under the Chalice CLI, and survives its absence.
    assert json.dumps(names)  # (listed for a failure message)
