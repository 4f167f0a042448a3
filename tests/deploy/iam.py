"""What the code calls on AWS, what a policy grants, and CloudFormation values
evaluated with stand-in ids: the pieces of the least-privilege checks."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
# The services chalicelib reaches through boto3 clients.
SERVICES = ("dynamodb", "sqs", "s3", "ssm", "secretsmanager")
# Operations that IAM authorizes through other actions (no IAM action of their own).
AUTHORIZED_BY = {
    # a transaction needs the item action of each of its parts (store.py: Update, Put, Delete)
    "dynamodb:TransactWriteItems": {
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    },
    "dynamodb:TransactGetItems": {"dynamodb:GetItem"},
    "sqs:SendMessageBatch": {"sqs:SendMessage"},
    "sqs:DeleteMessageBatch": {"sqs:DeleteMessage"},
    "sqs:ChangeMessageVisibilityBatch": {"sqs:ChangeMessageVisibility"},
}
# What an operation needs besides its own action: S3 tells a GetObject of a missing
# key 404 only if the caller may list it (403 otherwise): the gateway's not_found
# answers depend on s3:ListBucket (scoped by s3:prefix; docs/security.md).
ALSO_NEEDS = {"s3:GetObject": {"s3:ListBucket"}}
# Lambda polls the queue for the worker with the worker's own role.
EVENT_SOURCE = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
KEY_ACTIONS = {"ssm:GetParameter", "secretsmanager:GetSecretValue"}
SOCKET_METHODS = ("POST", "GET", "DELETE")  # chalicelib/aws/sockets.py: send, info, close


def _operations() -> dict[str, set[str]]:
    """snake_case method -> the services that have it, from botocore's models (offline)."""
    session = botocore.session.get_session()
    found: dict[str, set[str]] = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        for op in model.operation_names:
            found.setdefault(xform_name(op), set()).add(f"{model.signing_name}:{op}")
    return found


def code_operations(root: Path = ROOT / "chalicelib") -> dict[str, set[str]]:
    """`service:Operation` -> the files that call it, for every boto3 call in chalicelib."""
    operations = _operations()
    used: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                candidates = operations.get(node.func.attr, set())
                if len(candidates) > 1:
                    raise AssertionError(
                        f"{path}:{node.lineno}: {node.func.attr} is an operation of "
                        f"{sorted(candidates)}: teach tests/deploy/iam.py which one"
                    )
                for op in candidates | _presigned(node):
                    used.setdefault(op, set()).add(str(path.relative_to(ROOT)))
    return used


def _presigned(call: ast.Call) -> set[str]:
    """The S3 actions a presigned URL made by `call` needs: the signer's own
    permissions are what S3 checks when the URL is used."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "generate_presigned_url"):
        return set()
    first = call.args[0] if call.args else None
    assert isinstance(first, ast.Constant), f"line {call.lineno}: name the operation literally"
    model = botocore.session.get_session().get_service_model("s3")
    ops = {
        model.signing_name + ":" + op
        for op in model.operation_names
        if xform_name(op) == first.value
    }
    params = next((k.value for k in call.keywords if k.arg == "Params"), None)
    if isinstance(params, ast.Dict) and any(
        isinstance(k, ast.Constant) and k.value == "ACL" for k in params.keys
    ):
        ops.add("s3:PutObjectAcl")  # an upload that sets its ACL
    return ops


def required_actions(operations: Iterable[str]) -> set[str]:
    actions: set[str] = set()
    for op in operations:
        actions |= AUTHORIZED_BY.get(op, {op}) | ALSO_NEEDS.get(op, set())
    return actions


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = document["Statement"]
    return [found] if isinstance(found, dict) else list(found)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(document: Mapping[str, Any]) -> dict[str, list[str]]:
    """action -> the resources an Allow statement grants it on."""
    granted: dict[str, list[str]] = {}
    for statement in statements(document):
        assert statement["Effect"] == "Allow", statement
        for action in _list(statement["Action"]):
            granted.setdefault(action, []).extend(_list(statement["Resource"]))
    return granted


# Where a `*` may stand in each kind of ARN's resource part: the end of an object key,
# connection id, log group or stream, and (only until the API exists) the API id.
_RESOURCE = {
    "dynamodb": re.compile(r"table/[A-Za-z0-9_.-]+(/index/[A-Za-z0-9_.-]+)?"),
    "sqs": re.compile(r"[A-Za-z0-9_-]+(\.fifo)?"),
    "s3": re.compile(r"[a-z0-9.-]+/[A-Za-z0-9_.-]+/\*"),
    "execute-api": re.compile(
        r"(?P<api>[a-z0-9]+|\*)/[A-Za-z0-9_-]+/(POST|GET|DELETE)/@connections/\*"
    ),
    "logs": re.compile(r"log-group:/aws/lambda/[A-Za-z0-9_.-]+(:\*|-\*)?"),
    "ssm": re.compile(r"parameter/[A-Za-z0-9_./-]+"),
    "secretsmanager": re.compile(r"secret:[A-Za-z0-9/_+=.@-]+"),
}


def problems(document: Mapping[str, Any], pinned: bool) -> list[str]:
    """Every wildcard beyond the ones AWS's resource shapes need; `pinned`: the
    WebSocket API id must be named too."""
    found = []
    for statement in statements(document):
        assert statement["Effect"] == "Allow", statement
        for action in _list(statement["Action"]):
            if "*" in action:
                found.append(f"action {action}")
            found += _resource_problems(action, _list(statement["Resource"]), statement, pinned)
    return found


def _resource_problems(
    action: str, resources: list[str], statement: Mapping[str, Any], pinned: bool
) -> list[str]:
    found = []
    for arn in resources:
        parts = arn.split(":", 5)
        if arn == "*" or len(parts) != 6 or parts[0] != "arn":
            found.append(f"{action} on {arn!r}: not one resource's ARN")
            continue
        _, partition, service, region, account, resource = parts
        if "*" in partition + service + region + account:
            found.append(f"{action} on {arn}: wildcard region, account or service")
        if service != "s3" and not (region and account):
            found.append(f"{action} on {arn}: region and account must be named")
        if not action.startswith(f"{service}:"):
            found.append(f"{action} on {arn}: another service's resource")
        if action == "s3:ListBucket":  # the bucket, listed under named prefixes only
            found += _listing_problems(arn, resource, statement)
            continue
        shape = _RESOURCE.get(service)
        match = shape.fullmatch(resource) if shape else None
        if match is None:
            found.append(f"{action} on {arn}: resource part {resource!r} too broad")
        elif pinned and match.groupdict().get("api") == "*":
            found.append(f"{action} on {arn}: any API id")
    return found


def _listing_problems(arn: str, resource: str, statement: Mapping[str, Any]) -> list[str]:
    found = []
    if not _BUCKET.fullmatch(resource):
        found.append(f"s3:ListBucket on {arn}: not a bucket")
    prefixes = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
    if not prefixes or not all(_PREFIX.fullmatch(p) for p in _list(prefixes)):
        found.append(f"s3:ListBucket on {arn}: no s3:prefix condition naming key prefixes")
    return found


_BUCKET = re.compile(r"[a-z0-9.-]+")
_PREFIX = re.compile(r"[A-Za-z0-9_.-]+/\*")


# -- CloudFormation values, evaluated ---------------------------------------------

NO_VALUE = object()
_SUB = re.compile(r"\$\{([^}!]+)\}")


def resolve(
    value: Any,
    refs: Mapping[str, str],
    attributes: Mapping[str, str],
    conditions: Mapping[str, bool],
) -> Any:
    """`value` with Ref, Fn::GetAtt, Fn::Sub and Fn::If evaluated; AWS::NoValue drops."""

    def walk(v: Any) -> Any:
        if isinstance(v, list):
            return [x for x in (walk(i) for i in v) if x is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            ((key, arg),) = v.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else refs[arg]
            if key == "Fn::GetAtt":
                return attributes[".".join(arg)]
            if key == "Fn::Sub":
                assert isinstance(arg, str), "Fn::Sub with variables: not used here"
                return _SUB.sub(lambda m: refs.get(m[1]) or attributes[m[1]], arg)
            if key == "Fn::If":
                name, yes, no = arg
                return walk(yes if conditions[name] else no)
        out = {k: walk(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x is not NO_VALUE}

    return walk(value)
