"""One message as queues and publishes carry it: GRIP's ws-message shape. Pure."""

from __future__ import annotations

import base64


def to_frame(content: bytes, binary: bool) -> dict[str, str]:
    """`{"content": text}` or `{"content-bin": base64}`."""
    if binary:
        return {"content-bin": base64.b64encode(content).decode("ascii")}
    return {"content": content.decode("utf-8", errors="replace")}


def from_frame(frame: dict[str, str]) -> bytes | str:
    """What @connections is posted: bytes for binary, str for text."""
    if "content-bin" in frame:
        return base64.b64decode(frame["content-bin"])
    return frame["content"]
