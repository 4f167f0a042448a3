"""Load held by the local stack (issue 18): N clients connected to one channel, P
publishes to it through the control API, and at the same time T more clients each
sending M messages through the backend (the gripcontrol test backend echoes them).
It counts what every client got (lost, duplicates), and samples the resident
memory (VmRSS, /proc/<pid>/status) of the stack's processes every second: the
`slipway local` process (API Gateway, @connections, moto, the HTTP routes) and its
SQS worker. The last line is one machine-readable summary.

    .venv/bin/python -m bench.load                       # 1,000 clients, 100 publishes, 100 x 100
    .venv/bin/python -m bench.load --clients 200 --publishes 10 --talkers 20 --messages 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gripcontrol import GripPubControl, WebSocketMessageFormat, parse_grip_uri  # noqa: E402
from pubcontrol import Item  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from tests.e2e.processes import LocalStack, stack_with_backend  # noqa: E402


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> dict[int, str]:
    """pid -> a short name, for the direct children of `pid`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found[int(entry)] = "worker" if "slipway_dev.worker" in cmdline else cmdline[:40]
    return found


class Memory:
    """VmRSS of the stack and its children, sampled every second on a thread."""

    def __init__(self, stack_pid: int) -> None:
        self.stack_pid = stack_pid
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._began = time.monotonic()

    def sample(self) -> dict[str, int]:
        now = {"stack": rss_kib(self.stack_pid)}
        for pid, name in children(self.stack_pid).items():
            now[name] = now.get(name, 0) + rss_kib(pid)
        self.samples.append((time.monotonic() - self._began, now))
        return now

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def start(self) -> Memory:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def peak(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, sample in self.samples:
            for name, kib in sample.items():
                out[name] = max(out.get(name, 0), kib)
        return out


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


async def run(args: argparse.Namespace) -> dict:
    # The deployed visibility timeout: a batch of ten fan-outs to 1,000 members takes
    # this stack about a minute on a busy 2-core machine, and must not be handed out
    # again while it runs.
    stack, backend = stack_with_backend("--visibility-timeout", "360", "--idle-timeout", "3600")
    memory = Memory(stack.proc.pid).start()
    idle = memory.sample()
    print(f"stack idle: {', '.join(f'{k} {mib(v)}' for k, v in idle.items())}", flush=True)
    try:
        summary = await _load(args, stack, memory, idle)
        print(json.dumps(summary), flush=True)
        return summary
    finally:
        memory.stop()
        code = stack.stop(timeout=600)  # every client's $disconnect runs first
        backend.stop()
        if code != 0:
            print(f"slipway local exited with {code}:\n{stack.log()[-3000:]}")


async def _load(args: argparse.Namespace, stack: LocalStack, memory: Memory, idle: dict) -> dict:
    channel = f"load-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Semaphore(50)

    async def open_one(query: str) -> ClientConnection:
        async with gate:
            return await connect(f"{stack.websocket}?{query}", open_timeout=120, max_queue=None)

    began = time.monotonic()
    members = await asyncio.gather(*(open_one(f"subscribe={channel}") for _ in range(args.clients)))
    talkers = await asyncio.gather(*(open_one(f"t=talker{k}") for k in range(args.talkers)))
    connected = time.monotonic() - began
    after_connect = memory.sample()
    print(
        f"{args.clients} + {args.talkers} clients connected in {connected:.1f}s; "
        f"{', '.join(f'{k} {mib(v)}' for k, v in after_connect.items())}",
        flush=True,
    )

    rounds = [[f"publish {r} {i}" for i in range(args.publishes)] for r in range(args.rounds)]
    wanted = {text for texts in rounds for text in texts}
    counts = [Counter[str]() for _ in members]
    unique = 0

    async def member(index: int, ws: ClientConnection) -> None:
        nonlocal unique
        async for message in ws:
            if message in wanted:
                if not counts[index][message]:
                    unique += 1
                counts[index][message] += 1

    readers = [asyncio.create_task(member(i, ws)) for i, ws in enumerate(members)]

    def publish_all(texts: list[str]) -> int:
        pub = GripPubControl(parse_grip_uri(stack.urls["grip"]))
        refused = 0
        for text in texts:
            for _ in range(5):
                try:
                    pub.publish(channel, Item(WebSocketMessageFormat(text)), blocking=True)
                    break
                except Exception:
                    refused += 1
                    time.sleep(0.5)
        return refused

    errors: Counter[str] = Counter()

    async def talk(k: int, ws: ClientConnection, r: int) -> tuple[int, int]:
        """Send M messages one after another, each once; count the echoes. API
        Gateway's error frames are counted apart (an integration timeout's echo
        may still come)."""
        sent = [f"talk {k} {r} {i}" for i in range(args.messages)]
        got: Counter[str] = Counter()
        for text in sent:
            await ws.send(text)
        try:
            async with asyncio.timeout(args.timeout):
                while any(not got[text] for text in sent):
                    reply = await ws.recv()
                    if isinstance(reply, str) and reply.startswith("{"):
                        errors[json.loads(reply).get("message", reply)] += 1
                    else:
                        got[reply] += 1
        except TimeoutError:
            pass
        lost = sum(1 for text in sent if not got[text])
        return lost, sum(n - 1 for n in got.values() if n > 1)

    talked: list[tuple[int, int]] = []
    refused = 0
    echoes_done = delivered = 0.0
    after_round = []
    for r, texts in enumerate(rounds):
        began = time.monotonic()
        publishing = asyncio.create_task(asyncio.to_thread(publish_all, texts))
        talked += await asyncio.gather(*(talk(k, ws, r) for k, ws in enumerate(talkers)))
        echoes_done += time.monotonic() - began
        refused += await publishing
        target = len(members) * args.publishes * (r + 1)
        deadline = time.monotonic() + args.timeout
        while unique < target and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        delivered += time.monotonic() - began
        await asyncio.sleep(2.0)  # late duplicates
        after_round.append(memory.sample())
        print(
            f"round {r + 1}: {', '.join(f'{k} {mib(v)}' for k, v in after_round[-1].items())}",
            flush=True,
        )
    loaded = after_round[-1]
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in members + talkers), return_exceptions=True)
    await asyncio.sleep(3.0)
    after_close = memory.sample()

    deliveries = len(members) * len(wanted)
    lost_publishes = deliveries - unique
    duplicates = sum(n - 1 for c in counts for n in c.values())
    echoes = args.talkers * args.messages * args.rounds
    lost_echoes = sum(lost for lost, _ in talked)
    peak = memory.peak()
    print(
        f"{args.rounds} x {args.publishes} publishes x {args.clients} members: {deliveries} "
        f"deliveries in "
        f"{delivered:.1f}s ({deliveries / delivered:.0f}/s), lost {lost_publishes}, duplicates "
        f"{duplicates}, publishes refused and sent again {refused}"
    )
    print(
        f"{args.rounds} x {args.talkers} clients x {args.messages} messages through the "
        f"backend: {echoes} in "
        f"{echoes_done:.1f}s ({echoes / echoes_done:.0f}/s), lost {lost_echoes}, duplicates "
        f"{sum(d for _, d in talked)}; error frames {dict(errors) or 0}"
    )
    for name in peak:
        print(
            f"memory {name}: idle {mib(idle.get(name, 0))}, connected "
            f"{mib(after_connect.get(name, 0))}, after the load {mib(loaded.get(name, 0))}, "
            f"peak {mib(peak[name])}, clients closed {mib(after_close.get(name, 0))}"
        )
    return {
        "clients": args.clients,
        "publishes": args.publishes,
        "talkers": args.talkers,
        "messages": args.messages,
        "rounds": args.rounds,
        "connect_s": round(connected, 1),
        "deliveries": deliveries,
        "delivered_s": round(delivered, 1),
        "lost_publishes": lost_publishes,
        "duplicates": duplicates,
        "echoes": echoes,
        "echoes_s": round(echoes_done, 1),
        "lost_echoes": lost_echoes,
        "error_frames": sum(errors.values()),
        "rss_kib_idle": idle,
        "rss_kib_peak": peak,
        "rss_kib_after_rounds": after_round,
        "rss_kib_after_close": after_close,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="subscribers of the channel")
    parser.add_argument("--publishes", type=int, default=100, help="publishes to the channel")
    parser.add_argument("--talkers", type=int, default=100, help="clients talking to the backend")
    parser.add_argument("--messages", type=int, default=100, help="messages each talker sends")
    parser.add_argument(
        "--rounds", type=int, default=1, help="the publishes and messages, this many times"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for it all")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
