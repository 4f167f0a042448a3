"""The local S3 refuses what S3 refuses, where moto takes it (docs/local-stack.md#what-s3-refuses).

moto 5 serves any presigned URL, Signature Version 2 included, and answers a GET
or HEAD of a missing key with 404 NoSuchKey whoever asks. S3 does neither:

- a bucket created after June 2020 refuses Signature Version 2 (an
  `AWSAccessKeyId=…&Signature=…` URL, or an `Authorization: AWS …` header) with
  400 InvalidRequest;
- a missing key answers 404 only to a caller allowed `s3:ListBucket` on the
  bucket (with the key as the `s3:prefix` condition key); anyone else gets
  403 AccessDenied, so the absence of a key is never disclosed.

`S3Rules` stands in front of moto (inside its one-at-a-time lock) and applies
both. The caller of a signed request is taken to be the functions, whose policy
is the one `slipway bootstrap` writes (slipway_dev/policy.py) for the bucket
asked: its `s3:ListBucket` grant, if any, decides 403 or 404, as IAM would on
AWS. Unsigned requests are left to moto.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from . import policy

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# moto's account (and the one the local stack's ARNs name).
ACCOUNT = "123456789012"
REGION = "us-east-1"

# S3's answers, as it words them.
SIGV2_REFUSED = (
    "400 Bad Request",
    "InvalidRequest",
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
)
ACCESS_DENIED = ("403 Forbidden", "AccessDenied", "Access Denied")


def functions_policy(bucket: str) -> dict[str, Any]:
    """The functions' policy as `slipway bootstrap` writes it, for the local stack's names."""
    return policy.document(
        policy.Scope(
            partition="aws",
            region=REGION,
            account=ACCOUNT,
            functions="slipway-local",
            table="slipway",
            queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:slipway-publish.fifo",
            bucket=bucket,
            key_arn=f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/slipway-local/key",
            api_stage="local",
        )
    )


# -- IAM's evaluation, the part these rules need -----------------------------------


def _values(element: Any) -> list[str]:
    return [element] if isinstance(element, str) else list(element)


def _matches(patterns: Any, value: str) -> bool:
    # IAM's wildcards: * any run, ? one character; action names ignore case.
    return any(fnmatch.fnmatchcase(value, p) for p in _values(patterns))


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """Every operator's every key holds. Known: StringEquals and StringLike; any other
    operator, or a key the request does not carry, does not hold (as IAM: a missing
    key fails a condition without IfExists)."""
    for operator, keys in condition.items():
        for key, expected in keys.items():
            if key not in context:
                return False
            value = context[key]
            if operator == "StringEquals":
                if value not in _values(expected):
                    return False
            elif operator == "StringLike":
                if not _matches(expected, value):
                    return False
            else:
                return False
    return True


def allows(
    document: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]
) -> bool:
    """Whether an identity policy allows `action` on `resource`: an applicable Deny
    wins, else an applicable Allow is needed (IAM's order, one policy)."""
    allowed = False
    statements = document.get("Statement", [])
    for statement in [statements] if isinstance(statements, dict) else statements:
        if not _matches([a.lower() for a in _values(statement.get("Action", []))], action.lower()):
            continue
        if not _matches(statement.get("Resource", []), resource):
            continue
        if not _condition_holds(statement.get("Condition", {}), context):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def missing_key_answer(document: Mapping[str, Any], bucket: str, key: str) -> int:
    """What S3 answers a caller with this policy for a key the bucket lacks: 404 or 403."""
    listable = allows(document, "s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": key})
    return 404 if listable else 403


# -- the requests ------------------------------------------------------------------


def is_sigv2(environ: Mapping[str, Any]) -> bool:
    """A request signed with Signature Version 2: presigned or in its header."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "AWSAccessKeyId" in query and "Signature" in query:
        return True
    return str(environ.get("HTTP_AUTHORIZATION", "")).startswith("AWS ")


def _s3_signed(environ: Mapping[str, Any]) -> bool:
    """Signed with SigV4 for S3, in the header or presigned."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    scope = query.get("X-Amz-Credential", [""])[0]
    if not scope:
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        if not header.startswith("AWS4-HMAC-SHA256 "):
            return False
        scope = header.partition("Credential=")[2].partition(",")[0]
    return bool(scope.split("/")[3:4] == ["s3"])


def object_of(environ: Mapping[str, Any]) -> tuple[str, str] | None:
    """(bucket, key) of a path-style object request (the local stack's URLs), else None."""
    raw = str(environ.get("PATH_INFO", ""))
    path = raw.encode("latin-1").decode("utf-8", "replace").lstrip("/")
    bucket, _, key = path.partition("/")
    return (bucket, key) if bucket and key else None


def _drain(
    app: WsgiApp, environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes]:
    result = app(environ, start_response)
    try:
        return list(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def _bucket_exists(bucket: str) -> bool:
    from moto.s3.models import s3_backends

    return bool(bucket in s3_backends[ACCOUNT]["aws"].buckets)


def _error(
    start_response: Callable[..., Any], head: bool, answer: tuple[str, str, str]
) -> list[bytes]:
    status, code, message = answer
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>LOCAL</RequestId><HostId>LOCAL</HostId></Error>"
    ).encode()
    start_response(
        status,
        [("Content-Type", "application/xml"), ("Content-Length", "0" if head else str(len(body)))],
    )
    return [] if head else [body]


class S3Rules:
    """A WSGI wrapper in front of moto: SigV2 refused, a missing key 403 unless the
    functions' policy lets them list it. Runs inside moto's lock (slipway_dev/moto_server.py),
    so the bucket it looks at does not change under it."""

    def __init__(
        self, app: WsgiApp, policy_for: Callable[[str], Mapping[str, Any]] = functions_policy
    ) -> None:
        self._app = app
        self._policy_for = policy_for

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        head = environ.get("REQUEST_METHOD") == "HEAD"
        if is_sigv2(environ):
            return _error(start_response, head, SIGV2_REFUSED)
        target = object_of(environ)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or target is None:
            return _drain(self._app, environ, start_response)
        if not _s3_signed(environ):
            return _drain(self._app, environ, start_response)
        answer: list[Any] = []

        def keep(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> None:
            answer[:] = [status, headers]

        body = _drain(self._app, environ, keep)
        bucket, key = target
        missing = (
            bool(answer)
            and answer[0].startswith("404")
            and (head or b"<Code>NoSuchKey</Code>" in b"".join(body))
            and _bucket_exists(bucket)
        )
        if missing and missing_key_answer(self._policy_for(bucket), bucket, key) == 403:
            return _error(start_response, head, ACCESS_DENIED)
        start_response(*answer)
        return body
