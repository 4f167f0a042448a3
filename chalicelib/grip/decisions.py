"""Reading a backend's WebSocket-over-HTTP response into decisions.

Pure: the caller hands in the status, headers and body, and gets back what to
do (accept, send, subscribe, ...). Nothing here touches AWS or the network.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import codec, meta, text
from .errors import ParseError
from .keepalive import DEFAULT_TIMEOUT, IDLE, INTERVAL
from .limits import MAX_CHANNEL_LENGTH, MAX_KEEPALIVE_TIMEOUT
from .payload import Payload

DEFAULT_PREFIX = "m:"
CONTROL_PREFIX = b"c:"
# Handshake headers a backend may hand back to the client on accept.
_HANDSHAKE_HEADERS = ("sec-websocket-protocol", "set-cookie")
_PREFIX_PARAM = re.compile(r'message-prefix\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,\s]*))', re.I)
# One comma-separated extension, a comma inside a quoted-string included.
_EXTENSION = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*"?)+')
# Not passed back on a Reject: hop-by-hop, and Content-Encoding (the body is already decoded).
_REJECT_DROP = frozenset(
    {
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-encoding",
    }
)


class ResponseError(ParseError):
    """The backend answered something that is not a usable response."""

    status = 502


# Response headers passed on to the client: a header the backend repeated
# (several Set-Cookie) is a list of its values, in order.
Headers = dict[str, str | list[str]]


@dataclass(frozen=True)
class Accept:
    headers: Headers
    grip_prefix: str | None  # None: GRIP mode off, messages pass verbatim


@dataclass(frozen=True)
class Reject:
    status: int
    headers: Headers
    body: bytes
    # Set when the gateway refuses because the backend's answer is unusable: what is wrong.
    problem: str | None = None


def _unusable(problem: str) -> Reject:
    """The gateway's own 502: plain text that says what was wrong with the answer."""
    body = f"Bad Gateway: {problem}".encode()
    return Reject(502, {"content-type": "text/plain; charset=utf-8"}, body, problem)


@dataclass(frozen=True)
class Send:
    content: bytes
    binary: bool = False

    @property
    def payload(self) -> Payload:
        return Payload.of_bytes(self.content, self.binary)


@dataclass(frozen=True)
class Close:
    code: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Disconnect:
    pass


@dataclass(frozen=True)
class Subscribe:
    channel: str
    # The GRIP item id the client last saw: the gateway replays what followed
    # it (docs/resume.md; the proposal of Pushpin issue 47650).
    prev_id: str | None = None


@dataclass(frozen=True)
class Unsubscribe:
    channel: str


@dataclass(frozen=True)
class Detach:
    pass


@dataclass(frozen=True)
class KeepAlive:
    content: bytes | None  # None turns keep-alive off
    binary: bool = False
    timeout: int = DEFAULT_TIMEOUT
    mode: str = IDLE
    # "ping" or "pong": a control frame, which @connections cannot send
    control_frame: str | None = None


@dataclass(frozen=True)
class SetMeta:
    name: str
    value: str  # "" deletes


@dataclass(frozen=True)
class Dropped:
    """Something in the response was ignored; `reason` is for the log."""

    reason: str


Decision = (
    Accept
    | Reject
    | Send
    | Close
    | Disconnect
    | Subscribe
    | Unsubscribe
    | Detach
    | KeepAlive
    | SetMeta
    | Dropped
)


def lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    return dict(_lower_pairs(headers))


def _lower_pairs(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name.lower(), value) for name, value in items]


def _passed(pairs: list[tuple[str, str]], keep: Callable[[str], bool]) -> Headers:
    """The headers `keep` lets through; a repeated one keeps every value."""
    out: Headers = {}
    for name, value in pairs:
        if not keep(name):
            continue
        seen = out.get(name)
        if seen is None:
            out[name] = value
        elif isinstance(seen, list):
            seen.append(value)
        else:
            out[name] = [seen, value]
    return out


def grip_prefix_of(extensions: str | None) -> str | None:
    """The message prefix if `Sec-WebSocket-Extensions` turns GRIP mode on, else None."""
    if not extensions:
        return None
    for ext in _EXTENSION.findall(extensions):
        name, _, params = ext.strip().partition(";")
        if name.strip().lower() != "grip":
            continue
        match = _PREFIX_PARAM.search(params)
        if not match:
            return DEFAULT_PREFIX
        if match.group(1) is not None:
            return re.sub(r"\\(.)", r"\1", match.group(1))
        return match.group(2)
    return None


def read_response(
    status: int,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    *,
    opening: bool,
    grip_prefix: str | None = None,
) -> list[Decision]:
    """Decisions for one backend response.

    For the OPEN request a bad response becomes a Reject; after open it raises
    ResponseError (Pushpin drops the client, and so does the caller).
    """
    pairs = _lower_pairs(headers)
    hdrs = dict(pairs)
    problem = _problem(status, hdrs)
    if problem is None:
        try:
            events = codec.decode(body)
        except codec.CodecError as exc:
            problem = f"malformed body: {exc}"
    if problem is not None:
        if not opening:
            raise ResponseError(problem)
        # A 2xx from $connect would accept the socket: only a non-2xx status can reject.
        if not 200 <= status < 300:
            return [Reject(status, _passed(pairs, lambda k: k not in _REJECT_DROP), body)]
        return [_unusable(problem)]

    decisions: list[Decision] = []
    if opening:
        if not events or events[0].type != "OPEN":
            return [_unusable("backend response to OPEN does not begin with OPEN")]
        events = events[1:]
        grip_prefix = grip_prefix_of(hdrs.get("sec-websocket-extensions"))
        decisions.append(Accept(_passed(pairs, _HANDSHAKE_HEADERS.__contains__), grip_prefix))
    decisions.extend(_meta_headers(hdrs))
    for event in events:
        decisions.extend(_event(event, grip_prefix))
    return decisions


def _problem(status: int, hdrs: dict[str, str]) -> str | None:
    if status != 200:
        return f"backend answered status {status}"
    ctype = hdrs.get("content-type", "").split(";")[0].strip().lower()
    if ctype != codec.CONTENT_TYPE:
        return f"backend answered Content-Type {ctype or 'none'!r}, not {codec.CONTENT_TYPE}"
    return None


def _meta_headers(hdrs: dict[str, str]) -> list[Decision]:
    out: list[Decision] = []
    for header, value in hdrs.items():
        if not header.startswith("set-meta-") or len(header) == len("set-meta-"):
            continue
        out.append(_set_meta(header[len("set-meta-") :], value.strip(), f"{header} header"))
    return out


def _set_meta(name: object, value: object, where: str) -> Decision:
    """A SetMeta, or Dropped if the pair could not ride as a `Meta-<name>` header
    (grip/meta.py): the meta stays as it was and the connection goes on."""
    problem = meta.name_problem(name) or meta.value_problem(value)
    if problem is not None or not isinstance(name, str) or not isinstance(value, str):
        return Dropped(f"{where} ignored: {problem}")
    return SetMeta(name.lower(), value)


def _event(event: codec.Event, grip_prefix: str | None) -> list[Decision]:
    content = event.content or b""
    if event.type in ("TEXT", "BINARY"):
        binary = event.type == "BINARY"
        if grip_prefix is None:
            return [Send(content, binary)]
        if not binary and content.startswith(CONTROL_PREFIX):
            return [_control(content[len(CONTROL_PREFIX) :])]
        prefix = grip_prefix.encode("utf-8")
        if content.startswith(prefix):
            return [Send(content[len(prefix) :], binary)]
        return [Dropped(f"{event.type} without the {grip_prefix!r} prefix in GRIP mode")]
    if event.type == "CLOSE":
        code, reason = codec.parse_close(event.content)
        return [Close(code, reason)]
    if event.type == "DISCONNECT":
        return [Disconnect()]
    # API Gateway answers pings itself and @connections cannot send control frames.
    return [Dropped(f"{event.type} from the backend is not forwarded")]


def _control(raw: bytes) -> Decision:
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return Dropped(f"control message is not JSON: {raw[:64]!r}")
    if not isinstance(msg, dict):
        return Dropped("control message is not a JSON object")
    bad = text.unpaired_at(msg)
    if bad is not None:
        return Dropped(f"control message ignored: {bad} {text.PROBLEM}")
    kind = msg.get("type")
    if kind in ("subscribe", "unsubscribe"):
        channel = msg.get("channel")
        if not isinstance(channel, str) or not channel:
            return Dropped(f"{kind} without a channel")
        if len(channel) > MAX_CHANNEL_LENGTH:
            return Dropped(f"{kind}: channel longer than {MAX_CHANNEL_LENGTH} characters")
        if kind == "unsubscribe":
            return Unsubscribe(channel)
        prev_id = msg.get("prev-id")
        if prev_id is not None and (not isinstance(prev_id, str) or not prev_id):
            return Dropped("subscribe: prev-id must be a non-empty string")
        return Subscribe(channel, prev_id)
    if kind == "detach":
        return Detach()
    if kind == "set-meta":
        value = msg.get("value")
        return _set_meta(msg.get("name"), "" if value is None else value, "set-meta")
    if kind == "keep-alive":
        return _keep_alive(msg)
    return Dropped(f"unknown control message type {kind!r}")


def _shown(value: Any) -> str:
    """A value for a log line, cut short (a 200-digit integer stays readable)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**20 else "a huge integer"
    return text if len(text) <= 40 else text[:37] + "..."


def _keep_alive(msg: dict[str, Any]) -> Decision:
    """Pushpin's keep-alive (`src/handler/wscontrolmessage.cpp`): no content turns
    it off; `message-type` defaults to the content's own kind."""
    timeout = msg.get("timeout", DEFAULT_TIMEOUT)
    mode = msg.get("mode", IDLE)
    kind = msg.get("message-type")
    if (
        not isinstance(timeout, int)
        or isinstance(timeout, bool)
        or not 1 <= timeout <= MAX_KEEPALIVE_TIMEOUT
    ):
        return Dropped(
            f"keep-alive timeout must be an integer from 1 to {MAX_KEEPALIVE_TIMEOUT} "
            f"seconds (API Gateway closes a connection idle for {MAX_KEEPALIVE_TIMEOUT} s), "
            f"not {_shown(timeout)}"
        )
    if mode not in (IDLE, INTERVAL):
        return Dropped(f"keep-alive mode {mode!r} is not idle or interval")
    if kind not in (None, "text", "binary", "ping", "pong"):
        return Dropped(f"keep-alive message-type {kind!r} is not text, binary, ping or pong")
    if "content-bin" in msg:
        try:
            data = base64.b64decode(msg["content-bin"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            return Dropped("keep-alive content-bin is not base64")
        binary = True
    else:
        content = msg.get("content")
        if content is None:
            return KeepAlive(None)
        if not isinstance(content, str):
            return Dropped("keep-alive content must be a string")
        data, binary = content.encode("utf-8"), False
    if kind in ("ping", "pong"):
        return KeepAlive(data, binary, timeout, mode, control_frame=kind)
    if kind is not None:
        binary = kind == "binary"
    return KeepAlive(data, binary, timeout, mode)
