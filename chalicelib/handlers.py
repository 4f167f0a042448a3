"""connect / message / disconnect: API Gateway event -> backend -> decisions -> adapters."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from chalice.app import Response

from . import farewell, ordered, outbound, resume, services, transfers
from .aws.queue import Message
from .aws.sockets import SocketError
from .backend import BackendUnreachable
from .grip import codec, history, jobs, meta, request
from .grip import decisions as d
from .grip import keepalive as ka
from .grip.errors import (
    Gone,
    TooLarge,
    TooManyChannels,
    TooManyJoins,
    TooManyTimeouts,
    UnknownConnection,
)
from .grip.limits import MAX_INLINE
from .grip.model import Connection
from .grip.payload import Payload

log = logging.getLogger("slipway.handlers")
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


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

    conn.grip_prefix = first.grip_prefix
    _positions(conn, event.get("queryStringParameters"), svc.settings.keys)
    # What can be folded into the record is written with it, in one put.
    later: list[d.Decision] = []
    for decision in rest:
        if isinstance(decision, d.SetMeta):
            _meta_in_memory(conn, decision)
        elif isinstance(decision, d.Detach):
            conn.detached = True
        else:
            later.append(decision)
    svc.store.put_connection(conn)
    log.info(
        "connect %s from %s, query %r",
        conn.id,
        ctx.get("identity", {}).get("sourceIp"),
        conn.query,
    )

    # API Gateway refuses posts until $connect returns: the worker delivers these.
    _defer(svc, conn, later, opened=False)
    return _accepted(first.headers)


def _positions(conn: Connection, query: dict[str, str] | None, secret: tuple[str, ...]) -> None:
    """What a client that resumes presents (docs/resume.md): `resume=` opts an
    envelope connection in to positions, and may hold the ones it comes back with,
    each with the floor token of its first subscribe to the channel."""
    if not query or history.RESUME_PARAM not in query:
        return
    conn.resume = conn.envelope
    try:
        presented = history.read_resume(query[history.RESUME_PARAM])
    except history.ResumeError as exc:
        log.warning("connection %s: positions ignored: %s", conn.id, exc)
        return
    conn.since = presented.positions
    conn.floors = history.verified_floors(secret, presented.positions, presented.floors)


def _accepted(headers: d.Headers) -> dict[str, Any]:
    """$connect's answer: a repeated header goes in multiValueHeaders."""
    answer: dict[str, Any] = {"statusCode": 200}
    single = {k: v for k, v in headers.items() if isinstance(v, str)}
    multi = {k: v for k, v in headers.items() if isinstance(v, list)}
    if single:
        answer["headers"] = single
    if multi:
        answer["multiValueHeaders"] = multi
    return answer


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
        outbound.close_quietly(svc, svc.endpoint_for(ctx), cid)
        return
    if conn.detached:
        return
    if conn.ordered:  # the forwarder reads the frame, in order (docs/ordered.md)
        ordered.enqueue_message(svc, conn, event)
        return
    body = event.get("body") or ""
    binary = bool(event.get("isBase64Encoded"))
    if conn.envelope:
        ws_event = transfers.incoming(svc, conn, body, binary)
        if ws_event is None:
            return  # answered by the gateway itself
    elif binary:
        ws_event = codec.Event("BINARY", base64.b64decode(body))
    else:
        ws_event = codec.Event("TEXT", body.encode("utf-8"))
    handle_events(svc, conn, [ws_event])


def handle_events(svc: services.Services, conn: Connection, events: list[codec.Event]) -> None:
    """Forward events of an open connection and carry out the backend's answer."""
    try:
        reply = svc.backend.call(conn, events)
    except BackendUnreachable as exc:
        log.error("closing %s: backend unreachable: %s", conn.id, exc)
        outbound.close_quietly(svc, conn.endpoint, conn.id)
        return
    try:
        decided = d.read_response(
            reply.status, reply.headers, reply.body, opening=False, grip_prefix=conn.grip_prefix
        )
    except d.ResponseError as exc:
        log.error("closing %s: %s; body starts %r", conn.id, exc, reply.body[:200])
        outbound.close_quietly(svc, conn.endpoint, conn.id)
        return
    apply(svc, conn, decided)


def apply(svc: services.Services, conn: Connection, decided: list[d.Decision]) -> None:
    for index, decision in enumerate(decided):
        if isinstance(decision, d.Send):
            try:
                outbound.send(svc, conn, decision.payload)
            except SocketError as exc:
                # Throttled or failing after the retries: the worker delivers this and
                # the rest of the answer, with SQS's retries, rather than lose them.
                log.warning("connection %s: reply handed to the worker: %s", conn.id, exc)
                _defer(svc, conn, decided[index:])
                return
            except TooLarge as exc:
                log.warning("connection %s: message not sent: %s", conn.id, exc)
            except Gone:
                # The client left while the backend answered: its $disconnect is on
                # the way and tells the backend how it closed.
                log.info("connection %s is gone", conn.id)
                return
        elif isinstance(decision, d.Close | d.Disconnect):
            # @connections DELETE carries no close code: the client sees 1000 or 1005.
            outbound.close_quietly(svc, conn.endpoint, conn.id)
            return
        else:
            try:
                _apply_state(svc, conn, decision)
            except UnknownConnection:
                log.info("connection %s vanished while applying decisions", conn.id)
                return


def _defer(
    svc: services.Services, conn: Connection, decided: list[d.Decision], opened: bool = True
) -> None:
    """Queue a backend's answer's messages (and close) as a deliver job, applying
    its other decisions here, as $connect does with an OPEN response's (`opened`
    False: the connection's $connect has not returned yet)."""
    deferred: list[Payload] = []
    close = False
    for decision in decided:
        if isinstance(decision, d.Send):
            deferred.append(decision.payload)
        elif isinstance(decision, d.Close | d.Disconnect):
            close = True
            break
        else:
            try:
                _apply_state(svc, conn, decision, opened)
            except UnknownConnection:
                return
    if not deferred and not close:
        return
    deadline = int(time.time()) + svc.settings.open_delivery_deadline
    job = jobs.Deliver(conn.id, conn.endpoint, conn.envelope, tuple(deferred), close, deadline)
    svc.queue.send(Message(jobs.encode(job), jobs.group(job)))


def _apply_state(
    svc: services.Services, conn: Connection, decision: d.Decision, opened: bool = True
) -> None:
    store = svc.store
    if isinstance(decision, d.Subscribe):
        try:
            resume.subscribe(svc, conn, decision.channel, decision.prev_id, opened)
            log.info("subscribe %s to %r", conn.id, decision.channel)
        except (TooManyChannels, TooManyJoins) as exc:
            log.warning("subscribe %r refused: %s", decision.channel, exc)
    elif isinstance(decision, d.Unsubscribe):
        store.unsubscribe(conn.id, decision.channel)
        log.info("unsubscribe %s from %r", conn.id, decision.channel)
    elif isinstance(decision, d.SetMeta):
        if _meta_in_memory(conn, decision):
            store.set_meta(conn.id, decision.name, decision.value)
    elif isinstance(decision, d.Detach):
        store.set_detached(conn.id)
    elif isinstance(decision, d.KeepAlive):
        _keep_alive(svc, conn, decision)
    elif isinstance(decision, d.Dropped):
        log.info("connection %s: %s", conn.id, decision.reason)


def _meta_in_memory(conn: Connection, decision: d.SetMeta) -> bool:
    """Apply a backend's meta change to `conn`; False (and logged, the meta as it
    was) if the connection's meta would exceed its limits (grip/meta.py)."""
    after = meta.applied(conn.meta, {decision.name: decision.value})
    problem = meta.size_problem(after)
    if problem is not None:
        log.warning("connection %s: meta %r not set: %s", conn.id, decision.name, problem)
        return False
    conn.meta.clear()
    conn.meta.update(after)
    return True


def _keep_alive(svc: services.Services, conn: Connection, decision: d.KeepAlive) -> None:
    """Replace the connection's keep-alive (docs/keepalive.md): a new one, or none."""
    settings = None
    if decision.control_frame is not None:
        log.warning(
            "connection %s: keep-alive of message-type %s turned off: @connections cannot "
            "send ping or pong frames (send text or binary content instead)",
            conn.id,
            decision.control_frame,
        )
    elif decision.content is not None:
        payload = Payload.of_bytes(decision.content, decision.binary)
        if not payload.at_most(MAX_INLINE):
            log.warning(
                "connection %s: keep-alive refused: its content is over %d bytes",
                conn.id,
                MAX_INLINE,
            )
            return
        settings = ka.started(time.time(), payload, decision.timeout, decision.mode)
    try:
        svc.store.set_keep_alive(conn.id, settings)
    except TooManyTimeouts as exc:
        log.warning("connection %s: keep-alive refused: %s", conn.id, exc)


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
    log.info(
        "disconnect %s, code %s %r",
        cid,
        ctx.get("disconnectStatusCode"),
        ctx.get("disconnectReason") or "",
    )
    if svc.settings.ordered_queue_url:
        # An ordered connection's CLOSE waits for its messages still queued, and the
        # forwarder needs its row until then.
        kept = svc.store.get_connection(cid)
        if kept is not None and kept.ordered:
            ordered.enqueue_end(svc, cid, ctx)
            return
    status = ctx.get("disconnectStatusCode")
    reason = ctx.get("disconnectReason") or ""
    farewell.ended(svc, cid, int(status) if status is not None else None, reason)
