"""Shared fixtures: a moto server in this process, the gripcontrol test backend as
a real process, and the local @connections API with recording sinks."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
KEY = "test-key-0123456789abcdef0123456789"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    yield url
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


_AWS_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


def create_table(name: str) -> None:
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def create_queue(name: str) -> str:
    sqs = boto3.client("sqs")
    attrs = {"FifoQueue": "true", "VisibilityTimeout": "2"} if name.endswith(".fifo") else {}
    return sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]


@pytest.fixture
def table(moto_url: str) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    create_table(name)
    return name


@pytest.fixture(scope="session")
def grip_backend() -> Iterator[str]:
    """The gripcontrol test backend, a separate process; yields its base URL."""
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


class BackendLog:
    """What the test backend received, byte for byte."""

    def __init__(self, url: str) -> None:
        self.url = url
        requests.delete(f"{url}/_requests", timeout=5)

    def requests(self) -> list[dict]:
        import base64

        got = requests.get(f"{self.url}/_requests", timeout=5).json()
        for r in got:
            r["body"] = base64.b64decode(r["body"])
            r["headers"] = {k.lower(): v for k, v in r["headers"].items()}
        return got


@pytest.fixture
def backend_log(grip_backend: str) -> BackendLog:
    return BackendLog(grip_backend)
