"""connect / message / disconnect: API Gateway event -> backend -> decisions -> adapters."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any
from urllib.parse import urlencode

from chalice.app import Response

from . import services, transfers
from .aws.sockets import Gone
from .aws.store import Connection, TooManyChannels, UnknownConnection
from .backend import BackendResponse, BackendUnreachable
from .grip import codec, request, token
from .grip import decisions as d
from .grip.frames import to_frame

log = logging.getLogger("slipway.handlers")

# Close codes a client can really send; 1005 means "no code", 1006 "no close frame".
_NO_CODE = 1005
_ABNORMAL = {1006, 1015}


def call_backend(
    svc: services.Services, conn: Connection, events: list[codec.Event], retry: bool = True
) -> BackendResponse:
    key = svc.settings.key
    headers = request.backend_headers(
        conn.headers, conn.id, conn.meta, token.grip_sig(key) if key else None
    )
    return svc.backend.post(conn.query, headers, codec.encode(events), retry=retry)


def _query_string(event: dict[str, Any]) -> str:
    multi = event.get("multiValueQueryStringParameters")
    if multi:
        return urlencode([(k, v) for k, vs in multi.items() for v in vs])
    return urlencode(event.get("queryStringParameters") or {})


# -- $connect ---------------------------------------------------------------


def connect(event: dict[str, Any]) -> Response | dict[str, Any]:
    try:
        return _connect(event)
    except Exception:
        log.exception("connect failed")
        return Response(body="Internal error in the gateway", status_code=500)


def _connect(event: dict[str, Any]) -> Response | dict[str, Any]:
    svc = services.current()
    ctx = event["requestContext"]
    conn = Connection(
        id=ctx["connectionId"],
        endpoint=svc.endpoint_for(ctx),
        headers=request.handshake_headers(event.get("multiValueHeaders"), event.get("headers")),
        query=_query_string(event),
        created_at=int(ctx.get("connectedAt") or ctx.get("requestTimeEpoch") or time.time() * 1000),
        envelope=transfers.wants_envelope(svc.settings.envelope_all, event),
    )
    try:
        reply = call_backend(svc, conn, [codec.Event("OPEN")])
    except BackendUnreachable as exc:
        log.error("rejecting %s: backend unreachable: %s", conn.id, exc)
        return Response(body="Bad Gateway: backend unreachable", status_code=502)
    decided = d.read_response(reply.status, reply.headers, reply.body, opening=True)
    first, rest = decided[0], decided[1:]
    if isinstance(first, d.Reject):
        log.info("backend rejected %s with %d", conn.id, first.status)
        body = first.body.decode("utf-8", errors="replace")
        return Response(body=body, status_code=first.status, headers=first.headers)
    assert isinstance(first, d.Accept)

    conn.grip_prefix = first.grip_prefix
    # What can be folded into the record is written with it, in one put.
    later: list[d.Decision] = []
    for decision in rest:
        if isinstance(decision, d.SetMeta):
            if decision.value:
                conn.meta[decision.name] = decision.value
            else:
                conn.meta.pop(decision.name, None)
        elif isinstance(decision, d.Detach):
            conn.detached = True
        else:
            later.append(decision)
    svc.store.put_connection(conn)

    deferred: list[dict[str, str]] = []
    close = False
    for decision in later:
        if isinstance(decision, d.Send):
            deferred.append(to_frame(decision.content, decision.binary))
        elif isinstance(decision, d.Close | d.Disconnect):
            close = True
            break
        else:
            _apply_state(svc, conn, decision)
    if deferred or close:
        # API Gateway refuses posts until $connect returns: the worker delivers these.
        svc.queue.send(
            {
                "kind": "deliver",
                "connection": conn.id,
                "endpoint": conn.endpoint,
                "frames": deferred,
                "envelope": conn.envelope,
                "close": close,
                "deadline": int(time.time()) + svc.settings.open_delivery_deadline,
            },
            group=f"conn#{conn.id}",
        )
    return {"statusCode": 200, "headers": first.headers} if first.headers else {"statusCode": 200}


# -- $default ---------------------------------------------------------------


def message(event: dict[str, Any]) -> None:
    try:
        _message(event)
    except Exception:
        log.exception("message handling failed")


def _message(event: dict[str, Any]) -> None:
    svc = services.current()
    ctx = event["requestContext"]
    cid = ctx["connectionId"]
    conn = svc.store.get_connection(cid)
    if conn is None:
        log.warning("message from unknown connection %s: closing it", cid)
        _close_quietly(svc, svc.endpoint_for(ctx), cid)
        return
    if conn.detached:
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
        reply = call_backend(svc, conn, events)
    except BackendUnreachable as exc:
        log.error("closing %s: backend unreachable: %s", conn.id, exc)
        _close_quietly(svc, conn.endpoint, conn.id)
        return
    try:
        decided = d.read_response(
            reply.status, reply.headers, reply.body, opening=False, grip_prefix=conn.grip_prefix
        )
    except d.ResponseError as exc:
        log.error("closing %s: %s; body starts %r", conn.id, exc, reply.body[:200])
        _close_quietly(svc, conn.endpoint, conn.id)
        return
    apply(svc, conn, decided)


def apply(svc: services.Services, conn: Connection, decided: list[d.Decision]) -> None:
    for decision in decided:
        if isinstance(decision, d.Send):
            content = decision.content
            data = content if decision.binary else content.decode("utf-8", "replace")
            post = transfers.Outgoing(svc, data).to(conn.envelope)
            if post is None:
                log.warning("connection %s: message too large for it, not sent", conn.id)
                continue
            try:
                svc.sockets.send(conn.endpoint, conn.id, post)
            except Gone:
                # The client left while the backend answered: its $disconnect is on
                # the way and tells the backend how it closed.
                log.info("connection %s is gone", conn.id)
                return
        elif isinstance(decision, d.Close | d.Disconnect):
            # @connections DELETE carries no close code: the client sees 1000/1005.
            _close_quietly(svc, conn.endpoint, conn.id)
            return
        else:
            try:
                _apply_state(svc, conn, decision)
            except UnknownConnection:
                log.info("connection %s vanished while applying decisions", conn.id)
                return


def _apply_state(svc: services.Services, conn: Connection, decision: d.Decision) -> None:
    store = svc.store
    if isinstance(decision, d.Subscribe):
        try:
            store.subscribe(conn.id, decision.channel, conn.endpoint, conn.envelope)
        except TooManyChannels as exc:
            log.warning("subscribe %r refused: %s", decision.channel, exc)
    elif isinstance(decision, d.Unsubscribe):
        store.unsubscribe(conn.id, decision.channel)
    elif isinstance(decision, d.SetMeta):
        store.set_meta(conn.id, decision.name, decision.value)
    elif isinstance(decision, d.Detach):
        store.set_detached(conn.id)
    elif isinstance(decision, d.KeepAlive):
        settings = None
        if decision.content is not None:
            settings = {
                **to_frame(decision.content, decision.binary),
                "timeout": decision.timeout,
                "mode": decision.mode,
            }
        store.set_keep_alive(conn.id, settings)
    elif isinstance(decision, d.Dropped):
        log.info("connection %s: %s", conn.id, decision.reason)


def _close_quietly(svc: services.Services, endpoint: str, cid: str) -> None:
    try:
        svc.sockets.close(endpoint, cid)
    except Gone:
        pass  # closed already: $disconnect cleans up


def forget(svc: services.Services, cid: str) -> None:
    """A post found the connection gone (410) outside any event of its own: remove
    its rows now and tell the backend, which may otherwise never hear of it."""
    conn = svc.store.remove_connection(cid)
    if conn is not None and not conn.detached:
        _farewell(svc, conn, codec.Event("DISCONNECT"))


def _farewell(svc: services.Services, conn: Connection, event: codec.Event) -> None:
    try:
        # The client is gone: one attempt, and what the backend answers has no one to reach.
        call_backend(svc, conn, [event], retry=False)
    except BackendUnreachable as exc:
        log.warning("could not tell the backend that %s closed: %s", conn.id, exc)


# -- $disconnect ------------------------------------------------------------


def disconnect(event: dict[str, Any]) -> None:
    try:
        _disconnect(event)
    except Exception:
        log.exception("disconnect handling failed")


def closing_event(status: int | None, reason: str) -> codec.Event:
    """CLOSE with the client's code when API Gateway reports one, DISCONNECT otherwise."""
    if status is None or status in _ABNORMAL or not 1000 <= status <= 4999:
        return codec.Event("DISCONNECT")
    if status == _NO_CODE:
        return codec.Event("CLOSE")
    return codec.Event("CLOSE", codec.close_content(status, reason))


def _disconnect(event: dict[str, Any]) -> None:
    svc = services.current()
    ctx = event["requestContext"]
    cid = ctx["connectionId"]
    conn = svc.store.remove_connection(cid)
    if conn is None or conn.detached:
        return
    if conn.close_code is not None:  # closed through the control API, with a code
        ws_event = closing_event(conn.close_code, conn.close_reason)
    else:
        status = ctx.get("disconnectStatusCode")
        reason = ctx.get("disconnectReason") or ""
        ws_event = closing_event(int(status) if status is not None else None, reason)
    _farewell(svc, conn, ws_event)
