"""The demo page's static HTTP server: the chat page (examples/chat.html) at `/`,
the browser client (client/js/) under `/client/`, nothing else.

The page is served with the gateway's WebSocket port written into it: it dials
`ws://<the host the page was loaded from>:<port>/`, so it works through whatever
name or address reached this server (a `?ws=` parameter overrides it).
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "examples" / "chat.html"
CLIENT = ROOT / "client" / "js"
# The page's placeholder for the gateway's WebSocket port.
PORT_MARK = "__SLIPWAY_WS_PORT__"

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


def resolve(path: str) -> Path | None:
    """The file a URL path names, or None: only the page and files inside client/js."""
    path = unquote(urlsplit(path).path)
    if path in ("/", "/index.html", "/chat.html"):
        return PAGE
    if not path.startswith("/client/"):
        return None
    rest = path[len("/client/") :]
    if rest == "" or rest.endswith("/"):
        rest += "index.html"
    file = (CLIENT / rest).resolve()
    if CLIENT.resolve() not in file.parents or not file.is_file():
        return None
    return file


class DemoServer:
    """Binds at construction, so `port` is the real one (port 0 works)."""

    def __init__(self, host: str, port: int, ws_port: int) -> None:
        self.ws_port = ws_port
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}/"

    def start(self) -> DemoServer:
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="demo-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ws_port = str(self.ws_port)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "slipway-demo"

            def log_message(self, format: str, *args: object) -> None:
                log.debug("demo: " + format, *args)

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                file = resolve(self.path)
                if file is None:
                    if urlsplit(self.path).path == "/favicon.ico":
                        return self._reply(HTTPStatus.NO_CONTENT, b"", "text/plain", head)
                    return self._reply(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", head)
                body = file.read_bytes()
                if file == PAGE:
                    body = body.replace(PORT_MARK.encode(), ws_port.encode())
                kind = TYPES.get(file.suffix, "application/octet-stream")
                self._reply(HTTPStatus.OK, body, kind, head)

            def _reply(self, status: HTTPStatus, body: bytes, kind: str, head: bool) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        return Handler
