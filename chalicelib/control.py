"""The control API: validate, authorize, then enqueue or act on one connection."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from chalice.app import Response

from . import fanout, handlers, services
from .aws.queue import QueueError
from .aws.sockets import Gone
from .aws.store import Connection
from .grip.auth import AuthError, authorize
from .grip.envelope import MAX_POST
from .transfers import Outgoing

log = logging.getLogger("slipway.control")

Handler = Callable[[services.Services], Response]


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


def guarded(headers: Mapping[str, str], action: Handler) -> Response:
    """Authorize, then run `action`; every failure becomes a JSON error, never a 500 trace."""
    # marshmallow's import is paid only by the control routes, never by the ws handlers.
    from .grip.publish import PublishError

    try:
        svc = services.current()
        authorize(headers.get("authorization"), svc.settings.key, svc.settings.control_iss)
        return action(svc)
    except AuthError as exc:
        extra = {"WWW-Authenticate": 'Bearer realm="slipway"'} if exc.status == 401 else {}
        return Response(
            body={"error": exc.reason},
            status_code=exc.status,
            headers={"Content-Type": "application/json", **extra},
        )
    except PublishError as exc:
        return _json(400, {"error": "invalid request body", "fields": exc.fields})
    except fanout.TooLarge as exc:
        return _json(413, {"error": str(exc)})
    except QueueError as exc:
        log.error("publish not queued: %s", exc)
        return _json(503, {"error": f"not queued, retry: {exc}"})
    except Exception:
        log.exception("control request failed")
        return _json(500, {"error": "internal error in the gateway"})


def publish(headers: Mapping[str, str], body: bytes | None) -> Response:
    def run(svc: services.Services) -> Response:
        from .grip.publish import parse_publish

        items = parse_publish(body)
        svc.queue.send_all([fanout.publish_message(svc, item.to_message()) for item in items])
        result: dict[str, Any] = {"message": "Published"}
        oversize = [k for k, item in enumerate(items) if len(item.content) > MAX_POST]
        if oversize:
            # Raw connections cannot take them: the worker skips those and logs the count.
            result["too_large_for_raw"] = oversize
            result["warning"] = (
                f"items {oversize} are over API Gateway's {MAX_POST} bytes: only "
                "connections in envelope mode (?envelope=1) receive them"
            )
        return _json(200, result)

    return guarded(headers, run)


def _unknown(cid: str) -> Response:
    return _json(404, {"error": f"no connection {cid}"})


def _on_connection(
    headers: Mapping[str, str],
    cid: str,
    act: Callable[[services.Services, Connection], Response],
) -> Response:
    """Run `act` on a stored connection: 404 if there is none, or if @connections
    finds it gone (then it is forgotten, and the backend told)."""

    def run(svc: services.Services) -> Response:
        conn = svc.store.get_connection(cid)
        if conn is None:
            return _unknown(cid)
        try:
            return act(svc, conn)
        except Gone:
            handlers.forget(svc, cid)
            return _unknown(cid)

    return guarded(headers, run)


def send_to(headers: Mapping[str, str], cid: str, body: bytes | None) -> Response:
    def act(svc: services.Services, conn: Connection) -> Response:
        from .grip.publish import parse_send

        content, binary = parse_send(body)
        post = Outgoing(svc, content if binary else content.decode("utf-8")).to(conn.envelope)
        if post is None:
            why = (
                "it needs SLIPWAY_BUCKET, and none is configured"
                if conn.envelope
                else "the connection is not in envelope mode (?envelope=1)"
            )
            return _json(413, {"error": f"message over API Gateway's {MAX_POST} bytes: {why}"})
        svc.sockets.send(conn.endpoint, cid, post)
        return _json(200, {"message": "Sent"})

    return _on_connection(headers, cid, act)


def close(headers: Mapping[str, str], cid: str, body: bytes | None) -> Response:
    def act(svc: services.Services, conn: Connection) -> Response:
        from .grip.publish import parse_close

        code, reason = parse_close(body)
        if code is not None:
            # @connections DELETE carries no code: the backend's CLOSE gets it from here.
            svc.store.set_close(cid, code, reason)
        svc.sockets.close(conn.endpoint, cid)
        return _json(200, {"message": "Closing"})

    return _on_connection(headers, cid, act)


def _iso(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def inspect(headers: Mapping[str, str], cid: str) -> Response:
    def act(svc: services.Services, conn: Connection) -> Response:
        info = svc.sockets.info(conn.endpoint, cid)
        return _json(
            200,
            {
                "id": cid,
                "connected": True,
                "connected_at": _iso(conn.created_at),
                "last_active_at": info.get("lastActiveAt"),
                "source_ip": info.get("identity", {}).get("sourceIp"),
                "meta": conn.meta,
                "channels": sorted(conn.channels),
                "grip": conn.grip_prefix is not None,
                "detached": conn.detached,
                "envelope": conn.envelope,
            },
        )

    return _on_connection(headers, cid, act)
