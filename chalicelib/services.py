"""The adapters of one Lambda container, each built at its first use.

Lazily: a boto3 client costs 40-90 ms to build, and most events need only some
of them (a client's message builds the DynamoDB client, and S3's only in
envelope mode when the message is large; never SQS's).
"""

from __future__ import annotations

import os
import time
from functools import cached_property, lru_cache
from typing import Any

from . import settings as settings_mod
from .aws.blobs import S3_CONFIG, Blobs
from .aws.inbox import Inbox
from .aws.queue import Queue
from .aws.sockets import Sockets
from .aws.store import Store
from .backend import Backend

# boto3's standard retry mode, whatever the runtime's botocore defaults to (older
# ones: legacy): throttles (ProvisionedThroughputExceeded, ThrottlingException,
# SlowDown, ...), 500/502/503/504 and connection errors are retried with jittered
# exponential backoff, 3 attempts in all unless AWS_MAX_ATTEMPTS says otherwise.
_RETRIES = {"retries": {"mode": "standard"}}


class Services:
    def __init__(self, cfg: settings_mod.Settings) -> None:
        import boto3  # deferred: the settings check should fail before a slow import
        from botocore.config import Config

        self._settings = cfg
        self._keys_checked = time.monotonic()  # `cfg` was keyed just now
        self._session = boto3.session.Session()
        self._config = Config(**_RETRIES)

    @property
    def settings(self) -> settings_mod.Settings:
        """This container's settings, with the keys its store holds now (read
        again every SLIPWAY_KEY_TTL seconds: a rotation needs no redeploy)."""
        now = time.monotonic()
        # Looked at no more than once a second: settings are read many times an event.
        if now < self._keys_checked + 1.0:
            return self._settings
        self._keys_checked = now
        cfg = settings_mod.keyed(self._settings)
        if cfg is not self._settings:
            self._settings = cfg
            if "backend" in self.__dict__:  # built: it signs with the new first key
                self.backend.key = cfg.key
        return cfg

    @cached_property
    def store(self) -> Store:
        cfg = self.settings
        client = self._session.client("dynamodb", config=self._config)
        return Store(client, cfg.table, cfg.connection_ttl, cfg.max_channels)

    @cached_property
    def sockets(self) -> Sockets:
        return Sockets(self._session)

    @cached_property
    def queue(self) -> Queue:
        cfg = self.settings
        sqs = self._session.client("sqs", config=self._config)
        return Queue(sqs, cfg.queue_url, cfg.queue_message_limit)

    @cached_property
    def ordered_queue(self) -> Queue | None:
        """Ordered delivery's FIFO queue (docs/ordered.md), if the deployment has one."""
        cfg = self.settings
        if not cfg.ordered_queue_url:
            return None
        sqs = self._session.client("sqs", config=self._config)
        return Queue(sqs, cfg.ordered_queue_url, cfg.queue_message_limit)

    @cached_property
    def inbox(self) -> Inbox:
        """Ordered delivery's events waiting for the forwarder (docs/ordered.md)."""
        cfg = self.settings
        client = self._session.client("dynamodb", config=self._config)
        return Inbox(client, cfg.table, cfg.connection_ttl)

    @cached_property
    def backend(self) -> Backend:
        cfg = self.settings
        return Backend(
            cfg.target_url,
            cfg.backend_connect_timeout,
            cfg.backend_read_timeout,
            cfg.backend_attempts,
            cfg.key,
        )

    @cached_property
    def blobs(self) -> Blobs | None:
        bucket = self.settings.bucket
        if not bucket:
            return None
        from botocore.config import Config

        # One client for the API calls and the presigned URLs (SigV4, regional: S3_CONFIG).
        config = self._config.merge(Config(**S3_CONFIG))
        return Blobs(self._session.client("s3", config=config), bucket)

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
    return Services(settings_mod.current())
