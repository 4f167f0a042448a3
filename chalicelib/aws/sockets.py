"""API Gateway's @connections API: send to, close and inspect one connection."""

from __future__ import annotations

import threading
from typing import Any

from botocore.config import Config


class Gone(Exception):
    """The connection is closed, unknown, or not open yet (API Gateway's 410)."""


class Sockets:
    """One boto3 client per @connections endpoint, shared by the threads of a container."""

    def __init__(self, session: Any, max_pool: int = 32) -> None:
        self._session = session
        self._config = Config(
            connect_timeout=2,
            read_timeout=5,
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=max_pool,
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, endpoint: str) -> Any:
        with self._lock:
            client = self._clients.get(endpoint)
            if client is None:
                client = self._session.client(
                    "apigatewaymanagementapi", endpoint_url=endpoint, config=self._config
                )
                self._clients[endpoint] = client
            return client

    def _call(self, endpoint: str, method: str, **kwargs: Any) -> Any:
        client = self._client(endpoint)
        try:
            return getattr(client, method)(**kwargs)
        except client.exceptions.GoneException:
            raise Gone(kwargs["ConnectionId"]) from None

    def send(self, endpoint: str, connection_id: str, data: bytes | str) -> None:
        self._call(endpoint, "post_to_connection", ConnectionId=connection_id, Data=data)

    def close(self, endpoint: str, connection_id: str) -> None:
        self._call(endpoint, "delete_connection", ConnectionId=connection_id)

    def info(self, endpoint: str, connection_id: str) -> dict[str, Any]:
        reply = self._call(endpoint, "get_connection", ConnectionId=connection_id)
        reply.pop("ResponseMetadata", None)
        return reply
