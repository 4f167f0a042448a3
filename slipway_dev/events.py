"""The event dicts AWS hands to Lambda, built the way AWS builds them. Pure.

API Gateway WebSocket events ($connect, $default, $disconnect) and SQS event
source batches. Field names, nesting and types follow what the services send, so
the handlers run on the same input locally and on AWS.
"""

from __future__ import annotations

import base64
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl


def connection_id() -> str:
    """An id shaped like API Gateway's (`L0SM9cOFvHcCIhw=`, `JC1dgf9yoAMCK-g=`):
    11 random bytes in URL-safe base64, 15 characters and `=`."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode("ascii")


def request_id() -> str:
    """requestId / extendedRequestId / messageId look the same as connection ids."""
    return connection_id()


def api_id() -> str:
    """A 10-character lowercase API id, like `ymy8tbxw7b`."""
    chars = string.ascii_lowercase + string.digits
    return "".join(chars[b % len(chars)] for b in secrets.token_bytes(10))


def now_ms() -> int:
    return int(time.time() * 1000)


def _request_time(epoch_ms: int) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000))


@dataclass(frozen=True)
class Handshake:
    """What API Gateway knows of a connection from its upgrade request."""

    connection_id: str
    api_id: str
    stage: str
    domain_name: str
    source_ip: str
    user_agent: str
    connected_at: int  # epoch milliseconds
    headers: list[tuple[str, str]] = field(default_factory=list)  # in order, names as sent
    query: str = ""  # the raw query string, without `?`


def _multi(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def _context(hs: Handshake, route_key: str, event_type: str, at: int) -> dict[str, Any]:
    rid = request_id()
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": rid,
        "requestTime": _request_time(at),
        "messageDirection": "IN",
        "stage": hs.stage,
        "connectedAt": hs.connected_at,
        "requestTimeEpoch": at,
        "identity": {"userAgent": hs.user_agent, "sourceIp": hs.source_ip},
        "requestId": rid,
        "domainName": hs.domain_name,
        "connectionId": hs.connection_id,
        "apiId": hs.api_id,
    }


def connect_event(hs: Handshake, at: int | None = None) -> dict[str, Any]:
    """$connect: the handshake's headers and query string, no body."""
    at = hs.connected_at if at is None else at
    multi_headers = _multi(hs.headers)
    event: dict[str, Any] = {
        # Single-value maps keep the last value of a repeated name, as API Gateway does.
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "requestContext": _context(hs, "$connect", "CONNECT", at),
        "isBase64Encoded": False,
    }
    pairs = parse_qsl(hs.query, keep_blank_values=True)
    if pairs:  # API Gateway leaves both keys out when there is no query string
        multi_query = _multi(pairs)
        event["queryStringParameters"] = {k: v[-1] for k, v in multi_query.items()}
        event["multiValueQueryStringParameters"] = multi_query
    return event


def message_event(hs: Handshake, body: str, at: int | None = None) -> dict[str, Any]:
    """$default: one client message. Binary frames never get here (API Gateway
    closes the connection with 1003), so the body is always text."""
    at = now_ms() if at is None else at
    context = _context(hs, "$default", "MESSAGE", at)
    context["messageId"] = request_id()
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(
    hs: Handshake, status: int, reason: str, at: int | None = None
) -> dict[str, Any]:
    """$disconnect: who closed and why, in disconnectStatusCode / disconnectReason."""
    at = now_ms() if at is None else at
    context = _context(hs, "$disconnect", "DISCONNECT", at)
    context["disconnectStatusCode"] = status
    context["disconnectReason"] = reason
    # What API Gateway sends on $disconnect: a few fixed headers, mostly empty.
    headers = {
        "Host": hs.domain_name,
        "x-api-key": "",
        "X-Forwarded-For": "",
        "x-restapi": "",
    }
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }


# -- SQS ----------------------------------------------------------------------


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """SQS API shape (StringValue, BinaryValue as bytes) -> Lambda's camelCase shape."""
    out: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        raw = value["BinaryValue"]
        out["binaryValue"] = (
            base64.b64encode(raw).decode("ascii") if isinstance(raw, bytes) else raw
        )
    return out


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of an SQS event, from a ReceiveMessage result."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, queue_arn, region) for m in messages]}
