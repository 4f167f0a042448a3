"""Shared fixtures: a moto server in this process, the gripcontrol test backend as
a real process, and the local @connections API with recording sinks.

Each imports what it needs (moto, the app) when it is first used, not here: this
file is loaded for every test, and the pure core's (tests/core) load nothing of
moto, boto3 or the app (tests/core/test_layers.py checks it)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from slipway_dev.connections import ConnectionsServer
    from tests.harness import BackendLog, Gateway

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto on 127.0.0.1, and this process's boto3 pointed at it with dummy credentials."""
    from slipway_dev.moto_server import MotoServer
    from slipway_dev.stack import aws_environment

    server = MotoServer()
    url = server.start()
    saved = dict(os.environ)
    aws_environment(url, ours=True)
    yield url
    server.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def table(moto_url: str) -> str:
    from tests.harness import create_table

    name = f"t-{uuid.uuid4().hex[:12]}"
    create_table(name)
    return name


@pytest.fixture(scope="session")
def grip_backend() -> Iterator[str]:
    """The gripcontrol test backend, a separate process; yields its base URL."""
    from tests.harness import KEY

    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.grip_backend", "--port", "0", "--key", KEY],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().split()
    assert line and line[0] == "listening", "test backend did not start"
    url = f"http://127.0.0.1:{line[1]}"
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def backend_log(grip_backend: str) -> BackendLog:
    from tests.harness import BackendLog

    return BackendLog(grip_backend)


@pytest.fixture(scope="module")
def connections() -> Iterator[ConnectionsServer]:
    from slipway_dev.connections import ConnectionsServer, Registry

    server = ConnectionsServer(Registry()).start()
    yield server
    server.stop()


@pytest.fixture
def gateway(monkeypatch, moto_url, table, grip_backend, connections) -> Iterator[Gateway]:
    from chalicelib import services, settings
    from slipway_dev.connections import Registry
    from tests.harness import KEY, Gateway, configure, create_bucket, create_queue

    registry = connections.registry = Registry()
    queue_url = create_queue(f"q-{uuid.uuid4().hex[:8]}.fifo")
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    create_bucket(bucket)
    configure(
        monkeypatch,
        TARGET_URL=grip_backend + "/ws",
        SLIPWAY_KEY=KEY,
        SLIPWAY_TABLE=table,
        SLIPWAY_QUEUE_URL=queue_url,
        SLIPWAY_CONNECTIONS_ENDPOINT=connections.url,
        SLIPWAY_BUCKET=bucket,
    )
    yield Gateway(registry, queue_url, table)
    if services.current.cache_info().currsize:  # close its kept @connections connections
        built = vars(services.current()).get("sockets")
        if built is not None:
            built.shutdown()
    settings.current.cache_clear()
    services.current.cache_clear()
