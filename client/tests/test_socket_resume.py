"""The WebSocket client's resume and rotation against a fake gateway with history
(resume_fakes.HistoryGateway, on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from client_fakes import run
from resume_fakes import HistoryGateway

from slipway_client import (
    Backoff,
    Position,
    Recovery,
    RotationTimeout,
    SocketClosed,
    State,
    WebSocketClient,
)
from slipway_client.resume import decode_resume

FAST = Backoff(initial=0.05, max_delay=0.2, max_attempts=20)
AWAY = Backoff(initial=0.3, jitter=0, max_attempts=5)  # away long enough to publish meanwhile
SEED = 12  # the storm test's random moments (any seed passes)


class App:
    """What an application sees: messages, recoveries, errors, states."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.recoveries: list[tuple[str, Recovery]] = []
        self.errors: list[Exception] = []
        self.states: list[State] = []
        self._changed = asyncio.Event()

    def client(self, url: str, **options: Any) -> WebSocketClient:
        options.setdefault("reconnect", FAST)
        return WebSocketClient(
            url,
            on_message=self.message,
            on_recovery=self.recovery,
            on_error=self.error,
            on_state=self.state,
            **options,
        )

    def message(self, data: Any) -> None:
        self.messages.append(data)
        self._changed.set()

    def recovery(self, channel: str, result: Recovery) -> None:
        self.recoveries.append((channel, result))
        self._changed.set()

    def error(self, exc: Exception) -> None:
        self.errors.append(exc)
        self._changed.set()

    def state(self, state: State) -> None:
        self.states.append(state)
        self._changed.set()

    async def until(self, predicate: Any, timeout: float = 5) -> None:
        async def wait() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)


def test_positions_are_tracked_and_a_first_connection_recovers_nothing() -> None:
    async def main() -> None:
        app = App()
        async with HistoryGateway() as gw:
            await gw.publish("news", "before")  # published before we connect: not ours
            async with app.client(gw.url + "?subscribe=news,chat") as ws:
                await app.until(lambda: len(app.recoveries) == 2)
                assert [(c, r.status, r.replayed) for c, r in app.recoveries] == [
                    ("news", "none", 0),
                    ("chat", "none", 0),
                ]
                news = gw.channels["news"].epoch
                assert ws.positions == {
                    "news": Position(news, 1),
                    "chat": (gw.channels["chat"].epoch, 0),
                }
                await gw.publish("news", "one")
                await app.until(lambda: app.messages == ["one"])
                assert ws.positions["news"] == (news, 2)
            assert gw.paths[0] == "/?subscribe=news,chat&envelope=1&resume="

    run(main())


def test_drop_reconnects_with_positions_and_replays_what_was_missed() -> None:
    async def main() -> None:
        app = App()
        async with HistoryGateway() as gw:
            client = app.client(gw.url + "?subscribe=c", rotate_window=None, reconnect=AWAY)
            async with client as ws:
                await app.until(lambda: len(app.recoveries) == 1)
                for n in range(5):
                    await gw.publish("c", n)
                await app.until(lambda: len(app.messages) == 5)
                gw.drop_all()
                await app.until(lambda: app.states[-1] == "reconnecting")
                for n in range(5, 55):  # published while the client is away
                    await gw.publish("c", n)
                await app.until(lambda: len(app.recoveries) == 2)
                await gw.publish("c", 55)
                await app.until(lambda: len(app.messages) == 56)
                assert app.messages == list(range(56))
                channel, result = app.recoveries[-1]
                assert (channel, result.status, result.replayed) == ("c", "recovered", 50)
                assert ws.positions == {"c": (gw.channels["c"].epoch, 56)}
            assert decode_resume(gw.paths[1].split("resume=")[1]) == {
                "c": (gw.channels["c"].epoch, 5)
            }

    run(main())


def test_failed_recovery_is_reported_and_live_messages_follow() -> None:
    async def main() -> None:
        app = App()
        async with HistoryGateway(history_items=10) as gw:
            client = app.client(gw.url + "?subscribe=c", rotate_window=None, reconnect=AWAY)
            async with client as ws:
                await app.until(lambda: len(app.recoveries) == 1)
                await gw.publish("c", "seen")
                gw.drop_all()
                await app.until(lambda: app.states[-1] == "reconnecting")
                for n in range(30):  # more than the history keeps
                    await gw.publish("c", n)
                await app.until(lambda: len(app.recoveries) == 2)
                await gw.publish("c", "live")
                await app.until(lambda: app.messages[-1] == "live")
                assert app.messages == ["seen", "live"]
                _, result = app.recoveries[-1]
                assert (result.status, result.reason, result.offset) == ("failed", "too_old", 31)
                gw.reset("c")  # the channel's history is lost: a new epoch
                gw.drop_all()
                await app.until(lambda: len(app.recoveries) == 3)
                _, result = app.recoveries[-1]
                assert (result.status, result.reason) == ("failed", "epoch_changed")
                assert ws.positions == {"c": (gw.channels["c"].epoch, 0)}

    run(main())


def test_going_away_reconnects_at_once() -> None:
    async def main() -> None:
        app = App()
        async with HistoryGateway() as gw:
            slow = Backoff(initial=5, max_delay=5, jitter=0)  # any other close waits 5 s
            async with app.client(gw.url + "?subscribe=c", reconnect=slow) as ws:
                await app.until(lambda: len(app.recoveries) == 1)
                await gw.publish("c", 1)
                started = time.monotonic()
                await gw.close_all(1001, "Going away")
                await gw.publish("c", 2)
                await app.until(lambda: len(app.recoveries) == 2)
                assert time.monotonic() - started < 2
                assert ws.close_code == 1001
                await app.until(lambda: app.messages == [1, 2])
                assert app.recoveries[-1][1].status == "recovered"

    run(main())


async def publish_steadily(gw: HistoryGateway, stop: asyncio.Event, every: float) -> int:
    n = 0
    while not stop.is_set():
        await gw.publish("c", n)
        n += 1
        await asyncio.sleep(every)
    return n


def test_rotate_makes_the_new_connection_before_breaking_the_old() -> None:
    async def main() -> None:
        app = App()
        async with HistoryGateway() as gw:
            async with app.client(gw.url + "?subscribe=c", rotate_window=None) as ws:
                await app.until(lambda: len(app.recoveries) == 1)
                stop = asyncio.Event()
                publisher = asyncio.create_task(publish_steadily(gw, stop, 0.002))
                await app.until(lambda: len(app.messages) >= 20)
                assert await ws.rotate() is True
                assert len(gw.open) == 1 and gw.closes == [(1000, "rotated")]
                assert await ws.rotate() is True
                await asyncio.sleep(0.05)
                stop.set()
                sent = await publisher
                await app.until(lambda: len(app.messages) >= sent)
                assert app.messages == list(range(sent))  # no gap, no duplicate
                assert ws.rotations == 2 and app.states == ["connecting", "open"]
                assert [r.status for _, r in app.recoveries] == ["none", "recovered", "recovered"]
                assert app.errors == []

    run(main())


def test_scheduled_rotations_lose_nothing_and_repeat_nothing() -> None:
    async def main() -> None:
        app = App()
        async with HistoryGateway() as gw:
            client = app.client(gw.url + "?subscribe=c", rotate_window=(0.2, 0.4))
            async with client as ws:
                stop = asyncio.Event()
                publisher = asyncio.create_task(publish_steadily(gw, stop, 0.005))
                await app.until(lambda: ws.rotations >= 4)
                stop.set()
                sent = await publisher
                await app.until(lambda: len(app.messages) >= sent)
                assert app.messages == list(range(sent))
                assert len(gw.paths) == ws.rotations + 1 and app.errors == []

    run(main())


def test_rotation_times_out_closes_the_old_anyway_and_reports() -> None:
    async def main() -> None:
        app = App()
        async with HistoryGateway() as gw:
            client = app.client(gw.url + "?subscribe=c", rotate_window=None, rotate_timeout=0.3)
            async with client as ws:
                await app.until(lambda: len(app.recoveries) == 1)
                await gw.publish("c", 1)
                gw.recovery_delay = 1.0  # the next connection's [6] comes late
                assert await ws.rotate() is False
                [error] = app.errors
                assert isinstance(error, RotationTimeout) and error.missing == {"c"}
                assert gw.closes == [(1000, "rotated")]
                await gw.publish("c", 2)  # before the late subscribe: replayed then
                await app.until(lambda: len(app.recoveries) == 2)
                await gw.publish("c", 3)
                await app.until(lambda: len(app.messages) == 3)
                assert app.messages == [1, 2, 3]

    run(main())


def test_old_connection_dropping_mid_rotation_hands_over_to_the_new_one() -> None:
    async def main() -> None:
        app = App()
        async with HistoryGateway() as gw:
            client = app.client(gw.url + "?subscribe=c", rotate_window=None, rotate_timeout=2)
            async with client as ws:
                await app.until(lambda: len(app.recoveries) == 1)
                gw.recovery_delay = 0.5
                rotation = asyncio.create_task(ws.rotate())
                await asyncio.sleep(0.2)  # the new connection is open, its [6] not there
                first = next(c for c in gw.open if c.request.path.endswith("resume="))
                await first.close(1011, "crash")
                await gw.publish("c", "during")
                assert await rotation is False  # at once: the [6] is not there yet
                assert ws.rotations == 1
                await gw.publish("c", "after")
                await app.until(lambda: len(app.messages) == 2)
                assert app.messages == ["during", "after"] and len(gw.paths) == 2
                assert ws.state is State.OPEN

    run(main())


def test_a_rotate_that_fails_after_the_scheduled_moment_passed_is_tried_again() -> None:
    async def main() -> None:
        app = App()
        async with HistoryGateway() as gw:
            client = app.client(gw.url + "?subscribe=c", rotate_window=(0.3, 0.3))
            async with client as ws:
                await app.until(lambda: len(app.recoveries) == 1)
                gw.recovery_delay = 0.5
                rotation = asyncio.create_task(ws.rotate())
                await asyncio.sleep(0.4)  # the scheduled moment passes during the rotate()
                new = next(c for c in gw.open if not c.request.path.endswith("resume="))
                await new.close(1011, "crash")
                with pytest.raises(SocketClosed):
                    await rotation
                gw.recovery_delay = 0
                await app.until(lambda: ws.rotations == 1)  # retried after a backoff delay
                assert ws.state is State.OPEN

    run(main())


def test_raw_mode_has_no_resume() -> None:
    async def main() -> None:
        async with HistoryGateway() as gw:
            async with WebSocketClient(gw.url, envelope=False, positions={"c": ("e", 1)}) as ws:
                with pytest.raises(RuntimeError, match="envelope"):
                    await ws.rotate()
            assert gw.paths == ["/"]

    run(main())


def test_saved_positions_are_presented_on_the_first_connection() -> None:
    async def main() -> None:
        app = App()
        async with HistoryGateway() as gw:
            for n in range(4):
                await gw.publish("c", n)
            saved = {"c": (gw.channels["c"].epoch, 2)}
            async with app.client(gw.url + "?subscribe=c", positions=saved):
                await app.until(lambda: len(app.messages) == 2)
                assert app.messages == [2, 3] and app.recoveries[0][1].replayed == 2

    run(main())


def test_drops_cuts_and_rotations_at_random_lose_nothing_and_repeat_nothing() -> None:
    """A storm: while messages flow, connections are aborted, cut with 1001, and
    rotated (on schedule and forced), at random moments."""

    async def main() -> None:
        rnd = random.Random(SEED)
        app = App()
        async with HistoryGateway() as gw:
            client = app.client(gw.url + "?subscribe=c,d", rotate_window=(0.1, 0.3))
            async with client as ws:
                await app.until(lambda: len(app.recoveries) == 2)
                sent: list[Any] = []
                for n in range(400):
                    channel = "cd"[n % 2]
                    sent.append(f"{channel}{n}")
                    await gw.publish(channel, sent[-1])
                    roll = rnd.random()
                    if roll < 0.01:
                        gw.drop_all()
                    elif roll < 0.02:
                        await gw.close_all(1001, "Going away")
                    elif roll < 0.03 and ws.state is State.OPEN:
                        asyncio.create_task(ws.rotate())
                    await asyncio.sleep(rnd.random() * 0.004)
                await app.until(lambda: len(app.messages) >= len(sent), timeout=10)
                await asyncio.sleep(0.2)
                assert sorted(app.messages) == sorted(sent)  # each once
                for channel in "cd":  # in order within each channel
                    got = [m for m in app.messages if m.startswith(channel)]
                    assert got == [m for m in sent if m.startswith(channel)]
                assert ws.rotations >= 3 and len(gw.paths) > ws.rotations + 2
                assert {r.status for _, r in app.recoveries} <= {"none", "recovered"}

    run(main(), timeout=30)
