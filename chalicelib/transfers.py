"""Envelope mode (SPEC §3): a client's frames in, and every message out in the
form its connection needs, through S3 when it is too large for API Gateway.

The frames themselves are read and written by `grip.envelope` (pure); this
module presigns, fetches and stores through the S3 adapter and answers the
client over @connections.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from typing import Any

from . import services
from .aws.blobs import Blobs, NoSuchBlob
from .aws.sockets import Gone
from .aws.store import Connection
from .grip import codec
from .grip import envelope as env
from .grip.envelope import Code, Refused

log = logging.getLogger("slipway.transfers")

_UNSET: Any = object()


def wants_envelope(settings_all: bool, event: dict[str, Any]) -> bool:
    """Envelope mode: for every connection, or for one that asks with `?envelope=1`."""
    query = event.get("queryStringParameters") or {}
    return settings_all or str(query.get("envelope", "")).lower() in ("1", "true")


# -- client -> gateway ------------------------------------------------------------


def incoming(
    svc: services.Services, conn: Connection, body: str, binary: bool
) -> codec.Event | None:
    """The TEXT event a client's frame carries to the backend, or None when the
    frame was answered here (an upload URL, or a `[5]` failure)."""
    mid = env.PUSH_ID
    try:
        if binary:
            raise Refused(mid, Code.NOT_AN_ARRAY, "a binary frame is not an envelope frame")
        frame = env.read(body)
        mid = frame.id
        if isinstance(frame, env.Text):
            return codec.Event("TEXT", frame.content)
        if isinstance(frame, env.UploadRequest):
            _reply(svc, conn, _upload_target(svc, conn, frame.id))
            return None
        return codec.Event("TEXT", _take_upload(svc, conn, frame))
    except Refused as exc:
        log.info("connection %s: refused frame %d: %s", conn.id, exc.id, exc)
        _reply(svc, conn, env.failure(exc.id, exc.code, exc.message))
    except Exception:  # S3 failed us: say so, and keep the connection
        log.exception("connection %s: frame %d failed", conn.id, mid)
        _reply(svc, conn, env.failure(mid, Code.GATEWAY_ERROR, "the gateway failed; try again"))
    return None


def _blobs(svc: services.Services, mid: int) -> Blobs:
    if svc.blobs is None:
        raise Refused(mid, Code.UNAVAILABLE, "this gateway has no bucket for large messages")
    return svc.blobs


def _upload_target(svc: services.Services, conn: Connection, mid: int) -> str:
    blobs = _blobs(svc, mid)
    expiry = svc.settings.upload_expiry
    key = env.upload_key(conn.id, mid, int(time.time()) + expiry, secrets.token_hex(8))
    url = blobs.upload_url(key, env.UPLOAD_HEADERS, expiry)
    return env.upload_target(mid, url, dict(env.UPLOAD_HEADERS))


def _take_upload(svc: services.Services, conn: Connection, frame: env.Uploaded) -> bytes:
    """The uploaded message's TEXT content; the object is deleted once read."""
    blobs = _blobs(svc, frame.id)
    key = env.key_of(frame.url, blobs.bucket)
    expires = env.check_upload_key(frame.id, key, conn.id)
    limit = svc.settings.max_upload
    try:
        blob = blobs.fetch(key, limit)
    except NoSuchBlob:
        if time.time() > expires:
            raise Refused(
                frame.id, Code.UPLOAD_EXPIRED, "the upload URL expired; ask for a new one"
            ) from None
        raise Refused(
            frame.id, Code.UPLOAD_NOT_FOUND, "nothing was uploaded there, or it was taken"
        ) from None
    blobs.delete(key)
    if blob.modified > expires:
        # S3 refuses a PUT after its URL expired; moto does not, so check here too.
        raise Refused(frame.id, Code.UPLOAD_EXPIRED, "uploaded after the upload URL expired")
    if blob.data is None:
        raise Refused(
            frame.id, Code.TOO_LARGE, f"the message is {blob.size} bytes; the limit is {limit}"
        )
    return env.uploaded_content(frame.id, blob.data)


def _reply(svc: services.Services, conn: Connection, frame: str) -> None:
    try:
        svc.sockets.send(conn.endpoint, conn.id, frame)
    except Gone:
        log.info("connection %s is gone", conn.id)  # its $disconnect is on the way


# -- gateway -> client ------------------------------------------------------------


class Outgoing:
    """One message on its way to any number of connections, in the form each needs:
    as it is for a raw connection (None when over API Gateway's 128 KB: never
    truncated), `[1, 0, data]` for an envelope one, or, when that is too large,
    `[4, -1, url, "GET", {}]` pointing every recipient at one S3 object.

    `stored`: the key of an object that holds the message in `envelope.download_form`
    already; else `name` names the one written when needed, so that a retried
    publish overwrites it rather than writing another.
    """

    def __init__(
        self,
        svc: services.Services,
        data: bytes | str,
        name: str | None = None,
        stored: str | None = None,
    ) -> None:
        self._svc = svc
        self.data = data
        self.binary = isinstance(data, bytes)
        self._name = name
        self.key = stored
        self._frame: Any = _UNSET

    def to(self, envelope: bool) -> bytes | str | None:
        return self.enveloped() if envelope else self.raw()

    def raw(self) -> bytes | str | None:
        data = self.data
        if isinstance(data, bytes) or len(data) > env.MAX_POST // 4:  # else: 4 bytes a char at most
            size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8"))
            if size > env.MAX_POST:
                return None
        return data

    def enveloped(self) -> str | None:
        if self._frame is _UNSET:
            self._frame = self._wrap()
        return self._frame

    def _wrap(self) -> str | None:
        text = env.as_text(self.data)
        if len(text) <= env.MAX_INLINE:  # a longer one cannot fit, however wrapped
            frame = env.wrap(text)
            if env.fits(frame):
                return frame
        blobs = self._svc.blobs
        if blobs is None:
            log.error("a message of %d characters needs SLIPWAY_BUCKET: not sent", len(text))
            return None
        if self.key is None:
            key = f"{env.DOWNLOAD_PREFIX}{self._name or uuid.uuid4().hex}.json"
            blobs.put(key, env.download_form(text))
            self.key = key
        return env.download(blobs.download_url(self.key, self._svc.settings.download_expiry))
