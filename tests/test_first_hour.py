"""The errors and messages a new user meets first, each checked by its text
(the end-to-end ones through `chalice local` are in tests/e2e/test_chalice_local.py)."""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import pytest

from chalicelib.grip.decisions import Reject, read_response
from chalicelib.grip.publish import parse_items, skipped_warning
from slipway_dev import cli, target


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("slipway 0.")


def test_a_bare_slipway_prints_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "bootstrap" in out and "local" in out and "create the AWS resources" in out


def test_a_busy_port_names_its_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as refused:
            cli.check_port("127.0.0.1", port, "--ws-port")
    assert str(refused.value.code).startswith(f"port {port} on 127.0.0.1 is in use")
    assert str(refused.value.code).endswith(
        "pick another with --ws-port PORT (0 for any free port)"
    )


def test_slipway_local_refuses_a_busy_port_before_starting_anything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["local", "--ws-port", "0", "--http-port", str(port)]) == 2
    assert "pick another with --http-port PORT" in caplog.text
    assert "created" not in caplog.text


def test_a_busy_demo_page_port_is_refused_before_starting_anything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It was found ~15 s late, by the demo page's server: `[Errno 98] Address already
    in use`, naming neither the port nor the flag."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["local", "--ws-port", "0", "--http-port", "0", "--demo-port", str(port)]
        assert cli.main(argv) == 2
    assert f"port {port} on 127.0.0.1 is in use" in caplog.text
    assert "pick another with --demo-port PORT" in caplog.text
    assert "created" not in caplog.text


def test_the_try_it_hint_runs_websockets_with_this_interpreter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`python -m websockets` fails on a system Python without the package: the hint
    names the interpreter that has it, relative when under the working directory."""
    python = tmp_path / ".venv" / "bin" / "python"
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.chdir(tmp_path)
    url = "ws://127.0.0.1:8000/?ordered=1"
    assert cli.websocket_command(url) == f".venv/bin/python -m websockets '{url}'"
    monkeypatch.chdir("/")
    assert cli.websocket_command(url) == f"{python} -m websockets '{url}'"


def test_a_publish_without_ws_message_says_which_formats_it_ignored() -> None:
    body = {
        "items": [
            {"channel": "a", "formats": {"ws_message": {"content": "typo"}}},
            {"channel": "b", "formats": {"ws-message": {"content": "ok"}}},
            {"channel": "c", "http-stream": {"content": "other"}},
        ]
    }
    items, skipped = parse_items(json.dumps(body))
    assert [item.channel for item in items] == ["b"]
    assert skipped == {0: ["ws_message"], 2: ["http-stream"]}
    assert skipped_warning(skipped) == (
        "not published, no ws-message format: item 0 (ws_message); item 2 (http-stream). "
        "slipway serves only ws-message and ignores other formats (is one a typo for ws-message?)"
    )


def test_a_non_grip_200_to_open_is_a_plain_text_502_saying_what_was_wrong() -> None:
    (reject,) = read_response(200, {"Content-Type": "text/html"}, b"<html>", opening=True)
    assert isinstance(reject, Reject)
    problem = "backend answered Content-Type 'text/html', not application/websocket-events"
    assert reject.problem == problem
    assert (reject.status, reject.body) == (502, f"Bad Gateway: {problem}".encode())
    assert reject.headers == {"content-type": "text/plain; charset=utf-8"}
    # The backend's own refusal is passed on as it is, with no problem of ours.
    (theirs,) = read_response(403, {"Content-Type": "text/html"}, b"no", opening=True)
    assert isinstance(theirs, Reject) and theirs.problem is None


@pytest.mark.parametrize(
    "url, placeholder",
    [
        ("https://backend.example.com/ws", True),
        ("http://example.org/", True),
        ("http://x.invalid/", True),
        ("http://127.0.0.1:9100/", False),
        ("https://notexample.com/", False),
    ],
)
def test_the_stage_placeholder_target_means_the_demo_backend(url: str, placeholder: bool) -> None:
    assert target.placeholder(url) is placeholder


def _project(tmp_path: Path, stages: dict[str, str | None]) -> Path:
    config = {
        "version": "2.0",
        "app_name": "x",
        "stages": {
            stage: {"environment_variables": {"TARGET_URL": url} if url else {}}
            for stage, url in stages.items()
        },
    }
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_check_target_warns_for_dev_and_refuses_the_placeholder_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(
        tmp_path,
        {
            "dev": "https://backend.example.com/ws",
            "prod": "https://backend.example.com/ws",
            "live": "https://chat.internal.acme.io/ws",
            "bare": None,
        },
    )

    def check(stage: str) -> tuple[int, str]:
        code = cli.main(["check-target", "--stage", stage, "--project-dir", str(project)])
        return code, capsys.readouterr().err

    code, err = check("dev")
    assert code == 0
    assert err.startswith(
        "slipway check-target: warning: stage dev's TARGET_URL https://backend.example.com/ws "
        "is the placeholder"
    )
    code, err = check("prod")
    assert code == 2
    assert "error: stage prod's TARGET_URL https://backend.example.com/ws is the placeholder" in err
    assert "stages.prod.environment_variables.TARGET_URL in .chalice/config.json" in err
    assert check("live") == (0, "")
    code, err = check("bare")
    assert code == 2 and "stage bare has no TARGET_URL" in err


def test_make_package_warns_of_a_stage_whose_target_is_the_placeholder(tmp_path: Path) -> None:
    """`make package STAGE=prod` wrote a template that sends every event to
    backend.example.com, silently. It still writes it (a template is not a
    deployment: issue 23 reads its settings), but says so."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "package"
    done = subprocess.run(
        # -o: never (re)install from a test; the venv running it is the one.
        [
            "make",
            "-s",
            "-o",
            "install",
            "-o",
            ".venv/.installed",
            "package",
            "STAGE=prod",
            f"PACKAGE_DIR={out}",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "warning: stage prod's TARGET_URL https://backend.example.com/ws is the placeholder"
        in done.stderr
    )
    template = json.loads((out / "sam.json").read_text())
    memory = {
        name: template["Resources"][name]["Properties"]["MemorySize"]
        for name in ("WebsocketConnect", "WebsocketMessage", "WebsocketDisconnect")
    }
    assert memory == {
        "WebsocketConnect": 512,
        "WebsocketMessage": 512,
        "WebsocketDisconnect": 512,
    }


def test_check_target_gates_a_deploy_of_the_placeholder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path, {"prod": "https://backend.example.com/ws", "bare": None})
    argv = ["check-target", "--warn-only", "--project-dir", str(project), "--stage"]
    assert cli.main([*argv, "prod"]) == 0
    assert "warning: stage prod's TARGET_URL" in capsys.readouterr().err
    assert cli.main([*argv, "bare"]) == 2  # no URL at all is never only a warning


DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("page", ["control-api.md", "resume.md"])
def test_the_docs_give_the_items_routes_limit_as_the_code_has_it(page: str) -> None:
    from chalicelib.grip.introspection import DEFAULT_PAGE, MAX_PAGE

    text = (DOCS / page).read_text()
    start = text.index("/items?after=")
    found = re.search(r"`\?limit=`\s*\(?1 to (\d+), default (\d+)", text[start : start + 300])
    assert found is not None, text[start : start + 300]
    assert (int(found[1]), int(found[2])) == (MAX_PAGE, DEFAULT_PAGE)


def test_the_docs_say_what_id_and_prev_id_do() -> None:
    """control-api.md said "not used for delivery: no sequencing, no recovery"; resume
    uses them. The subscribe row of the backend protocol lacked `prev-id`."""
    control = (DOCS / "control-api.md").read_text()
    assert "no recovery" not in control
    assert "kept with the message in the channel history" in control
    row = next(
        line
        for line in (DOCS / "backend-protocol.md").read_text().splitlines()
        if line.startswith("| `subscribe` |")
    )
    assert "`prev-id`" in row and "resume.md#backend-driven-recovery-prev-id" in row
