"""slipway_client: the Python side of slipway.

- `WebSocketContext` (backend helpers): read the gateway's WebSocket-over-HTTP
  requests and build the responses, in any web framework.
- `ControlClient`: publish to channels, act on one connection, count and list
  channels' connections.
- `WebSocketClient` / `connect`: an asyncio WebSocket client for messages of
  any size (the envelope of docs/envelope.md), with reconnection, resume
  (positions, replay, de-duplication) and rotation before API Gateway's
  2-hour cut (docs/resume.md).
"""

from .backend import Closed, Disconnected, Response, WebSocketContext
from .control import (
    ConnectionPage,
    ConnectionSummary,
    ControlClient,
    PublishItem,
    PublishResult,
)
from .errors import (
    CodecError,
    ControlError,
    EnvelopeError,
    GripSigError,
    RemoteError,
    RotationTimeout,
    SlipwayError,
    SocketClosed,
    TransferError,
    UnknownConnection,
)
from .resume import Position, Recovery
from .socket import Backoff, State, WebSocketClient, connect

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "Closed",
    "CodecError",
    "ConnectionPage",
    "ConnectionSummary",
    "ControlClient",
    "ControlError",
    "Disconnected",
    "EnvelopeError",
    "GripSigError",
    "Position",
    "PublishItem",
    "PublishResult",
    "Recovery",
    "RemoteError",
    "Response",
    "RotationTimeout",
    "SlipwayError",
    "SocketClosed",
    "State",
    "TransferError",
    "UnknownConnection",
    "WebSocketClient",
    "WebSocketContext",
    "connect",
]
