"""Backends' uploads (docs/control-api.md#large-messages): `POST /uploads` hands
out a presigned PUT, and a publish or a send naming the upload (`content-ref`,
`content-bin-ref`) is checked here before anything is queued or sent.

The refs and their checks are pure (`grip/uploads.py`); this module asks S3.
A checked ref becomes the action the rest of the code already carries out: a
small object `Inline` (read here, at most 32 KB), a larger one `Stored` under its
own key, so envelope recipients fetch the uploaded object itself and the gateway
writes nothing.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from . import services
from .aws.blobs import Blobs, NoSuchBlob
from .grip import jobs
from .grip import uploads as refs
from .grip.errors import BadRequest, Unavailable
from .grip.limits import MAX_POST
from .grip.publish import ContentRef, PublishItem

NO_BUCKET = (
    "this deployment has no bucket (SLIPWAY_BUCKET): publish inline, within the "
    "REST API's request limits (docs/limits.md)"
)


def _blobs(svc: services.Services) -> Blobs:
    if svc.blobs is None:
        raise Unavailable(NO_BUCKET)
    return svc.blobs


def _secret(svc: services.Services) -> str:
    """The key that signs refs: the first of the deployment's."""
    key = svc.settings.key
    assert key is not None  # the control API refuses every request without one
    return key


def issue(svc: services.Services) -> dict[str, Any]:
    """`POST /uploads`: where to PUT one message, and the ref to publish it by."""
    blobs = _blobs(svc)
    expiry = svc.settings.upload_expiry
    issued = refs.issue(_secret(svc), int(time.time()) + expiry, secrets.token_hex(16))
    moment = datetime.fromtimestamp(issued.expires_at, UTC)
    return {
        "url": blobs.upload_url(issued.key, refs.HEADERS, expiry),
        "method": "PUT",
        "headers": dict(refs.HEADERS),
        "ref": issued.key,
        "expires_at": moment.isoformat().replace("+00:00", "Z"),
        "max_bytes": svc.settings.max_publish,
    }


class Checked:
    """A checked ref: the action to queue or send, and the object's size."""

    def __init__(self, action: jobs.Inline | jobs.Stored, size: int) -> None:
        self.action = action
        self.size = size

    @property
    def too_large_for_raw(self) -> bool:
        """Judged by the object's size: its JSON is at least the message's bytes
        for an object or array, and a little more (quotes, escapes, base64) for a string."""
        return self.size > MAX_POST


def check(svc: services.Services, ref: ContentRef) -> Checked:
    """The action a ref stands for; `refs.RefRefused` saying why not."""
    blobs = _blobs(svc)
    refs.check(ref.ref, svc.settings.keys, time.time())
    try:
        blob, head = blobs.peek(ref.ref, refs.MAX_INLINE_OBJECT)
    except NoSuchBlob:
        raise refs.RefRefused(
            refs.Why.NOT_FOUND, "nothing was uploaded under that ref (PUT it to the url first)"
        ) from None
    refs.check_size(blob.size, svc.settings.max_publish)
    if blob.data is not None:
        return Checked(jobs.Inline(refs.content(blob.data, ref.binary)), blob.size)
    refs.check_start(head, ref.binary)
    return Checked(jobs.Stored(ref.ref, ref.binary), blob.size)


def check_send(svc: services.Services, ref: ContentRef) -> Checked:
    """A send's ref, or a 400 naming its field and the reason."""
    try:
        return check(svc, ref)
    except refs.RefRefused as exc:
        raise BadRequest({ref.field: [str(exc)]}) from None


def check_items(
    svc: services.Services, items: list[PublishItem], skipped: dict[int, list[str]]
) -> tuple[list[PublishItem], list[int]]:
    """The items with every ref checked, and the indexes (among `items`) of those
    too large for raw connections; a 400 naming each bad ref, and its item's index
    in the body, before anything is queued."""
    if not any(isinstance(item.action, ContentRef) for item in items):
        return items, []
    body_index = [i for i in range(len(items) + len(skipped)) if i not in skipped]
    out: list[PublishItem] = []
    oversize: list[int] = []
    errors: dict[str, list[str]] = {}
    for k, item in enumerate(items):
        ref = item.action
        if not isinstance(ref, ContentRef):
            out.append(item)
            continue
        try:
            checked = check(svc, ref)
        except refs.RefRefused as exc:
            errors[f"items.{body_index[k]}.ws-message.{ref.field}"] = [str(exc)]
            continue
        out.append(replace(item, action=checked.action))
        if checked.too_large_for_raw:
            oversize.append(k)
    if errors:
        raise BadRequest(errors)
    return out, oversize
