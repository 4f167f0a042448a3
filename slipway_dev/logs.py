"""Logging for the stack's processes: to stderr (stdout carries the URLs), with
the libraries held to warnings."""

from __future__ import annotations

import logging
import sys

_LIBRARIES = ("botocore", "boto3", "urllib3", "werkzeug", "websockets", "moto")


def _not_pool_full(record: logging.LogRecord) -> bool:
    # Lambda runs one invocation per container; the stack runs dozens in one
    # process over the app's boto3 clients, whose pools are sized for one.
    return not record.getMessage().startswith("Connection pool is full")


def configure(level: str, process: str = "") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)-7s {process}%(name)s: %(message)s",
    )
    for name in _LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.root.level))
    logging.getLogger("urllib3.connectionpool").addFilter(_not_pool_full)
