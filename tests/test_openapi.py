"""docs/openapi.yaml describes the control API the app serves: the same routes and
methods, the same path parameters, and it is a valid OpenAPI 3 document."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from openapi_spec_validator import validate

import app

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@cache
def schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA.read_text())


def test_the_schema_is_valid_openapi_3() -> None:
    document = yaml.safe_load(SCHEMA.read_text())  # validate() may annotate what it is given
    assert document["openapi"].startswith("3.")
    validate(document)


def test_the_schema_names_exactly_the_apps_routes() -> None:
    served = {
        (path, method.lower()) for path, methods in app.app.routes.items() for method in methods
    }
    described = {
        (path, method)
        for path, item in schema()["paths"].items()
        for method in item
        if method in METHODS
    }
    assert described - served == set(), "described in docs/openapi.yaml but not served"
    assert served - described == set(), "served but not described in docs/openapi.yaml"


def test_path_parameters_are_the_routes_own() -> None:
    for path, item in schema()["paths"].items():
        named = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            if method not in METHODS:
                continue
            params = [*item.get("parameters", []), *operation.get("parameters", [])]
            resolved = [resolve(p) for p in params]
            in_path = {p["name"] for p in resolved if p["in"] == "path"}
            assert in_path == named, f"{method.upper()} {path}: path parameters {in_path}"


def test_every_keyed_route_documents_401_and_every_route_its_errors_as_json() -> None:
    document = schema()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation["responses"]
            keyed = operation.get("security", document["security"]) != []
            assert ("401" in responses) == keyed, f"{method.upper()} {path}"
            for status, response in responses.items():
                content = resolve(response).get("content", {})
                assert list(content) == ["application/json"], f"{method.upper()} {path} {status}"


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A `$ref` inside docs/openapi.yaml, followed."""
    while "$ref" in node:
        target: Any = schema()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node
