"""The control API: authorize, validate, ask the core, then execute: a publish's
jobs queued, or one connection acted on."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from chalice.app import Response

from . import executor, metrics, services, uploads
from .grip import answer, delivery, history, introspection, plan
from .grip import effects as fx
from .grip.auth import authorize
from .grip.errors import BadRequest, Gone, NotFound, SlipwayError, UnknownConnection
from .grip.limits import MAX_POST
from .grip.metrics import PUBLISHES
from .grip.model import Connection
from .grip.publish import ContentRef, parse_close, parse_items, parse_send, skipped_warning

log = logging.getLogger("slipway.control")

Handler = Callable[[services.Services], Response]


def _json(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        body=body,
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def guarded(headers: Mapping[str, str], action: Handler) -> Response:
    """Authorize, then run `action`; every failure becomes a JSON error, never a 500 trace."""
    try:
        svc = services.current()
        authorize(headers.get("authorization"), svc.settings.keys, svc.settings.control_iss)
        return action(svc)
    except SlipwayError as exc:
        if exc.status >= 500:
            log.error("control request failed: %s", exc)
        return _json(exc.status, exc.body(), exc.headers())
    except Exception:
        log.exception("control request failed")
        return _json(500, {"error": "internal error in the gateway"})


def publish(headers: Mapping[str, str], body: bytes | None) -> Response:
    def run(svc: services.Services) -> Response:
        items, skipped = parse_items(body)
        items, refs_oversize = uploads.check_items(svc, items, skipped)  # 400 before queueing
        limit, bucket = svc.settings.queue_message_limit, svc.blobs is not None
        planned = [
            effect
            for item in items
            for effect in delivery.queued(item.to_job(), limit, bucket, uuid.uuid4().hex)
        ]
        executor.execute(svc, delivery.objects_first(planned), strict=True)
        metrics.record(PUBLISHES, len(items))
        result: dict[str, Any] = {"message": "Published"}
        warnings = []
        if skipped:
            result["skipped"] = list(skipped)
            warnings.append(skipped_warning(skipped))
        oversize = [
            k
            for k, item in enumerate(items)
            if k in refs_oversize
            or item.payload is not None
            and isinstance(plan.plan(item.payload, False, True), plan.Undeliverable)
        ]
        if oversize:
            # Raw connections cannot take them: the worker skips those and logs the count.
            result["too_large_for_raw"] = oversize
            warnings.append(
                f"items {oversize} are over API Gateway's {MAX_POST} bytes: only "
                "connections in envelope mode (?envelope=1) receive them"
            )
        if warnings:
            result["warning"] = " ".join(warnings)
        return _json(200, result)

    return guarded(headers, run)


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
            raise UnknownConnection(cid)
        try:
            return act(svc, conn)
        except Gone:
            executor.execute(svc, [fx.Forget(cid)])
            raise

    return guarded(headers, run)


def send_to(headers: Mapping[str, str], cid: str, body: bytes | None) -> Response:
    def act(svc: services.Services, conn: Connection) -> Response:
        parsed = parse_send(body)
        if isinstance(parsed, ContentRef):  # a backend's upload: checked, 400 if not good
            message = fx.of_action(uploads.check_send(svc, parsed).action)
        else:
            message = fx.Message(parsed)
        # TooLarge (413) says why not.
        executor.execute(svc, [fx.Send(fx.member_of(conn), message)], strict=True)
        return _json(200, {"message": "Sent"})

    return _on_connection(headers, cid, act)


def close(headers: Mapping[str, str], cid: str, body: bytes | None) -> Response:
    def act(svc: services.Services, conn: Connection) -> Response:
        code, reason = parse_close(body)
        planned: list[fx.Effect] = []
        if code is not None:
            # @connections DELETE carries no code: the backend's CLOSE gets it from here.
            planned.append(fx.SetClose(cid, code, reason))
        planned.append(fx.Close(fx.member_of(conn)))
        executor.execute(svc, planned, strict=True)
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


# -- channels and connections (issue 15) ------------------------------------------


def _listing(conns: list[Connection]) -> list[dict[str, Any]]:
    return [{"id": c.id, "meta": c.meta, "connected_at": _iso(c.created_at)} for c in conns]


def channel(headers: Mapping[str, str], name: str) -> Response:
    """`GET /channels/{channel}`: its subscriber count: one BatchGetItem of the counter
    shards (COUNT_SHARDS), whatever the size."""

    def run(svc: services.Services) -> Response:
        name_ = introspection.channel_name(name)
        return _json(200, {"channel": name_, "subscribers": svc.store.count(name_)})

    return guarded(headers, run)


def channel_connections(
    headers: Mapping[str, str], name: str, params: Mapping[str, str] | None
) -> Response:
    """`GET /channels/{channel}/connections`: its members, a page at a time, by id."""

    def run(svc: services.Services) -> Response:
        name_ = introspection.channel_name(name)
        limit = introspection.page_limit((params or {}).get("limit"))
        _, after = introspection.decode_cursor((params or {}).get("cursor"))
        members, last = svc.store.members(name_, start=after, limit=limit)
        found = svc.store.connections([m.connection_id for m in members])
        listed = [found[m.connection_id] for m in members if m.connection_id in found]
        cursor = introspection.encode_cursor(0, last) if last is not None else None
        return _json(200, {"channel": name_, "connections": _listing(listed), "cursor": cursor})

    return guarded(headers, run)


def channel_items(
    headers: Mapping[str, str], name: str, params: Mapping[str, str] | None
) -> Response:
    """`GET /channels/{channel}/items`: its history after an offset or an item id,
    oldest first, a page at a time (docs/resume.md)."""

    def run(svc: services.Services) -> Response:
        name_ = introspection.channel_name(name)
        query = history.items_query(dict(params or {}))
        if not svc.settings.history:
            raise NotFound("this gateway keeps no history (SLIPWAY_HISTORY_SECONDS=0)")
        head = svc.store.history_head(name_)
        if head is None:
            return _json(
                200, {"channel": name_, "epoch": None, "top": 0, "items": [], "next": None}
            )
        after = query.after
        if query.after_id is not None:
            found = svc.store.history_offset_of(name_, head.epoch, query.after_id)
            if found is None:
                raise NotFound(f"no item with id {query.after_id!r} in the history of {name_!r}")
            after = found
        entries = svc.store.history(name_, head.epoch, after, head.top, limit=query.limit)
        items = [
            history.listing(e, _content_url(svc, e.stored) if e.stored is not None else None)
            for e in entries
        ]
        more = bool(entries) and entries[-1].offset < head.top and len(entries) == query.limit
        body = {
            "channel": name_,
            "epoch": head.epoch,
            "top": head.top,
            "items": items,
            # Offsets after `after` that the history no longer holds (expired).
            "missing": max(0, (entries[0].offset if entries else head.top + 1) - after - 1),
            "next": str(entries[-1].offset) if more else None,
        }
        return _json(200, body)

    return guarded(headers, run)


def _content_url(svc: services.Services, key: str) -> str | None:
    blobs = svc.blobs
    return None if blobs is None else blobs.download_url(key, svc.settings.download_expiry)


def all_connections(headers: Mapping[str, str], params: Mapping[str, str] | None) -> Response:
    """`GET /connections`: every open connection, a page at a time (sharded index rows)."""

    def run(svc: services.Services) -> Response:
        limit = introspection.page_limit((params or {}).get("limit"))
        shard, after = introspection.decode_cursor(
            (params or {}).get("cursor"), introspection.CONNECTION_SHARDS
        )
        ids, nxt = svc.store.connection_ids(shard, after, limit)
        found = svc.store.connections(ids)
        listed = [found[cid] for cid in ids if cid in found]
        cursor = introspection.encode_cursor(*nxt) if nxt is not None else None
        return _json(200, {"connections": _listing(listed), "cursor": cursor})

    return guarded(headers, run)


def subscribe(headers: Mapping[str, str], cid: str, name: str) -> Response:
    """`PUT /connections/{id}/channels/{channel}`: idempotent; 409 over the channel limit."""

    def act(svc: services.Services, conn: Connection) -> Response:
        name_ = introspection.channel_name(name)
        planned = answer.subscription(conn, name_, None, False, time.time(), executor.rules(svc))
        executor.execute(svc, [planned], strict=True)
        log.info("control: subscribe %s to %r", cid, name_)
        return _json(200, {"message": "Subscribed", "channel": name_})

    return _on_connection(headers, cid, act)


def unsubscribe(headers: Mapping[str, str], cid: str, name: str) -> Response:
    """`DELETE /connections/{id}/channels/{channel}`: idempotent."""

    def act(svc: services.Services, conn: Connection) -> Response:
        name_ = introspection.channel_name(name)
        executor.execute(svc, [fx.Unsubscribe(cid, name_)], strict=True)
        log.info("control: unsubscribe %s from %r", cid, name_)
        return _json(200, {"message": "Unsubscribed", "channel": name_})

    return _on_connection(headers, cid, act)


def set_meta(headers: Mapping[str, str], cid: str, body: bytes | None) -> Response:
    """`PATCH /connections/{id}/meta` with `{"name": "value" | null}`: the meta after."""

    def act(svc: services.Services, conn: Connection) -> Response:
        try:
            data = json.loads(body or b"")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadRequest({"body": ["not JSON"]}) from None
        # Checked against the meta read just now: two PATCHes at once may together
        # pass the limits by one PATCH's worth (docs/limits.md).
        meta = svc.store.update_meta(cid, introspection.meta_changes(data, conn.meta))
        return _json(200, {"id": cid, "meta": meta})

    return _on_connection(headers, cid, act)


# -- large messages by reference (issue 19) ---------------------------------------


def upload(headers: Mapping[str, str]) -> Response:
    """`POST /uploads`: a presigned PUT for one message, and its ref for
    `content-ref` / `content-bin-ref` (docs/control-api.md#large-messages)."""
    return guarded(headers, lambda svc: _json(200, uploads.issue(svc)))


# -- the API's own answers ------------------------------------------------------


def index(routes: Mapping[str, Mapping[str, Any]]) -> Response:
    """`GET /`: the routes, so a lost caller finds its way; no key needed."""
    listed = sorted(
        f"{method} {path}" for path, methods in routes.items() for method in methods if path != "/"
    )
    return _json(
        200,
        {
            "service": "slipway control API",
            "routes": listed,
            "auth": "Authorization: Bearer <key or JWT signed with it>",
            "docs": "docs/control-api.md",
        },
    )


def json_errors(response: Response) -> Response:
    """Chalice's own error bodies (`{"Code": ..., "Message": ...}`: 405, 415, 400
    and 500) as `{"error": ...}`, like every other answer of the control API."""
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and set(body) == {"Code", "Message"}:
        response.body = {"error": body["Message"]}
        response.headers = {**(response.headers or {}), "Content-Type": "application/json"}
    return response
