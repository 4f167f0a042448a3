"""The Chalice app's HTTP routes on their own port, through Chalice's own local
server (`chalice.local`): the same routing, event shape and Response handling
as `chalice local`, run on a thread of the stack."""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading

from chalice.app import APIGateway, Chalice
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    ForbiddenError,
    HeaderType,
    LocalDevServer,
    LocalGatewayException,
    create_local_server,
)

from chalicelib.grip.limits import LAMBDA_REQUEST, REST_REQUEST

from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import Collector

log = logging.getLogger("slipway_dev.http")


def json_bytes(body: dict[str, str]) -> bytes:
    """An error body as the app's own are written: Chalice serializes a Response's
    dict compactly (`{"error":"..."}`), and so does API Gateway. Every JSON answer
    the local stack makes itself goes through here, so all read alike."""
    return json.dumps(body, separators=(",", ":")).encode()


class GatewayRequestHandler(ChaliceRequestHandler):
    """Chalice's local request handler, plus:

    - an unknown route is 404 `{"error": ...}` (Chalice answers API Gateway's 403
      "Missing Authentication Token"), like every other control API error;
    - a WebSocket upgrade goes, byte for byte, to the WebSocket emulator on
      `websocket_port` (`chalice local`: one port for both), or is refused with a
      400 that says where WebSocket clients connect (`slipway local`);
    - the access log goes through `logging`, in the stack's format;
    - AWS's request limits (`request_refusal`): a body over API Gateway's 10 MB, or
      one whose Lambda event would be over 6 MB, is answered 413 as AWS answers it,
      before the app sees it (and, over 6 MB, before the body is read: it is
      drained after the answer, or never sent by a client that asked
      `Expect: 100-continue`).
    """

    websocket_port: int | None = None
    websocket_url: str | None = None
    metrics: Collector | None = None  # GET /metrics, in Prometheus's text format

    def _send_error_response(self, error: LocalGatewayException) -> None:
        if isinstance(error, ForbiddenError):  # no such route (or method on it)
            error = _NoRoute(self.command, self.path)
        super()._send_error_response(error)

    _body: bytes | None = None

    def handle_expect_100(self) -> bool:
        length = self._content_length()
        if length > LAMBDA_REQUEST:
            self._refuse(request_refusal(length, length), drain=0)
            return False
        return bool(super().handle_expect_100())

    def do_POST(self) -> None:  # noqa: N802
        if self._within_limits():
            self._generic_handle()

    do_PUT = do_PATCH = do_DELETE = do_POST  # noqa: N815

    def _content_length(self) -> int:
        try:
            return max(0, int(self.headers.get("content-length") or 0))
        except ValueError:
            return 0

    def _within_limits(self) -> bool:
        """Whether the request may reach the app; answers 413 otherwise. A body
        that may fit is read here (and handed on by `_parse_payload`)."""
        length = self._content_length()
        if length > LAMBDA_REQUEST:  # its event is larger still: refused unread
            self._refuse(request_refusal(length, length), drain=length)
            return False
        self._body = self.rfile.read(length) if length else None
        if self._body is not None:
            size = lambda_event_size(self._body, dict(self.headers), self.path)
            refusal = request_refusal(length, size)
            if refusal is not None:
                self._refuse(refusal, drain=0)
                return False
        return True

    def _parse_payload(self) -> tuple[HeaderType, bytes | None]:
        body, self._body = self._body, None
        return dict(self.headers), body

    def _refuse(self, body: dict[str, str] | None, drain: int) -> None:
        """413 as API Gateway answers it, then read what the client still sends
        (at most `drain` bytes), so that it gets to read the answer."""
        assert body is not None
        data = json_bytes(body)
        self.close_connection = True
        self.send_response(413)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        log.warning("refused %s %s: %s", self.command, self.path, body["error"])
        left = min(drain, _MAX_DRAIN)
        try:
            self.connection.settimeout(10)
            while left > 0 and (chunk := self.rfile.read(min(left, 1 << 20))):
                left -= len(chunk)
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's naming)
        if self.metrics is not None and self.path.split("?")[0] == "/metrics":
            self._serve_metrics(self.metrics)
        elif self.headers.get("Upgrade", "").lower() != "websocket":
            self._generic_handle()
        elif self.websocket_port is not None:
            self._splice(self.websocket_port)
        else:
            where = self.websocket_url or "the `websocket:` URL the stack printed"
            body = json_bytes({"error": f"this is the control API: connect to {where}"})
            self._send_http_response(400, {"Content-Type": "application/json"}, body)

    def _serve_metrics(self, metrics: Collector) -> None:
        """The stack's metrics, to a caller with a deployment key (or a token signed
        with one), as the control API authorizes (chalicelib/grip/auth.py)."""
        from chalicelib import secrets
        from chalicelib.grip.auth import authorize
        from chalicelib.grip.errors import SlipwayError

        try:
            keys = secrets.keys() or os.environ.get("SLIPWAY_KEY")
            authorize(self.headers.get("Authorization"), keys)
        except SlipwayError as exc:
            body = json_bytes({"error": str(exc)})
            self._send_http_response(exc.status, {"Content-Type": "application/json"}, body)
            return
        data = metrics.exposition().encode()
        self._send_http_response(200, {"Content-Type": METRICS_TYPE}, data)

    def _splice(self, port: int) -> None:
        """Hand the connection to the emulator: replay the request head, then copy
        both ways until either side closes."""
        self.close_connection = True
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as exc:
            log.error("WebSocket emulator unreachable on port %d: %s", port, exc)
            body = json_bytes({"error": "the WebSocket emulator is unreachable"})
            self._send_http_response(502, {"Content-Type": "application/json"}, body)
            return
        upstream.settimeout(None)
        headers = [(k, v) for k, v in self.headers.items() if k.lower() != "x-forwarded-for"]
        forwarded = [v for k, v in self.headers.items() if k.lower() == "x-forwarded-for"]
        # The emulator would see 127.0.0.1: it takes the client's address from here.
        headers.append(("X-Forwarded-For", ", ".join([*forwarded, self.client_address[0]])))
        head = self.raw_requestline + b"".join(
            f"{k}: {v}\r\n".encode("latin-1") for k, v in headers
        )
        upstream.sendall(head + b"\r\n")
        client = self.connection  # a client sends no frame before the 101: nothing buffered

        def copy(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=copy, args=(upstream, client), daemon=True)
        back.start()
        copy(client, upstream)
        back.join()
        upstream.close()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.info("%s %s", self.client_address[0], format % args)


_MAX_DRAIN = 64 * 1024 * 1024
_BINARY_TYPES = frozenset(APIGateway().binary_types)
# What a REST API's proxy event holds besides the body and the headers (which it
# holds twice: headers and multiValueHeaders): requestContext, identity, ids.
_EVENT_OVERHEAD = 1500
UPLOAD_HINT = (
    "send a large message by reference: POST /uploads, PUT the message to the url it "
    'answers, then publish {"content-ref": <ref>} (docs/control-api.md#large-messages)'
)


def lambda_event_size(body: bytes, headers: dict[str, str], path: str) -> int:
    """About how many bytes the Lambda event of a request is: its body as the event
    holds it (a JSON string, or base64 for a binary media type), its headers
    twice, its path, and the rest of a REST API proxy event."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if content_type.split(";")[0].strip() in _BINARY_TYPES:
        carried = (len(body) + 2) // 3 * 4 + 2
    else:
        carried = len(json.dumps(body.decode("utf-8", "replace"), ensure_ascii=False).encode())
    return carried + 2 * len(json.dumps(headers)) + 2 * len(path) + _EVENT_OVERHEAD


def request_refusal(length: int, event_size: int) -> dict[str, str] | None:
    """The 413 body AWS's limits give a request of `length` bytes whose Lambda
    event is `event_size` bytes (docs/limits.md), or None. API Gateway's own
    answer is `{"message": "Request Too Long"}`; `error` is the local stack's
    explanation."""
    if length > REST_REQUEST:
        why = (
            f"the request body is {length} bytes; API Gateway (REST API) takes at most "
            f"{REST_REQUEST}"
        )
    elif event_size > LAMBDA_REQUEST:
        why = (
            f"the request's Lambda event would be about {event_size} bytes; a synchronous "
            f"Lambda invocation takes at most {LAMBDA_REQUEST}"
        )
    else:
        return None
    return {"message": "Request Too Long", "error": f"{why}: {UPLOAD_HINT}"}


class _NoRoute(LocalGatewayException):
    CODE = 404

    def __init__(self, method: str, path: str) -> None:
        body = {"error": f"no route {method} {path.split('?')[0]}: GET / lists the routes"}
        super().__init__({"Content-Type": "application/json"}, json_bytes(body))


def gateway_server(
    app: Chalice,
    config: Config,
    host: str,
    port: int,
    websocket_port: int | None = None,
    websocket_url: str | None = None,
) -> LocalDevServer:
    """Chalice's local server, as `create_local_server` makes it (bound at once),
    answering with GatewayRequestHandler."""
    dev = create_local_server(app, config, host, port)
    use_handler(dev, config, websocket_port, websocket_url)
    return dev


def use_handler(
    dev: LocalDevServer,
    config: Config,
    websocket_port: int | None = None,
    websocket_url: str | None = None,
    metrics: Collector | None = None,
) -> None:
    """Have `dev` answer with GatewayRequestHandler from its next request on."""
    handler = type(
        "Handler",
        (GatewayRequestHandler,),
        {"websocket_port": websocket_port, "websocket_url": websocket_url, "metrics": metrics},
    )
    dev.server.RequestHandlerClass = functools.partial(
        handler, app_object=dev.app_object, config=config
    )


class ChaliceHttpServer:
    """Binds at construction, so `url` shows the real port (port 0 works)."""

    def __init__(
        self,
        app: Chalice,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "local",
        metrics: Collector | None = None,
    ) -> None:
        self._metrics = metrics
        config = Config(
            chalice_stage=stage,
            function_name="api_handler",
            user_provided_params={
                "app_name": app.app_name,
                # API Gateway's REST integration timeout.
                "lambda_timeout": 29,
                "lambda_memory_size": 128,
            },
        )
        # An unknown path is 404 {"error": ...} (GatewayRequestHandler), where API
        # Gateway answers 403 "Missing Authentication Token".
        self._config = config
        self._dev: LocalDevServer = gateway_server(app, config, host, port)
        self._dev.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._dev.server.server_address[1])

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}"

    def start(self, websocket_url: str | None = None) -> ChaliceHttpServer:
        """Serve; a WebSocket handshake is told to connect to `websocket_url`."""
        use_handler(self._dev, self._config, None, websocket_url, self._metrics)
        # server.serve_forever, not LocalDevServer.serve_forever: that one prints
        # "Serving on" with the requested port, which is 0 here.
        self._thread = threading.Thread(
            target=self._dev.server.serve_forever, name="chalice-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._dev.server.shutdown()
        self._dev.server.server_close()
