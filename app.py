"""slipway: the Lambda entry points. Each wires an event to chalicelib."""

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from chalice.app import (
    Chalice,
    CloudWatchEvent,
    Rate,
    Request,
    Response,
    SQSEvent,
    WebsocketEvent,
)

from chalicelib import handlers, keepalive, metrics, ordered
from chalicelib.grip.limits import FIFO_BATCH
from chalicelib.lazy import lazy

# Imported at their first use: a WebSocket function's cold start needs neither.
if TYPE_CHECKING:
    from chalicelib import control, fanout
else:
    control = lazy("chalicelib.control")
    fanout = lazy("chalicelib.fanout")

app = Chalice(app_name="slipway")
app.experimental_feature_flags.update(["WEBSOCKETS"])
# Chalice sets its app logger (the parent of chalicelib's) to ERROR: keep warnings.
app.log.setLevel(os.environ.get("SLIPWAY_LOG_LEVEL", "INFO"))
# Each invocation's metrics, one EMF line per dimension set as it ends (docs/operations.md).
app.register_middleware(metrics.flushing(app), "all")


@app.on_ws_connect()
def ws_connect(event: WebsocketEvent) -> Response | dict[str, Any]:
    response = handlers.connect(event.to_dict())
    metrics.connected(response)
    return response


@app.on_ws_message()
def ws_message(event: WebsocketEvent) -> None:
    metrics.message_in()
    handlers.message(event.to_dict())


@app.on_ws_disconnect()
def ws_disconnect(event: WebsocketEvent) -> None:
    metrics.disconnected(event.to_dict())
    handlers.disconnect(event.to_dict())


@app.on_sqs_message(
    queue=os.environ.get("SLIPWAY_QUEUE_NAME", "slipway-publish.fifo"), batch_size=FIFO_BATCH
)
def worker(event: SQSEvent) -> dict[str, Any]:
    started, records = time.time(), event.to_dict()["Records"]
    result = fanout.handle_batch(records)
    metrics.worker_batch(records, result, started)
    return result


@app.on_sqs_message(
    queue=os.environ.get("SLIPWAY_ORDERED_QUEUE_NAME", "slipway-ordered.fifo"),
    batch_size=ordered.BATCH,
)
def ordered_forwarder(event: SQSEvent) -> dict[str, Any]:
    """Ordered delivery: a connection's queued events to the backend, in order (docs/ordered.md)."""
    return ordered.handle_batch(event.to_dict()["Records"])


@app.schedule(Rate(keepalive.PERIOD // 60, unit=Rate.MINUTES))
def keepalive_scheduler(event: CloudWatchEvent) -> dict[str, int]:
    """Keep-alives due in this minute, each at its second (docs/keepalive.md)."""
    context: Any = event.context  # Lambda's context object (Chalice types it as a dict)
    remaining = context.get_remaining_time_in_millis() / 1000
    return keepalive.run_scheduled(event.to_dict().get("time"), remaining)


# -- control API (GRIP publish, one connection) ----------------------------------


def _request() -> Request:
    """The route's request (Chalice sets it before it calls a route)."""
    request = app.current_request
    assert request is not None
    return request


def _body(request: Request) -> bytes:
    raw = request.raw_body
    return raw.encode("utf-8") if isinstance(raw, str) else raw


@app.route("/publish", methods=["POST"])
def publish() -> Response:
    request = _request()
    return control.publish(request.headers, _body(request))


@app.route("/uploads", methods=["POST"])
def upload() -> Response:
    """A presigned PUT for a message too large to publish inline (docs/control-api.md)."""
    return control.upload(_request().headers)


@app.route("/connections/{connection_id}/message", methods=["POST"])
def send_to_connection(connection_id: str) -> Response:
    request = _request()
    return control.send_to(request.headers, unquote(connection_id), _body(request))


@app.route("/connections/{connection_id}", methods=["DELETE"])
def close_connection(connection_id: str) -> Response:
    request = _request()
    return control.close(request.headers, unquote(connection_id), _body(request))


@app.route("/connections/{connection_id}", methods=["GET"])
def inspect_connection(connection_id: str) -> Response:
    return control.inspect(_request().headers, unquote(connection_id))


@app.route("/channels/{channel}", methods=["GET"])
def channel_info(channel: str) -> Response:
    return control.channel(_request().headers, unquote(channel))


@app.route("/channels/{channel}/connections", methods=["GET"])
def channel_connections(channel: str) -> Response:
    request = _request()
    return control.channel_connections(request.headers, unquote(channel), request.query_params)


@app.route("/channels/{channel}/items", methods=["GET"])
def channel_items(channel: str) -> Response:
    """The channel's history after ?after=<offset> or ?after-id=<id> (docs/resume.md)."""
    request = _request()
    return control.channel_items(request.headers, unquote(channel), request.query_params)


@app.route("/connections", methods=["GET"])
def list_connections() -> Response:
    request = _request()
    return control.all_connections(request.headers, request.query_params)


@app.route("/connections/{connection_id}/channels/{channel}", methods=["PUT"])
def subscribe_connection(connection_id: str, channel: str) -> Response:
    request = _request()
    return control.subscribe(request.headers, unquote(connection_id), unquote(channel))


@app.route("/connections/{connection_id}/channels/{channel}", methods=["DELETE"])
def unsubscribe_connection(connection_id: str, channel: str) -> Response:
    request = _request()
    return control.unsubscribe(request.headers, unquote(connection_id), unquote(channel))


@app.route("/connections/{connection_id}/meta", methods=["PATCH"])
def set_connection_meta(connection_id: str) -> Response:
    request = _request()
    return control.set_meta(request.headers, unquote(connection_id), _body(request))


@app.route("/", methods=["GET"])
def index() -> Response:
    return control.index(app.routes)


@app.middleware("http")
def json_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Chalice's own answers (405, 415, ...) in the control API's `{"error": ...}` shape."""
    return control.json_errors(get_response(event))


# -- local development: `chalice local` runs the whole local stack ---------------
# The Chalice CLI sets AWS_CHALICE_CLI_MODE; Lambda never does, and slipway_dev is
# not in the deployment package. attach() acts only inside `chalice local`.
if os.environ.get("AWS_CHALICE_CLI_MODE") == "true":
    try:
        from slipway_dev.chalice_local import attach
    except ImportError:
        pass
    else:
        attach(app)
