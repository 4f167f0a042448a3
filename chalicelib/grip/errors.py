"""slipway's one error vocabulary. Pure.

Every error the gateway raises on purpose is a `SlipwayError`, and carries the
HTTP status a control route answers it with (as Chalice's own errors carry
`STATUS_CODE`), so a route maps any of them to an answer in one place. The
errors of reading input (`ParseError`: codec, decisions, jobs, tokens, frames,
refs...) are in it too, each with its status, and are still ValueErrors.
"""

from __future__ import annotations

from typing import Any


class SlipwayError(Exception):
    """An error with what a caller needs: an HTTP status and a message that says
    what was wrong and what to do."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body a control route answers with."""
        return {"error": self.message}

    def headers(self) -> dict[str, str]:
        return {}


# -- the caller's fault --------------------------------------------------------


class BadRequest(SlipwayError):
    """A request body is invalid; `fields` maps a dotted path to what is wrong there."""

    status = 400

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()))
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"error": "invalid request body", "fields": self.fields}


class ParseError(SlipwayError, ValueError):
    """Input that could not be read: a backend's answer, a queued job, a client's
    frame, a token, a `resume=` value... Each kind carries the status of the answer
    it comes to where there is one (400 for a caller's input, 401 for a token, 502
    for a backend's answer; 500 for what only the gateway itself writes, such as a
    queued job). Still a ValueError, as a reader's callers have always caught it."""

    status = 400


class Unauthorized(SlipwayError):
    """The control API was called without the deployment's key or a token signed with it."""

    status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="slipway"'}


class NotFound(SlipwayError):
    status = 404


class NoConnection(NotFound):
    """A connection the caller named is not there."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"no connection {connection_id}")
        self.connection_id = connection_id


class UnknownConnection(NoConnection):
    """No record of this connection (never stored, or already removed)."""


class Gone(NoConnection):
    """API Gateway's 410: the connection is closed, unknown, or not open yet."""


class TooManyChannels(SlipwayError):
    """The connection is already in the maximum number of channels."""

    status = 409


class TooManyJoins(SlipwayError):
    """The connection has the most `Join` jobs queued it may (MAX_QUEUED_JOINS):
    a subscribe that would queue another is refused until they have run."""

    status = 429


class TooManyTimeouts(SlipwayError):
    """The deployment uses the most distinct keep-alive timeouts it may."""

    status = 409


class TooLarge(SlipwayError):
    """A message is larger than the way it must take allows (no retry can help)."""

    status = 413


# -- the gateway's or its dependencies' ----------------------------------------


class ConfigError(SlipwayError):
    """A setting is missing or malformed; the message names the variable."""

    status = 500


class ControlDisabled(SlipwayError):
    """No key is configured: the control API refuses everything (secure by default)."""

    status = 503


class Unavailable(SlipwayError):
    """A service the gateway depends on refused or failed: the caller may retry."""

    status = 503


class BadGateway(SlipwayError):
    """The backend or @connections could not be reached, or answered nonsense."""

    status = 502


class Throttled(Unavailable):
    """DynamoDB kept leaving part of a batch call unprocessed (throttling) past
    the retries: the caller may retry later."""

    status = 503


class Contended(Unavailable):
    """A connection's or channel's rows kept changing under a store transaction
    past the retries: the caller may retry."""

    status = 503
