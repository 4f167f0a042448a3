"""The control API fuzzed from its schema (docs/openapi.yaml) with schemathesis,
against `slipway local`: for any input, valid or not, no 5xx, every answer as the
schema says (status, content type, body, headers), refusals for what the schema
refuses, no route that works without the key, and each answer within a bound.

Bounded for `make test`: EXAMPLES examples per operation (default 20),
derandomized, so a run is reproducible. To fuzz longer locally:

    FUZZ_EXAMPLES=500 .venv/bin/python -m pytest tests/e2e/test_fuzz.py

(FUZZ_RANDOM=1 draws new examples each run instead of the fixed ones.)
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from .processes import KEY, GripBackend, LocalStack
from .test_gateway import client, connection_id

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
# Every answer within this; the slowest route locally answers in well under a second.
ANSWER_WITHIN = 10.0
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.ignored_auth,
]

schema = schemathesis.openapi.from_path(SCHEMA)
schema.config.generation.update(
    max_examples=EXAMPLES,
    deterministic=not os.environ.get("FUZZ_RANDOM"),
    database="none",
    # Unknown query parameters are ignored, as API Gateway passes them on; the key is
    # sent by the test (and left out by the `ignored_auth` check), not generated.
    allow_extra_parameters=True,
    with_security_parameters=False,
)


@pytest.fixture(scope="module")
def live(stack: LocalStack, backend: GripBackend) -> Iterator[str]:
    """One real, open connection, so the connection routes are fuzzed past their 404."""
    marker = uuid.uuid4().hex
    with client(stack, marker):
        yield connection_id(backend, marker)


@schema.given(real_connection=st.booleans())
@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_control_api_answers_any_input_as_its_schema_says(
    case: Any, real_connection: bool, stack: LocalStack, live: str
) -> None:
    params = case.path_parameters or {}
    # Closing the one real connection would leave the rest of the run with 404s only.
    if real_connection and "connection_id" in params and case.operation.method != "delete":
        params["connection_id"] = live
    started = time.monotonic()
    case.call_and_validate(
        base_url=stack.control,
        headers={"Authorization": f"Bearer {KEY}"},
        checks=CHECKS,
        timeout=ANSWER_WITHIN,
    )
    assert time.monotonic() - started < ANSWER_WITHIN
