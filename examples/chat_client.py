"""A terminal client for the demo chat, built on the slipway_client library: it
speaks envelope mode, so a line of any size gets through (through S3 when it
is over API Gateway's frame limit), and it reconnects if the connection drops.

    .venv/bin/python examples/chat_client.py ws://127.0.0.1:8000/ --name alice

Type chat commands (`/join lobby`, then anything); `/big N` says a line of N KB,
to see a large message go through. Messages longer than a screen line are shown
cut, with their length. End with Ctrl-D; the client also ends (exit code 1) when
the connection drops and five attempts to reconnect fail.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from urllib.parse import urlencode

from slipway_client import Backoff, SlipwayError, State, WebSocketClient

SHOWN = 120  # characters of a long message shown


def show(message: object) -> None:
    text = message if isinstance(message, str) else repr(message)
    if not text:
        return  # the gateway's keep-alive (examples/chat_backend.py): nothing to show
    if len(text) > SHOWN:
        text = f"{text[:SHOWN]}… ({len(text):,} characters)"
    print(text, flush=True)


def big_line(kb: int) -> str:
    return ("0123456789abcdef" * 64 * kb)[: kb * 1024]


class GaveUp(Exception):
    """The connection dropped and reconnecting failed: nothing more to do."""


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines of stdin (None at its end), read on a daemon thread: a blocked read
    must not keep the client alive once the connection is gone for good."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return lines


async def chat(url: str) -> None:
    closed = asyncio.Event()
    errors: list[str] = []

    def on_state(state: State) -> None:
        print(f"[{state}]", file=sys.stderr, flush=True)
        if state == State.CLOSED:
            closed.set()

    def on_error(exc: Exception) -> None:
        errors.append(str(exc))
        print(f"[error: {exc}]", file=sys.stderr, flush=True)

    client = WebSocketClient(
        url,
        on_message=show,
        on_state=on_state,
        on_error=on_error,
        reconnect=Backoff(max_attempts=5),
    )
    lines = stdin_lines(asyncio.get_running_loop())
    async with client:
        ended = asyncio.ensure_future(closed.wait())
        while True:
            line_task = asyncio.ensure_future(lines.get())
            await asyncio.wait({line_task, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not line_task.done():  # closed for good: the gateway is gone
                line_task.cancel()
                raise GaveUp(errors[-1] if errors else "the connection closed")
            line = line_task.result()
            if line is None:  # end of input
                break
            text = line.rstrip("\n")
            word, _, rest = text.partition(" ")
            if word == "/big" and rest.strip().isdigit():
                text = big_line(int(rest))
            try:
                await client.send(text)
            except SlipwayError as exc:
                print(f"[not sent: {exc}]", file=sys.stderr, flush=True)
        ended.cancel()
        await asyncio.sleep(0.5)  # what is still on its way, before closing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the gateway's WebSocket URL (make local prints it)")
    parser.add_argument("--name", help="your name in the chat")
    args = parser.parse_args()
    # Ordered delivery: the demo backend's commands need a connection's lines in
    # order (a /join pasted with the line after it), docs/ordered.md.
    query = {"ordered": "1", **({"name": args.name} if args.name else {})}
    url = args.url + ("&" if "?" in args.url else "?") + urlencode(query)
    try:
        asyncio.run(chat(url))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        sys.exit(f"cannot connect to {args.url}: {exc}")
    except GaveUp as exc:
        sys.exit(f"disconnected from {args.url}: {exc}")


if __name__ == "__main__":
    main()
