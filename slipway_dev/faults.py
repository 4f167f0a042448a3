"""Faults injected into the local stack's emulated AWS, the way AWS fails:
`slipway local --faults 'connections:429:0.1,dynamodb:500:0.05'`, or at run time
through the control route `/_faults` of the local @connections server.

A rule is `service:error:rate`: `service` one of dynamodb, sqs, s3, connections;
`error` an HTTP status or an AWS error code (the table below); `rate` the fraction
of that service's calls answered with the error instead (0 to 1). Several rules
for one service share its calls (rates add up, at most 1). The error bodies
are AWS's, so the SDKs read them as they read AWS's own, and retry what they
retry on AWS.

What is faulted: the API calls the stack's processes make (the handlers, the
worker, the SQS event source), to the in-process moto and to the @connections
API. Not faulted: presigned S3 URLs (a client's upload or download), moto's own
/moto-api routes, and anything at an `--aws-endpoint` (only @connections then).
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

CONTROL_PATH = "/_faults"


@dataclass(frozen=True)
class Error:
    """One AWS error answer: status, error code, message."""

    status: int
    code: str
    message: str


# The errors each service answers with, as AWS words them. The first of each
# status is what a bare status in a rule means.
ERRORS: dict[str, tuple[Error, ...]] = {
    "dynamodb": (
        Error(
            400,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. "
            "Consider increasing your provisioning level with the UpdateTable API.",
        ),
        Error(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
        Error(500, "InternalServerError", "Internal server error"),
        Error(503, "ServiceUnavailable", "Service unavailable"),
    ),
    "sqs": (
        Error(400, "ThrottlingException", "Rate exceeded"),
        Error(400, "RequestThrottled", "Request is throttled."),
        Error(
            500, "InternalFailure", "The request processing has failed because of an unknown error."
        ),
        Error(503, "ServiceUnavailable", "Service is unable to handle request."),
    ),
    "s3": (
        Error(503, "SlowDown", "Please reduce your request rate."),
        Error(500, "InternalError", "We encountered an internal error. Please try again."),
    ),
    "connections": (
        Error(429, "LimitExceededException", "Too Many Requests"),
        Error(500, "InternalServerErrorException", "Internal server error"),
        Error(503, "ServiceUnavailableException", "Service Unavailable"),
    ),
}
SERVICES = tuple(ERRORS)


@dataclass(frozen=True)
class Rule:
    service: str
    error: Error
    rate: float

    def __str__(self) -> str:
        return f"{self.service}:{self.error.code}:{self.rate:g}"


def _error(service: str, name: str) -> Error:
    for error in ERRORS[service]:
        if name == error.code or name == str(error.status):
            return error
    known = ", ".join(
        sorted({str(e.status) for e in ERRORS[service]} | {e.code for e in ERRORS[service]})
    )
    raise ValueError(f"{service} has no error {name!r}: one of {known}")


def parse(spec: str) -> list[Rule]:
    """Rules from `service:error:rate[,service:error:rate...]`; an empty spec: none."""
    rules = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        fields = part.split(":")
        if len(fields) != 3:
            raise ValueError(
                f"fault {part!r}: expected service:error:rate, e.g. connections:429:0.1"
            )
        service, name, rate_text = fields
        if service not in ERRORS:
            raise ValueError(f"fault {part!r}: service must be one of {', '.join(SERVICES)}")
        try:
            rate = float(rate_text)
        except ValueError:
            raise ValueError(f"fault {part!r}: rate {rate_text!r} is not a number") from None
        if not 0 <= rate <= 1:
            raise ValueError(f"fault {part!r}: rate must be between 0 and 1")
        rules.append(Rule(service, _error(service, name), rate))
    for service in SERVICES:
        total = sum(r.rate for r in rules if r.service == service)
        if total > 1 + 1e-9:
            raise ValueError(f"faults: the rates for {service} add up to {total:g}, over 1")
    return rules


class Faults:
    """The rules in force and what they did. Thread-safe; shared by the moto
    wrapper and the @connections server."""

    def __init__(self, rules: Iterable[Rule] = (), seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._rules: tuple[Rule, ...] = tuple(rules)
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()  # "service:code"

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def set(self, rules: Iterable[Rule]) -> None:
        with self._lock:
            self._rules = tuple(rules)
        log.warning("faults: %s", ", ".join(map(str, self._rules)) or "none")

    def pick(self, service: str) -> Error | None:
        """Whether this call of `service` fails, and how."""
        with self._lock:
            self.calls[service] += 1
            draw = self._random.random()
            for rule in self._rules:
                if rule.service != service:
                    continue
                if draw < rule.rate:
                    self.injected[f"{service}:{rule.error.code}"] += 1
                    return rule.error
                draw -= rule.rate
        return None

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rules": [str(r) for r in self._rules],
                "calls": dict(self.calls),
                "injected": dict(self.injected),
            }

    # -- the control route -----------------------------------------------------

    def control(self, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """`GET /_faults`: rules and counts; `PUT` with a spec as the body: new
        rules (counts kept); `DELETE`: no rules."""
        if method == "PUT":
            try:
                self.set(parse(body.decode("utf-8", "replace")))
            except ValueError as exc:
                return 400, {"message": str(exc)}
        elif method == "DELETE":
            self.set(())
        elif method != "GET":
            return 405, {"message": "GET, PUT or DELETE"}
        return 200, self.report()

    # -- moto ---------------------------------------------------------------------

    def wsgi(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        """moto's WSGI app, with the faults in front of it."""

        def faulty(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            service = _service(environ)
            error = self.pick(service) if service else None
            if error is None:
                return app(environ, start_response)
            status, headers, body = _aws_answer(service, error, environ)  # type: ignore[arg-type]
            start_response(status, headers)
            return [body]

        return faulty


# SigV4's credential scope names the service:
# Credential=<key>/<date>/<region>/<service>/aws4_request
_SCOPE = re.compile(r"Credential=[^/,]*/\d+/[^/,]+/([a-z0-9-]+)/aws4_request")


def _service(environ: dict[str, Any]) -> str | None:
    """The service an SDK call is for (None: not an SDK call, e.g. a presigned URL)."""
    if environ.get("PATH_INFO", "").startswith("/moto-api"):
        return None
    found = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if found is None:
        return None
    service = found.group(1)
    return service if service in ERRORS else None


def _aws_answer(
    service: str, error: Error, environ: dict[str, Any]
) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status line, headers and body AWS sends for `error`, in the service's protocol."""
    request_id = f"{random.getrandbits(64):016x}-faults"
    status = f"{error.status} {_REASONS.get(error.status, 'Error')}"
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{error.code}</Code><Message>{error.message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        return status, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], body
    if service == "sqs" and not environ.get("HTTP_X_AMZ_TARGET"):  # the query protocol
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{error.code}</Code>"
            f"<Message>{error.message}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        ).encode()
        return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body
    namespace = {
        "dynamodb": "com.amazonaws.dynamodb.v20120810",
        "sqs": "com.amazonaws.sqs",
    }.get(service, "com.amazon.coral.service")
    body = json.dumps({"__type": f"{namespace}#{error.code}", "message": error.message}).encode()
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", request_id)]
    if service == "sqs":
        headers.append(("x-amzn-query-error", f"{error.code};Sender"))
    return status, headers, body


_REASONS = {
    400: "Bad Request",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
