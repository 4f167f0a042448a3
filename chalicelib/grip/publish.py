"""GRIP publish bodies (docs/control-api.md): validation and the items they carry. Pure.

Imports marshmallow, so only the control routes import this module: the
WebSocket handlers' cold start doesn't pay for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from . import text
from .errors import BadRequest
from .jobs import Action, CloseAll, Inline, Publish
from .limits import FIRST_CLOSE_CODE, LAST_CLOSE_CODE, MAX_CHANNEL_LENGTH, MAX_CLOSE_REASON
from .payload import Payload, PayloadError


class PublishError(BadRequest):
    """A publish body is invalid; `fields` maps a dotted path to what is wrong there."""


class ContentRef(NamedTuple):
    """`content-ref` (text) or `content-bin-ref` (bytes): a message a backend
    uploaded (POST /uploads), not checked yet; the control route checks it against
    S3 and turns it into an `Inline` or a `Stored` action (grip/uploads.py)."""

    ref: str
    binary: bool
    field: str  # where it was given ("content-ref", "content-bin-ref")


@dataclass(frozen=True)
class PublishItem:
    channel: str
    # Inline(payload) to send, CloseAll(code, reason) to close; a ContentRef until checked
    action: Action | ContentRef
    id: str | None = None  # kept in the channel history (docs/resume.md)
    prev_id: str | None = None

    @property
    def payload(self) -> Payload | None:
        return self.action.payload if isinstance(self.action, Inline) else None

    def to_job(self) -> Publish:
        if isinstance(self.action, ContentRef):
            raise ValueError("a content ref is checked (chalicelib/uploads.py) before it is queued")
        return Publish(self.channel, self.action, self.id, self.prev_id)


class _Base64(fields.Field[Payload]):
    """Binary content as base64 text, checked and kept as a Payload."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Payload:
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        try:
            return Payload.from_base64(value)
        except PayloadError:
            raise ValidationError("Not valid base64.") from None


_CONTENT_FIELDS = ("content", "content_bin", "content_ref", "content_bin_ref")


class WsMessageSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    content = fields.String()
    content_bin = _Base64(data_key="content-bin")
    content_ref = fields.String(data_key="content-ref", validate=validate.Length(min=1, max=1024))
    content_bin_ref = fields.String(
        data_key="content-bin-ref", validate=validate.Length(min=1, max=1024)
    )
    action = fields.String(load_default="send", validate=validate.OneOf(["send", "close"]))
    code = fields.Integer(strict=True, validate=validate.Range(FIRST_CLOSE_CODE, LAST_CLOSE_CODE))
    reason = fields.String(validate=validate.Length(max=MAX_CLOSE_REASON))

    @validates_schema
    def _content(self, data: dict[str, Any], **kwargs: Any) -> None:
        has = [k for k in _CONTENT_FIELDS if k in data]
        if data["action"] == "send" and len(has) != 1:
            raise ValidationError(
                "A send needs exactly one of content, content-bin, content-ref or content-bin-ref.",
                field_name="content",
            )


class SendSchema(WsMessageSchema):
    """One message to one connection: a ws-message without actions."""

    action = fields.String(load_default="send", validate=validate.OneOf(["send"]))


class CloseSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    code = fields.Integer(strict=True, validate=validate.Range(FIRST_CLOSE_CODE, LAST_CLOSE_CODE))
    reason = fields.String(load_default="", validate=validate.Length(max=MAX_CLOSE_REASON))


_FORMAT_NAMES = "\0formats"  # a key no JSON item has: set by _unwrap_formats only
_ITEM_FIELDS = {"channel", "id", "prev-id", _FORMAT_NAMES}


class ItemSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # other formats (http-response, http-stream) are not ours

    channel = fields.String(required=True, validate=validate.Length(min=1, max=MAX_CHANNEL_LENGTH))
    id = fields.String()
    prev_id = fields.String(data_key="prev-id")
    ws_message = fields.Nested(WsMessageSchema, data_key="ws-message")
    # The names of the item's formats (every key but channel, id, prev-id): for the
    # warning about an item without ws-message (a typo such as ws_message).
    format_names = fields.List(fields.String(), data_key=_FORMAT_NAMES, load_default=list)

    @pre_load
    def _unwrap_formats(self, data: Any, **kwargs: Any) -> Any:
        # pubcontrol puts formats at the top level; Pushpin also takes them under "formats".
        if isinstance(data, dict) and isinstance(data.get("formats"), dict):
            data = {**data, **data["formats"]}
            data.pop("formats")
        if isinstance(data, dict):
            names = sorted(k for k in data if k not in _ITEM_FIELDS)
            data = {**data, _FORMAT_NAMES: names}
        return data


class PublishSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    items = fields.List(
        fields.Nested(ItemSchema), required=True, validate=validate.Length(min=1, max=100)
    )


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(messages, list):
        return {prefix or "body": [str(m) for m in messages]}
    out: dict[str, list[str]] = {}
    for key, value in messages.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out.update(_flatten(value, path))
    return out


def load_json(body: bytes | str | None, schema: Schema) -> dict[str, Any]:
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise PublishError({"body": ["Not valid JSON."]}) from None
    if not isinstance(data, dict):
        raise PublishError({"body": ["Must be a JSON object."]})
    bad = text.unpaired_at(data)
    if bad is not None:
        raise PublishError({_printable(bad): [text.PROBLEM]})
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise PublishError(_flatten(exc.messages)) from None
    return loaded


def _printable(path: str) -> str:
    """A field path as JSON can carry it back (a bad key's surrogate escaped)."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_publish(body: bytes | str | None) -> list[PublishItem]:
    """The items of a publish body; PublishError naming each bad field otherwise.

    Items without a ws-message format are skipped: a WebSocket gateway has
    nothing to do with them (Pushpin likewise ignores formats it doesn't serve).
    """
    return parse_items(body)[0]


def parse_items(body: bytes | str | None) -> tuple[list[PublishItem], dict[int, list[str]]]:
    """parse_publish's items, and the items it skipped: index -> their formats' names."""
    data = load_json(body, PublishSchema())
    items = []
    skipped: dict[int, list[str]] = {}
    for index, raw in enumerate(data["items"]):
        msg = raw.get("ws_message")
        if msg is None:
            skipped[index] = raw["format_names"]
            continue
        items.append(_item(raw["channel"], msg, raw.get("id"), raw.get("prev_id")))
    return items, skipped


def skipped_warning(skipped: dict[int, list[str]]) -> str:
    """What to tell a publisher whose items had no ws-message format."""
    parts = [
        f"item {index} ({', '.join(names) if names else 'no format at all'})"
        for index, names in skipped.items()
    ]
    return (
        f"not published, no ws-message format: {'; '.join(parts)}. slipway serves only "
        "ws-message and ignores other formats (is one a typo for ws-message?)"
    )


def _item(channel: str, msg: dict[str, Any], id_: str | None, prev: str | None) -> PublishItem:
    action: Action | ContentRef
    if msg["action"] == "close":
        action = CloseAll(msg.get("code"), msg.get("reason", ""))
    else:
        message = _payload(msg)
        action = message if isinstance(message, ContentRef) else Inline(message)
    return PublishItem(channel, action, id_, prev)


def _payload(msg: dict[str, Any]) -> Payload | ContentRef:
    if "content_ref" in msg:
        return ContentRef(msg["content_ref"], False, "content-ref")
    if "content_bin_ref" in msg:
        return ContentRef(msg["content_bin_ref"], True, "content-bin-ref")
    return msg["content_bin"] if "content_bin" in msg else Payload.of_text(msg["content"])


def parse_send(body: bytes | str | None) -> Payload | ContentRef:
    """The message of a send to one connection (a ContentRef: check it first)."""
    return _payload(load_json(body, SendSchema()))


def parse_close(body: bytes | str | None) -> tuple[int | None, str]:
    """(code, reason) of a close request; an empty body means no code."""
    if not body:
        return None, ""
    data = load_json(body, CloseSchema())
    return data.get("code"), data["reason"]
