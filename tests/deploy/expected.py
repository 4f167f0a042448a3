"""What docs/deploy.md promises a deployed stage has, written out once for the
checks of both deploy paths (tests/deploy/test_template.py, test_rehearsal.py)."""

from __future__ import annotations

# Chalice's function names (its resource names, `<app>-<stage>-<name>` on AWS; the
# API handler is plain `<app>-<stage>`) -> the CloudFormation logical ids.
LOGICAL_IDS = {
    "websocket_connect": "WebsocketConnect",
    "websocket_message": "WebsocketMessage",
    "websocket_disconnect": "WebsocketDisconnect",
    "api_handler": "APIHandler",
    "worker": "Worker",
    "keepalive_scheduler": "KeepaliveScheduler",
    "ordered_forwarder": "OrderedForwarder",
}

# stage -> function -> (timeout in seconds, memory in MB): docs/deploy.md's table.
SETTINGS = {
    "dev": {
        "websocket_connect": (29, 256),
        "websocket_message": (29, 256),
        "websocket_disconnect": (29, 256),
        "api_handler": (29, 256),
        "worker": (60, 512),
        "keepalive_scheduler": (90, 256),
        "ordered_forwarder": (60, 256),
    },
    "prod": {
        "websocket_connect": (29, 512),
        "websocket_message": (29, 512),
        "websocket_disconnect": (29, 512),
        "api_handler": (29, 512),
        "worker": (60, 1024),
        "keepalive_scheduler": (90, 256),
        "ordered_forwarder": (60, 512),
    },
}
LOG_RETENTION_DAYS = 14
# The functions with an SQS event source, and their queue's name suffix.
SQS_SOURCES = {"worker": "publish.fifo", "ordered_forwarder": "ordered.fifo"}


def function_name(app: str, stage: str, name: str) -> str:
    """The Lambda function's name as Chalice deploys it (the log group is
    /aws/lambda/<this>)."""
    return f"{app}-{stage}" if name == "api_handler" else f"{app}-{stage}-{name}"
