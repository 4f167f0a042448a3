"""Drives the app's handlers as Lambda invokes them: API Gateway event dicts, SQS
records, and a recording @connections API."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import boto3
import pytest
import requests

import app
from chalicelib import services, settings
from slipway_dev import aws, events
from slipway_dev.connections import RecordingSink, Registry

KEY = "test-key-0123456789abcdef0123456789"

# A folder without .chalice/config.json: the Chalice test client then leaves the
# environment alone instead of loading the dev stage's settings.
HERE = Path(__file__).resolve().parent


def create_table(name: str) -> None:
    aws.ensure_table(boto3.client("dynamodb"), name)


def create_queue(name: str) -> str:
    attributes = {"VisibilityTimeout": "2"}  # failed messages come back quickly
    return aws.ensure_queue(boto3.client("sqs"), name, attributes)


def create_bucket(name: str) -> None:
    aws.ensure_bucket(boto3.client("s3"), name)


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


API = {
    "apiId": "abc123",
    "stage": "dev",
    "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
}


def handshake(cid: str, query: dict[str, str] | None = None, headers: dict | None = None):
    """What API Gateway knows of a connection, for slipway_dev.events to build events from."""
    headers = {
        "Host": API["domainName"],
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Extensions": "permessage-deflate",
        "User-Agent": "pytest",
        **(headers or {}),
    }
    return events.Handshake(
        connection_id=cid,
        api_id=API["apiId"],
        stage=API["stage"],
        domain_name=API["domainName"],
        source_ip="127.0.0.1",
        user_agent="pytest",
        connected_at=events.now_ms(),
        headers=list(headers.items()),
        query=urlencode(query or {}),
    )


def disconnect_event(cid: str, code: int | None = None, reason: str = "") -> dict:
    event = events.disconnect_event(handshake(cid), code or 0, reason)
    if code is None:  # API Gateway reported no status at all
        del event["requestContext"]["disconnectStatusCode"]
        del event["requestContext"]["disconnectReason"]
    return event


class Gateway:
    """The app's handlers wired to moto, the test backend and a recording @connections API."""

    def __init__(self, registry: Registry, queue_url: str, table: str) -> None:
        self.registry = registry
        self.queue_url = queue_url
        self.table = table

    def connect(self, query: dict | None = None, headers: dict | None = None, open_: bool = True):
        cid = uuid.uuid4().hex[:12] + "="
        reply = app.ws_connect(events.connect_event(handshake(cid, query, headers)), None)
        sink = RecordingSink()
        if open_ and reply["statusCode"] == 200:
            self.registry.register(cid, sink)
        return cid, sink, reply

    def send(self, cid: str, text: str) -> None:
        app.ws_message(events.message_event(handshake(cid), text), None)

    def disconnect(self, cid: str, code: int | None = None, reason: str = "") -> None:
        self.registry.unregister(cid)
        app.ws_disconnect(disconnect_event(cid, code, reason), None)

    def queued(self) -> list[dict]:
        sqs = boto3.client("sqs")
        got = sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        return got

    def run_worker(self, messages: list[dict]) -> dict:
        arn = "arn:aws:sqs:us-east-1:000000000000:q.fifo"
        return app.worker(events.sqs_event(messages, arn, "us-east-1"), None)

    def drain(self, rounds: int = 20, wait: float = 0) -> int:
        """Run the worker over the queue until it is empty, deleting what succeeded,
        as Lambda's event source mapping does; empty for `wait` seconds, so messages
        still in flight come back first. Returns how many messages ran."""
        sqs = boto3.client("sqs")
        ran = 0
        for _ in range(rounds):
            quiet_until = time.monotonic() + wait
            while not (messages := self.queued()) and time.monotonic() < quiet_until:
                time.sleep(0.2)  # the local moto answers long polls at once
            if not messages:
                return ran
            failed = {f["itemIdentifier"] for f in self.run_worker(messages)["batchItemFailures"]}
            ran += len(messages)
            for m in messages:
                if m["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        raise AssertionError(f"queue not empty after {rounds} rounds")

    def publish(self, body: dict, key: str = KEY) -> tuple[int, dict]:
        from chalice.test import Client

        with Client(app.app, project_dir=str(HERE)) as client:
            reply = client.http.post(
                "/publish/",
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                body=json.dumps(body),
            )
        return reply.status_code, json.loads(reply.body or b"null")

    def stored(self, cid: str):
        return services.current().store.get_connection(cid)


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.current.cache_clear()
    services.current.cache_clear()
