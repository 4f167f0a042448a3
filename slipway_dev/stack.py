"""The whole local stack around the unchanged Chalice app, in one process tree:

- this process: AWS (moto), the @connections API, the Chalice HTTP routes and
  the API Gateway WebSocket emulator running the WebSocket functions;
- a child: the SQS event source and the worker function (slipway_dev/worker.py),
  started again when it dies;
- a child, unless --target is given: the demo backend (examples/chat_backend.py).

Order matters: the app reads its settings from the environment (once, cached
per process), so every variable is set before the first event can arrive, and
the children inherit it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import aws, faults
from .apigw import Limits, WebSocketGateway
from .child import Child, Keeper, python
from .connections import AsyncConnectionsServer, Registry
from .demo import DemoServer
from .functions import load_app, project_dir, sqs_function, websocket_routes
from .health import AwsWatch
from .http import ChaliceHttpServer
from .metrics import Collector, collect_in_process
from .moto_server import MotoServer
from .resources import KEY_PARAMETER_VARIABLE, KEY_SECRET_VARIABLE
from .sqs import SqsEventSource

log = logging.getLogger(__name__)

# Not a secret: it signs Grip-Sig and authorizes publishes on a developer's machine.
DEV_KEY = "slipway-local-development-key-not-secret"
DEMO_BACKEND = Path(__file__).resolve().parent.parent / "examples" / "chat_backend.py"


@dataclass
class Options:
    host: str = "127.0.0.1"
    ws_port: int = 8000
    http_port: int = 8001
    demo_port: int = 8002  # the demo page's server (with the demo backend only)
    target: str | None = None  # None: start the demo backend
    key: str = DEV_KEY
    aws_endpoint: str | None = None  # None: an in-process moto server
    names: aws.Names = field(default_factory=aws.Names)
    idle_timeout: float = Limits.idle_timeout
    max_lifetime: float = Limits.max_lifetime
    stage: str = "local"
    app: str = "app:app"
    serial_events: bool = False  # $default one at a time per connection (not as AWS)
    project_dir: Path | None = None  # None: functions.project_dir()
    pollers: int = 3
    # Set: another server (`chalice local`) serves the control routes there; none started.
    control_url: str | None = None
    faults: str = ""  # errors injected into the emulated AWS (slipway_dev/faults.py)
    aws_outage_limit: float = 10.0  # seconds without an answer from AWS before stopping


@dataclass(frozen=True)
class Urls:
    websocket: str
    control: str
    grip: str
    connections: str
    aws: str
    target: str
    demo: str | None = None  # the demo chat page, with the demo backend
    faults: str = ""  # the fault injection's control route


def _public(host: str) -> str:
    """A host a client can dial: a wildcard bind is reached on loopback."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def aws_environment(endpoint: str, ours: bool) -> None:
    """Point every boto3 client of this process (and the app's) at `endpoint`."""
    for name in list(os.environ):
        # A service-specific endpoint would win over AWS_ENDPOINT_URL.
        if name.startswith("AWS_ENDPOINT_URL_") or name == "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS":
            del os.environ[name]
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ["AWS_REGION"] = aws.REGION
    os.environ["AWS_DEFAULT_REGION"] = aws.REGION
    if ours:
        # Our own moto: dummy credentials always, so none of the user's go anywhere.
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            os.environ.pop(name, None)
        os.environ.update(aws.DUMMY_CREDENTIALS)
    elif not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
        os.environ.update(aws.DUMMY_CREDENTIALS)


class Stack:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.registry = Registry()
        self.moto: MotoServer | None = None
        self.connections: AsyncConnectionsServer | None = None
        self.http: ChaliceHttpServer | None = None
        self.backend: Child | None = None
        self.worker: Child | None = None
        self.gateway: WebSocketGateway | None = None
        self.ordered: SqsEventSource | None = None  # ordered delivery's forwarder
        self.demo: DemoServer | None = None
        self.urls: Urls | None = None
        self.faults = faults.Faults()
        self.keeper: Keeper | None = None  # starts the worker again when it dies
        self.aws_watch: AwsWatch | None = None
        self.metrics = Collector()  # the functions' metric lines (GET /metrics)

    async def start(self) -> Urls:
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> Urls:
        opts = self.options
        host = _public(opts.host)
        project = project_dir(opts.project_dir)  # before anything starts: fail fast
        rules = faults.parse(opts.faults)

        if opts.aws_endpoint:
            endpoint = opts.aws_endpoint.rstrip("/")
        else:
            self.moto = MotoServer("127.0.0.1", 0, faults=self.faults)
            endpoint = self.moto.start()
        aws_environment(endpoint, ours=self.moto is not None)
        resources = aws.ensure(endpoint, opts.names)

        # Loopback only, whatever --host says: the @connections API has no auth here.
        self.connections = await AsyncConnectionsServer(
            self.registry, "127.0.0.1", 0, faults=self.faults
        ).start()
        connections_url = f"{self.connections.url}/{opts.stage}"
        # The keys in SSM, read as on AWS (chalicelib/secrets.py): rotate-key works here too.
        aws.client("ssm", endpoint).put_parameter(
            Name=opts.names.key_parameter, Type="SecureString", Value=opts.key, Overwrite=True
        )
        for name in ("SLIPWAY_KEY", KEY_SECRET_VARIABLE):
            os.environ.pop(name, None)
        os.environ.update(
            {
                KEY_PARAMETER_VARIABLE: opts.names.key_parameter,
                "SLIPWAY_TABLE": resources.table,
                "SLIPWAY_QUEUE_URL": resources.queue_url,
                "SLIPWAY_QUEUE_NAME": opts.names.queue,
                "SLIPWAY_BUCKET": resources.bucket,
                "SLIPWAY_CONNECTIONS_ENDPOINT": connections_url,
                "SLIPWAY_ORDERED_QUEUE_URL": resources.ordered_queue_url,
                "SLIPWAY_ORDERED_QUEUE_NAME": opts.names.ordered_queue,
            }
        )
        if opts.target:
            os.environ["TARGET_URL"] = opts.target
        log.info("the app: %s in %s", opts.app, project)
        os.environ["SLIPWAY_STAGE"] = opts.stage  # the metrics' stage dimension
        app = load_app(opts.app, project)
        collect_in_process(self.metrics)

        if opts.control_url:
            control = opts.control_url.rstrip("/")
        else:
            self.http = ChaliceHttpServer(
                app, opts.host, opts.http_port, opts.stage, metrics=self.metrics
            )
            control = self.http.url(host)
        grip = f"{control}/?key={quote(opts.key, safe='')}"

        target = opts.target
        if target is None:
            self.backend = Child(
                python(str(DEMO_BACKEND), "--port", "0"),
                {**os.environ, "GRIP_URL": grip},
                name="demo-backend",
            )
            port = self.backend.start(lambda line: line.startswith("listening ")).split()[1]
            target = f"http://127.0.0.1:{port}"
            os.environ["TARGET_URL"] = target
        _check_settings()

        self.worker = Child(
            python(
                "-m",
                "slipway_dev.worker",
                "--app",
                opts.app,
                "--project-dir",
                str(project),
                "--stage",
                opts.stage,
                "--queue",
                opts.names.queue,
                "--queue-url",
                resources.queue_url,
                "--queue-arn",
                resources.queue_arn,
                "--visibility-timeout",
                str(opts.names.visibility_timeout),
                "--pollers",
                str(opts.pollers),
                # Long polls, as Lambda's event source: our moto answers one the
                # moment a message is there, without holding its one request slot.
                "--wait-seconds",
                "1",
                *(["--long-poll-when-busy"] if self.moto is not None else []),
                "--log-level",
                logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            ),
            os.environ,
            name="sqs-worker",
            take=self.metrics.feed,
        )
        self.worker.start(lambda line: line == "ready", timeout=60)
        self.keeper = Keeper(self.worker, lambda line: line == "ready", timeout=60).start()

        self.ordered = _ordered_forwarder(app, opts, resources)

        limits = Limits(idle_timeout=opts.idle_timeout, max_lifetime=opts.max_lifetime)
        self.gateway = WebSocketGateway(
            websocket_routes(app, opts.stage),
            self.registry,
            host=opts.host,
            port=opts.ws_port,
            stage=opts.stage,
            limits=limits,
            serial_events=opts.serial_events,
            control_url=control,
        )
        await self.gateway.start()
        if self.http is not None:
            self.http.start(f"ws://{host}:{self.gateway.port}/")

        if self.backend is not None:  # the page is a client of the demo backend
            self.demo = DemoServer(opts.host, opts.demo_port, self.gateway.port).start()

        self.urls = Urls(
            websocket=f"ws://{host}:{self.gateway.port}/",
            control=control,
            grip=grip,
            connections=connections_url,
            aws=endpoint,
            target=target,
            demo=self.demo.url(host) if self.demo is not None else None,
            faults=f"{self.connections.url}{faults.CONTROL_PATH}",
        )
        self.aws_watch = AwsWatch(
            endpoint, resources.table, resources.queue_url, opts.aws_outage_limit
        ).start()
        if rules:  # once started: creating the resources is not under test
            self.faults.set(rules)
        return self.urls

    async def trouble(self) -> str:
        """Returns, saying why, when the stack cannot go on: the demo backend
        exited, the worker died and cannot be started again, or the AWS endpoint
        lost its resources or stopped answering (slipway_dev/health.py)."""
        while True:
            if self.backend is not None and (code := self.backend.exited()) is not None:
                return f"the {self.backend.name} exited with code {code}"
            for watch in (self.keeper, self.aws_watch):
                if watch is not None and watch.problem:
                    return watch.problem
            await asyncio.sleep(0.25)

    def _stop_worker(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()
        if self.worker is not None:
            self.worker.stop()

    async def stop(self) -> None:
        """Clients first (their $disconnect needs everything else), then the worker
        (its batches in flight still post to @connections), then the servers."""
        steps: list[tuple[str, Callable[[], Any]]] = []
        if self.aws_watch is not None:
            steps.append(("AWS watch", self.aws_watch.stop))
        if self.gateway is not None:
            steps.append(("WebSocket server", self.gateway.stop))
        if self.worker is not None:
            steps.append(("SQS worker", self._stop_worker))
        if self.ordered is not None:
            steps.append(("ordered forwarder", self.ordered.stop))
        if self.http is not None:
            steps.append(("HTTP server", self.http.stop))
        if self.connections is not None:
            steps.append(("@connections server", self.connections.stop))
        if self.demo is not None:
            steps.append(("demo page server", self.demo.stop))
        if self.backend is not None:
            steps.append(("demo backend", self.backend.stop))
        if self.moto is not None:
            steps.append(("moto", self.moto.stop))
        for name, stop in steps:
            try:
                result = stop()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("stopping the %s failed", name)
        self.gateway = self.http = self.connections = None
        self.worker = self.backend = self.moto = None
        self.ordered = None
        self.demo = self.keeper = self.aws_watch = None


def _ordered_forwarder(app: Any, opts: Options, resources: aws.Resources) -> SqsEventSource | None:
    """Ordered delivery's SQS function (docs/ordered.md), polled in this process:
    a batch per connection's group at a time, several groups at once, as Lambda."""
    found = sqs_function(app, opts.stage, opts.names.ordered_queue, resources.ordered_queue_arn)
    if found is None:
        return None  # an app without ordered delivery
    function, source = found
    return SqsEventSource(
        aws.client("sqs", resources.endpoint),
        resources.ordered_queue_url,
        resources.ordered_queue_arn,
        function,
        batch_size=source.batch_size,
        concurrency=opts.pollers,
        visibility_timeout=opts.names.visibility_timeout,
        region=aws.REGION,
        wait_seconds=1,  # long polls: see the worker's
        short_poll_when_busy=opts.aws_endpoint is not None,
    ).start()


def _check_settings() -> None:
    """Fail at start, with the settings' own message, rather than at the first event."""
    try:
        from chalicelib import settings
    except ImportError:
        return
    settings.load(os.environ)
