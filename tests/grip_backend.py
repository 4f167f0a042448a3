"""A real GRIP backend for the tests, written only with `gripcontrol`.

It would run behind Pushpin unchanged. Run: `python -m tests.grip_backend --port N
[--key K ...]`; it prints `listening <port>` once ready. Every request it receives is
recorded, byte for byte, and `GET /_requests` returns them (`DELETE` clears).

Behaviour, chosen by the client:
- connect query: `reject=<status>`, `protocol=<p>` (Sec-WebSocket-Protocol),
  `grip=0` (no GRIP mode), `welcome=<text>`, `subscribe=<channel>` (with `previd=<id>`:
  subscribe with that prev-id), `meta=<name>:<value>`,
  `closeopen=1` (accept, then close at once)
- messages: `sub <ch>`, `unsub <ch>`, `meta <name> <value>`, `setmeta <name> <value>`
  (a set-meta control message), `whoami` (the meta it was
  sent, as JSON), `close <code>`, `disconnect`, `detach`, `say-then-detach` (its
  message before its detach), `bin <text>`, `status <n>`,
  `malformed`, `wrongtype`, `sleep <seconds>`, `publish <ch> <text>`
  (through `GripPubControl`), `keepalive <text>`, anything else is echoed.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from gripcontrol import (
    GripPubControl,
    WebSocketContext,
    WebSocketEvent,
    WebSocketMessageFormat,
    decode_websocket_events,
    encode_websocket_events,
    validate_sig,
    websocket_control_message,
)

CONTENT_TYPE = "application/websocket-events"


class Backend:
    def __init__(self, key: str | list[str] | None, control_uri: str | None) -> None:
        # Several keys: the overlap of a key rotation (docs/security.md#key-rotation).
        self.keys = [key] if isinstance(key, str) else list(key or [])
        self.key = self.keys[0] if self.keys else None  # what it publishes with
        self.control_uri = control_uri
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def handle(self, path: str, headers: dict[str, str], body: bytes):
        # When it came and when it was answered: overlapping requests show.
        record = {
            "path": path,
            "headers": headers,
            "body": base64.b64encode(body).decode(),
            "started": time.time(),
        }
        with self.lock:
            self.requests.append(record)
        try:
            return self._handle(path, headers, body)
        finally:
            record["finished"] = time.time()

    def _handle(self, path: str, headers: dict[str, str], body: bytes):
        lower = {k.lower(): v for k, v in headers.items()}
        if self.keys and not valid_sig(lower.get("grip-sig", ""), self.keys):
            return 403, {"Content-Type": "text/plain"}, b"bad Grip-Sig\n"
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        meta = {k[5:].lower(): v for k, v in lower.items() if k.startswith("meta-")}
        events = decode_websocket_events(body)
        ctx = WebSocketContext(lower.get("connection-id"), meta, events)
        grip = query.get("grip") != "0"
        out_headers = {"Content-Type": CONTENT_TYPE}
        extra: list[WebSocketEvent] = []

        def send(text: str, binary: bool = False) -> None:
            if grip:
                (ctx.send_binary if binary else ctx.send)(text)
            else:
                data = text.encode()
                extra.append(WebSocketEvent("BINARY" if binary else "TEXT", data))

        if ctx.is_opening():
            if "reject" in query:
                return int(query["reject"]), {"Content-Type": "text/plain"}, b"rejected\n"
            ctx.accept()
            if grip:
                out_headers["Sec-WebSocket-Extensions"] = "grip"
            if "protocol" in query:
                out_headers["Sec-WebSocket-Protocol"] = query["protocol"]
            if "subscribe" in query and "previd" in query:
                # Backend-driven recovery (docs/resume.md): replay after this item id.
                ctx.send_control(
                    websocket_control_message(
                        "subscribe", {"channel": query["subscribe"], "prev-id": query["previd"]}
                    )
                )
            elif "subscribe" in query:
                ctx.subscribe(query["subscribe"])
            if "meta" in query:
                name, _, value = query["meta"].partition(":")
                ctx.meta[name] = value
            if "welcome" in query:
                send(query["welcome"])
            if "keepalive" in query:
                ctx.send_control(
                    websocket_control_message("keep-alive", _keep_alive(query["keepalive"]))
                )
            if query.get("closeopen") == "1":
                ctx.close(4000)
        while ctx.can_recv():
            try:
                message = ctx.recv()
            except OSError:  # DISCONNECT: nobody to answer
                break
            if message is None:  # CLOSE: acknowledge, as django-grip does
                ctx.close()
                break
            reply = self.command(ctx, message, send, out_headers)
            if reply is not None:
                return reply
        for name, value in ctx.meta.items():
            if ctx.orig_meta.get(name) != value:
                out_headers[f"Set-Meta-{name}"] = value
        for name in ctx.orig_meta:
            if name not in ctx.meta:
                out_headers[f"Set-Meta-{name}"] = ""
        out = list(ctx.out_events) + extra
        if ctx.closed:
            out.append(WebSocketEvent("CLOSE", ctx.out_close_code.to_bytes(2, "big")))
        if ctx.accepted:
            out.insert(0, WebSocketEvent("OPEN"))
        return 200, out_headers, encode_websocket_events(out)

    def command(self, ctx, message, send, out_headers):
        if isinstance(message, bytes):
            message = message.decode()
        word, _, rest = message.partition(" ")
        if word == "sub":
            ctx.subscribe(rest)
            send(f"subscribed {rest}")
        elif word == "unsub":
            ctx.unsubscribe(rest)
            send(f"unsubscribed {rest}")
        elif word == "meta":
            name, _, value = rest.partition(" ")
            ctx.meta[name] = value
            send(f"meta {name} set")
        elif word == "setmeta":  # as a control message, not a Set-Meta-* header
            name, _, value = rest.partition(" ")
            ctx.send_control(websocket_control_message("set-meta", {"name": name, "value": value}))
            send(f"meta {name} sent")
        elif word == "whoami":
            send(json.dumps(ctx.orig_meta, sort_keys=True))
        elif word == "close":
            ctx.close(int(rest) if rest else None)
        elif word == "disconnect":
            ctx.out_events.append(WebSocketEvent("DISCONNECT"))
        elif word == "detach":
            ctx.detach()
            send("detached")
        elif word == "say-then-detach":  # the message before the detach, in the answer
            send("detached")
            ctx.detach()
        elif word == "bin":
            send(rest, binary=True)
        elif word == "status":
            return int(rest), {"Content-Type": "text/plain"}, b"failed\n"
        elif word == "malformed":
            return 200, {"Content-Type": CONTENT_TYPE}, b"TEXT zz\r\nnot hex\r\n"
        elif word == "wrongtype":
            return 200, {"Content-Type": "text/plain"}, b"TEXT 2\r\nhi\r\n"
        elif word == "sleep":
            time.sleep(float(rest))
            send("awake")
        elif word == "publish":
            channel, _, text = rest.partition(" ")
            pub = GripPubControl({"control_uri": self.control_uri, "key": self.key})
            pub.publish(channel, _item(text))
            send("published")
        elif word == "keepalive":
            ctx.send_control(websocket_control_message("keep-alive", _keep_alive(rest)))
        else:
            send(message)
        return None


def _keep_alive(spec: str) -> dict:
    """`keepalive {"content": ..., "timeout": ...}` as JSON; plain text: that content, 30 s."""
    try:
        params = json.loads(spec)
    except ValueError:
        return {"content": spec, "timeout": 30}
    return params if isinstance(params, dict) else {"content": spec, "timeout": 30}


def valid_sig(sig: str, keys: list[str]) -> bool:
    """gripcontrol's `validate_sig` takes one key: during a rotation, try each
    (the check docs/security.md#key-rotation shows)."""
    return any(validate_sig(sig, key) for key in keys)


def _item(text: str):
    from pubcontrol import Item

    return Item(WebSocketMessageFormat(text))


def serve(port: int, key: str | list[str] | None, control_uri: str | None) -> ThreadingHTTPServer:
    backend = Backend(key, control_uri)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, headers, out = backend.handle(self.path, dict(self.headers.items()), body)
            self._reply(status, headers, out)

        def do_GET(self) -> None:
            with backend.lock:
                data = json.dumps(backend.requests).encode()
            self._reply(200, {"Content-Type": "application/json"}, data)

        def do_DELETE(self) -> None:
            with backend.lock:
                backend.requests.clear()
            self._reply(204, {}, b"")

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", action="append", help="repeat it during a key rotation")
    parser.add_argument("--control-uri")
    args = parser.parse_args()
    server = serve(args.port, args.key, args.control_uri)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
