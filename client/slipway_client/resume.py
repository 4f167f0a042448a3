"""Resume after reconnect, the client's half (docs/resume.md). Pure: no I/O.

The gateway gives every message published to a channel a position
`(epoch, offset)`: offsets count 1, 2, 3, ... per channel, and the epoch changes
when the channel's history is lost (offsets restart). A channel message carries
it as a trailing element, `[1, 0, data, {"channel", "epoch", "offset"}]` (also
`[4, -1, url, "GET", {}, {...}]`), and after every subscribe the gateway sends
`[6, 0, {"channel", "epoch", "offset", "recovery", "replayed", "reason"}]`.
A client reconnects with `resume=<base64url of {"<channel>": ["<epoch>", offset,
"<floor>"]}>` in its URL and the gateway replays what it missed; `floor` is the
token the `[6]` frames hand out, which lets a client recover a channel from its
first subscribe there on (and not before).

- `Stamp`, `Recovery`: the trailer and the `[6]` frame, read by `read_stamp` and
  `read_recovery`.
- `Tracker`: the positions, de-duplication, and what a `[6]` does to them.
- `encode_resume` / `decode_resume` / `with_resume`: the `resume=` parameter.
- `rotation_delay`, `Handover`: when to rotate, and when a rotation may close
  the old connection.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from .errors import EnvelopeError

RECOVERY = 6  # the [6] frame's kind
RESUME_PARAMETER = "resume"
RecoveryStatus = Literal["none", "recovered", "failed"]
RECOVERY_STATUSES: tuple[RecoveryStatus, ...] = ("none", "recovered", "failed")
# Default rotation window, seconds after a connection opened: API Gateway cuts at 7200.
ROTATE_WINDOW = (6000.0, 6900.0)

__all__ = [
    "RECOVERY",
    "ROTATE_WINDOW",
    "Handover",
    "Position",
    "Recovery",
    "RecoveryStatus",
    "Stamp",
    "Tracker",
    "check_window",
    "decode_resume",
    "encode_resume",
    "read_recovery",
    "read_stamp",
    "rotation_delay",
    "with_resume",
]


class Position(NamedTuple):
    """Where a client is in one channel: the last offset it has, in an epoch."""

    epoch: str
    offset: int


@dataclass(frozen=True)
class Stamp:
    """The trailer of a channel message: its channel and position there."""

    channel: str
    epoch: str
    offset: int

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.offset)

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "epoch": self.epoch, "offset": self.offset}


@dataclass(frozen=True)
class Recovery:
    """A `[6]` frame: the outcome of a subscribe, and the channel's position now.

    `status`: `"none"` (no position was presented for the channel), `"recovered"`
    (the `replayed` messages after it came just before this frame) or `"failed"`
    (they could not be: `reason` is `"too_old"`, `"epoch_changed"` or
    `"unknown_id"`; what was published meanwhile is lost to this client, which
    should reload its state for the channel).
    """

    channel: str
    epoch: str
    offset: int
    status: RecoveryStatus
    replayed: int = 0
    reason: str | None = None
    floor: str | None = None  # the token to present with later positions in the channel

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.offset)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channel": self.channel,
            "epoch": self.epoch,
            "offset": self.offset,
            "recovery": self.status,
            "replayed": self.replayed,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.floor is not None:
            out["floor"] = self.floor
        return out


def read_stamp(value: Any) -> Stamp:
    """The `Stamp` in a message's trailing element; `EnvelopeError` if it is not one."""
    if not isinstance(value, dict):
        raise EnvelopeError("a message's position must be an object")
    channel, epoch, offset = _position_fields(value, "message position")
    return Stamp(channel, epoch, offset)


def read_recovery(value: Any) -> Recovery:
    """The `Recovery` in a `[6, 0, {...}]` frame's object; `EnvelopeError` if it is not one."""
    if not isinstance(value, dict):
        raise EnvelopeError("a [6] frame is [6, 0, {channel, epoch, offset, recovery, ...}]")
    channel, epoch, offset = _position_fields(value, "[6] frame")
    status = value.get("recovery")
    if status not in RECOVERY_STATUSES:
        raise EnvelopeError(f"[6] frame: recovery must be one of {RECOVERY_STATUSES}")
    replayed = value.get("replayed", 0)
    if not _is_count(replayed):
        raise EnvelopeError("[6] frame: replayed must be an integer >= 0")
    reason = value.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise EnvelopeError("[6] frame: reason must be a string")
    floor = value.get("floor")
    if floor is not None and not isinstance(floor, str):
        raise EnvelopeError("[6] frame: floor must be a string")
    return Recovery(channel, epoch, offset, status, replayed, reason, floor)


def _position_fields(value: dict[str, Any], what: str) -> tuple[str, str, int]:
    channel, epoch, offset = value.get("channel"), value.get("epoch"), value.get("offset")
    if not isinstance(channel, str) or not channel:
        raise EnvelopeError(f"{what}: channel must be a non-empty string")
    if not isinstance(epoch, str):
        raise EnvelopeError(f"{what}: epoch must be a string")
    if not isinstance(offset, int) or not _is_count(offset):
        raise EnvelopeError(f"{what}: offset must be an integer >= 0")
    return channel, epoch, offset


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# -- positions and duplicates -------------------------------------------------------------


class Tracker:
    """Positions per channel, and which messages are duplicates.

    A message is delivered unless its channel is at a position with the same
    epoch and an offset at least as high (it was delivered already), or its
    epoch is one the channel has left. Two connections may deliver the same
    channel at once (a rotation's overlap): each delivers in order without
    gaps, so keeping the highest offset delivered leaves no gap and no
    duplicate.
    """

    def __init__(
        self,
        positions: Mapping[str, Position | tuple[str, int]] | None = None,
        floors: Mapping[str, str] | None = None,
    ) -> None:
        self.positions: dict[str, Position] = {
            channel: Position(pos[0], pos[1]) for channel, pos in (positions or {}).items()
        }
        #: The floor token of each channel, from its latest `[6]`: presented with its position.
        self.floors: dict[str, str] = dict(floors or {})
        self._left: dict[str, set[str]] = {}  # epochs a channel has left

    def admit(self, stamp: Stamp) -> bool:
        """Whether to deliver the message `stamp` marks (and move the channel to it)."""
        now = self.positions.get(stamp.channel)
        if now is not None and now.epoch == stamp.epoch and stamp.offset <= now.offset:
            return False
        if stamp.epoch in self._left.get(stamp.channel, ()):
            return False
        self._move(stamp.channel, stamp.position)
        return True

    def recover(self, frame: Recovery) -> None:
        """Apply a `[6]` frame: the channel is at its position from now on.

        In the same epoch the position never goes back: during a rotation the
        old connection may already have delivered messages past the new one's
        `[6]`, and those must not be delivered again.
        """
        if frame.floor is not None:
            self.floors[frame.channel] = frame.floor
        now = self.positions.get(frame.channel)
        if now is not None and now.epoch == frame.epoch and now.offset >= frame.offset:
            return
        self._move(frame.channel, frame.position)

    def forget(self, channel: str) -> None:
        self.positions.pop(channel, None)
        self.floors.pop(channel, None)
        self._left.pop(channel, None)

    def _move(self, channel: str, position: Position) -> None:
        now = self.positions.get(channel)
        if now is not None and now.epoch != position.epoch:
            self._left.setdefault(channel, set()).add(now.epoch)
        self.positions[channel] = position


# -- the resume= parameter ----------------------------------------------------------------


def encode_resume(
    positions: Mapping[str, Position | tuple[str, int]], floors: Mapping[str, str] | None = None
) -> str:
    """base64url (no padding) of the compact JSON `{"<channel>": ["<epoch>", offset]}`,
    with the channel's floor token as a third element where `floors` has one."""
    floors = floors or {}
    body: dict[str, list[Any]] = {
        channel: [pos[0], pos[1], floors[channel]] if channel in floors else [pos[0], pos[1]]
        for channel, pos in positions.items()
    }
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode_resume(value: str) -> dict[str, Position]:
    """The positions in a `resume` value (empty: none); `ValueError` if it is not one."""
    if not value:
        return {}
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        body = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"resume is not base64url JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("resume must encode an object")
    out: dict[str, Position] = {}
    for channel, pos in body.items():
        if (
            not isinstance(pos, list)
            or len(pos) not in (2, 3)
            or not isinstance(pos[0], str)
            or not _is_count(pos[1])
        ):
            raise ValueError(f"resume: channel {channel!r} needs [epoch, offset(, floor)]")
        out[channel] = Position(pos[0], pos[1])
    return out


def with_resume(
    url: str,
    positions: Mapping[str, Position | tuple[str, int]],
    floors: Mapping[str, str] | None = None,
) -> str:
    """`url` with `resume=` carrying `positions` and their `floors` (replacing any).
    Without positions the value is empty: the client still says that it speaks
    the protocol."""
    base, _, fragment = url.partition("#")
    path, _, query = base.partition("?")
    params = [p for p in query.split("&") if p and p.split("=", 1)[0] != RESUME_PARAMETER]
    value = encode_resume(positions, floors) if positions else ""
    out = path + "?" + "&".join([*params, f"{RESUME_PARAMETER}={value}"])
    return out + ("#" + fragment if fragment else "")


# -- rotation -----------------------------------------------------------------------------


def rotation_delay(window: tuple[float, float], rand: Callable[[], float] = random.random) -> float:
    """Seconds after a connection opened to rotate it: uniform in `window`, so that
    clients that connected together do not all rotate together."""
    low, high = window
    return low + (high - low) * rand()


def check_window(window: tuple[float, float] | None) -> tuple[float, float] | None:
    """`window` as floats; `ValueError` unless it is None or 0 <= low <= high."""
    if window is None:
        return None
    low, high = float(window[0]), float(window[1])
    if not 0 <= low <= high:
        raise ValueError(f"rotate_window must be (low, high) with 0 <= low <= high, not {window}")
    return low, high


@dataclass
class Handover:
    """A rotation's wait: the new connection has taken over once a `[6]` arrived on
    it for every channel the client has a position for."""

    waiting: set[str]

    @classmethod
    def of(cls, channels: Iterable[str]) -> Handover:
        return cls(set(channels))

    def arrived(self, channel: str) -> None:
        self.waiting.discard(channel)

    @property
    def done(self) -> bool:
        return not self.waiting
