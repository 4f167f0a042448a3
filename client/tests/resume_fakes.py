"""A fake gateway that keeps channel history and speaks the resume protocol (docs/resume.md),
for the socket client's resume tests; on 127.0.0.1.

- Connect query: `subscribe=a,b` subscribes the connection to those channels at once;
  `resume=` presents positions, as the real gateway reads them.
- After each subscribe: the messages after the presented position (if any), then
  `[6, 0, {...}]`, then live messages, all under one lock so a publish cannot
  come between.
- `publish(channel, data)` stamps the message with its position and sends it to the
  channel's subscribers; `drop_all()` aborts every connection; `close_all(code)`
  closes them cleanly; `reset(channel)` loses a channel's history (new epoch).
- `history_items` keeps only the last n messages per channel (older: `too_old`);
  `recovery_delay` holds each connection's `[6]` frames back that long;
  `no_subscribe_after` stops subscribing connections after that many have opened.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed


@dataclass
class Channel:
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    log: list[Any] = field(default_factory=list)  # log[i] has offset i + 1
    members: set[ServerConnection] = field(default_factory=set)


class HistoryGateway:
    def __init__(self, history_items: int = 1000) -> None:
        self.history_items = history_items
        self.recovery_delay = 0.0
        self.no_subscribe_after: int | None = None
        self.channels: dict[str, Channel] = {}
        self.paths: list[str] = []
        self.closes: list[tuple[int | None, str]] = []  # how each connection ended
        self.open: set[ServerConnection] = set()
        self._lock = asyncio.Lock()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"

    async def __aenter__(self) -> HistoryGateway:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def channel(self, name: str) -> Channel:
        return self.channels.setdefault(name, Channel())

    async def publish(self, name: str, data: Any) -> int:
        async with self._lock:
            channel = self.channel(name)
            channel.log.append(data)
            offset = len(channel.log)
            stamp = {"channel": name, "epoch": channel.epoch, "offset": offset}
            frame = json.dumps([1, 0, data, stamp])
            for ws in list(channel.members):
                try:
                    await ws.send(frame)
                except ConnectionClosed:
                    channel.members.discard(ws)
            return offset

    def reset(self, name: str) -> None:
        self.channels[name] = Channel(members=self.channel(name).members)

    def drop_all(self) -> None:
        for ws in list(self.open):
            assert ws.transport is not None
            ws.transport.abort()

    async def close_all(self, code: int, reason: str = "") -> None:
        await asyncio.gather(*(ws.close(code, reason) for ws in list(self.open)))

    async def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else ""
        self.paths.append(path)
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        self.open.add(ws)
        try:
            positions = _positions(query.get("resume"))
            subscribing = self.no_subscribe_after is None or (
                len(self.paths) <= self.no_subscribe_after
            )
            wanted = [c for c in query.get("subscribe", "").split(",") if c] if subscribing else []
            for name in wanted:
                await self._subscribe(ws, name, positions.get(name))
            async for _ in ws:
                pass  # the client's messages are not needed here
        except ConnectionClosed:
            pass
        finally:
            self.open.discard(ws)
            for channel in self.channels.values():
                channel.members.discard(ws)
            self.closes.append((ws.close_code, ws.close_reason or ""))

    async def _subscribe(
        self, ws: ServerConnection, name: str, position: tuple[str, int] | None
    ) -> None:
        if self.recovery_delay:
            await asyncio.sleep(self.recovery_delay)
        async with self._lock:
            channel = self.channel(name)
            now = len(channel.log)
            first_kept = max(0, now - self.history_items)  # offsets <= this are gone
            result: dict[str, Any] = {"recovery": "none", "replayed": 0}
            if position is not None:
                epoch, offset = position
                if epoch != channel.epoch:
                    result = {"recovery": "failed", "replayed": 0, "reason": "epoch_changed"}
                elif offset < first_kept or offset > now:
                    result = {"recovery": "failed", "replayed": 0, "reason": "too_old"}
                else:
                    for i in range(offset, now):
                        stamp = {"channel": name, "epoch": channel.epoch, "offset": i + 1}
                        await ws.send(json.dumps([1, 0, channel.log[i], stamp]))
                    result = {"recovery": "recovered", "replayed": now - offset}
            frame = {"channel": name, "epoch": channel.epoch, "offset": now, **result}
            await ws.send(json.dumps([6, 0, frame]))
            channel.members.add(ws)


def _positions(value: str | None) -> dict[str, tuple[str, int]]:
    if not value:
        return {}
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return {c: (p[0], p[1]) for c, p in json.loads(raw).items()}
