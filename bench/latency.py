"""Publish → receive latency: `slipway local` against Pushpin, same backend, same
clients, same run.

Starts the gripcontrol test backend (tests/grip_backend.py), `slipway local` in
front of it and, when Debian's `pushpin` and `zurl` are installed, Pushpin in front
of the same backend (WebSocket-over-HTTP, `over_http`, in a temp dir, on loopback
ports). For each load (clients × publishes per second) it connects the clients to
one gateway (each subscribed to one channel by the backend's OPEN response),
publishes through that gateway's GRIP control API at the given rate, and records
for every delivery the time from the publish request to the client's receipt.
Then the same against the other gateway. It prints p50/p90/p99/max and the
slipway/Pushpin ratios; the last line is one machine-readable summary of the
first load.

    .venv/bin/python -m bench.latency                      # 100 clients × 5/s, 500 × 10/s
    .venv/bin/python -m bench.latency --loads 100:5 --publishes 20

Pushpin missing: `apt-get install -y pushpin zurl` (as root; the Debian packages),
or the bench measures slipway alone and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.processes import (  # noqa: E402
    KEY,
    GripBackend,
    LocalStack,
    Process,
    free_port,
)

CHANNEL = "bench"


# -- Pushpin, from Debian's packages, in a temp dir ----------------------------------

_PUSHPIN_CONF = """\
[global]
include={{libdir}}/internal.conf
rundir={run}
ipc_prefix=slipway-bench-
port_offset=0
stats_connection_ttl=120

[runner]
# Debian's default runs zurl as a system service; here the runner starts its own.
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port={port}
logdir={log}
log_level=2
client_buffer_size=8192
client_maxconn=50000
condure_bin=condure
zurl_bin=zurl

[proxy]
routesfile={routes}
zurl_out_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in
zurl_out_stream_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-in-stream
zurl_in_specs=ipc://{{rundir}}/{{ipc_prefix}}zurl-out
debug=false
auto_cross_origin=false
sig_iss=pushpin
sig_key={key}
updates_check=off

[handler]
push_in_spec=ipc://{{rundir}}/{{ipc_prefix}}push-in
push_in_sub_specs=ipc://{{rundir}}/{{ipc_prefix}}push-in-sub
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port={publish_port}
stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats
command_spec=ipc://{{rundir}}/{{ipc_prefix}}command
# Debian's defaults, unchanged
message_rate=2500
message_hwm=25000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
"""


def pushpin_missing() -> str | None:
    missing = [b for b in ("pushpin", "zurl", "condure") if shutil.which(b) is None]
    if missing:
        return (
            f"{', '.join(missing)} not installed: Pushpin is not measured. Install Debian's "
            "packages with `apt-get install -y pushpin zurl` (as root) to compare."
        )
    return None


class Pushpin(Process):
    """Pushpin on 127.0.0.1 (WebSocket port and publish port), routing every
    request to `backend` with WebSocket-over-HTTP."""

    def __init__(self, backend: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="slipway-bench-pushpin-"))
        for sub in ("run", "log"):
            (self.dir / sub).mkdir()
        self.port, self.publish_port = free_port(), free_port()
        host = backend.split("//", 1)[1].split("/", 1)[0]
        (self.dir / "routes").write_text(f"* {host},over_http\n")
        conf = self.dir / "pushpin.conf"
        conf.write_text(
            _PUSHPIN_CONF.format(
                run=self.dir / "run",
                log=self.dir / "log",
                routes=self.dir / "routes",
                port=self.port,
                publish_port=self.publish_port,
                key=KEY,
            )
        )
        argv = ["pushpin", "--config", str(conf), "--port", f"127.0.0.1:{self.port}"]
        super().__init__(argv, cwd=self.dir)
        deadline = time.monotonic() + 30
        while not (_listening(self.port) and _listening(self.publish_port)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"pushpin did not start:\n{self.log()[-2000:]}")
            time.sleep(0.1)
        self.websocket = f"ws://127.0.0.1:{self.port}/ws"
        self.control = f"http://127.0.0.1:{self.publish_port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        try:
            return super().stop(sig, timeout)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# -- clients and publisher ----------------------------------------------------------


@dataclass
class Result:
    name: str
    clients: int
    rate: float
    publishes: int
    latencies: list[float] = field(default_factory=list)  # seconds
    lost: int = 0
    duplicates: int = 0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def _run_load(
    websocket: str, publish_url: str, clients: int, rate: float, publishes: int, label: str
) -> Result:
    from websockets.asyncio.client import connect

    result = Result(label, clients, rate, publishes)
    sent_at: dict[int, float] = {}
    got: list[dict[int, float]] = [{} for _ in range(clients)]
    warm: list[asyncio.Event] = [asyncio.Event() for _ in range(clients)]
    url = f"{websocket}?subscribe={CHANNEL}"

    async def client(k: int, ws) -> None:
        async for frame in ws:
            now = time.time()
            try:
                seq = json.loads(frame)["seq"]
            except (ValueError, KeyError, TypeError):
                continue
            if seq < 0:
                warm[k].set()
            elif seq in got[k]:
                result.duplicates += 1
            else:
                got[k][seq] = now

    sockets = []
    # Connect in small batches: the test backend (a ThreadingHTTPServer, listen
    # backlog 5) refuses a burst of handshakes that Pushpin forwards at once.
    for start in range(0, clients, 5):
        batch = [
            connect(url, open_timeout=30, close_timeout=5, max_queue=None)
            for _ in range(start, min(clients, start + 5))
        ]
        sockets += await asyncio.gather(*batch)
    readers = [asyncio.create_task(client(k, ws)) for k, ws in enumerate(sockets)]

    session = _Publisher(publish_url)
    # Subscriptions settle (Pushpin subscribes after the handshake): warm-up
    # publishes until every client has one.
    deadline = time.monotonic() + 30
    while not all(e.is_set() for e in warm):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label}: {sum(not e.is_set() for e in warm)} clients never warm")
        await asyncio.to_thread(session.publish, -1)
        await asyncio.sleep(0.3)
    await asyncio.sleep(0.5)

    started = time.monotonic()
    for seq in range(publishes):
        at = started + seq / rate
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        sent_at[seq] = await asyncio.to_thread(session.publish, seq)
    # Everything in flight arrives (or is lost) within a few seconds.
    quiet_until = time.monotonic() + 10
    while time.monotonic() < quiet_until:
        if all(len(g) >= publishes for g in got):
            break
        await asyncio.sleep(0.1)
    for ws in sockets:
        await ws.close()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    session.close()
    for received in got:
        for seq, at in received.items():
            result.latencies.append(at - sent_at[seq])
        result.lost += publishes - len(received)
    return result


class _Publisher:
    """GRIP publishes over one keep-alive HTTP connection (the same for both gateways)."""

    def __init__(self, control: str) -> None:
        import requests

        self._url = f"{control.rstrip('/')}/publish/"
        self._session = requests.Session()
        self._headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def publish(self, seq: int) -> float:
        body = {"items": [{"channel": CHANNEL, "formats": {"ws-message": {"content": ""}}}]}
        at = time.time()
        body["items"][0]["formats"]["ws-message"]["content"] = json.dumps({"seq": seq, "t": at})
        reply = self._session.post(self._url, data=json.dumps(body), headers=self._headers)
        reply.raise_for_status()
        return at

    def close(self) -> None:
        self._session.close()


def run_load(websocket: str, control: str, clients: int, rate: float, n: int, name: str) -> Result:
    return asyncio.run(_run_load(websocket, control, clients, rate, n, name))


# -- report -------------------------------------------------------------------------


def describe(r: Result) -> str:
    return (
        f"{r.name:>8} clients={r.clients:<4} rate={r.rate:g}/s publishes={r.publishes} "
        f"p50={r.pct(50):7.1f} ms p90={r.pct(90):7.1f} ms p99={r.pct(99):7.1f} ms "
        f"max={r.pct(100):7.1f} ms lost={r.lost} duplicates={r.duplicates}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--loads",
        nargs="+",
        default=["100:5", "500:10"],
        help="CLIENTS:PUBLISHES_PER_SECOND, one run each (default: 100:5 500:10)",
    )
    parser.add_argument("--publishes", type=int, default=20, help="publishes per load")
    parser.add_argument("--no-pushpin", action="store_true", help="measure slipway only")
    parser.add_argument("--stack-arg", action="append", default=[], help="extra slipway flag")
    args = parser.parse_args()
    loads = [(int(c), float(r)) for c, r in (spec.split(":") for spec in args.loads)]

    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    skip = "--no-pushpin given" if args.no_pushpin else pushpin_missing()
    if skip:
        print(f"Pushpin: skipped: {skip}")

    port = free_port()
    stack = LocalStack("--target", f"http://127.0.0.1:{port}/ws", "--key", KEY, *args.stack_arg)
    backend = pushpin = None
    try:
        backend = GripBackend(port, KEY, stack.control)
        if not skip:
            pushpin = Pushpin(backend.url)
        results: list[tuple[Result, Result | None]] = []
        for clients, rate in loads:
            theirs = None
            if pushpin is not None:
                theirs = run_load(
                    pushpin.websocket, pushpin.control, clients, rate, args.publishes, "pushpin"
                )
                print(describe(theirs), flush=True)
            ours = run_load(
                stack.websocket, stack.control, clients, rate, args.publishes, "slipway"
            )
            print(describe(ours), flush=True)
            if theirs is not None:
                print(
                    f"   ratio slipway/pushpin: p50 {ours.pct(50) / theirs.pct(50):.2f} "
                    f"p99 {ours.pct(99) / theirs.pct(99):.2f}"
                )
            results.append((ours, theirs))
    finally:
        if pushpin is not None:
            pushpin.stop()
        if backend is not None:
            backend.stop()
        stack.stop()
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    summary = []
    for k, (ours, theirs) in enumerate(results):
        tag = "" if k == 0 else f"_{ours.clients}x{ours.rate:g}"
        summary.append(f"slipway_p50_ms{tag}={ours.pct(50):.1f}")
        summary.append(f"slipway_p99_ms{tag}={ours.pct(99):.1f}")
        if theirs is not None:
            summary.append(f"pushpin_p50_ms{tag}={theirs.pct(50):.1f}")
            summary.append(f"pushpin_p99_ms{tag}={theirs.pct(99):.1f}")
            summary.append(f"ratio_p50{tag}={ours.pct(50) / theirs.pct(50):.2f}")
            summary.append(f"ratio_p99{tag}={ours.pct(99) / theirs.pct(99):.2f}")
        lost = ours.lost + (theirs.lost if theirs else 0)
        summary.append(f"lost{tag}={lost}")
    print(" ".join(summary))


if __name__ == "__main__":
    main()
