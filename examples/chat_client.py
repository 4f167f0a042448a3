"""A terminal client for the demo chat, built on the slipway_client library: it
speaks envelope mode, so a line of any size gets through (through S3 when it
is over API Gateway's frame limit), and it reconnects if the connection drops.

    .venv/bin/python examples/chat_client.py ws://127.0.0.1:8000/ --name alice

Type chat commands (`/join lobby`, then anything); `/big N` says a line of N KB,
to see a large message go through. Messages longer than a screen line are shown
cut, with their length. End with Ctrl-D.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import urlencode

from slipway_client import Backoff, SlipwayError, WebSocketClient

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


async def chat(url: str) -> None:
    client = WebSocketClient(
        url,
        on_message=show,
        on_state=lambda state: print(f"[{state}]", file=sys.stderr, flush=True),
        on_error=lambda exc: print(f"[error: {exc}]", file=sys.stderr, flush=True),
        reconnect=Backoff(max_attempts=5),
    )
    async with client:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:  # end of input
                break
            text = line.rstrip("\n")
            word, _, rest = text.partition(" ")
            if word == "/big" and rest.strip().isdigit():
                text = big_line(int(rest))
            try:
                await client.send(text)
            except SlipwayError as exc:
                print(f"[not sent: {exc}]", file=sys.stderr, flush=True)
        await asyncio.sleep(0.5)  # what is still on its way, before closing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the gateway's WebSocket URL (make local prints it)")
    parser.add_argument("--name", help="your name in the chat")
    args = parser.parse_args()
    url = args.url
    if args.name:
        url += ("&" if "?" in url else "?") + urlencode({"name": args.name})
    try:
        asyncio.run(chat(url))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        sys.exit(f"cannot connect to {args.url}: {exc}")


if __name__ == "__main__":
    main()
