"""One `slipway local` (with the gripcontrol test backend) per test module.

A module sets STACK_ARGS to pass extra flags, e.g. shorter timeouts, and
STACK_ENV for settings (SLIPWAY_* variables)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import GripBackend, LocalStack, stack_with_backend

# The publish queue's visibility timeout in every e2e stack: short, so retries are quick.
VISIBILITY = "2"
E2E = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """End-to-end tests run last: the fast tests report first, and a slow stack
    start does not sit between another module's collection and its tests. Under
    pytest-xdist (`make test`) they go first instead: the long files start first and
    the many short ones fill the gaps, rather than one worker finishing a long e2e
    file alone at the end."""
    xdist = hasattr(config, "workerinput")  # a pytest-xdist worker
    items.sort(key=lambda item: (E2E in Path(item.path).parents) != xdist)


@pytest.fixture(scope="module")
def running(request: pytest.FixtureRequest) -> Iterator[tuple[LocalStack, GripBackend]]:
    args = getattr(request.module, "STACK_ARGS", ())
    env = getattr(request.module, "STACK_ENV", None)
    failed_before = request.session.testsfailed
    stack, backend = stack_with_backend("--visibility-timeout", VISIBILITY, *args, env=env)
    yield stack, backend
    code = stack.stop()
    backend.stop()
    if request.session.testsfailed > failed_before or code != 0:
        print(f"\n--- slipway local log (exit {code}) ---\n{stack.log()[-6000:]}")
    assert code == 0, "slipway local did not exit cleanly on SIGTERM"


@pytest.fixture(scope="module")
def stack(running: tuple[LocalStack, GripBackend]) -> LocalStack:
    return running[0]


@pytest.fixture(scope="module")
def backend(running: tuple[LocalStack, GripBackend]) -> GripBackend:
    return running[1]
