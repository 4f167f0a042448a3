"""Modules imported at their first use, for the Lambda functions' cold start.

Every function of the app imports all of app.py; a WebSocket function should not
pay for the control API's or the fan-out worker's imports (marshmallow, the publish
validation, the queue and S3 code) before, or unless, it uses them.
`lazy("chalicelib.control")` stands for the module and imports it at the first
attribute read (thread-safe: Python's import lock), then reads through to it.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    def __getattr__(self, attr: str) -> Any:  # only for names not found on the proxy
        return getattr(importlib.import_module(self.__name__), attr)


def lazy(name: str) -> ModuleType:
    """The module `name`, imported already or at its first use."""
    return sys.modules.get(name) or LazyModule(name)
