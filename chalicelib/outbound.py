"""Messages out to clients: carries out what `grip.plan` decides for each
connection's mode, over @connections, storing a large message in S3 at most once.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from . import services
from .aws.sockets import Outcome
from .grip import envelope, jobs, plan
from .grip.errors import Gone, TooLarge
from .grip.model import Connection, Member
from .grip.payload import Payload

log = logging.getLogger("slipway.outbound")


class Outbound:
    """One message on its way to any number of connections.

    `stored`: the message is in S3 already, in its download form (a publish too
    large for the queue); it is read only if a raw connection needs it. Otherwise
    `name` names the object written when an envelope connection needs one, so a
    retried job overwrites it rather than writing another. `trailer`: the
    channel position that connections tracking positions get with it
    (docs/resume.md).
    """

    def __init__(
        self,
        svc: services.Services,
        payload: Payload | None,
        *,
        name: str | None = None,
        stored: jobs.Stored | None = None,
        trailer: dict[str, Any] | None = None,
    ) -> None:
        if payload is None and stored is None:
            raise ValueError("an outbound message needs its payload or its stored object")
        self._svc = svc
        self._payload = payload
        self._name = name
        self.stored = stored
        self.trailer = trailer
        self._bodies: dict[tuple[bool, bool], bytes | plan.Undeliverable] = {}

    @property
    def payload(self) -> Payload:
        if self._payload is None:
            assert self.stored is not None and self._svc.blobs is not None
            text = envelope.from_download_form(self._svc.blobs.get(self.stored.key))
            self._payload = Payload(None, self.stored.binary, text)
        return self._payload

    def body(self, envelope_mode: bool, tracked: bool = False) -> bytes | plan.Undeliverable:
        """What to post a connection in this mode, or why nothing can be;
        `tracked`: an envelope connection that tracks positions."""
        mode = (envelope_mode, tracked and envelope_mode and self.trailer is not None)
        if mode not in self._bodies:
            self._bodies[mode] = self._carry_out(*mode)
        return self._bodies[mode]

    def _carry_out(self, envelope_mode: bool, tracked: bool) -> bytes | plan.Undeliverable:
        if not envelope_mode and self._payload is None and self.stored is not None:
            blobs_ = self._svc.blobs
            assert blobs_ is not None
            # Over MAX_RAW_OBJECT no raw post can hold it: skip without reading it whole.
            blob = blobs_.fetch(self.stored.key, plan.MAX_RAW_OBJECT)
            if blob.data is None:
                return plan.Undeliverable(plan.Why.TOO_LARGE_FOR_RAW)
            text = envelope.from_download_form(blob.data)
            self._payload = Payload(None, self.stored.binary, text)
        stored = self.stored is not None
        payload = None if envelope_mode and stored else self.payload
        trailer = self.trailer if tracked else None
        decided = plan.plan(payload, envelope_mode, self._svc.blobs is not None, stored, trailer)
        if isinstance(decided, plan.Raw):
            return decided.body
        if isinstance(decided, plan.Wrapped):
            return decided.frame
        if isinstance(decided, plan.Undeliverable):
            return decided
        blobs = self._svc.blobs
        assert blobs is not None
        key = self.store().key
        url = blobs.download_url(key, self._svc.settings.download_expiry)
        return envelope.download(url, trailer=trailer).encode("utf-8")

    def store(self, prefix: str = envelope.DOWNLOAD_PREFIX) -> jobs.Stored:
        """The message's one S3 object, written now if it is not yet."""
        if self.stored is None:
            blobs = self._svc.blobs
            if blobs is None:
                raise TooLarge(plan.Undeliverable(plan.Why.NO_BUCKET).explain())
            payload = self.payload
            key = f"{prefix}{self._name or uuid.uuid4().hex}.json"
            blobs.put(key, envelope.download_form(payload.text))
            self.stored = jobs.Stored(key, payload.binary)
        return self.stored


def send(svc: services.Services, conn: Connection, message: Outbound | Payload) -> None:
    """Post one connection a message in the form its mode needs; TooLarge when it
    cannot take it (nothing is sent), Gone when it has left."""
    outbound = message if isinstance(message, Outbound) else Outbound(svc, message)
    body = outbound.body(conn.envelope, conn.resume)
    if isinstance(body, plan.Undeliverable):
        raise TooLarge(body.explain())
    svc.sockets.send(conn.endpoint, conn.id, body)


def send_many(svc: services.Services, members: list[Member], outbound: Outbound) -> Outcome:
    """Post every member the message concurrently, in the form each mode needs;
    members that cannot take it are counted as too large."""
    outcome = Outcome()
    for envelope_mode, tracked in ((False, False), (True, False), (True, True)):
        group = [
            (m.endpoint, m.connection_id)
            for m in members
            if m.envelope == envelope_mode and (m.envelope and m.resume) == tracked
        ]
        if not group:
            continue
        body = outbound.body(envelope_mode, tracked)
        if isinstance(body, plan.Undeliverable):
            outcome.too_large += [cid for _, cid in group]
            continue
        done = svc.sockets.send_many(group, body, svc.settings.fanout_concurrency)
        outcome.gone += done.gone
        outcome.failed += done.failed
        outcome.too_large += done.too_large
    return outcome


def close_quietly(svc: services.Services, endpoint: str, cid: str) -> None:
    """Close a connection (@connections DELETE: no close code reaches the client)."""
    try:
        svc.sockets.close(endpoint, cid)
    except Gone:
        pass  # closed already: $disconnect cleans up
