"""The control API client: publish to channels, act on one connection (docs/control-api.md).

    control = ControlClient("https://abc.execute-api.eu-west-1.amazonaws.com/api", KEY)
    control.publish("room", "hello")
    control.send(connection_id, "just for you")
    control.close(connection_id, 4000, "bye")
    control.subscribe(connection_id, "room"); control.subscribers("room")  # 1
    for conn in control.iter_channel_connections("room"): print(conn.id, conn.meta)
    control.publish("room", twenty_megabytes)  # uploaded to S3, published by reference

Synchronous, over `requests`; from asyncio code call it with `asyncio.to_thread`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from . import token
from .errors import ControlError, UnknownConnection

MAX_ITEMS_PER_REQUEST = 100  # what the gateway accepts in one publish
# Content over this many bytes goes by reference (POST /uploads, a PUT to S3, then
# `content-ref`): the size over which the gateway would store it in S3 anyway (a
# queue message is at most 256 KB), far under AWS's request limits.
UPLOAD_OVER = 256 * 1024
# One request's body stays under this: Lambda takes an event of at most 6 MB.
REQUEST_BUDGET = 5 * 1024 * 1024
TOKEN_LIFETIME = 3600
_PATH_SEGMENT_SAFE = "!$&'()*+,;=:@"  # RFC 3986 sub-delims, ":" and "@": literal in a segment

__all__ = [
    "ConnectionPage",
    "ConnectionSummary",
    "ControlClient",
    "ControlError",
    "PublishItem",
    "PublishResult",
    "UnknownConnection",
]


@dataclass(frozen=True)
class ConnectionSummary:
    """One connection of a listing: its id, meta, and when it connected (ISO 8601)."""

    id: str
    meta: dict[str, str]
    connected_at: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnectionSummary:
        meta = data.get("meta")
        return cls(
            str(data["id"]),
            {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {},
            str(data.get("connected_at", "")),
        )


@dataclass(frozen=True)
class ConnectionPage:
    """One page of a listing; `cursor` fetches the next (None: this was the last)."""

    connections: list[ConnectionSummary]
    cursor: str | None


@dataclass(frozen=True)
class PublishItem:
    """One item of a publish: a message to every subscriber of `channel`
    (exactly one of `text` or `binary`), or, with `close=True`, closing them all."""

    channel: str
    text: str | None = None
    binary: bytes | None = None
    close: bool = False
    code: int | None = None
    reason: str | None = None
    id: str | None = None
    prev_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.channel, str) or not self.channel:
            raise ValueError("a publish item needs a non-empty channel")
        if self.close:
            if self.text is not None or self.binary is not None:
                raise ValueError("a close item carries no content")
        elif (self.text is None) == (self.binary is None):
            raise ValueError("a publish item needs exactly one of text or binary")

    @property
    def size(self) -> int:
        """Bytes of content (0 for a close)."""
        if self.binary is not None:
            return len(self.binary)
        return len(self.text.encode("utf-8")) if self.text is not None else 0

    def to_json(self, ref: str | None = None) -> dict[str, Any]:
        """The item as docs/control-api.md spells it:
        `{"channel", "formats": {"ws-message": ...}}`; with `ref`, its content is
        the upload named so (`content-ref` or `content-bin-ref`)."""
        message: dict[str, Any]
        if self.close:
            message = {"action": "close"}
            if self.code is not None:
                message["code"] = self.code
            if self.reason is not None:
                message["reason"] = self.reason
        elif ref is not None:
            message = {"content-bin-ref" if self.binary is not None else "content-ref": ref}
        elif self.binary is not None:
            message = {"content-bin": base64.b64encode(self.binary).decode("ascii")}
        else:
            message = {"content": self.text}
        item: dict[str, Any] = {"channel": self.channel}
        if self.id is not None:
            item["id"] = self.id
        if self.prev_id is not None:
            item["prev-id"] = self.prev_id
        item["formats"] = {"ws-message": message}
        return item


@dataclass(frozen=True)
class PublishResult:
    """What the gateway answered a publish. Every publish is queued (or raises
    `ControlError`); these say what its subscribers will not all get. Indexes
    count the items as you passed them, across the requests of a `publish_many`.

    - `skipped`: items not published at all: no `ws-message` format (a typo such
      as `ws_message` in a dict item, or another format only);
    - `too_large_for_raw`: items over API Gateway's 128 KB, which only connections
      in envelope mode receive (raw connections are skipped);
    - `warnings`: the gateway's own words, one per request that had any (their
      indexes count within that request).
    """

    skipped: tuple[int, ...] = ()
    too_large_for_raw: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Every item published, to raw and envelope connections alike."""
        return not self.skipped and not self.too_large_for_raw

    @classmethod
    def from_json(cls, reply: Mapping[str, Any], start: int = 0, size: int = 0) -> PublishResult:
        """One request's answer; `start` is the index of its first item among the
        caller's, `size` how many items it carried."""
        skipped = sorted(set(_indexes(reply.get("skipped"))))
        # The gateway counts these among the items it published, not among those sent.
        published = [i for i in range(size) if i not in skipped]
        large = [
            published[k] if k < len(published) else k
            for k in _indexes(reply.get("too_large_for_raw"))
        ]
        warning = reply.get("warning")
        return cls(
            tuple(start + i for i in skipped),
            tuple(start + i for i in large),
            (warning,) if isinstance(warning, str) and warning else (),
        )

    def __add__(self, other: PublishResult) -> PublishResult:
        return PublishResult(
            self.skipped + other.skipped,
            self.too_large_for_raw + other.too_large_for_raw,
            self.warnings + other.warnings,
        )


def _indexes(value: Any) -> list[int]:
    if not isinstance(value, list):
        return []
    return [i for i in value if isinstance(i, int) and not isinstance(i, bool) and i >= 0]


class ControlClient:
    """A client of one slipway deployment's control API.

    `base_url` is the control base (the REST API's stage URL); `key` the
    deployment key (SLIPWAY_KEY). Each request carries a fresh
    `Authorization: Bearer <JWT>` (HS256 over the key, one hour, with `iss`
    when given). Failures raise `ControlError` (404 on a connection route:
    `UnknownConnection`) carrying the server's `error` and `fields`.

    Content over `upload_over` bytes (256 KB; None: never) is uploaded first and
    published or sent by reference, so a message of any size up to the
    deployment's SLIPWAY_MAX_PUBLISH_BYTES goes through, whatever AWS's request
    limits; `upload_timeout` bounds each upload.
    """

    def __init__(
        self,
        base_url: str,
        key: str | bytes,
        iss: str | None = None,
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        upload_over: int | None = UPLOAD_OVER,
        upload_timeout: float = 120.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        parts = urlsplit(base_url)
        if parts.query or parts.fragment:
            # The GRIP URL (`grip:` of `slipway local`, http://host/?key=...) is for
            # gripcontrol: its query would swallow every path (HTTP 405 on POST /).
            plain = parts._replace(query="", fragment="").geturl()
            hint = " and its key as `key`" if "key=" in parts.query else ""
            raise ValueError(
                f"base_url is the control API's base URL without a query, e.g. {plain!r} "
                f"(`slipway local` prints it as `control:`), not {base_url!r}: pass the base"
                f"{hint}"
            )
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._iss = iss
        self._timeout = timeout
        self._session = session or requests.Session()
        self._upload_over = upload_over
        self._upload_timeout = upload_timeout

    # -- publish -----------------------------------------------------------------

    def publish(
        self,
        channel: str,
        text: str | None = None,
        binary: bytes | None = None,
        *,
        id: str | None = None,
        prev_id: str | None = None,
    ) -> PublishResult:
        """Send a message (exactly one of `text`, `binary`) to every subscriber of
        `channel`. The result says if raw connections are skipped (`too_large_for_raw`)."""
        return self.publish_many([PublishItem(channel, text, binary, id=id, prev_id=prev_id)])

    def publish_close(
        self, channel: str, code: int | None = None, reason: str | None = None
    ) -> PublishResult:
        """Close every connection subscribed to `channel`."""
        return self.publish_many([PublishItem(channel, close=True, code=code, reason=reason)])

    def publish_many(self, items: Iterable[PublishItem | Mapping[str, Any]]) -> PublishResult:
        """Publish several items in order. Plain dicts are sent as they are (docs/control-api.md
        item shape). More than 100 items go in several requests, one after the
        other: each request is all-or-nothing, the whole call is not. The result
        gathers every request's warnings, with indexes into `items`."""
        result = PublishResult()
        chunk: list[dict[str, Any]] = []
        size = start = 0
        for item in items:
            # Uploaded only now: a ref is published within its expiry, however many items.
            encoded = self._item_json(item) if isinstance(item, PublishItem) else dict(item)
            length = len(json.dumps(encoded)) + 1
            if chunk and (len(chunk) == MAX_ITEMS_PER_REQUEST or size + length > REQUEST_BUDGET):
                result += self._publish_request(chunk, start)
                start += len(chunk)
                chunk, size = [], 0
            chunk.append(encoded)
            size += length
        if chunk:
            result += self._publish_request(chunk, start)
        return result

    def _publish_request(self, chunk: list[dict[str, Any]], start: int) -> PublishResult:
        reply = self._call("POST", "/publish/", {"items": chunk})
        return PublishResult.from_json(reply, start, len(chunk))

    def upload(self, data: str | bytes) -> str:
        """Upload one message (text for `str`, binary for `bytes`) and return its
        ref, for `content-ref` (text) or `content-bin-ref` (bytes) in a publish or
        a send, until the ref expires (SLIPWAY_UPLOAD_EXPIRY, 5 minutes)."""
        target = self._call("POST", "/uploads", None)
        try:
            url, ref = str(target["url"]), str(target["ref"])
            headers = {str(k): str(v) for k, v in dict(target.get("headers") or {}).items()}
        except (KeyError, TypeError, ValueError):
            raise ControlError(None, f"POST /uploads answered no url and ref: {target}") from None
        form = _upload_form(data)
        limit = target.get("max_bytes")
        if isinstance(limit, int) and len(form) > limit:  # refused at the publish: say so now
            raise ControlError(
                400,
                f"too_large: the upload would be {len(form)} bytes; the deployment takes at "
                f"most {limit} (SLIPWAY_MAX_PUBLISH_BYTES)",
            )
        try:
            # Not through the session: nothing of ours (its headers, cookies) goes to S3.
            reply = requests.request(
                str(target.get("method") or "PUT"),
                url,
                data=form,
                headers=headers,
                timeout=self._upload_timeout,
            )
        except requests.RequestException as exc:
            raise ControlError(None, f"upload to {url.split('?')[0]} failed: {exc}") from exc
        if not 200 <= reply.status_code < 300:
            snippet = reply.text.strip()[:300]
            raise ControlError(reply.status_code, f"upload refused by S3: {snippet}")
        return ref

    def _item_json(self, item: PublishItem) -> dict[str, Any]:
        if self._upload_over is None or item.close or item.size <= self._upload_over:
            return item.to_json()
        content = item.binary if item.binary is not None else item.text
        assert content is not None
        return item.to_json(ref=self.upload(content))

    # -- one connection ------------------------------------------------------------

    def send(self, connection_id: str, data: str | bytes) -> None:
        """Send one message to one connection: text for `str`, binary for `bytes`."""
        if isinstance(data, bytes | bytearray | memoryview):
            data = bytes(data)
        if not isinstance(data, str | bytes):
            raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")
        size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8"))
        body: dict[str, Any]
        if self._upload_over is not None and size > self._upload_over:
            ref = self.upload(data)
            body = {"content-bin-ref" if isinstance(data, bytes) else "content-ref": ref}
        elif isinstance(data, str):
            body = {"content": data}
        else:
            body = {"content-bin": base64.b64encode(data).decode("ascii")}
        self._call("POST", f"{self._connection(connection_id)}/message", body, connection_id)

    def close(self, connection_id: str, code: int | None = None, reason: str = "") -> None:
        """Close one connection; the backend's CLOSE event carries `code` when given."""
        body: dict[str, Any] | None = None
        if code is not None or reason:
            body = {"reason": reason}
            if code is not None:
                body["code"] = code
        self._call("DELETE", self._connection(connection_id), body, connection_id)

    def inspect(self, connection_id: str) -> dict[str, Any]:
        """A connection's state: `id`, `connected_at`, `last_active_at`, `source_ip`,
        `meta`, `channels`, `grip`, `detached`."""
        return self._call("GET", self._connection(connection_id), None, connection_id)

    def subscribe(self, connection_id: str, channel: str) -> None:
        """Subscribe a connection to a channel (idempotent). `ControlError` 409 when it
        is in the most channels it may be; `UnknownConnection` when it is not there."""
        self._call("PUT", self._membership(connection_id, channel), None, connection_id)

    def unsubscribe(self, connection_id: str, channel: str) -> None:
        """Unsubscribe a connection from a channel (idempotent)."""
        self._call("DELETE", self._membership(connection_id, channel), None, connection_id)

    def set_meta(self, connection_id: str, changes: Mapping[str, str | None]) -> dict[str, str]:
        """Set meta names (a value) or clear them (None); later backend requests carry
        `Meta-<name>`. Returns the connection's meta after the change."""
        body: dict[str, Any] = dict(changes)
        reply = self._call("PATCH", f"{self._connection(connection_id)}/meta", body, connection_id)
        meta = reply.get("meta")
        return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}

    # -- channels and every connection -------------------------------------------

    def subscribers(self, channel: str) -> int:
        """How many connections `channel` has (0 for an unknown channel)."""
        reply = self._call("GET", self._channel(channel), None)
        return int(reply.get("subscribers", 0))

    def channel_connections(
        self, channel: str, limit: int | None = None, cursor: str | None = None
    ) -> ConnectionPage:
        """One page of `channel`'s connections, in id order."""
        return self._page(f"{self._channel(channel)}/connections", limit, cursor)

    def iter_channel_connections(
        self, channel: str, page_size: int | None = None
    ) -> Iterator[ConnectionSummary]:
        """Every connection of `channel`, page after page."""
        return self._every(f"{self._channel(channel)}/connections", page_size)

    def connections(self, limit: int | None = None, cursor: str | None = None) -> ConnectionPage:
        """One page of every open connection."""
        return self._page("/connections", limit, cursor)

    def iter_connections(self, page_size: int | None = None) -> Iterator[ConnectionSummary]:
        """Every open connection, page after page."""
        return self._every("/connections", page_size)

    # -- internals -------------------------------------------------------------------

    def authorization(self) -> str:
        """The `Authorization` header value for a request made now."""
        claims: dict[str, Any] = {"exp": int(time.time()) + TOKEN_LIFETIME}
        if self._iss is not None:
            claims["iss"] = self._iss
        return "Bearer " + token.sign(claims, self._key)

    @staticmethod
    def _connection(connection_id: str) -> str:
        if not isinstance(connection_id, str) or not connection_id:
            raise ValueError("a connection id is a non-empty string")
        # Percent-encode only what a path segment cannot hold ("/", "?", "#", "%", ...):
        # API Gateway ids look like "L0SM9cOFvHcCIhw=", and REST API path parameters
        # reach the Lambda still encoded, so "=" and "+" must travel as they are.
        return "/connections/" + quote(connection_id, safe=_PATH_SEGMENT_SAFE)

    @staticmethod
    def _channel(channel: str) -> str:
        if not isinstance(channel, str) or not channel:
            raise ValueError("a channel is a non-empty string")
        return "/channels/" + quote(channel, safe=_PATH_SEGMENT_SAFE)

    def _membership(self, connection_id: str, channel: str) -> str:
        return self._connection(connection_id) + self._channel(channel)

    def _page(self, path: str, limit: int | None, cursor: str | None) -> ConnectionPage:
        params: dict[str, str] = {}
        if limit is not None:
            params["limit"] = str(limit)
        if cursor is not None:
            params["cursor"] = cursor
        reply = self._call("GET", path, None, params=params)
        listed = reply.get("connections")
        nxt = reply.get("cursor")
        return ConnectionPage(
            [ConnectionSummary.from_json(c) for c in listed if isinstance(c, dict)]
            if isinstance(listed, list)
            else [],
            nxt if isinstance(nxt, str) and nxt else None,
        )

    def _every(self, path: str, page_size: int | None) -> Iterator[ConnectionSummary]:
        cursor: str | None = None
        while True:
            page = self._page(path, page_size, cursor)
            yield from page.connections
            if page.cursor is None:
                return
            cursor = page.cursor

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        connection_id: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        url = self.base_url + path
        headers = {"Authorization": self.authorization(), "Accept": "application/json"}
        try:
            reply = self._session.request(
                method,
                url,
                json=body,
                headers=headers,
                timeout=self._timeout,
                params=dict(params) if params else None,
            )
        except requests.RequestException as exc:
            raise ControlError(None, f"{method} {url} failed: {exc}") from exc
        data = _json_or_none(reply)
        if 200 <= reply.status_code < 300:
            return data if isinstance(data, dict) else {}
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            error, fields = data["error"], data.get("fields")
        else:
            error, fields = (reply.text.strip()[:500] or reply.reason or "no body"), None
            if reply.status_code == 413:  # API Gateway's or Lambda's request limit
                error += (
                    ": the request is over AWS's limits (10 MB, 6 MB for Lambda); "
                    "publish large messages by reference (upload(), POST /uploads)"
                )
        fields = fields if isinstance(fields, dict) else None
        if reply.status_code == 404 and connection_id is not None:
            raise UnknownConnection(404, error, fields)
        raise ControlError(reply.status_code, error, fields)


def _upload_form(data: str | bytes) -> bytes:
    """What an upload holds: the message as an envelope client downloads it
    (docs/control-api.md#large-messages): a text that is a JSON object or array as
    it is, any other text as a JSON string, bytes as a JSON string of their base64."""
    if isinstance(data, bytes):
        return json.dumps(base64.b64encode(data).decode("ascii")).encode("ascii")
    if data[:1] in ("{", "["):
        try:
            if isinstance(json.loads(data), dict | list):
                return data.encode("utf-8")
        except ValueError:
            pass
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _json_or_none(reply: requests.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None
