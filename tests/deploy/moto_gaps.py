"""The smallest changes to moto (in this test process's moto server only) that let
`chalice deploy` run against it: each names the moto 5.2 gap it covers. Nothing
here reaches the product: the deploy code runs unchanged, in its own process."""

from __future__ import annotations

import copy
import json
from typing import Any


def _as_openapi3(api_doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(api_doc)
    if "swagger" in doc:
        del doc["swagger"]
        doc["openapi"] = "3.0.1"
    doc.setdefault("info", {}).setdefault("description", "")
    return doc


def accept_swagger2_imports() -> None:
    """moto's ImportRestApi/PutRestApi refuse Swagger 2.0 (only OpenAPI 3 is
    implemented; API Gateway takes both, and Chalice sends 2.0), and ImportRestApi
    needs `info.description`, which API Gateway does not. The paths and
    integrations moto reads are the same in both versions."""
    from moto.apigateway.models import APIGatewayBackend

    if getattr(APIGatewayBackend.import_rest_api, "slipway_shim", False):
        return
    import_rest_api, put_rest_api = (
        APIGatewayBackend.import_rest_api,
        APIGatewayBackend.put_rest_api,
    )

    def import_(self: Any, api_doc: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        return import_rest_api(self, _as_openapi3(api_doc), *args, **kwargs)

    def put(self: Any, function_id: str, api_doc: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        return put_rest_api(self, function_id, _as_openapi3(api_doc), *args, **kwargs)

    import_.slipway_shim = True  # type: ignore[attr-defined]
    APIGatewayBackend.import_rest_api = import_  # type: ignore[method-assign]
    APIGatewayBackend.put_rest_api = put  # type: ignore[method-assign]


def websocket_deployments() -> None:
    """moto's apigatewayv2 has no /deployments: CreateDeployment, which Chalice
    calls before CreateStage, answers 404. Here it answers a new deployment id
    (moto's stages do not check it)."""
    from moto.apigatewayv2 import urls
    from moto.apigatewayv2.responses import ApiGatewayV2Response
    from moto.moto_api._internal import mock_random

    pattern = "{0}/v2/apis/(?P<api_id>[^/]+)/deployments$"
    if pattern in urls.url_paths:
        return

    def create_deployment(self: Any) -> Any:
        deployment = {"deploymentId": mock_random.get_random_hex(6), "deploymentStatus": "DEPLOYED"}
        return 200, {}, json.dumps(deployment)

    ApiGatewayV2Response.create_deployment = create_deployment  # type: ignore[attr-defined]
    urls.url_paths[pattern] = ApiGatewayV2Response.dispatch


def install() -> None:
    accept_swagger2_imports()
    websocket_deployments()
