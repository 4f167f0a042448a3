"""moto's server in this process, made fit for concurrent use by the stack.

moto's backends are not thread-safe, and the stack calls them from many threads
at once (Lambda handlers, the control API, the SQS poller). Seen with moto 5.x:
DynamoDB TransactWriteItems deep-copies a table while another request changes it
("dictionary changed size during iteration", a 500), and SQS DeleteMessage
rebuilds the message list without the lock SendMessage takes, which can lose a
message sent at the same moment. So requests run one at a time; under the GIL
that costs little. No request may wait inside moto: an SQS long poll waits
outside the lock and asks again when a message may have arrived (_OneAtATime).

S3 refuses what moto takes: Signature Version 2, and a missing key's 404 to a
caller without s3:ListBucket (slipway_dev/s3rules.py, in front of moto).

Six more fixes, all to moto in this process only:
- routing lists moto's package directory on every request (~150 stat calls
  under a global lock): the list is cached;
- FIFO redelivery order (see fix_fifo_redelivery);
- browsers' CORS preflights of presigned URLs (see _bare_preflight);
- key comparisons in queries (see fast_key_comparisons);
- a copy of the whole table per transaction item (see light_transactions);
- DynamoDB reads' responses serialized value by value (see fast_dynamodb_reads).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import Faults

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _OneAtATime:
    """A WSGI wrapper running one request at a time, body included.

    An SQS long poll (ReceiveMessage with WaitTimeSeconds) waits here, outside the
    lock, and asks moto again as soon as another request may have made a message
    visible (a send, a delete that frees a FIFO group, a visibility change) or every
    `_RECHECK` seconds (a visibility timeout or a delay running out): it answers as
    soon as there is a message, or empty when its time is up, as SQS does."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._sqs_changed = threading.Condition()
        self._sqs_version = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        wait = _long_poll(environ)
        _bare_preflight(environ)
        if wait > 0:
            return self._long_poll(environ, start_response, wait)
        body = self._one(environ, start_response)
        if environ.get("HTTP_X_AMZ_TARGET") in _SQS_CHANGES:
            with self._sqs_changed:
                self._sqs_version += 1
                self._sqs_changed.notify_all()
        return body

    def _one(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            result = self._app(environ, start_response)
            try:
                return list(result)  # the body may be produced lazily: inside the lock
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    def _long_poll(
        self, environ: dict[str, Any], start_response: Callable[..., Any], wait: float
    ) -> list[bytes]:
        deadline = time.monotonic() + wait
        request = environ["wsgi.input"].read()
        answer: list[Any] = []

        def keep(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> None:
            answer[:] = [status, headers]

        while True:
            with self._sqs_changed:
                seen = self._sqs_version
            environ["wsgi.input"] = io.BytesIO(request)
            body = self._one(environ, keep)
            left = deadline - time.monotonic()
            if left <= 0 or not answer or not answer[0].startswith("200") or _has_messages(body):
                break
            with self._sqs_changed:
                if self._sqs_version == seen:
                    self._sqs_changed.wait(min(left, _RECHECK))
        if answer:
            start_response(*answer)
        return body


# The requests after which a long poll asks moto again at once (JSON protocol);
# anything else that makes a message visible is found within _RECHECK seconds.
_SQS_CHANGES = {
    f"AmazonSQS.{action}"
    for action in (
        "SendMessage",
        "SendMessageBatch",
        "DeleteMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
    )
}
_RECHECK = 0.1


def _has_messages(body: list[bytes]) -> bool:
    try:
        return bool(json.loads(b"".join(body) or b"{}").get("Messages"))
    except (ValueError, AttributeError):
        return True  # not what we expected: hand it over as it is


def _bare_preflight(environ: dict[str, Any]) -> None:
    """A browser's CORS preflight (OPTIONS with Access-Control-Request-Method) of a
    presigned URL. S3 answers it from the bucket's CORS rules alone; moto 5 first
    checks the URL's signed `content-type` against the request's Content-Type,
    which a preflight never has, and answers 403: no page could PUT an upload.
    Without the query string moto answers from the CORS rules, as S3 does."""
    if environ.get("REQUEST_METHOD") == "OPTIONS" and environ.get(
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD"
    ):
        environ["QUERY_STRING"] = ""


def _long_poll(environ: dict[str, Any]) -> float:
    """A ReceiveMessage's WaitTimeSeconds, which moto itself then never sees: moto
    would hold the one request slot for the whole wait, busy-waiting (and a long
    poll may last 20 s: say, someone watching the dead-letter queue with the AWS
    CLI). `_OneAtATime` waits instead, without the slot. The JSON protocol only,
    which current SDKs and the AWS CLI use."""
    if environ.get("HTTP_X_AMZ_TARGET") != "AmazonSQS.ReceiveMessage":
        return 0.0
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    try:
        params = json.loads(body)
    except ValueError:
        params = None
    wait = 0.0
    if isinstance(params, dict):
        try:
            wait = max(0.0, min(20.0, float(params.get("WaitTimeSeconds") or 0)))
        except (TypeError, ValueError):
            wait = 0.0
        params["WaitTimeSeconds"] = 0
        body = json.dumps(params).encode()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return wait


def fix_fifo_redelivery() -> None:
    """Make moto redeliver a FIFO group's timed-out messages in order, as SQS does.

    moto keeps a received message in the queue's pending set until a later
    receive scans past it, and skips every message whose group still has a
    pending one. When several messages of one group time out together, the
    first is skipped because the next ones still look pending, and they come
    back out of order (three, one, two). Forgetting timed-out messages before
    each receive fixes it."""
    from moto.sqs.models import SQSBackend

    original = SQSBackend.receive_message
    if getattr(original, "slipway_fixed", False):
        return

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        for message in list(queue.pending_messages):
            if message.visible:
                queue.pending_messages.discard(message)
        return original(self, queue_name, *args, **kwargs)

    receive_message.slipway_fixed = True  # type: ignore[attr-defined]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


def cache_module_list() -> None:
    """moto lists its package directory on every request, under its routing lock."""
    from moto import backends

    listing = backends.list_of_moto_modules
    if getattr(listing, "slipway_cached", False):
        return
    modules = tuple(listing())

    def cached() -> tuple[str, ...]:
        return modules

    cached.slipway_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = cached


def fast_key_comparisons() -> None:
    """moto's DynamoDB queries compare and sort every item's keys through
    DynamoType, which converts both values on every comparison (~2 s for one
    query of a 10,000-row table, where DynamoDB takes milliseconds). Strings and
    binaries compare as they are; everything else as moto does."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if getattr(DynamoType.__eq__, "slipway_fast", False):
        return
    equal, less = DynamoType.__eq__, DynamoType.__lt__

    def __eq__(self: Any, other: Any) -> bool:  # noqa: N807
        if type(other) is DynamoType and self.type == other.type and self.type in ("S", "B"):
            return bool(self.value == other.value)
        return bool(equal(self, other))

    def __lt__(self: Any, other: Any) -> bool:  # noqa: N807
        if type(other) is DynamoType and self.type == other.type and self.type in ("S", "B"):
            return bool(self.value < other.value)
        return bool(less(self, other))

    __eq__.slipway_fast = True  # type: ignore[attr-defined]
    hash_of = DynamoType.__hash__
    DynamoType.__eq__ = __eq__  # type: ignore[method-assign]
    DynamoType.__lt__ = __lt__  # type: ignore[method-assign]
    DynamoType.__hash__ = hash_of  # type: ignore[method-assign]


def light_transactions() -> None:
    """moto deep-copies the whole table once per item of a DynamoDB transaction,
    to roll back on failure: every transaction costs several copies of the table
    (a $disconnect of a 10,000-row table, seconds). Here a transaction saves only
    the items it touches, and puts them back if it fails."""
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "slipway_light", False):
        return
    original = backend.transact_write_items

    class _TablesStay:
        """moto's `copy` module, but a Table "copied" for rollback is the table itself."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = _TablesStay()  # type: ignore[attr-defined,assignment]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        saved = []
        for entry in transact_items:
            op = next(iter(entry.values()))
            table = self.tables.get(op.get("TableName"))
            key = op.get("Key") or op.get("Item")
            if table is None or not key or table.hash_key_attr not in key:
                continue
            hash_key = DynamoType(key[table.hash_key_attr])
            range_attr = table.range_key_attr
            range_key = DynamoType(key[range_attr]) if range_attr and range_attr in key else None
            if range_attr and range_key is None:
                continue
            item = table.get_item(hash_key, range_key)
            saved.append((table, hash_key, range_key, copy.deepcopy(item)))
        try:
            return original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                table.delete_item(hash_key, range_key)
                if item is not None:
                    if range_key is not None:
                        table.items[hash_key][range_key] = item
                    else:
                        table.items[hash_key] = item
            raise

    transact_write_items.slipway_light = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def fast_dynamodb_reads() -> None:
    """moto 5.2 serializes every response by walking the operation's shape, value by
    value: a Query page of 1,000 small items takes ~1.5 s of CPU, three quarters of
    the whole request (DynamoDB answers it in milliseconds). A DynamoDB read's
    result is already in the wire's form (AttributeValue maps), so Query, Scan,
    GetItem and BatchGetItem answer with its JSON directly: binary values base64,
    times in epoch seconds, as the JSON protocol has them."""
    import base64
    from datetime import datetime

    from moto.dynamodb.responses import DynamoResult

    original = DynamoResult.execute_result
    if getattr(original, "slipway_fast", False):
        return

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode("ascii")
        if isinstance(value, datetime):
            return value.timestamp()
        raise TypeError(f"{type(value).__name__} is not JSON")

    def execute_result(self: Any, context: Any) -> Any:
        if context.operation_model.name not in _FAST_READS:
            return original(self, context)
        try:
            body = json.dumps(self.result, default=plain)
        except (TypeError, ValueError):
            return original(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    execute_result.slipway_fast = True  # type: ignore[attr-defined]
    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]


_FAST_READS = {"Query", "Scan", "GetItem", "BatchGetItem"}


class MotoServer:
    """moto on 127.0.0.1 (port 0: a free one), one request at a time."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, faults: Faults | None = None
    ) -> None:
        cache_module_list()
        fix_fifo_redelivery()
        fast_key_comparisons()
        light_transactions()
        fast_dynamodb_reads()
        self._host = host
        self._port = port
        self._faults = faults  # errors injected in front of moto (slipway_dev/faults.py)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class Quiet(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass  # werkzeug would log every request

        from .s3rules import S3Rules

        # S3's refusals that moto lacks (SigV2, a missing key's 403), inside the lock.
        app: WsgiApp = _OneAtATime(S3Rules(DomainDispatcherApplication(create_backend_app)))
        if self._faults is not None:
            app = self._faults.wsgi(app)
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=Quiet
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
