"""The WebSocket client against a fake gateway speaking docs/envelope.md (see client_fakes)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from client_fakes import UPLOAD_HEADERS, FakeGateway, run
from websockets.exceptions import InvalidStatus

from slipway_client import (
    Backoff,
    EnvelopeError,
    RemoteError,
    SocketClosed,
    State,
    WebSocketClient,
    connect,
)

FAST = Backoff(initial=0.05, max_delay=0.2, max_attempts=4)
MB = 1_000_000


class Watch:
    """Records states and errors; lets a test wait for a given state."""

    def __init__(self) -> None:
        self.states: list[State] = []
        self.errors: list[Exception] = []
        self._changed = asyncio.Event()

    def state(self, state: State) -> None:
        self.states.append(state)
        self._changed.set()

    def error(self, exc: Exception) -> None:
        self.errors.append(exc)
        self._changed.set()

    async def until(self, predicate: Any) -> None:
        while not predicate():
            self._changed.clear()
            await self._changed.wait()


def test_small_messages_round_trip_with_increasing_ids() -> None:
    async def main() -> None:
        watch = Watch()
        async with FakeGateway() as gw:
            async with WebSocketClient(gw.url + "?token=abc", on_state=watch.state) as ws:
                assert await ws.send("hello") == 1
                assert await ws.send({"n": [1, 2], "é": None}) == 2
                assert await ws.recv() == "hello"
                assert await ws.recv() == {"n": [1, 2], "é": None}
            assert gw.paths == ["/?token=abc&envelope=1&resume="]  # resume=: docs/resume.md
            assert gw.frames == [[1, 1, "hello"], [1, 2, {"n": [1, 2], "é": None}]]
            assert watch.states == ["connecting", "open", "closed"]

    run(main())


def test_one_megabyte_message_is_uploaded() -> None:
    data = {"blob": "x" * MB, "n": 1}

    async def main() -> None:
        async with FakeGateway() as gw, await connect(gw.url) as ws:
            assert await ws.send(data) == 1
            compact = json.dumps(data, separators=(",", ":"))
            assert await ws.recv() == {"uploaded": 1, "length": len(compact)}
            [put] = gw.puts
            assert put.path == "/bucket/up/c1/1.json?X-Amz-Signature=fake&X-Amz-Expires=60"
            assert {k: put.headers[k] for k in UPLOAD_HEADERS} == UPLOAD_HEADERS
            assert put.body == json.dumps(data, separators=(",", ":")).encode()
            assert gw.frames == [[2, 1], [4, 1, f"{gw.http_url}/bucket/up/c1/1.json", "GET", {}]]
            assert gw.uploads == [(1, data)]

    run(main())


def test_upload_threshold_is_32000_characters_of_frame() -> None:
    inline = "a" * (32_000 - len('[1,1,""]'))  # the frame is exactly 32,000 characters

    async def main() -> None:
        async with FakeGateway() as gw, await connect(gw.url) as ws:
            await ws.send(inline)
            await ws.send(inline + "a")
            assert await ws.recv() == inline
            assert (await ws.recv())["uploaded"] == 2
            assert [f[:2] for f in gw.frames] == [[1, 1], [2, 2], [4, 2]]

    run(main())


def test_one_megabyte_message_is_downloaded_and_stays_in_order() -> None:
    async def main() -> None:
        async with FakeGateway() as gw, await connect(gw.url) as ws:
            await ws.send({"download": MB})
            assert await ws.recv() == "y" * MB
            assert await ws.recv() == "after"  # sent right after the [4], yet delivered after it
            assert gw.bucket == {k: v for k, v in gw.bucket.items() if k.startswith("out/")}

    run(main())


def test_refused_upload_raises_on_that_send() -> None:
    async def main() -> None:
        watch = Watch()
        async with FakeGateway() as gw, await connect(gw.url, on_error=watch.error) as ws:
            gw.refuse_uploads = True
            with pytest.raises(RemoteError) as err:
                await ws.send("z" * 40_000)
            assert (err.value.id, err.value.code, err.value.message) == (
                1,
                "upload_refused",
                "no uploads today",
            )
            assert gw.puts == [] and watch.errors == []
            assert await ws.send("still fine") == 2  # the connection carries on
            assert await ws.recv() == "still fine"

    run(main())


def test_error_frames_and_bad_frames_go_to_on_error() -> None:
    async def main() -> None:
        watch = Watch()
        async with FakeGateway() as gw, await connect(gw.url, on_error=watch.error) as ws:
            await ws.send("fail")
            await ws.send("garbage")
            await ws.send("ok")
            assert await ws.recv() == "ok"
            await watch.until(lambda: len(watch.errors) == 2)
            failure, garbage = watch.errors
            assert isinstance(failure, RemoteError)
            assert (failure.id, failure.code) == (1, "backend_error")
            assert isinstance(garbage, EnvelopeError) and "not JSON" in str(garbage)

    run(main())


def test_reconnects_after_the_server_drops_the_connection() -> None:
    async def main() -> None:
        watch = Watch()
        async with FakeGateway() as gw:
            client = WebSocketClient(gw.url, reconnect=FAST, on_state=watch.state)
            async with client as ws:
                await ws.send("before")
                assert await ws.recv() == "before"
                await ws.send("drop")
                await watch.until(lambda: watch.states[-2:] == ["reconnecting", "open"])
                assert await ws.send("again") == 1  # ids restart on each connection
                assert await ws.recv() == "again"
                assert ws.close_code == 1006
            assert watch.states == ["connecting", "open", "reconnecting", "open", "closed"]
            assert len(gw.paths) == 2

    run(main())


def test_gives_up_after_bounded_attempts() -> None:
    async def main() -> None:
        watch = Watch()
        gw = FakeGateway()
        async with gw:
            backoff = Backoff(initial=0.02, max_delay=0.05, max_attempts=3)
            ws = await connect(
                gw.url, reconnect=backoff, on_state=watch.state, on_error=watch.error
            )
            await ws.send("shutdown")
            received = [message async for message in ws]  # ends once the client gives up
            assert received == []
            assert watch.states == ["connecting", "open", *["reconnecting"] * 3, "closed"]
            assert isinstance(watch.errors[-1], SocketClosed)
            assert "after 3 attempts" in str(watch.errors[-1])
            assert len(watch.errors) == 4  # three refused connections, then giving up
            with pytest.raises(SocketClosed):
                await ws.send("too late")
            await ws.close()  # harmless when already closed

    run(main())


def test_by_default_it_keeps_trying_through_a_reconnect_storm() -> None:
    """After a mass drop API Gateway refuses handshakes over its quota of new
    connections (429) for minutes: 100,000 clients at 500/s take 200 s, and a client
    may be refused a dozen times (bench/reconnect_storm.py, docs/resume.md). The
    default backoff does not give up."""

    async def main() -> None:
        watch = Watch()
        async with FakeGateway() as gw:
            fast = Backoff(initial=0.005, max_delay=0.01)  # the default max_attempts
            ws = await connect(gw.url, reconnect=fast, on_state=watch.state, on_error=watch.error)
            gw.reject_status = 429
            await ws.send("drop")
            refused = 12  # more than the old default's 8 attempts
            await watch.until(
                lambda: watch.states.count("reconnecting") > refused or watch.states[-1] == "closed"
            )
            assert watch.states[-1] == "reconnecting", watch.errors[-1:]
            gw.reject_status = None
            await watch.until(lambda: watch.states[-1] == "open")
            assert await ws.send("back") == 1
            await ws.close()

    run(main())


def test_close_during_reconnection_stops_it() -> None:
    async def main() -> None:
        watch = Watch()
        async with FakeGateway() as gw:
            slow = Backoff(initial=30, max_attempts=None)
            ws = await connect(gw.url, reconnect=slow, on_state=watch.state)
            await ws.send("shutdown")
            await watch.until(lambda: watch.states[-1] == "reconnecting")
            await asyncio.wait_for(ws.close(), 2)
            assert watch.states[-1] == "closed" and ws.state is State.CLOSED

    run(main())


def test_no_reconnect_when_disabled() -> None:
    async def main() -> None:
        async with FakeGateway() as gw:
            ws = await connect(gw.url, reconnect=None)
            await ws.send("drop")
            assert [m async for m in ws] == []
            assert ws.state is State.CLOSED and len(gw.paths) == 1

    run(main())


def test_raw_mode_passes_frames_unchanged() -> None:
    async def main() -> None:
        async with FakeGateway() as gw:
            async with WebSocketClient(gw.url + "?x=1", envelope=False) as ws:
                assert await ws.send('[1, 2, "not an envelope"]') is None
                await ws.send("plain")
                assert await ws.recv() == '[1, 2, "not an envelope"]'
                assert await ws.recv() == "plain"
                with pytest.raises(TypeError):
                    await ws.send({"json": "needs envelope mode"})
            assert gw.paths == ["/?x=1"]
            assert gw.frames == ['[1, 2, "not an envelope"]', "plain"]

    run(main())


def test_on_message_callback_receives_in_order() -> None:
    async def main() -> None:
        got: list[Any] = []
        done = asyncio.Event()

        async def on_message(message: Any) -> None:
            got.append(message)
            if len(got) == 3:
                done.set()

        async with FakeGateway() as gw, await connect(gw.url, on_message=on_message) as ws:
            await ws.send({"download": 50_000})
            await ws.send("last")
            await done.wait()
            assert got == ["y" * 50_000, "after", "last"]
            with pytest.raises(RuntimeError, match="on_message"):
                await ws.recv()

    run(main())


def test_not_json_is_refused_before_using_an_id() -> None:
    async def main() -> None:
        async with FakeGateway() as gw, await connect(gw.url) as ws:
            with pytest.raises(TypeError):
                await ws.send({1, 2})
            with pytest.raises(ValueError):
                await ws.send(float("nan"))
            assert await ws.send("first") == 1
            assert await ws.recv() == "first"
            assert gw.frames == [[1, 1, "first"]]

    run(main())


def test_refused_handshake_raises_from_connect() -> None:
    async def main() -> None:
        watch = Watch()
        async with FakeGateway() as gw:
            gw.reject_status = 403
            client = WebSocketClient(gw.url, on_state=watch.state)
            with pytest.raises(InvalidStatus) as err:
                await client.connect()
            assert err.value.response.status_code == 403
            assert watch.states == ["connecting", "closed"]
            with pytest.raises(SocketClosed):
                await client.send("x")

    run(main())


def test_bad_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="ws://"):
        WebSocketClient("http://example.com/")
