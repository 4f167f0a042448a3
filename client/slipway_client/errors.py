"""Every error the library raises, under one base class: `SlipwayError`."""

from __future__ import annotations

from typing import Any


class SlipwayError(Exception):
    """Base class of every error raised by slipway_client."""


class CodecError(SlipwayError, ValueError):
    """A body is not valid `application/websocket-events` (docs/backend-protocol.md)."""


class GripSigError(SlipwayError):
    """A request's `Grip-Sig` is missing, malformed, forged or expired.

    Answer such a request with 403: it did not come from the gateway.
    """


class ControlError(SlipwayError):
    """The control API refused a request, or could not be reached.

    `status` is the HTTP status (None when no answer came back), `error` the
    server's `error` text, `fields` its per-field complaints on a 400
    (a dotted path in the request body -> what is wrong there).
    """

    def __init__(
        self, status: int | None, error: str, fields: dict[str, Any] | None = None
    ) -> None:
        self.status = status
        self.error = error
        self.fields = dict(fields or {})
        where = f"HTTP {status}" if status is not None else "no answer"
        detail = "; ".join(f"{k}: {_text(v)}" for k, v in self.fields.items())
        super().__init__(f"{where}: {error}" + (f" ({detail})" if detail else ""))


class UnknownConnection(ControlError):
    """The gateway knows no open connection with that id (404): it has gone."""


class EnvelopeError(SlipwayError, ValueError):
    """A text frame is not a valid envelope frame (docs/envelope.md)."""


class RemoteError(SlipwayError):
    """The gateway answered `[5, id, {"success": false, ...}]` for request `id`."""

    def __init__(self, id: int, code: str, message: str) -> None:
        self.id = id
        self.code = code
        self.message = message
        super().__init__(f"gateway refused message {id}: {code}: {message}")


class TransferError(SlipwayError):
    """Uploading or downloading a large message over HTTP failed."""

    def __init__(self, id: int, method: str, reason: str, status: int | None = None) -> None:
        self.id = id
        self.method = method
        self.status = status
        self.reason = reason
        super().__init__(f"{method} for message {id} failed: {reason}")


class SocketClosed(SlipwayError):
    """The WebSocket client is closed (or lost its connection mid-send)."""


class RotationTimeout(SlipwayError):
    """A rotation's new connection sent no `[6]` for some channels in time; the old
    connection was closed anyway (docs/resume.md). `missing` names the channels."""

    def __init__(self, missing: frozenset[str], timeout: float) -> None:
        self.missing = missing
        self.timeout = timeout
        names = ", ".join(sorted(missing))
        super().__init__(f"rotation: no recovery within {timeout} s for channel(s) {names}")


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)
