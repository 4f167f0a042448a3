"""Resume after reconnect with the Python client library (docs/resume.md), end to end:
`slipway_client.WebSocketClient` in envelope mode, `slipway local` with a short
maximum connection lifetime, and the gripcontrol test backend, which subscribes
each connection on OPEN (`subscribe=`) and knows nothing of positions."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from slipway_client import Backoff, ControlClient, Recovery, State, WebSocketClient

from .processes import KEY, LocalStack

LIFETIME = 8.0
HISTORY_ITEMS = 60
STACK_ARGS = ("--max-lifetime", str(LIFETIME))
STACK_ENV = {"SLIPWAY_HISTORY_ITEMS": str(HISTORY_ITEMS), "SLIPWAY_HISTORY_SECONDS": "600"}
AWAY = 2.0  # how long the client stays away after the backend closes it


class App:
    """A client of the library and what its application sees."""

    def __init__(self, stack: LocalStack, **options: Any) -> None:
        self.channel = f"resume-{uuid.uuid4().hex[:8]}"
        self.messages: list[Any] = []
        self.recoveries: list[Recovery] = []
        self.states: list[State] = []
        self.errors: list[Exception] = []
        self._changed = asyncio.Event()
        options.setdefault("rotate_window", None)
        self.control = ControlClient(stack.control, KEY)
        self.ws = WebSocketClient(
            f"{stack.websocket}?subscribe={self.channel}",
            on_message=self._message,
            on_recovery=lambda channel, result: self._add(self.recoveries, result),
            on_state=lambda state: self._add(self.states, state),
            on_error=lambda exc: self._add(self.errors, exc),
            **options,
        )

    def _message(self, data: Any) -> None:
        self._add(self.messages, data)

    def _add(self, into: list[Any], value: Any) -> None:
        into.append(value)
        self._changed.set()

    async def until(self, done: Callable[[], bool], timeout: float = 10) -> None:
        async def wait() -> None:
            while not done():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    async def publish(self, texts: list[str]) -> None:
        items = [
            {"channel": self.channel, "formats": {"ws-message": {"content": t}}} for t in texts
        ]
        await asyncio.to_thread(self.control.publish_many, items)


def test_messages_published_while_away_are_replayed_once_in_order(stack: LocalStack) -> None:
    async def main() -> None:
        back_later = Backoff(initial=AWAY, factor=1, jitter=0, max_attempts=3)
        app = App(stack, reconnect=back_later)
        async with app.ws as ws:
            await app.until(lambda: len(app.recoveries) == 1)
            assert app.recoveries[0].status == "none"
            await app.publish(["first"])
            await app.until(lambda: app.messages == ["first"])
            await ws.send("close 4000")  # the backend closes this connection
            await app.until(lambda: app.states[-1] == "reconnecting")
            away = [f"away {n}" for n in range(50)]
            await app.publish(away)  # one request, well within AWAY
            await app.until(lambda: len(app.recoveries) == 2)
            await app.publish(["live"])
            await app.until(lambda: len(app.messages) == 52)
            assert app.messages == ["first", *away, "live"]
            recovery = app.recoveries[1]
            assert (recovery.status, recovery.replayed) == ("recovered", 50)
            assert ws.positions[app.channel].offset == 52
            await asyncio.sleep(0.3)
            assert len(app.messages) == 52  # and nothing twice

    asyncio.run(main())


def test_history_too_short_is_reported_as_failed_then_live_follows(stack: LocalStack) -> None:
    async def main() -> None:
        app = App(stack, reconnect=Backoff(initial=AWAY, factor=1, jitter=0, max_attempts=3))
        async with app.ws as ws:
            await app.until(lambda: len(app.recoveries) == 1)
            await ws.send("close 4000")
            await app.until(lambda: app.states[-1] == "reconnecting")
            await app.publish([f"lost {n}" for n in range(HISTORY_ITEMS + 10)])
            await app.until(lambda: len(app.recoveries) == 2)
            recovery = app.recoveries[1]
            assert (recovery.status, recovery.reason) == ("failed", "too_old")
            assert recovery.offset == HISTORY_ITEMS + 10
            await app.publish(["live"])
            await app.until(lambda: app.messages == ["live"])

    asyncio.run(main())


def test_rotation_loses_nothing_and_repeats_nothing(stack: LocalStack) -> None:
    async def main() -> None:
        # Each connection rotates 1-1.5 s after it opened, well before the stack's cut.
        app = App(stack, rotate_window=(1.0, 1.5), rotate_timeout=LIFETIME / 2)
        async with app.ws as ws:
            await app.until(lambda: len(app.recoveries) == 1)
            sent: list[str] = []
            started = time.monotonic()
            while ws.rotations < 2 and time.monotonic() - started < 12:
                sent.append(str(len(sent)))
                await app.publish(sent[-1:])
                await asyncio.sleep(0.1)
            await app.until(lambda: len(app.messages) >= len(sent))
            await asyncio.sleep(0.3)
            assert ws.rotations >= 2
            assert app.messages == sent  # no gap, no duplicate, in order
            assert {r.status for r in app.recoveries[1:]} == {"recovered"}

    asyncio.run(main())


def test_the_gateways_cut_is_resumed_at_once(stack: LocalStack) -> None:
    async def main() -> None:
        slow = Backoff(initial=30, jitter=0)  # any other close would keep it away 30 s
        app = App(stack, reconnect=slow)
        async with app.ws as ws:
            await app.until(lambda: len(app.recoveries) == 1)
            sent: list[str] = []
            while ws.close_code is None:  # until the lifetime's end
                sent.append(str(len(sent)))
                await app.publish(sent[-1:])
                await asyncio.sleep(0.2)
            assert ws.close_code == 1001
            await app.until(lambda: len(app.recoveries) == 2, timeout=5)
            await app.publish(["after"])
            await app.until(lambda: app.messages[-1:] == ["after"])
            assert app.messages == [*sent, "after"]

    asyncio.run(main())
