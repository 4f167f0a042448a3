"""A Chalice app that shows what the local API Gateway hands its functions:
`$default` answers with the `$connect` event, the outcome of a post made during
`$connect`, and its own event; `$disconnect` appends its event to $PROBE_LOG.

Query options on connect: `reject=<status>`, `raise=1`, `bytes=1` (a body Lambda
cannot serialize), `protocol=<p>`. Message `raise` makes `$default` fail."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from botocore.exceptions import ClientError
from chalice import Chalice, Response

app = Chalice(app_name="probe")
app.experimental_feature_flags.update(["WEBSOCKETS"])

_connects: dict[str, dict[str, Any]] = {}


def _api() -> Any:
    endpoint = os.environ["SLIPWAY_CONNECTIONS_ENDPOINT"]
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)


@app.on_ws_connect()
def connect(event: Any) -> Any:
    raw = event.to_dict()
    try:
        _api().post_to_connection(ConnectionId=event.connection_id, Data=b"too early")
        posted = "sent"
    except ClientError as exc:
        posted = exc.response["Error"]["Code"]
    _connects[event.connection_id] = {"event": raw, "post": posted}
    query = raw.get("queryStringParameters") or {}
    if "reject" in query:
        return Response(body="go away", status_code=int(query["reject"]), headers={"X-Why": "t"})
    if "raise" in query:
        raise RuntimeError("connect failed")
    if "bytes" in query:
        return Response(body=b"bytes", status_code=403)
    if "protocol" in query:
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": query["protocol"]}}
    return {"statusCode": 200}


@app.on_ws_message()
def message(event: Any) -> None:
    raw = event.to_dict()
    if raw.get("body") == "raise":
        raise RuntimeError("message failed")
    reply = {"connect": _connects.get(event.connection_id), "message": raw}
    _api().post_to_connection(ConnectionId=event.connection_id, Data=json.dumps(reply).encode())


@app.on_ws_disconnect()
def disconnect(event: Any) -> None:
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(json.dumps(event.to_dict()) + "\n")
