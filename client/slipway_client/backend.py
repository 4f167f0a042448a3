"""Backend helpers: read a WebSocket-over-HTTP request, build the response
(docs/backend-protocol.md).

Framework-neutral: hand in the request body and headers, get back
`(status, headers, body)` for whatever web framework you use. A modern take on
gripcontrol's `WebSocketContext`; what it builds decodes with gripcontrol and
runs unchanged behind slipway, Pushpin or Fastly Fanout.

    ctx = WebSocketContext.from_request(body, headers, key=KEY)
    if ctx.is_opening:
        ctx.accept()
        ctx.subscribe("room")
    for message in ctx.messages():
        match message:
            case str() | bytes():
                ctx.send(message)
            case Closed(code=code):
                ctx.close(code)
    status, headers, body = ctx.response()
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import codec, token
from .codec import Event
from .errors import GripSigError

DEFAULT_PREFIX = "m:"
CONTROL_PREFIX = b"c:"
# Under API Gateway's 10-minute idle timeout, with room to spare (docs/keepalive.md).
KEEP_ALIVE_TIMEOUT = 300
_META_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")

__all__ = [
    "Closed",
    "Disconnected",
    "GripSigError",
    "Incoming",
    "Response",
    "WebSocketContext",
]


@dataclass(frozen=True, slots=True)
class Closed:
    """The client closed the connection (a CLOSE event). `code` is None without one."""

    code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ended without a clean close (a DISCONNECT event)."""


Incoming = str | bytes | Closed | Disconnected
"""What `WebSocketContext.messages()` yields: text, binary, a close or a disconnect."""


class Response(NamedTuple):
    """The HTTP response to return to the gateway."""

    status: int
    headers: dict[str, str]
    body: bytes


def _lower(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if hasattr(headers, "items") else headers
    return {str(name).lower(): str(value) for name, value in items}


class WebSocketContext:
    """One request of one WebSocket connection, and the response being built.

    Make one with `from_request`. Outgoing events keep the order of the calls
    that made them; the OPEN of `accept()` always comes first.
    """

    def __init__(
        self,
        connection_id: str | None,
        meta: Mapping[str, str],
        events: list[Event],
        *,
        message_prefix: str | None = DEFAULT_PREFIX,
    ) -> None:
        self.connection_id = connection_id
        self.events = list(events)
        #: Meta values the gateway holds for this connection (names lowercased).
        #: Change them with `set_meta`, or edit the dict: `response()` sends the difference.
        self.meta: dict[str, str] = {k.lower(): v for k, v in meta.items()}
        self._original_meta = dict(self.meta)
        self._prefix = message_prefix
        self._out: list[Event] = []
        self._accepted = False
        self._protocol: str | None = None
        self._reject: Response | None = None
        # As gripcontrol does: answer each PING, so a backend behind Pushpin keeps working.
        for event in self.events:
            if event.type == "PING":
                self._out.append(Event("PONG", event.content))

    @classmethod
    def from_request(
        cls,
        body: bytes,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        key: str | bytes | None = None,
        *,
        iss: str | None = None,
        message_prefix: str | None = DEFAULT_PREFIX,
    ) -> WebSocketContext:
        """Read one gateway request.

        `headers` is any mapping (or list of pairs) of the request's headers.
        With `key`, the `Grip-Sig` header must be a valid HS256 JWT signed with it
        (`exp` required, `iss` checked when given), else `GripSigError`: answer
        403, the request did not come from the gateway. A malformed body raises
        `CodecError` (answer 400).

        `message_prefix` is the GRIP message prefix this backend accepts
        connections with ("m:" by default); None turns GRIP mode off, so messages
        go out verbatim and control messages are unavailable.
        """
        lower = _lower(headers)
        if key is not None:
            sig = lower.get("grip-sig")
            if not sig:
                raise GripSigError("missing Grip-Sig header: the request is not from the gateway")
            token.verify(sig.strip(), key, iss=iss)
        meta = {
            name[len("meta-") :]: value
            for name, value in lower.items()
            if name.startswith("meta-") and len(name) > len("meta-")
        }
        return cls(
            lower.get("connection-id"),
            meta,
            codec.decode(body),
            message_prefix=message_prefix,
        )

    # -- reading -------------------------------------------------------------

    @property
    def is_opening(self) -> bool:
        """True for a connection's first request (its events begin with OPEN)."""
        return bool(self.events) and self.events[0].type == "OPEN"

    def messages(self) -> Iterator[Incoming]:
        """The client's messages in order: `str` for TEXT, `bytes` for BINARY,
        then `Closed` or `Disconnected` if the connection ended. OPEN, PING and
        PONG are skipped."""
        for event in self.events:
            if event.type == "TEXT":
                # Replace rather than raise: one bad message must not lose the rest.
                yield (event.content or b"").decode("utf-8", errors="replace")
            elif event.type == "BINARY":
                yield event.content or b""
            elif event.type == "CLOSE":
                yield Closed(*codec.parse_close(event.content))
            elif event.type == "DISCONNECT":
                yield Disconnected()

    # -- building the response -------------------------------------------------

    def accept(
        self, protocol: str | None = None, keep_alive: int | None = KEEP_ALIVE_TIMEOUT
    ) -> None:
        """Accept the connection (only on the opening request), in GRIP mode
        unless the context was made with `message_prefix=None`. `protocol` is
        the subprotocol to answer in `Sec-WebSocket-Protocol`.

        `keep_alive`: API Gateway closes a connection after 10 minutes without
        data, so by default the gateway sends the client an empty text message
        after this many seconds without one (idle mode; GRIP mode only). None
        leaves keep-alive off; `keep_alive()` sets another."""
        if not self.is_opening:
            raise RuntimeError("accept() only applies to the opening request (OPEN)")
        self._accepted = True
        self._protocol = protocol
        if keep_alive is not None and self._prefix is not None:
            self.keep_alive("", timeout=keep_alive)

    def reject(self, status: int = 403, reason: str = "") -> None:
        """Refuse the connection (only on the opening request): the client's
        handshake fails with `status`."""
        if not self.is_opening:
            raise RuntimeError("reject() only applies to the opening request (OPEN)")
        if status == 200:
            raise ValueError("a rejection needs a status other than 200")
        body = reason.encode("utf-8")
        self._reject = Response(status, {"Content-Type": "text/plain; charset=utf-8"}, body)

    def send(self, text: str) -> None:
        """Send a text message to this client."""
        if not isinstance(text, str):
            raise TypeError(f"send() takes str, not {type(text).__name__}: use send_binary")
        self._message("TEXT", text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        """Send a binary message to this client. (slipway's clients cannot send
        binary frames through API Gateway, but they can receive them.)"""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"send_binary() takes bytes, not {type(data).__name__}")
        self._message("BINARY", bytes(data))

    def subscribe(self, channel: str) -> None:
        """Subscribe this connection to `channel`."""
        self._control("subscribe", channel=self._channel(channel))

    def unsubscribe(self, channel: str) -> None:
        """Unsubscribe this connection from `channel`."""
        self._control("unsubscribe", channel=self._channel(channel))

    def detach(self) -> None:
        """Stop forwarding this connection's events to the backend."""
        self._control("detach")

    def keep_alive(
        self, content: str | bytes | None, timeout: int = 55, mode: str = "idle"
    ) -> None:
        """Have the gateway send `content` to the client after `timeout` seconds
        without traffic (`mode="idle"`) or every `timeout` seconds
        (`mode="interval"`). `content=None` turns keep-alive off."""
        if content is None:
            self._control("keep-alive")
            return
        if mode not in ("idle", "interval"):
            raise ValueError(f"keep-alive mode must be 'idle' or 'interval', not {mode!r}")
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            raise ValueError("keep-alive timeout must be a positive number of seconds")
        if isinstance(content, str):
            self._control("keep-alive", content=content, timeout=timeout, mode=mode)
        else:
            encoded = base64.b64encode(bytes(content)).decode("ascii")
            self._control("keep-alive", **{"content-bin": encoded}, timeout=timeout, mode=mode)

    def set_meta(self, name: str, value: str | None) -> None:
        """Store `value` under `name` on the connection; later requests carry it
        as `Meta-<name>`. An empty value or None deletes it."""
        if not _META_NAME.fullmatch(name):
            raise ValueError(f"meta name {name!r}: use letters, digits and dashes")
        if value and ("\r" in value or "\n" in value):
            raise ValueError("a meta value cannot contain line breaks")
        if value:
            self.meta[name.lower()] = value
        else:
            self.meta.pop(name.lower(), None)

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Close the client's connection, with `code` (and `reason`) when given.
        Without a code the CLOSE event carries no content, as Pushpin sends it
        (gripcontrol and django-grip send code 0, which Pushpin passes on to the
        client although RFC 6455 reserves it); the reason then goes unsent."""
        self._out.append(Event("CLOSE", codec.close_content(code, reason)))

    def response(self) -> Response:
        """`(status, headers, body)` to answer the gateway with."""
        if self._reject is not None:
            return self._reject
        headers = {"Content-Type": codec.CONTENT_TYPE}
        events = list(self._out)
        if self._accepted:
            events.insert(0, Event("OPEN"))
            if self._prefix is not None:
                headers["Sec-WebSocket-Extensions"] = _grip_extension(self._prefix)
            if self._protocol is not None:
                headers["Sec-WebSocket-Protocol"] = self._protocol
        for name, value in self.meta.items():
            if self._original_meta.get(name) != value:
                headers[f"Set-Meta-{name}"] = value
        for name in self._original_meta:
            if name not in self.meta:
                headers[f"Set-Meta-{name}"] = ""
        return Response(200, headers, codec.encode(events))

    # -- internals ---------------------------------------------------------------

    def _message(self, etype: str, content: bytes) -> None:
        prefix = (self._prefix or "").encode("utf-8")
        self._out.append(Event(etype, prefix + content))

    def _control(self, kind: str, **args: Any) -> None:
        if self._prefix is None:
            raise RuntimeError("control messages need GRIP mode (message_prefix is None)")
        # Arguments first, then "type", with json's default separators: byte for
        # byte what gripcontrol's websocket_control_message produces.
        message = json.dumps({**args, "type": kind})
        self._out.append(Event("TEXT", CONTROL_PREFIX + message.encode("utf-8")))

    @staticmethod
    def _channel(channel: str) -> str:
        if not isinstance(channel, str) or not channel:
            raise ValueError("a channel is a non-empty string")
        return channel


def _grip_extension(prefix: str) -> str:
    if prefix == DEFAULT_PREFIX:
        return "grip"
    escaped = prefix.replace("\\", "\\\\").replace('"', '\\"')
    return f'grip; message-prefix="{escaped}"'
