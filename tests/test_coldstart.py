"""Cold start: every Lambda function imports all of app.py, so a WebSocket function
must not pay, at import, for what only the control routes or the fan-out worker use
(chalicelib/lazy.py); nor, at its first reply, for asyncio (chalicelib/aws/sockets.py).
bench/coldstart.py measures what that saves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The control API and its validation (marshmallow), the fan-out worker's code, and
# what only many @connections calls at once need.
DEFERRED = (
    "marshmallow",
    "chalicelib.control",
    "chalicelib.uploads",
    "chalicelib.grip.publish",
    "chalicelib.fanout",
    "asyncio",
    "h11",
)

_PROBE = """
import json, sys
{statement}
print(json.dumps([m for m in {deferred!r} if m in sys.modules]))
"""


def loaded_after(statement: str) -> list[str]:
    code = _PROBE.format(statement=statement, deferred=DEFERRED)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_app_loads_no_control_api_no_fanout_no_asyncio() -> None:
    assert loaded_after("import app") == []


def test_a_websocket_functions_reply_loads_no_asyncio() -> None:
    """A single @connections call (here to a closed port: it fails after its
    retries) blocks on its socket: h11 is loaded, asyncio is not."""
    statement = (
        "import app, socket, boto3\n"
        "from chalicelib.aws.sockets import Sockets, SocketError\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
        "session = boto3.session.Session(region_name='us-east-1', aws_access_key_id='a',"
        " aws_secret_access_key='b')\n"
        "try:\n"
        "    Sockets(session).send(f'http://127.0.0.1:{port}', 'c0=', b'hi')\n"
        "except SocketError:\n"
        "    pass\n"
    )
    assert loaded_after(statement) == ["h11"]


def test_the_control_api_loads_what_it_needs() -> None:
    """The probe sees a deferred module once it is used (this test can fail)."""
    loaded = set(loaded_after("import app, chalicelib.control"))
    assert {"marshmallow", "chalicelib.control", "chalicelib.grip.publish"} <= loaded
