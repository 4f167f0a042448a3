"""Channel history and resume after reconnect (docs/resume.md). Pure.

Every message published to a channel gets a position in it: an `offset` (1, 2,
3, ... with no gaps; a retried publish keeps its own) within an `epoch`, a short
string that changes when the channel's history is lost, so that offsets which
restart are never mistaken for old ones.

A client that reconnects presents the last position it saw in each channel
(`resume=` in its connect URL, `parse_resume`); when the backend subscribes the
new connection to one of those channels, `decide` says what the gateway does:
replay the messages after it, say that there is nothing to recover, or say that
recovery failed and why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, NamedTuple

from . import keys, text
from .errors import BadRequest, ParseError
from .introspection import decimal, page_limit
from .limits import MAX_CHANNEL_LENGTH, MAX_CHANNELS, MAX_SAFE_INTEGER
from .payload import Payload

# The query parameter a client presents its positions in (and opts in with).
RESUME_PARAM = "resume"
# A `resume=` value longer than this is ignored rather than decoded: API
# Gateway's request line is bounded too, and a client has at most MAX_CHANNELS.
MAX_RESUME_LENGTH = 8 * 1024
# The largest offset a client's resume= or an items query may name.
MAX_OFFSET = MAX_SAFE_INTEGER


class Position(NamedTuple):
    """Where a client is in one channel: the last message it saw."""

    epoch: str
    offset: int


class Head(NamedTuple):
    """A channel's history now: its epoch and the offset of its last message."""

    epoch: str
    top: int


class Recovery(StrEnum):
    """What a `[6]` frame reports for one channel."""

    NONE = "none"  # no position presented: nothing to recover
    RECOVERED = "recovered"  # the messages after the position were replayed
    FAILED = "failed"  # the position could not be honoured: reload state


class Reason(StrEnum):
    """Why a recovery failed."""

    TOO_OLD = "too_old"  # older than the history keeps (by time or count)
    EPOCH_CHANGED = "epoch_changed"  # the channel's history was lost or reset
    UNKNOWN_ID = "unknown_id"  # the backend's prev-id is not in the history
    HISTORY_OFF = "history_off"  # this deployment keeps no history
    # The position is not one the client was handed since it first joined the
    # channel (it holds no valid floor, or is before it): recovering from it could
    # hand it messages published before it was ever subscribed.
    NOT_JOINED = "not_joined"


class Replay(NamedTuple):
    """Deliver the messages `after` < offset <= `upto`, in order."""

    after: int
    upto: int


class Failed(NamedTuple):
    reason: Reason


Decision = Replay | Failed


class ResumeError(ParseError):
    """A `resume=` value is not positions; the message says what is wrong."""

    status = 400


def decide(since: Position, head: Head | None, max_items: int, floor: int | None = 0) -> Decision:
    """What recovering from `since` takes, given the channel's history `head`
    (None: the channel has none), how many messages it keeps, and the client's
    `floor`: the offset at its first subscribe to the channel, below which it
    may not recover (None: unknown, so no position is honoured; 0: any is)."""
    if max_items <= 0:
        return Failed(Reason.HISTORY_OFF)
    if head is None or since.epoch != head.epoch or since.offset > head.top:
        # Offsets past the top: the history was reset within the same epoch,
        # which only an operator does by hand; treat it as a new epoch.
        return Failed(Reason.EPOCH_CHANGED)
    if floor is None or since.offset < floor:
        return Failed(Reason.NOT_JOINED)
    if head.top - since.offset > max_items:
        return Failed(Reason.TOO_OLD)
    return Replay(since.offset, head.top)


def complete(offsets: list[int], replay: Replay) -> bool:
    """Whether the history rows found (their offsets, ascending) are every
    message the replay needs: a missing one has expired."""
    return offsets == list(range(replay.after + 1, replay.upto + 1))


# -- resume= ----------------------------------------------------------------------


class Presented(NamedTuple):
    """What a `resume=` value holds: a position per channel, and the floor token
    the gateway handed the client for it, where the client kept one."""

    positions: dict[str, Position]
    floors: dict[str, str]


def parse_resume(value: str) -> dict[str, Position]:
    """Positions from a `resume=` value (`read_resume`), without their floors."""
    return read_resume(value).positions


def read_resume(value: str) -> Presented:
    """Positions from a `resume=` value: base64url (padding optional) of the JSON
    object `{"<channel>": ["<epoch>", <offset>, "<floor>"], ...}` (the floor
    optional). An empty value is no positions (the client speaks the protocol and
    has none yet)."""
    if not value:
        return Presented({}, {})
    if len(value) > MAX_RESUME_LENGTH:
        raise ResumeError(f"resume is longer than {MAX_RESUME_LENGTH} characters")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise ResumeError("resume must be base64url of a JSON object") from None
    if not isinstance(data, dict):
        raise ResumeError("resume must hold a JSON object of channel: [epoch, offset]")
    if text.unpaired_at(data) is not None:
        raise ResumeError(f"resume {text.PROBLEM}")
    if len(data) > MAX_CHANNELS * 5:
        raise ResumeError("resume holds more channels than a connection may join")
    out: dict[str, Position] = {}
    floors: dict[str, str] = {}
    for channel, pos in data.items():
        if not channel or len(channel) > MAX_CHANNEL_LENGTH:
            raise ResumeError(f"resume: channel name {channel[:40]!r} is empty or too long")
        if (
            not isinstance(pos, list)
            or len(pos) not in (2, 3)
            or not isinstance(pos[0], str)
            or not _is_offset(pos[1])
            or (len(pos) == 3 and not isinstance(pos[2], str))
        ):
            raise ResumeError(
                f"resume: {channel!r} must be [epoch, offset] or [epoch, offset, floor]"
            )
        out[channel] = Position(pos[0], pos[1])
        if len(pos) == 3:
            floors[channel] = pos[2]
    return Presented(out, floors)


def encode_resume(positions: dict[str, Position], floors: dict[str, str] | None = None) -> str:
    """The `resume=` value for `positions` (base64url, no padding), each with its
    floor token from `floors` where there is one."""
    floors = floors or {}
    data = {
        c: [p.epoch, p.offset, floors[c]] if c in floors else [p.epoch, p.offset]
        for c, p in positions.items()
    }
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _is_offset(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_OFFSET


# -- who may recover what (docs/resume.md#who-may-recover-what) ----------------------
#
# A client recovers a channel only from positions at or after its first subscribe
# to it: the `[6]` frame of that subscribe hands it a floor token, a MAC over the
# channel, the epoch and the offset it started at, which it presents with its
# positions on every reconnect; the gateway keeps nothing per client. A recovered
# join hands the same floor back, so it survives any number of reconnects.

_FLOOR_DIGITS = 15


def floor_token(secret: str, channel: str, epoch: str, floor: int) -> str:
    """The token that lets a client recover `channel` from `floor` on, in `epoch`."""
    return f"{floor}.{_floor_mac(secret, channel, epoch, floor)}"


def read_floor(
    secret: str | Iterable[str] | None, channel: str, epoch: str, token: str
) -> int | None:
    """The floor a token the gateway handed out holds, signed with any of the
    deployment's keys (one signed before a rotation still counts); None for any
    other token (forged, another channel's or epoch's, or no key to check it with)."""
    offset, dot, mac = token.partition(".")
    if not dot or not offset.isdigit() or len(offset) > _FLOOR_DIGITS:
        return None
    floor = int(offset)
    for key in keys.of(secret):
        if hmac.compare_digest(_floor_mac(key, channel, epoch, floor), mac):
            return floor
    return None


def _floor_mac(secret: str, channel: str, epoch: str, floor: int) -> str:
    body = json.dumps(["slipway-floor", channel, epoch, floor], ensure_ascii=True)
    digest = hmac.new(secret.encode("utf-8"), body.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")


def verified_floors(
    secret: str | Iterable[str] | None, positions: dict[str, Position], floors: dict[str, str]
) -> dict[str, int]:
    """The floors among those presented that the gateway handed out for the same
    channel and epoch as the position presented with them."""
    out: dict[str, int] = {}
    for channel, token in floors.items():
        position = positions.get(channel)
        if position is None:
            continue
        floor = read_floor(secret, channel, position.epoch, token)
        if floor is not None:
            out[channel] = floor
    return out


def next_floor(recovered: bool, floor: int | None, since: Position | None, head: Head) -> int:
    """The floor a join hands the client: the one it recovered from, kept (its
    first subscribe's); otherwise where it is now, the channel's top."""
    if recovered and floor is not None:
        return floor
    if recovered and since is not None:
        return since.offset  # any position honoured (the setting): from where it was
    return head.top


# -- what the client is told --------------------------------------------------------


def trailer(channel: str, position: Position) -> dict[str, Any]:
    """The element a channel message carries last, for clients that track positions."""
    return {"channel": channel, "epoch": position.epoch, "offset": position.offset}


def report(
    channel: str,
    head: Head,
    recovery: Recovery,
    replayed: int = 0,
    reason: Reason | None = None,
    floor: str | None = None,
) -> dict[str, Any]:
    """The body of a `[6]` frame: the channel's position now, what recovery did,
    and the floor token to present with later positions in the channel."""
    body: dict[str, Any] = {
        "channel": channel,
        "epoch": head.epoch,
        "offset": head.top,
        "recovery": str(recovery),
        "replayed": replayed,
    }
    if reason is not None:
        body["reason"] = str(reason)
    if floor is not None:
        body["floor"] = floor
    return body


# The head remembers the queue message ids of its channel's latest publishes, in
# offset order (the last took `top`), so that a publish SQS hands out again keeps
# its own offset. It keeps at least RECENT, more than a Lambda batch (10), and is
# trimmed back when it holds twice as many: small enough for one write unit (1 KB).
RECENT = 12


def recent_offset(recent: list[str], top: int, message_id: str) -> int | None:
    """The offset the queue message `message_id` took already, if it is recent:
    the ids run up to `top`, one offset each."""
    for back, mid in enumerate(reversed(recent)):
        if mid == message_id:
            return top - back
    return None


def to_trim(recent: list[str]) -> int:
    """How many of the oldest ids to drop from the head now (0 most of the time)."""
    return len(recent) - RECENT if len(recent) >= 2 * RECENT else 0


def sort_key(offset: int) -> str:
    """A history row's sort key: zero-padded, so that keys sort as offsets do."""
    return f"{offset:012d}"


class Entry(NamedTuple):
    """One message of a channel's history: inline, or the key of its S3 object
    (kept in the download form, as any large message)."""

    offset: int
    published_at: float
    payload: Payload | None
    stored: str | None  # the S3 key, when `payload` is None
    binary: bool
    id: str | None = None  # the GRIP item's id and prev-id
    prev_id: str | None = None


# -- the items route (GET /channels/{channel}/items) ----------------------------------


class ItemsQuery(NamedTuple):
    after: int  # list the items with a greater offset ...
    after_id: str | None  # ... or those after the item with this GRIP id
    limit: int


def items_query(params: dict[str, str] | None) -> ItemsQuery:
    """The items route's query string, checked; BadRequest says what is wrong."""
    params = params or {}
    after_raw, after_id = params.get("after"), params.get("after-id")
    if after_raw is not None and after_id is not None:
        raise BadRequest({"after": ["give after or after-id, not both"]})
    after = 0
    if after_raw is not None:
        found = decimal(after_raw, 0, MAX_OFFSET)
        if found is None:
            raise BadRequest({"after": [f"an offset: an integer from 0 to {MAX_OFFSET}"]})
        after = found
    if after_id is not None and not after_id:
        raise BadRequest({"after-id": ["a GRIP item id, not empty"]})
    return ItemsQuery(after, after_id, page_limit(params.get("limit")))


def listing(entry: Entry, content_url: str | None = None) -> dict[str, Any]:
    """One item as the items route lists it: its content inline, or the URL of
    its stored object (the message's JSON text, as envelope clients download it)."""
    item: dict[str, Any] = {"offset": entry.offset, "published_at": entry.published_at}
    if entry.id is not None:
        item["id"] = entry.id
    if entry.prev_id is not None:
        item["prev-id"] = entry.prev_id
    if entry.payload is not None:
        key = "content-bin" if entry.binary else "content"
        item[key] = entry.payload.text  # base64 for bytes
    else:
        item["content-url"] = content_url
        item["binary"] = entry.binary
    return item
