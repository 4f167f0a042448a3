"""The local stack's metrics: its functions' EMF lines (chalicelib/grip/metrics.py)
collected and served in Prometheus's text format (`GET /metrics` on the control
port, docs/operations.md#metrics), as Pushpin serves its stats.

The functions in the stack's own process hand their lines here directly
(`chalicelib.metrics.sink`); the worker's process prints them on stdout, as
on Lambda, and the stack reads them from there (slipway_dev/child.py)."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

from chalicelib.grip import metrics as m

PREFIX = "slipway_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def prometheus_name(metric: m.Metric) -> str:
    """`slipway_<name>_total` for a count, `slipway_<name>_seconds` (a summary) for a timing."""
    suffix = "_total" if metric.unit == m.COUNT else "_seconds"
    return f"{PREFIX}{metric.prometheus}{suffix}"


@dataclass
class _Series:
    total: float = 0.0  # a count's sum, or a timing's sum of seconds
    count: int = 0  # a timing's number of values


class Collector:
    """Totals since the stack started, per metric and label value (the stage and
    the function are summed away: one stack, and one total per outcome)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str | None], _Series] = {}

    def feed(self, line: str) -> bool:
        """Take an EMF line of ours; False for any other line (left to the log)."""
        samples = m.read(line)
        if not samples:
            return False
        with self._lock:
            for sample in samples:
                series = self._series.setdefault((sample.metric.name, sample.label), _Series())
                if sample.metric.unit == m.COUNT:
                    series.total += sum(sample.values)
                else:
                    series.total += sum(sample.values) / 1000
                    series.count += len(sample.values)
        return True

    def value(self, metric: m.Metric, label: str | None = None) -> float:
        """A count's total (all labels when `label` is None and the metric has one)."""
        with self._lock:
            return sum(
                s.total if metric.unit == m.COUNT else s.count
                for (name, lab), s in self._series.items()
                if name == metric.name and (label is None or lab == label)
            )

    def exposition(self) -> str:
        """Prometheus's text format (version 0.0.4): every metric, at 0 until it moves."""
        with self._lock:
            series = {k: _Series(v.total, v.count) for k, v in self._series.items()}
        out: list[str] = []
        for metric in m.ALL:
            name = prometheus_name(metric)
            kind = "counter" if metric.unit == m.COUNT else "summary"
            out.append(f"# HELP {name} {metric.help}")
            out.append(f"# TYPE {name} {kind}")
            mine = sorted(
                ((lab, s) for (n, lab), s in series.items() if n == metric.name),
                key=lambda x: x[0] or "",
            )
            if not mine and metric.label is None:
                mine = [(None, _Series())]
            for label, s in mine:
                labels = f'{{{metric.label}="{_escape(label or "")}"}}' if metric.label else ""
                if metric.unit == m.COUNT:
                    out.append(f"{name}{labels} {_number(s.total)}")
                else:
                    out.append(f"{name}_sum{labels} {_number(s.total)}")
                    out.append(f"{name}_count{labels} {s.count}")
        return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def collect_in_process(collector: Collector) -> None:
    """Point the app's metric lines in this process at `collector` (its stdout
    carries the stack's URLs). The app's chalicelib, as load_app imported it."""
    module = sys.modules.get("chalicelib.metrics")
    if module is not None:
        setattr(module, "sink", collector.feed)  # noqa: B010 (a module found at run time)
