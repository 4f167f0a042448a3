"""Drives the app's handlers as Lambda invokes them: API Gateway event dicts, SQS
records, and a recording @connections API."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import boto3
import pytest
import requests

import app
from chalicelib import services, settings
from local.connections import RecordingSink, Registry

KEY = "test-key-0123456789abcdef0123456789"

# A folder without .chalice/config.json: the Chalice test client then leaves the
# environment alone instead of loading the dev stage's settings.
HERE = Path(__file__).resolve().parent


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


def create_bucket(name: str) -> None:
    boto3.client("s3").create_bucket(Bucket=name)


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


def _ctx(cid: str, route: str, kind: str, **extra) -> dict:
    now = int(time.time() * 1000)
    return {
        **API,
        "routeKey": route,
        "eventType": kind,
        "connectionId": cid,
        "connectedAt": now,
        "requestTimeEpoch": now,
        "requestId": uuid.uuid4().hex,
        "messageDirection": "IN",
        "identity": {"sourceIp": "127.0.0.1"},
        **extra,
    }


def connect_event(
    cid: str, query: dict[str, str] | None = None, headers: dict | None = None
) -> dict:
    headers = {
        "Host": API["domainName"],
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Extensions": "permessage-deflate",
        "User-Agent": "pytest",
        **(headers or {}),
    }
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "requestContext": _ctx(cid, "$connect", "CONNECT"),
        "isBase64Encoded": False,
    }


def message_event(cid: str, body: str) -> dict:
    return {
        "requestContext": _ctx(cid, "$default", "MESSAGE", messageId=uuid.uuid4().hex),
        "body": body,
        "isBase64Encoded": False,
    }


def disconnect_event(cid: str, code: int | None = None, reason: str = "") -> dict:
    extra = {} if code is None else {"disconnectStatusCode": code, "disconnectReason": reason}
    return {
        "headers": {"Host": API["domainName"]},
        "requestContext": _ctx(cid, "$disconnect", "DISCONNECT", **extra),
        "isBase64Encoded": False,
    }


class Gateway:
    """The app's handlers wired to moto, the test backend and a recording @connections API."""

    def __init__(self, registry: Registry, queue_url: str, table: str) -> None:
        self.registry = registry
        self.queue_url = queue_url
        self.table = table

    def connect(self, query: dict | None = None, headers: dict | None = None, open_: bool = True):
        cid = uuid.uuid4().hex[:12] + "="
        reply = app.ws_connect(connect_event(cid, query, headers), None)
        sink = RecordingSink()
        if open_ and reply["statusCode"] == 200:
            self.registry.register(cid, sink)
        return cid, sink, reply

    def send(self, cid: str, text: str) -> None:
        app.ws_message(message_event(cid, text), None)

    def disconnect(self, cid: str, code: int | None = None, reason: str = "") -> None:
        self.registry.unregister(cid)
        app.ws_disconnect(disconnect_event(cid, code, reason), None)

    def queued(self, wait: int = 0) -> list[dict]:
        sqs = boto3.client("sqs")
        got = sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            WaitTimeSeconds=wait,
        ).get("Messages", [])
        return got

    def run_worker(self, messages: list[dict]) -> dict:
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q.fifo",
            }
            for m in messages
        ]
        return app.worker({"Records": records}, None)

    def drain(self, rounds: int = 20, wait: int = 0) -> int:
        """Run the worker over the queue until it is empty, deleting what succeeded,
        as Lambda's event source mapping does; `wait` long-polls for messages still
        in flight. Returns how many messages ran."""
        sqs = boto3.client("sqs")
        ran = 0
        for _ in range(rounds):
            messages = self.queued(wait)
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
