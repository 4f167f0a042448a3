"""The Chalice app's HTTP routes on their own port, through Chalice's own local
server (`chalice.local`): the same routing, event shape and Response handling
as `chalice local`, run on a thread of the stack."""

from __future__ import annotations

import threading

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import LocalDevServer, create_local_server


class ChaliceHttpServer:
    """Binds at construction, so `url` shows the real port (port 0 works)."""

    def __init__(
        self, app: Chalice, host: str = "127.0.0.1", port: int = 0, stage: str = "local"
    ) -> None:
        config = Config(
            chalice_stage=stage,
            function_name="api_handler",
            user_provided_params={
                "app_name": app.app_name,
                # API Gateway's REST integration timeout.
                "lambda_timeout": 29,
                "lambda_memory_size": 128,
            },
        )
        # An app with no routes answers every request 403 "Missing Authentication
        # Token", as API Gateway does for an unknown path.
        self._dev: LocalDevServer = create_local_server(app, config, host, port)
        self._dev.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._dev.server.server_address[1])

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}"

    def start(self) -> ChaliceHttpServer:
        # server.serve_forever, not LocalDevServer.serve_forever: that one prints
        # "Serving on" with the requested port, which is 0 here.
        self._thread = threading.Thread(
            target=self._dev.server.serve_forever, name="chalice-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._dev.server.shutdown()
        self._dev.server.server_close()
