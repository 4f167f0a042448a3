"""slipway's real control routes (app.py + chalicelib.control) served by Chalice's
local server, over in-memory stand-ins for the store, queue and @connections API.

Run from the repository root, in its own process (Chalice's local server can be
created only once per process):

    python client/tests/chalice_control_server.py <key> <iss or ->

It prints `listening <port>`, then `event <JSON>` for each thing the routes did:
`{"queued": body}`, `{"sent": ...}`, `{"closed": ...}`. Connection `known+id=`
exists; any other id is unknown.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import app  # noqa: E402
from chalice.config import Config  # noqa: E402
from chalice.local import create_local_server  # noqa: E402
from chalicelib import services  # noqa: E402
from chalicelib.grip.model import Connection  # noqa: E402

KNOWN = "known+id="


def emit(kind: str, value: Any) -> None:
    print("event " + json.dumps({kind: value}), flush=True)


class Queue:
    def send_all(self, messages: list[Any]) -> None:
        for message in messages:
            emit("queued", json.loads(message.body))


class Store:
    def get_connection(self, cid: str) -> Connection | None:
        if cid != KNOWN:
            return None
        return Connection(
            id=cid,
            endpoint="http://127.0.0.1:9/unused",
            meta={"user": "ann"},
            grip_prefix="m:",
            created_at=1_700_000_000_000,
            channels=frozenset({"room", "lobby"}),
        )

    def set_close(self, cid: str, code: int, reason: str) -> None:
        emit("close_code", {"id": cid, "code": code, "reason": reason})


class Sockets:
    def send(self, endpoint: str, cid: str, data: bytes) -> None:
        try:  # @connections posts bytes: as API Gateway does, valid UTF-8 shows as text
            emit("sent", {"id": cid, "text": data.decode("utf-8")})
        except UnicodeDecodeError:
            emit("sent", {"id": cid, "binary": data.hex()})

    def close(self, endpoint: str, cid: str) -> None:
        emit("closed", {"id": cid})

    def info(self, endpoint: str, cid: str) -> dict[str, Any]:
        return {"lastActiveAt": "2024-01-01T00:00:00Z", "identity": {"sourceIp": "192.0.2.7"}}


def main() -> None:
    key, iss = sys.argv[1], sys.argv[2]
    settings = SimpleNamespace(
        key=key, keys=(key,), control_iss=None if iss == "-" else iss, queue_message_limit=262_144
    )
    svc = SimpleNamespace(
        settings=settings, store=Store(), queue=Queue(), sockets=Sockets(), blobs=None
    )
    services.current = lambda: svc  # type: ignore[assignment]
    server = create_local_server(app.app, Config(), "127.0.0.1", 0)
    print(f"listening {server.server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
