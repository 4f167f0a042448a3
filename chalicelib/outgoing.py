"""A message's bodies: for each connection mode, what to post, made once for
all the recipients in that mode (`grip.plan` decides the form), the message's
one S3 object written the first time a form needs it. Used by the executor."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from . import services
from .grip import effects as fx
from .grip import envelope, jobs, plan
from .grip.payload import Payload


class Outgoing:
    """One message on its way, within one run: the body for each connection
    mode, made once, and its S3 object, written at most once."""

    def __init__(
        self,
        svc: services.Services,
        message: fx.Message,
        put_object: Callable[[str, Payload], None],
    ) -> None:
        self.svc = svc
        self.message = message
        self._put_object = put_object
        self._payload = message.payload
        self.stored = message.stored
        self._bodies: dict[tuple[bool, bool], bytes | plan.Undeliverable] = {}

    @property
    def payload(self) -> Payload:
        if self._payload is None:
            blobs = self.svc.blobs
            assert self.stored is not None and blobs is not None
            text = envelope.from_download_form(blobs.get(self.stored.key))
            self._payload = Payload(None, self.stored.binary, text)
        return self._payload

    def body_for(self, envelope_mode: bool, tracked: bool = False) -> bytes | plan.Undeliverable:
        """What to post a connection in this mode, or why nothing can be;
        `tracked`: an envelope connection that tracks positions."""
        mode = (envelope_mode, tracked and envelope_mode and self.message.trailer is not None)
        if mode not in self._bodies:
            self._bodies[mode] = self._made(*mode)
        return self._bodies[mode]

    def _made(self, envelope_mode: bool, tracked: bool) -> bytes | plan.Undeliverable:
        svc = self.svc
        if not envelope_mode and self._payload is None and self.stored is not None:
            blobs = svc.blobs
            assert blobs is not None
            # Over MAX_RAW_OBJECT no raw post can hold it: skip without reading it whole.
            blob = blobs.fetch(self.stored.key, plan.MAX_RAW_OBJECT)
            if blob.data is None:
                return plan.Undeliverable(plan.Why.TOO_LARGE_FOR_RAW)
            text = envelope.from_download_form(blob.data)
            self._payload = Payload(None, self.stored.binary, text)
        stored = self.stored is not None
        payload = None if envelope_mode and stored else self.payload
        trailer = self.message.trailer if tracked else None
        decided = plan.plan(payload, envelope_mode, svc.blobs is not None, stored, trailer)
        if isinstance(decided, plan.Raw):
            return decided.body
        if isinstance(decided, plan.Wrapped):
            return decided.frame
        if isinstance(decided, plan.Undeliverable):
            return decided
        blobs = svc.blobs
        assert blobs is not None
        if self.stored is None:  # the one object, written now, for every recipient
            key = f"{envelope.DOWNLOAD_PREFIX}{self.message.name or uuid.uuid4().hex}.json"
            self._put_object(key, self.payload)
            self.stored = jobs.Stored(key, self.payload.binary)
        url = blobs.download_url(self.stored.key, svc.settings.download_expiry)
        return envelope.download(url, trailer=trailer).encode("utf-8")
