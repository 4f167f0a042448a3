"""Publishing end to end: a gripcontrol backend publishes through the control API
(GripPubControl), SQS carries it, the fan-out worker posts to every subscriber."""

from __future__ import annotations

import asyncio
import time
import uuid

from gripcontrol import GripPubControl, WebSocketMessageFormat, parse_grip_uri
from pubcontrol import Item
from websockets.asyncio.client import ClientConnection, connect

from .processes import LocalStack
from .test_gateway import TIMEOUT, client

CLIENTS = 200
PUBLISHES = 50
# A batch of fan-outs to 200 clients outlasts a 2 s visibility timeout: SQS would
# hand it out again (at least once). Lambda needs visibility >= function timeout.
STACK_ARGS = ("--visibility-timeout", "60")


def test_subscriber_receives_what_the_backend_publishes(stack: LocalStack) -> None:
    room = f"room-{uuid.uuid4().hex[:8]}"
    with client(stack) as listener, client(stack) as speaker:
        listener.send(f"sub {room}")
        assert listener.recv(timeout=TIMEOUT) == f"subscribed {room}"
        speaker.send(f"publish {room} hello room")
        assert speaker.recv(timeout=TIMEOUT) == "published"
        assert listener.recv(timeout=TIMEOUT) == "hello room"


def test_unsubscribed_connection_no_longer_receives(stack: LocalStack) -> None:
    room = f"room-{uuid.uuid4().hex[:8]}"
    with client(stack) as leaver, client(stack) as stayer, client(stack) as speaker:
        for ws in (leaver, stayer):
            ws.send(f"sub {room}")
            assert ws.recv(timeout=TIMEOUT) == f"subscribed {room}"
        leaver.send(f"unsub {room}")
        assert leaver.recv(timeout=TIMEOUT) == f"unsubscribed {room}"
        speaker.send(f"publish {room} after leaving")
        assert speaker.recv(timeout=TIMEOUT) == "published"
        # The stayer getting it means the fan-out ran; the leaver must not.
        assert stayer.recv(timeout=TIMEOUT) == "after leaving"
        leaver.send("still connected")
        assert leaver.recv(timeout=TIMEOUT) == "still connected"


def test_load_every_subscriber_gets_every_message_once_in_order(stack: LocalStack) -> None:
    asyncio.run(_load(stack))


async def _load(stack: LocalStack) -> None:
    channel = f"load-{uuid.uuid4().hex[:8]}"
    url = f"{stack.websocket}?subscribe={channel}"
    gate = asyncio.Semaphore(50)  # bounded handshakes in flight

    async def open_one() -> ClientConnection:
        async with gate:
            # The 101 comes after $connect stored the subscription.
            return await connect(url, open_timeout=60, max_queue=None)

    started = time.monotonic()
    clients = await asyncio.gather(*(open_one() for _ in range(CLIENTS)))
    connected = time.monotonic()
    try:
        expected = [f"message {i}" for i in range(PUBLISHES)]
        pub = GripPubControl(parse_grip_uri(stack.urls["grip"]))

        def publish_all() -> None:
            for text in expected:
                pub.publish(channel, Item(WebSocketMessageFormat(text)), blocking=True)

        async def receive(ws: ClientConnection) -> list[str]:
            got = []
            async with asyncio.timeout(90):
                while len(got) < PUBLISHES:
                    got.append(await ws.recv())
            return got

        receivers = [asyncio.create_task(receive(ws)) for ws in clients]
        await asyncio.to_thread(publish_all)
        results = await asyncio.gather(*receivers)
        delivered = time.monotonic()
        assert all(got == expected for got in results), [got for got in results if got != expected][
            :1
        ]
        # Exactly once: nothing more arrives.
        extra = await asyncio.gather(
            *(asyncio.wait_for(ws.recv(), 1.0) for ws in clients), return_exceptions=True
        )
        assert all(isinstance(e, TimeoutError) for e in extra), [
            e for e in extra if not isinstance(e, TimeoutError)
        ][:3]
        print(
            f"\n{CLIENTS} clients connected in {connected - started:.1f}s; "
            f"{PUBLISHES} x {CLIENTS} messages delivered in {delivered - connected:.1f}s"
        )
    finally:
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
