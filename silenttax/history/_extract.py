"""The scalars a snapshot is tracked by: per kind, named figures with their intervals.

Each extractor reads a snapshot (a :class:`~silenttax.component.State`) and returns
:class:`Scalar` rows: a name (``latency.p99``), extra labels (``route``, ``column``),
the value, its 95% interval where one exists, the count behind it and a unit. Snapshots
are stored whole too, so history can be re-extracted when a figure is added
(:meth:`~silenttax.history.History.reextract`). ``EXTRACTOR_VERSION`` names this set.

Kinds without an extractor of their own give what their component's ``gauges()`` returns
(a custom monitor's numbers, see ``docs/custom-monitors.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

__all__ = ["EXTRACTOR_VERSION", "Scalar", "extract"]

EXTRACTOR_VERSION = 1
"""Bumped when a kind's scalars change (stored beside every extracted row)."""


class Scalar(NamedTuple):
    """One tracked figure of a snapshot."""

    name: str
    labels: dict[str, str]
    value: float
    lo: float | None = None
    hi: float | None = None
    n: int | None = None
    unit: str = ""


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's 95% interval of a share (closed form: no scipy at extraction)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _latency(sketch_state: Any, prefix: str, labels: dict[str, str]) -> list[Scalar]:
    from silenttax._sketch import LatencySketch, quantile_interval

    sketch = LatencySketch.from_state(sketch_state)
    n = sketch.count
    out = [Scalar(f"{prefix}.count", labels, float(n), n=n, unit="requests")]
    if n == 0:
        return out
    out.append(Scalar(f"{prefix}.mean", labels, sketch.mean, n=n, unit="s"))
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        ci = quantile_interval(sketch, q)
        lo, hi = ci if ci is not None else (None, None)
        out.append(Scalar(f"{prefix}.{name}", labels, sketch.quantile(q), lo, hi, n, "s"))
    return out


def _latency_monitor(state: Any) -> list[Scalar]:
    return _latency(state.sketch, "latency", {})


def _latency_sketch(state: Any) -> list[Scalar]:
    return _latency(state, "latency", {})


def _cost_monitor(state: Any) -> list[Scalar]:
    from silenttax.cost import CostWindow

    windows = [w for w in state.windows if w.seconds > 0]
    if not windows:
        return []
    w = CostWindow.merged(windows)
    out = [Scalar("cost.inferences", {}, float(w.inferences), n=w.inferences, unit="inferences")]
    for name, value, unit in (
        ("cost.per_1k", w.cost_per_1k, state.pricing.currency),
        ("cost.throughput", w.throughput, "inferences/s"),
        ("cost.utilization", w.utilization, "share"),
    ):
        if value is not None and math.isfinite(value):
            out.append(Scalar(name, {}, float(value), n=w.inferences, unit=unit))
    return out


def _feature_health(state: Any) -> list[Scalar]:
    out: list[Scalar] = []
    for column, profile in state.profiles.items():
        rows = profile.rows
        if rows <= 0:
            continue
        labels = {"column": column}
        for name, k in (
            ("feature.null_rate", profile.nulls),
            ("feature.padded_rate", profile.padded),
            ("feature.numeric_string_rate", profile.numeric_strings),
        ):
            lo, hi = _wilson(k, rows)
            out.append(Scalar(name, labels, k / rows, lo, hi, rows, "share"))
        out.append(Scalar("feature.rows", labels, float(rows), n=rows, unit="rows"))
        numbers = profile.numbers
        mean = getattr(numbers, "mean", None) if numbers is not None else None
        if isinstance(mean, float) and math.isfinite(mean):
            out.append(Scalar("feature.mean", labels, mean, n=rows))
    return out


def _serving(state: Any) -> list[Scalar]:
    out: list[Scalar] = []
    for route, monitor in state.routes.items():
        out += _latency(monitor.sketch, "latency", {"route": route})
    for route, outcomes in state.requests.items():
        served = sum(n for o, n in outcomes.items() if o != "cancelled")
        if served:
            failed = sum(outcomes.get(o, 0) for o in ("5xx", "error", "timeout"))
            lo, hi = _wilson(failed, served)
            out.append(
                Scalar(
                    "serving.error_rate", {"route": route}, failed / served, lo, hi, served, "share"
                )
            )
    out += _breakdown(state.breakdown)
    return out


def _breakdown(state: Any) -> list[Scalar]:
    if not state.requests:
        return []
    total = sum(s.total for s in state.stages.values())
    model = sum(s.total for name, s in state.stages.items() if name in state.model_stages)
    out = [Scalar("pipeline.requests", {}, float(state.requests), n=state.requests)]
    if total > 0:
        out.append(Scalar("pipeline.non_model_share", {}, 1 - model / total, n=state.requests,
                          unit="share"))  # fmt: skip
    return out


def _report(state: Any) -> list[Scalar]:
    out: list[Scalar] = []
    counts: dict[str, int] = {}
    for f in state.findings:
        counts[f.severity.value] = counts.get(f.severity.value, 0) + 1
        value = f.value
        if value is not None and math.isfinite(value):
            labels = {"subject": f.subject or ""}
            if f.metric:
                labels["metric"] = f.metric
            out.append(Scalar(f.code, labels, float(value)))
    out += [
        Scalar(f"report.{severity}s", {}, float(counts.get(severity, 0)))
        for severity in ("warning", "critical")
    ]
    return out


def _gauges(state: Any) -> list[Scalar]:
    """A component's own ``gauges()`` (custom monitors), if it has them."""
    from silenttax._registry import load

    try:
        component = load(state)
    except Exception:  # a kind this process cannot rebuild: stored, not extracted
        return []
    gauges = getattr(component, "gauges", None)
    if not callable(gauges):
        return []
    out: list[Scalar] = []
    for name, value in dict(gauges()).items():
        if isinstance(value, int | float) and math.isfinite(value):
            out.append(Scalar(f"{state.KIND}.{name}", {}, float(value)))
    return out


EXTRACTORS: Mapping[str, Callable[[Any], list[Scalar]]] = {
    "silenttax.latency_monitor": _latency_monitor,
    "silenttax.latency_sketch": _latency_sketch,
    "silenttax.cost_monitor": _cost_monitor,
    "silenttax.feature_health": _feature_health,
    "silenttax.serving": _serving,
    "silenttax.trace_breakdown": _breakdown,
    "silenttax.report": _report,
}
"""Kind -> its extractor (other kinds: their component's ``gauges()``)."""


def extract(state: Any) -> list[Scalar]:
    """The tracked figures of a snapshot (an empty list for a kind with none).

    Examples:
        >>> from silenttax.monitor import LatencyMonitor
        >>> monitor = LatencyMonitor()
        >>> for ms in range(1, 1001):
        ...     monitor.record(ms / 1000)
        >>> {s.name: round(s.value, 2) for s in extract(monitor.state())}["latency.p50"]
        0.5
    """
    extractor = EXTRACTORS.get(state.KIND, _gauges)
    return [s for s in extractor(state) if math.isfinite(s.value)]
