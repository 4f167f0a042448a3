"""A small GRIP chat backend, written only with `gripcontrol` and the standard
library, so it runs unchanged behind slipway, Pushpin or Fastly Fanout.

    python examples/chat_backend.py --port 7999 --grip-url 'http://127.0.0.1:8001/?key=...'

(`slipway local` starts it for you when no --target is given.) It prints
`listening <port>` once ready. Clients speak plain text:

    /join <room>    leave the current room (if any) and enter <room>
    /name <name>    change your name
    /leave          leave the room
    /who            who is in your room
    anything else   said to everyone in your room

A connection's name and room live in GRIP meta (Set-Meta-* headers, echoed back
as Meta-* on later requests), room membership in the gateway's channel
subscriptions, and what is said is published to the room's channel through the
GRIP control API. The one state of its own is the roster /who reads (a GRIP
gateway does not list a channel's subscribers): in memory, so a restarted
backend has forgotten who was in each room.

Its commands change a connection's state (`/join`, then lines said in that room),
so it needs each connection's lines in the order they were sent: on slipway the
demo clients connect with `?ordered=1` (docs/ordered.md), and a connection
without it is told so. Behind Pushpin, which keeps that order itself, the
parameter is passed along and ignored.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from gripcontrol import (
    GripPubControl,
    WebSocketContext,
    WebSocketEvent,
    WebSocketMessageFormat,
    decode_websocket_events,
    encode_websocket_events,
    parse_grip_uri,
    validate_sig,
    websocket_control_message,
)
from pubcontrol import Item

CONTENT_TYPE = "application/websocket-events"
HELP = "/join <room> to enter a room, /name <name> to rename, /leave, /who"
UNORDERED = (
    "(this connection is unordered: lines sent quickly may be handled out of order; "
    "connect with ?ordered=1 to keep them in order)"
)


class Chat:
    def __init__(self, grip_url: str, key: str | None) -> None:
        config = parse_grip_uri(grip_url)
        self.key = key if key is not None else config.get("key")
        self.pub = GripPubControl(config)
        self.rooms: dict[str, dict[str, str]] = {}  # room -> connection id -> name
        self.lock = threading.Lock()

    def enter(self, room: str, cid: str | None, name: str) -> None:
        with self.lock:
            self.rooms.setdefault(room, {})[cid or "?"] = name

    def leave(self, room: str | None, cid: str | None) -> None:
        with self.lock:
            if room and room in self.rooms:
                self.rooms[room].pop(cid or "?", None)
                if not self.rooms[room]:
                    del self.rooms[room]

    def who(self, room: str) -> list[str]:
        with self.lock:
            return sorted(self.rooms.get(room, {}).values())

    # -- one request: a batch of WebSocket events of one connection ----------

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        lower = {k.lower(): v for k, v in headers.items()}
        # Only the gateway holds the key: anything else could forge events and meta.
        if self.key and not validate_sig(lower.get("grip-sig", ""), self.key):
            return 403, {"Content-Type": "text/plain"}, b"invalid or missing Grip-Sig\n"
        if lower.get("content-type", "").split(";")[0].strip() != CONTENT_TYPE:
            return 400, {"Content-Type": "text/plain"}, b"expected WebSocket-over-HTTP\n"
        meta = {k[5:]: v for k, v in lower.items() if k.startswith("meta-")}
        ctx = WebSocketContext(lower.get("connection-id"), meta, decode_websocket_events(body))
        out_headers = {"Content-Type": CONTENT_TYPE}

        if ctx.is_opening():
            ctx.accept()
            out_headers["Sec-WebSocket-Extensions"] = "grip"  # GRIP mode: m:/c: prefixes
            query = parse_qs(urlsplit(path).query)
            name = (query.get("name") or [""])[0] or f"guest-{(ctx.id or 'anon')[:4]}"
            ctx.meta["user"] = name
            # API Gateway drops a connection after 10 minutes without data: have the
            # gateway send an empty message after 5 quiet minutes (Pushpin does the same).
            ctx.send_control(
                websocket_control_message("keep-alive", {"content": "", "timeout": 300})
            )
            # The id the control API takes: POST /connections/<id>/message reaches this client.
            ctx.send(f"welcome, {name}! your connection id is {ctx.id}. {HELP}")
            if (query.get("ordered") or [""])[0].lower() not in ("1", "true"):
                # API Gateway may run a connection's events side by side: lines sent
                # quickly (a paste of /join, /name and a line) would be handled in any order.
                ctx.send(UNORDERED)
        while ctx.can_recv():
            try:
                message = ctx.recv()
            except OSError:  # DISCONNECT: the client is gone without a close
                self.left(ctx, "disconnected")
                break
            if message is None:  # CLOSE: say goodbye to the room, acknowledge
                self.left(ctx, "left")
                ctx.close()
                break
            if isinstance(message, bytes):
                message = message.decode("utf-8", "replace")
            self.command(ctx, message.strip())

        for name, value in ctx.meta.items():
            if ctx.orig_meta.get(name) != value:
                out_headers[f"Set-Meta-{name}"] = value
        for name in ctx.orig_meta:
            if name not in ctx.meta:
                out_headers[f"Set-Meta-{name}"] = ""  # an empty value deletes it
        out = list(ctx.out_events)
        if ctx.closed:
            out.append(WebSocketEvent("CLOSE", ctx.out_close_code.to_bytes(2, "big")))
        if ctx.accepted:
            out.insert(0, WebSocketEvent("OPEN"))
        return 200, out_headers, encode_websocket_events(out)

    def command(self, ctx: WebSocketContext, text: str) -> None:
        user = ctx.meta.get("user", "someone")
        room = ctx.meta.get("room")
        word, _, rest = text.partition(" ")
        rest = rest.strip()
        if word == "/join" and rest:
            if room == rest:
                ctx.send(f"you are in #{rest} already")
                return
            if room:
                ctx.unsubscribe(room)
                self.leave(room, ctx.id)
                self.say(ctx, room, f"* {user} left #{room}")
            # Announce before subscribing: the joiner gets their own line instead.
            self.say(ctx, rest, f"* {user} joined #{rest}")
            ctx.subscribe(rest)
            self.enter(rest, ctx.id, user)
            ctx.meta["room"] = rest
            ctx.send(f"you joined #{rest}")
        elif word == "/name" and rest:
            ctx.meta["user"] = rest
            if room:
                self.enter(room, ctx.id, rest)
                self.say(ctx, room, f"* {user} is now {rest}")
            else:
                ctx.send(f"you are now {rest}")
        elif word == "/leave" and room:
            ctx.unsubscribe(room)
            self.leave(room, ctx.id)
            del ctx.meta["room"]
            self.say(ctx, room, f"* {user} left #{room}")
            ctx.send(f"you left #{room}")
        elif word == "/who":
            if room:
                ctx.send(f"in #{room}: {', '.join(self.who(room))} (you are {user})")
            else:
                ctx.send(f"you are {user}, in no room: /join <room> first")
        elif word.startswith("/") or not text:
            ctx.send(HELP)
        elif room:
            self.say(ctx, room, f"{user}: {text}")
        else:
            ctx.send(f"join a room first: {HELP}")

    def left(self, ctx: WebSocketContext, how: str) -> None:
        room = ctx.meta.get("room")
        if room:
            self.leave(room, ctx.id)
            user = ctx.meta.get("user", "someone")
            # A client that rotated its connection (make before break, every ~2 hours)
            # has joined again on the new one before the old one closes: still here.
            if user not in self.who(room):
                self.say(ctx, room, f"* {user} {how}")

    def say(self, ctx: WebSocketContext, room: str, text: str) -> None:
        """Publish to everyone subscribed to the room, through the control API."""
        try:
            self.pub.publish(room, Item(WebSocketMessageFormat(text)), blocking=True)
        except ValueError as exc:  # pubcontrol reports every failure as ValueError
            print(f"publish to {room} failed: {exc}", file=sys.stderr, flush=True)
            ctx.send(f"(could not reach the room: {exc})")


def serve(port: int, chat: Chat, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, headers, out = chat.handle(self.path, dict(self.headers.items()), body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=7999, help="0 for any free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--grip-url",
        default=os.environ.get("GRIP_URL"),
        help="GRIP control URI with the key, e.g. http://127.0.0.1:8001/?key=K (env GRIP_URL)",
    )
    parser.add_argument("--key", help="Grip-Sig key, if not the one in the GRIP URL")
    args = parser.parse_args()
    if not args.grip_url:
        parser.error("set --grip-url or GRIP_URL (slipway local prints it as `grip:`)")
    server = serve(args.port, Chat(args.grip_url, args.key), args.host)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
