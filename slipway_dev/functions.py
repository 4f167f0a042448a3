"""The app's Lambda functions: loading the Chalice app and finding the handler
behind each WebSocket route and behind the publish queue."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

from chalice.app import Chalice, SQSEventConfig

from .apigw import Routes
from .runtime import LambdaFunction, function_name

LAMBDA_TIMEOUT = 60.0  # Chalice's default function timeout


def load_app(spec: str) -> Chalice:
    """`module:attribute`, imported like `chalice local` does, from the project root."""
    module_name, _, attr = spec.partition(":")
    root = str(Path.cwd())
    if root not in sys.path:
        sys.path.insert(0, root)
    app = getattr(importlib.import_module(module_name), attr or "app")
    if not isinstance(app, Chalice):
        raise TypeError(f"{spec} is a {type(app).__name__}, not a Chalice app")
    _logs_to_stderr(app)
    return app


def _logs_to_stderr(app: Chalice) -> None:
    """Chalice logs the app (and every `<app_name>.*` logger under it) to stdout at
    ERROR, for CloudWatch. Here stdout carries the URLs, so the app logs to stderr,
    at the level of the stack's own log."""
    for handler in app.log.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    if not app.debug:
        app.log.setLevel(logging.getLogger().getEffectiveLevel())


def websocket_routes(app: Chalice, stage: str) -> Routes:
    def function(route_key: str) -> LambdaFunction | None:
        config = app.websocket_handlers.get(route_key)
        if config is None:
            return None
        name = function_name(app, stage, config.name)
        return LambdaFunction(name, app.handler_map[config.name], LAMBDA_TIMEOUT)

    return Routes(
        connect=function("$connect"),
        message=function("$default"),
        disconnect=function("$disconnect"),
    )


def sqs_function(
    app: Chalice, stage: str, queue: str, queue_arn: str
) -> tuple[LambdaFunction, SQSEventConfig] | None:
    """The app's handler for `queue` (by name or ARN) and its event source config."""
    for source in app.event_sources:
        if isinstance(source, SQSEventConfig) and (
            source.queue == queue or source.queue_arn == queue_arn
        ):
            name = function_name(app, stage, source.name)
            return LambdaFunction(name, app.handler_map[source.name], LAMBDA_TIMEOUT), source
    return None
