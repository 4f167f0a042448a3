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


# The repository this package is in (an editable install, as `make install` does).
CHECKOUT = Path(__file__).resolve().parent.parent
_MARKER = Path(".chalice") / "config.json"


def project_dir(explicit: str | Path | None = None) -> Path:
    """The Chalice project whose app runs: `explicit` if given; else the checkout
    this package is in (whatever the current directory); else, for a copy installed
    elsewhere, the nearest directory from the current one up with .chalice/config.json."""
    if explicit is not None:
        path = Path(explicit).resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"no project directory {path}")
        return path
    if (CHECKOUT / _MARKER).is_file():
        return CHECKOUT
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / _MARKER).is_file():
            return folder
    raise FileNotFoundError(
        f"no Chalice project (.chalice/config.json) in {here} or above: pass --project-dir"
    )


def load_app(spec: str, project: Path) -> Chalice:
    """`module:attribute`, imported from the project's directory, as `chalice local`
    imports app.py from its project directory (the app is not installed)."""
    module_name, _, attr = spec.partition(":")
    root = str(project)
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
    ours = next((h.formatter for h in logging.getLogger().handlers if h.formatter), None)
    for handler in app.log.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
        if ours is not None:  # one format, with timestamps, in every process
            handler.setFormatter(ours)
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
