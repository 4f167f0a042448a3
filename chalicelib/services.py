"""The adapters of one Lambda container, built once at its first event."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import settings as settings_mod
from .aws.blobs import Blobs
from .aws.queue import Queue
from .aws.sockets import Sockets
from .aws.store import Store
from .backend import Backend


@dataclass(frozen=True)
class Services:
    settings: settings_mod.Settings
    store: Store
    sockets: Sockets
    queue: Queue
    backend: Backend
    blobs: Blobs | None

    def endpoint_for(self, request_context: dict[str, Any]) -> str:
        """The @connections endpoint of the API a connection came through."""
        if self.settings.connections_endpoint:
            return self.settings.connections_endpoint
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        # The execute-api host works for custom domains too, where domainName would not.
        return (
            f"https://{request_context['apiId']}.execute-api.{region}.amazonaws.com"
            f"/{request_context['stage']}"
        )


@lru_cache(maxsize=1)
def current() -> Services:
    import boto3  # deferred: the settings check should fail before a slow import

    cfg = settings_mod.current()
    session = boto3.session.Session()
    return Services(
        settings=cfg,
        store=Store(session.client("dynamodb"), cfg.table, cfg.connection_ttl, cfg.max_channels),
        sockets=Sockets(session),
        queue=Queue(session.client("sqs"), cfg.queue_url, cfg.queue_message_limit),
        backend=Backend(
            cfg.target_url,
            cfg.backend_connect_timeout,
            cfg.backend_read_timeout,
            cfg.backend_attempts,
        ),
        blobs=Blobs(session.client("s3"), cfg.bucket) if cfg.bucket else None,
    )
