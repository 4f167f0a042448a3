"""A fake slipway gateway for the socket client's tests, all on 127.0.0.1.

A `websockets` server that speaks docs/envelope.md's envelope frames, and a small HTTP
server standing in for S3 presigned URLs (objects kept in a dict). What the
client sends decides what the gateway does:

- `[1, id, data]`: echoed back as `[1, 0, data]` (a gateway push), except
  `"drop"` (abort the TCP connection), `"shutdown"` (stop accepting, close all),
  `"fail"` (answer `[5, id, ...]`), `"garbage"` (answer a non-JSON frame) and
  `{"download": n}` (store an n-character string, send `[4, -1, url, "GET", {}]`,
  then `[1, 0, "after"]`, so the download must not be overtaken).
- `[2, id]`: `[3, id, <upload url with a query>, "PUT", headers]`, or `[5, id, ...]`
  when `refuse_uploads` is set.
- `[4, id, url, "GET", {}]`: read the object back by key (only under the
  prefix issued to that connection), delete it, answer
  `[1, 0, {"uploaded": id, "length": <characters>}]`.
Without `envelope=1` in the query it echoes every frame verbatim.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

UPLOAD_HEADERS = {"Content-Type": "application/json", "x-amz-acl": "bucket-owner-full-control"}
DOWNLOAD_DELAY = 0.1  # seconds: long enough that an unordered client would deliver "after" first


@dataclass
class Put:
    path: str
    headers: dict[str, str]
    body: bytes


class FakeGateway:
    def __init__(self) -> None:
        self.paths: list[str] = []  # request path (with query) of each connection
        self.frames: list[Any] = []  # every frame received: parsed JSON, or raw in raw mode
        self.puts: list[Put] = []
        self.bucket: dict[str, bytes] = {}
        self.uploads: list[tuple[int, Any]] = []  # (id, data) read back after a [4]
        self.refuse_uploads = False
        self.reject_status: int | None = None
        self._server: Server | None = None
        self._http: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"

    @property
    def http_url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    async def __aenter__(self) -> FakeGateway:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _bucket_handler(self))
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._http is not None
        self._server.close()
        await self._server.wait_closed()
        self._http.shutdown()
        self._http.server_close()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.reject_status is not None:
            return connection.respond(HTTPStatus(self.reject_status), "refused by the fake\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            await self._serve(ws)
        except ConnectionClosed:
            pass  # the client left (or the test dropped it): nothing more to answer

    async def _serve(self, ws: ServerConnection) -> None:
        self.paths.append(ws.request.path if ws.request else "")
        envelope = "envelope=1" in self.paths[-1]
        prefix = f"up/c{len(self.paths)}/"
        async for raw in ws:
            if not envelope:
                self.frames.append(raw)
                await ws.send(raw)
                continue
            frame = json.loads(raw)
            self.frames.append(frame)
            kind, mid = frame[0], frame[1]
            if kind == 1:
                await self._message(ws, mid, frame[2])
            elif kind == 2 and self.refuse_uploads:
                await ws.send(json.dumps([5, mid, _failure("upload_refused", "no uploads today")]))
            elif kind == 2:
                query = "X-Amz-Signature=fake&X-Amz-Expires=60"
                url = f"{self.http_url}/bucket/{prefix}{mid}.json?{query}"
                await ws.send(json.dumps([3, mid, url, "PUT", UPLOAD_HEADERS]))
            elif kind == 4:
                key = urlsplit(frame[2]).path.removeprefix("/bucket/")
                if not key.startswith(prefix) or key not in self.bucket:
                    await ws.send(json.dumps([5, mid, _failure("bad_upload", key)]))
                    continue
                text = self.bucket.pop(key).decode("utf-8")
                self.uploads.append((mid, json.loads(text)))
                await ws.send(json.dumps([1, 0, {"uploaded": mid, "length": len(text)}]))

    async def _message(self, ws: ServerConnection, mid: int, data: Any) -> None:
        if data == "drop":
            assert ws.transport is not None
            ws.transport.abort()
        elif data == "shutdown":
            assert self._server is not None
            self._server.close()  # stop listening and close every connection (1001)
        elif data == "fail":
            await ws.send(json.dumps([5, mid, _failure("backend_error", "the backend refused")]))
        elif data == "garbage":
            await ws.send("this is not JSON")
        elif isinstance(data, dict) and "download" in data:
            key = f"out/{uuid.uuid4().hex}.json"
            self.bucket[key] = json.dumps("y" * data["download"]).encode()
            url = f"{self.http_url}/bucket/{key}?X-Amz-Signature=fake"
            await ws.send(json.dumps([4, -1, url, "GET", {}]))
            await ws.send(json.dumps([1, 0, "after"]))
        else:
            await ws.send(json.dumps([1, 0, data]))


def _failure(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "errorCode": code, "errorMessage": message}


def _bucket_handler(gateway: FakeGateway) -> type[BaseHTTPRequestHandler]:
    class Bucket(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            gateway.puts.append(Put(self.path, dict(self.headers), body))
            gateway.bucket[urlsplit(self.path).path.removeprefix("/bucket/")] = body
            self._reply(200, b"")

        def do_GET(self) -> None:
            threading.Event().wait(DOWNLOAD_DELAY)
            body = gateway.bucket.get(urlsplit(self.path).path.removeprefix("/bucket/"))
            if body is None:
                self._reply(404, b"<Error><Code>NoSuchKey</Code></Error>")
            else:
                self._reply(200, body)

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Bucket


def run(coro: Any, timeout: float = 15) -> Any:
    """Run one test coroutine, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
