"""Envelope mode's frames from clients (docs/envelope.md): a message, a request
for an upload URL, an announced upload.

The frames themselves are read and written by `grip.envelope` (pure); this
module presigns and fetches through the S3 adapter; its answers to the client
leave through the executor, as every message to clients does.
"""

from __future__ import annotations

import logging
import secrets
import time

from . import executor, services
from .aws.blobs import Blobs, NoSuchBlob
from .grip import codec, request
from .grip import effects as fx
from .grip import envelope as env
from .grip.envelope import Code, FrameRefused
from .grip.model import Connection

log = logging.getLogger("slipway.transfers")


# -- client -> gateway ------------------------------------------------------------


def event_of(
    svc: services.Services, conn: Connection, frame: str | bytes, binary: bool
) -> codec.Event | None:
    """The event a client's frame carries to the backend, or None when the frame
    was answered here. `frame`: as API Gateway hands it over (text, or base64 for
    a binary frame), or as the ordered inbox keeps it (bytes)."""
    if conn.envelope:
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        return incoming(svc, conn, text, binary)
    data = frame if isinstance(frame, bytes) else request.frame_bytes(frame, binary)
    return codec.Event("BINARY" if binary else "TEXT", data)


def incoming(
    svc: services.Services, conn: Connection, body: str, binary: bool
) -> codec.Event | None:
    """The TEXT event a client's frame carries to the backend, or None when the
    frame was answered here (an upload URL, or a `[5]` failure)."""
    mid = env.PUSH_ID
    try:
        if binary:
            raise FrameRefused(mid, Code.NOT_AN_ARRAY, "a binary frame is not an envelope frame")
        frame = env.read(body)
        mid = frame.id
        if isinstance(frame, env.Text):
            return codec.Event("TEXT", frame.content)
        if isinstance(frame, env.UploadRequest):
            _reply(svc, conn, _upload_target(svc, conn, frame.id))
            return None
        return codec.Event("TEXT", _take_upload(svc, conn, frame))
    except FrameRefused as exc:
        log.info("connection %s: refused frame %d: %s", conn.id, exc.id, exc)
        _reply(svc, conn, env.failure(exc.id, exc.code, exc.message))
    except Exception:  # S3 failed us: say so, and keep the connection
        log.exception("connection %s: frame %d failed", conn.id, mid)
        _reply(svc, conn, env.failure(mid, Code.GATEWAY_ERROR, "the gateway failed; try again"))
    return None


def _blobs(svc: services.Services, mid: int) -> Blobs:
    if svc.blobs is None:
        raise FrameRefused(mid, Code.UNAVAILABLE, "this gateway has no bucket for large messages")
    return svc.blobs


def _upload_target(svc: services.Services, conn: Connection, mid: int) -> str:
    blobs = _blobs(svc, mid)
    expiry = svc.settings.upload_expiry
    key = env.upload_key(conn.id, mid, int(time.time()) + expiry, secrets.token_hex(8))
    url = blobs.upload_url(key, env.UPLOAD_HEADERS, expiry)
    return env.upload_target(mid, url, dict(env.UPLOAD_HEADERS))


def _take_upload(svc: services.Services, conn: Connection, frame: env.Uploaded) -> bytes:
    """The uploaded message's TEXT content; the object is deleted once read. The
    upload is claimed first, so that the same `[4]` sent several times (frames
    are handled concurrently) reaches the backend once."""
    blobs = _blobs(svc, frame.id)
    key = env.key_of(frame.url, blobs.bucket)
    expires = env.check_upload_key(frame.id, key, conn.id)
    if not svc.store.claim_upload(key, int(expires)):
        raise FrameRefused(frame.id, Code.UPLOAD_TAKEN, "this upload was announced already")
    limit = svc.settings.max_upload
    try:
        blob = blobs.fetch(key, limit)
    except Exception as exc:
        svc.store.release_upload(key)  # nothing taken: it may be announced again
        if not isinstance(exc, NoSuchBlob):
            raise
        if time.time() > expires:
            raise FrameRefused(
                frame.id, Code.UPLOAD_EXPIRED, "the upload URL expired; ask for a new one"
            ) from None
        raise FrameRefused(
            frame.id, Code.UPLOAD_NOT_FOUND, "nothing was uploaded there, or it was taken"
        ) from None
    blobs.delete(key)
    if blob.modified > expires:
        # S3 refuses a PUT after its URL expired; moto does not, so check here too.
        raise FrameRefused(frame.id, Code.UPLOAD_EXPIRED, "uploaded after the upload URL expired")
    if blob.data is None:
        raise FrameRefused(
            frame.id, Code.TOO_LARGE, f"the message is {blob.size} bytes; the limit is {limit}"
        )
    return env.uploaded_content(frame.id, blob.data)


def _reply(svc: services.Services, conn: Connection, frame: str) -> None:
    # A connection gone is logged: its $disconnect is on the way.
    executor.execute(svc, [fx.Post(fx.member_of(conn), frame.encode("utf-8"))])
