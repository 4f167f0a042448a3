"""GRIP publish bodies (SPEC §2): validation and the items they carry. Pure.

Imports marshmallow, so only the control routes import this module: the
WebSocket handlers' cold start doesn't pay for it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from .frames import to_frame

MAX_CHANNEL_LENGTH = 512


class PublishError(ValueError):
    """A publish body is invalid; `fields` maps a dotted path to what is wrong there."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()))


@dataclass(frozen=True)
class PublishItem:
    channel: str
    action: str = "send"  # send | close
    content: bytes = b""
    binary: bool = False
    code: int | None = None
    reason: str = ""
    id: str | None = None
    prev_id: str | None = None

    def to_message(self) -> dict[str, Any]:
        """The item as the queue carries it: GRIP's own ws-message shape."""
        out: dict[str, Any] = {"channel": self.channel, "action": self.action}
        if self.action == "send":
            out.update(to_frame(self.content, self.binary))
        else:
            out.update({"code": self.code, "reason": self.reason})
        if self.id is not None:
            out["id"] = self.id
        return out


class _Base64(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bytes:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("Not valid base64.") from None


class WsMessageSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    content = fields.String()
    content_bin = _Base64(data_key="content-bin")
    action = fields.String(load_default="send", validate=validate.OneOf(["send", "close"]))
    code = fields.Integer(strict=True, validate=validate.Range(1000, 4999))
    reason = fields.String(validate=validate.Length(max=123))

    @validates_schema
    def _content(self, data: dict[str, Any], **kwargs: Any) -> None:
        has = [k for k in ("content", "content_bin") if k in data]
        if data["action"] == "send" and len(has) != 1:
            raise ValidationError(
                "A send needs exactly one of content or content-bin.", field_name="content"
            )


class SendSchema(WsMessageSchema):
    """One message to one connection: a ws-message without actions."""

    action = fields.String(load_default="send", validate=validate.OneOf(["send"]))


class CloseSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    code = fields.Integer(strict=True, validate=validate.Range(1000, 4999))
    reason = fields.String(load_default="", validate=validate.Length(max=123))


class ItemSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # other formats (http-response, http-stream) are not ours

    channel = fields.String(required=True, validate=validate.Length(min=1, max=MAX_CHANNEL_LENGTH))
    id = fields.String()
    prev_id = fields.String(data_key="prev-id")
    ws_message = fields.Nested(WsMessageSchema, data_key="ws-message")

    @pre_load
    def _unwrap_formats(self, data: Any, **kwargs: Any) -> Any:
        # pubcontrol puts formats at the top level; Pushpin also takes them under "formats".
        if isinstance(data, dict) and isinstance(data.get("formats"), dict):
            data = {**data, **data["formats"]}
            data.pop("formats")
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
    except (ValueError, UnicodeDecodeError):
        raise PublishError({"body": ["Not valid JSON."]}) from None
    if not isinstance(data, dict):
        raise PublishError({"body": ["Must be a JSON object."]})
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise PublishError(_flatten(exc.messages)) from None


def parse_publish(body: bytes | str | None) -> list[PublishItem]:
    """The items of a publish body; PublishError naming each bad field otherwise.

    Items without a ws-message format are skipped: a WebSocket gateway has
    nothing to do with them (Pushpin likewise ignores formats it doesn't serve).
    """
    data = load_json(body, PublishSchema())
    items = []
    for raw in data["items"]:
        msg = raw.get("ws_message")
        if msg is None:
            continue
        items.append(_item(raw["channel"], msg, raw.get("id"), raw.get("prev_id")))
    return items


def _item(channel: str, msg: dict[str, Any], id_: str | None, prev: str | None) -> PublishItem:
    if msg["action"] == "close":
        return PublishItem(
            channel,
            "close",
            code=msg.get("code"),
            reason=msg.get("reason", ""),
            id=id_,
            prev_id=prev,
        )
    if "content_bin" in msg:
        return PublishItem(channel, content=msg["content_bin"], binary=True, id=id_, prev_id=prev)
    return PublishItem(channel, content=msg["content"].encode("utf-8"), id=id_, prev_id=prev)


def parse_send(body: bytes | str | None) -> tuple[bytes, bool]:
    """(content, binary) of a message to one connection."""
    msg = load_json(body, SendSchema())
    if "content_bin" in msg:
        return msg["content_bin"], True
    return msg["content"].encode("utf-8"), False


def parse_close(body: bytes | str | None) -> tuple[int | None, str]:
    """(code, reason) of a close request; an empty body means no code."""
    if not body:
        return None, ""
    data = load_json(body, CloseSchema())
    return data.get("code"), data["reason"]
