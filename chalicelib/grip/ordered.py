"""Ordered delivery (docs/ordered.md): a connection's events as jobs in its inbox,
the wake-ups in its FIFO group, and the requests they make to the backend. Pure.

- `Inbound`: a client's message as API Gateway handed it to `$default` (the frame
  is read later, by the forwarder, so envelope frames are read in order too).
- `Ended`: the connection ended; the backend is told after every earlier message.

Each carries API Gateway's receipt time (`requestTimeEpoch`, milliseconds), the
order the inbox keeps them in. A `Wake` tells the forwarder that a connection's
inbox got a job received at that time.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from . import codec
from .errors import ParseError
from .limits import ORDERED_REQUEST_BYTES

VERSION = 1


class OrderedJobError(ParseError):
    """A queue body is not an ordered-delivery job."""

    status = 500


class Inbound(NamedTuple):
    connection_id: str
    received_ms: int
    body: bytes  # the frame's text as UTF-8, or the bytes of a base64 body
    binary: bool = False


class Ended(NamedTuple):
    connection_id: str
    received_ms: int
    status: int | None = None  # disconnectStatusCode; None: dropped (DISCONNECT)
    reason: str = ""


Job = Inbound | Ended


class Wake(NamedTuple):
    connection_id: str
    received_ms: int  # the job's receipt time
    written_ms: int  # when its row was written, by the writer's clock


def group(connection_id: str) -> str:
    """One FIFO message group per connection: one forwarder at a time for each."""
    return f"conn#{connection_id}"


def sort_key(received_ms: int, message_id: str) -> str:
    """An inbox row's sort key: receipt order, then API Gateway's message id."""
    return f"{received_ms:013d}#{message_id}"


def encode_wake(wake: Wake) -> str:
    data = {"v": VERSION, "c": wake.connection_id, "t": wake.received_ms, "w": wake.written_ms}
    return json.dumps(data)


def decode_wake(body: str) -> Wake:
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise OrderedJobError(f"not a wake-up of version {VERSION}: {body[:80]!r}")
        return Wake(str(data["c"]), int(data["t"]), int(data["w"]))
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, OrderedJobError):
            raise
        raise OrderedJobError(f"malformed wake-up {body[:80]!r}: {exc}") from None


def encode(job: Job) -> str:
    """ASCII JSON; a body as base64, so a 128 KB frame stays under SQS's 256 KB."""
    if isinstance(job, Inbound):
        data: dict[str, Any] = {
            "v": VERSION,
            "k": "in",
            "c": job.connection_id,
            "t": job.received_ms,
            "b": base64.b64encode(job.body).decode("ascii"),
        }
        if job.binary:
            data["bin"] = True
    else:
        data = {"v": VERSION, "k": "end", "c": job.connection_id, "t": job.received_ms}
        if job.status is not None:
            data["s"] = job.status
        if job.reason:
            data["r"] = job.reason
    return json.dumps(data, separators=(",", ":"))


def decode(body: str) -> Job:
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise OrderedJobError(f"not an ordered job of version {VERSION}: {body[:80]!r}")
        cid, at = str(data["c"]), int(data["t"])
        if data["k"] == "in":
            raw = base64.b64decode(data["b"], validate=True)
            return Inbound(cid, at, raw, bool(data.get("bin", False)))
        if data["k"] == "end":
            status = data.get("s")
            return Ended(
                cid, at, int(status) if status is not None else None, str(data.get("r", ""))
            )
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        if isinstance(exc, OrderedJobError):
            raise
        raise OrderedJobError(f"malformed ordered job {body[:80]!r}: {exc}") from None
    raise OrderedJobError(f"unknown ordered job kind {data.get('k')!r}")


def until_ended(jobs: Iterable[Job]) -> tuple[list[Inbound], Ended | None]:
    """The messages before a connection's end (in the order given), and the end;
    anything after an end is dropped: the connection is gone."""
    messages: list[Inbound] = []
    for job in jobs:
        if isinstance(job, Ended):
            return messages, job
        messages.append(job)
    return messages, None


def requests(
    events: Sequence[codec.Event], limit: int = ORDERED_REQUEST_BYTES
) -> list[list[codec.Event]]:
    """Consecutive events cut into requests of at most `limit` encoded bytes
    (an event larger than that alone goes alone), in order."""
    out: list[list[codec.Event]] = []
    current: list[codec.Event] = []
    size = 0
    for event in events:
        cost = len(codec.encode([event]))
        if current and size + cost > limit:
            out.append(current)
            current, size = [], 0
        current.append(event)
        size += cost
    if current:
        out.append(current)
    return out
