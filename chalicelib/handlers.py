"""connect / message / disconnect: each an API Gateway event -> the core -> the executor."""

from __future__ import annotations

import logging
import time
from typing import Any

from chalice.app import Response

from . import executor, services, transfers
from .backend import BackendUnreachable
from .grip import answer, codec, ordered, request
from .grip import decisions as d
from .grip import effects as fx
from .grip.model import Connection

log = logging.getLogger("slipway.handlers")
_TEXT: dict[str, str | list[str]] = {"Content-Type": "text/plain; charset=utf-8"}


# -- $connect ---------------------------------------------------------------


def connect(event: dict[str, Any]) -> Response | dict[str, Any]:
    try:
        return _connect(event)
    except Exception:
        log.exception("connect failed")
        return Response(body="Internal error in the gateway", status_code=500, headers=_TEXT)


def _connect(event: dict[str, Any]) -> Response | dict[str, Any]:
    svc = services.current()
    ctx = event["requestContext"]
    conn = Connection(
        id=ctx["connectionId"],
        endpoint=svc.endpoint_for(ctx),
        headers=request.handshake_headers(event.get("multiValueHeaders"), event.get("headers")),
        query=request.query_string(
            event.get("multiValueQueryStringParameters"), event.get("queryStringParameters")
        ),
        created_at=int(ctx.get("connectedAt") or ctx.get("requestTimeEpoch") or time.time() * 1000),
        envelope=request.wants_envelope(
            svc.settings.envelope_all, event.get("queryStringParameters")
        ),
        ordered=request.wants_ordered(svc.settings.ordered_all, event.get("queryStringParameters")),
    )
    if conn.ordered and svc.ordered_queue is None:
        log.warning("rejecting %s: ?ordered=1, but SLIPWAY_ORDERED_QUEUE_URL is not set", conn.id)
        body = "Ordered delivery is not configured on this gateway (docs/ordered.md)"
        return Response(body=body, status_code=501, headers=_TEXT)
    try:
        reply = svc.backend.call(conn, [codec.Event("OPEN")])
    except BackendUnreachable as exc:
        log.error("rejecting %s: backend unreachable: %s", conn.id, exc)
        return Response(body="Bad Gateway: backend unreachable", status_code=502, headers=_TEXT)
    decided = d.read_response(reply.status, reply.headers, reply.body, opening=True)
    first, rest = decided[0], decided[1:]
    if isinstance(first, d.Reject):
        if first.problem is not None:
            log.warning(
                "rejecting %s with %d: %s (is TARGET_URL %s the backend's "
                "WebSocket-over-HTTP endpoint?)",
                conn.id,
                first.status,
                first.problem,
                svc.settings.target_url,
            )
        else:
            log.info("backend rejected %s with %d", conn.id, first.status)
        body = first.body.decode("utf-8", errors="replace")
        return Response(body=body, status_code=first.status, headers=first.headers)
    assert isinstance(first, d.Accept)

    conn, planned = answer.opening(
        conn,
        first,
        rest,
        event.get("queryStringParameters"),
        svc.settings.keys,
        time.time(),
        executor.rules(svc),
    )
    log.info(
        "connect %s from %s, query %r",
        conn.id,
        ctx.get("identity", {}).get("sourceIp"),
        conn.query,
    )
    # API Gateway refuses posts until $connect returns: the worker delivers the messages.
    executor.execute(svc, planned)
    return _accepted(first.headers)


def _accepted(headers: d.Headers) -> dict[str, Any]:
    """$connect's answer: a repeated header goes in multiValueHeaders."""
    accepted: dict[str, Any] = {"statusCode": 200}
    single = {k: v for k, v in headers.items() if isinstance(v, str)}
    multi = {k: v for k, v in headers.items() if isinstance(v, list)}
    if single:
        accepted["headers"] = single
    if multi:
        accepted["multiValueHeaders"] = multi
    return accepted


# -- $default ---------------------------------------------------------------


def message(event: dict[str, Any]) -> None:
    try:
        _message(event)
    except NotForwarded:
        raise  # the client gets API Gateway's error frame
    except Exception:
        log.exception("message handling failed")


class NotForwarded(Exception):
    """AWS failed before the message reached the backend: the invocation fails, so
    the client gets API Gateway's error frame, and may send it again."""


def _message(event: dict[str, Any]) -> None:
    svc = services.current()
    ctx = event["requestContext"]
    cid = ctx["connectionId"]
    try:
        conn = svc.store.get_connection(cid)
    except Exception as exc:  # after boto3's retries
        raise NotForwarded(f"connection {cid}: its record could not be read: {exc}") from exc
    if conn is None:
        log.warning("message from unknown connection %s: closing it", cid)
        executor.close_quietly(svc, svc.endpoint_for(ctx), cid)
        return
    if conn.detached:
        return
    body = event.get("body") or ""
    binary = bool(event.get("isBase64Encoded"))
    if conn.ordered:  # the forwarder reads the frame, in order (docs/ordered.md)
        executor.execute(svc, [_inbound(conn, ctx, request.frame_bytes(body, binary), binary)])
        return
    ws_event = transfers.event_of(svc, conn, body, binary)
    if ws_event is not None:  # else answered by the gateway itself
        executor.execute(svc, [fx.Forward(conn, (ws_event,))])


def _inbound(conn: Connection, ctx: dict[str, Any], raw: bytes, binary: bool) -> fx.Inbox:
    """`$default` of an ordered connection: the frame as it came, read later in order."""
    received = int(ctx.get("requestTimeEpoch") or time.time() * 1000)
    mid = str(ctx.get("messageId") or ctx.get("requestId") or f"{time.time_ns()}")
    return fx.Inbox(ordered.Inbound(conn.id, received, raw, binary), mid)


# -- $disconnect ------------------------------------------------------------


def disconnect(event: dict[str, Any]) -> None:
    try:
        _disconnect(event)
    except Exception:
        log.exception("disconnect handling failed")


def _disconnect(event: dict[str, Any]) -> None:
    svc = services.current()
    ctx = event["requestContext"]
    cid = ctx["connectionId"]
    status, reason = request.disconnect_status(ctx)
    log.info("disconnect %s, code %s %r", cid, status, reason)
    received = int(ctx.get("requestTimeEpoch") or 0)
    executor.execute(svc, [fx.Ended(cid, status, reason, received)])
