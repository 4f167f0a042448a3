"""chalicelib/metrics.py: what an invocation records is printed as EMF lines when
it ends, through the Chalice middleware app.py registers for every function."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from chalice import Chalice

from chalicelib import metrics
from chalicelib.grip import metrics as m


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    got: list[str] = []
    monkeypatch.setattr(metrics, "sink", got.append)
    monkeypatch.delenv("SLIPWAY_STAGE", raising=False)
    monkeypatch.delenv("_HANDLER", raising=False)
    metrics.flush("discard", "discard")  # what earlier tests left
    got.clear()
    return got


def _app() -> Chalice:
    app = Chalice(app_name="slipway")
    app.register_middleware(metrics.flushing(app), "all")

    @app.lambda_function(name="probe")
    def probe(event, context):
        metrics.record(m.DELIVERIES, 3, m.SENT)
        metrics.record(m.DELIVERIES, 1, m.GONE)
        if event.get("fail"):
            raise RuntimeError("the work failed")
        return {"ok": True}

    return app


def test_an_invocation_prints_its_metrics_as_it_ends(lines: list[str]) -> None:
    app = _app()
    context = SimpleNamespace(function_name="slipway-prod-probe")
    assert app.handler_map["probe"]({}, context) == {"ok": True}
    docs = [json.loads(line) for line in lines]
    assert {(d["stage"], d["function"], d["outcome"], d["Deliveries"]) for d in docs} == {
        ("prod", "probe", "sent", 3),
        ("prod", "probe", "gone", 1),
    }
    app.handler_map["probe"]({}, context)
    assert len(lines) == 4  # the next invocation's own, nothing carried over


def test_a_failed_invocation_still_prints_and_lambdas_names_win(
    lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_STAGE", "my-stack")
    monkeypatch.setenv("_HANDLER", "app.probe")
    app = _app()
    context = SimpleNamespace(function_name="my-stack-Probe-1A2B3C")  # path A's names
    with pytest.raises(RuntimeError):
        app.handler_map["probe"]({"fail": True}, context)
    assert {(d["stage"], d["function"]) for d in map(json.loads, lines)} == {("my-stack", "probe")}
