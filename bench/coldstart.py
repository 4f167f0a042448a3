"""Cold start: what `import app` costs a Lambda function, against a bare `import boto3`.

Every function of the app (the WebSocket handlers, the worker, the control routes)
imports all of app.py in its init phase. Each import runs in a fresh interpreter,
`--runs` times, the kinds interleaved so the machine's load falls on all alike;
it prints the medians of the CPU time (what the import itself costs, unmoved by
other processes on a shared machine) and of the wall time, plus whole processes
(`python -c ...`, interpreter start included). `eager` is app.py plus the modules
it now imports at their first use (asyncio, chalicelib.control and .fanout): what
`import app` cost before.

    .venv/bin/python -m bench.coldstart --runs 9
    .venv/bin/python -m bench.coldstart --runs 9 --extra \
        "import app, aws_lambda_powertools.metrics, aws_lambda_powertools.logging"

`--extra` times one more statement in the same run (here: what AWS Lambda
Powertools' Metrics and Logger would add to app.py, the measurement that chose
slipway's own EMF module, bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

KINDS = {
    "bare": "",
    "boto3": "import boto3",
    "app": "import app",
    "eager": "import app, asyncio, chalicelib.control, chalicelib.fanout",
}
# Modules a WebSocket message never needs at import: present or not after `import app`.
DEFERRED = (
    "marshmallow",
    "chalicelib.control",
    "chalicelib.fanout",
    "chalicelib.uploads",
    "chalicelib.grip.publish",
    "asyncio",
    "h11",
)

_PROBE = """
import json, sys, time
c, w = time.process_time(), time.perf_counter()
{statement}
c, w = time.process_time() - c, time.perf_counter() - w
loaded = [m for m in {deferred!r} if m in sys.modules]
print(json.dumps({{"cpu": c, "wall": w, "deferred": loaded}}))
"""


def run(kind: str) -> dict:
    code = _PROBE.format(statement=KINDS[kind], deferred=DEFERRED)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    got = json.loads(out.strip().splitlines()[-1])
    got["process"] = time.perf_counter() - started
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--extra", help="one more statement to time, as kind `extra`")
    args = parser.parse_args()
    if args.extra:
        KINDS["extra"] = args.extra
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min)")
    results: dict[str, list[dict]] = {k: [] for k in KINDS}
    for _ in range(args.runs):
        for kind in KINDS:
            results[kind].append(run(kind))

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind]) * 1000

    for kind in KINDS:
        print(
            f"{kind:>6} {KINDS[kind] or '(nothing)':<52} cpu {med(kind, 'cpu'):6.1f} ms  "
            f"wall {med(kind, 'wall'):6.1f} ms  process {med(kind, 'process'):6.1f} ms"
        )
    print(f"after `import app`, loaded of {list(DEFERRED)}: {results['app'][-1]['deferred']}")
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    print(
        f"import_app_ms={med('app', 'cpu'):.0f} import_boto3_ms={med('boto3', 'cpu'):.0f} "
        f"app_over_boto3_ms={med('app', 'cpu') - med('boto3', 'cpu'):.0f} "
        f"eager_app_ms={med('eager', 'cpu'):.0f} "
        f"eager_over_boto3_ms={med('eager', 'cpu') - med('boto3', 'cpu'):.0f} "
        f"process_app_ms={med('app', 'process'):.0f} process_bare_ms={med('bare', 'process'):.0f}"
    )
    if args.extra:
        print(
            f"extra_ms={med('extra', 'cpu'):.0f} "
            f"extra_over_app_ms={med('extra', 'cpu') - med('app', 'cpu'):.0f}"
        )


if __name__ == "__main__":
    main()
