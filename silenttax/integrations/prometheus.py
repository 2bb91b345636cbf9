"""Prometheus export: a custom collector read at scrape time, never on the request path.

``register(monitor, name=...)`` adds a silenttax component to a registry; a
scrape then reads its sketch and counters once. Nothing is called per request
(recording stays the component's own O(1) append), unlike instrument-based
exporters that pay ``Histogram.observe`` per request.

- Latency (``LatencySketch``, ``LatencyMonitor``, a ``Tracer``'s requests and
  stages): a classic histogram whose ``le`` edges are read from the sketch at
  powers of ``sqrt(2)`` from ~122 µs to ~64 s (exact cumulative counts where
  the sketch's buckets align with the edges, which they do at every scale
  >= 1; exact sum and count), and quantile gauges computed from the sketch
  itself (within its relative accuracy, 1% by default). When the sketch is the
  merge of every worker's, those gauges are right for the fleet — which a
  Prometheus Summary never is.
- ``Tracer``: requests, span errors, the non-model share of request time.
- ``CostMonitor``: cost per 1000 inferences of the latest window, inferences.
- ``ResourceMonitor``: RSS and CPU utilisation of the latest sample.
- ``SilentTaxMiddleware``: per route request and time-to-first-byte histograms,
  requests by status class, the durations recorded with ``observe()``, and with
  live feature sampling the null rate and drift score per feature and the sample
  counters.
- ``findings=True``: active findings of the component's ``check()`` by code and
  severity (``silenttax_findings{code, severity}``).

Several workers: :meth:`SilentTaxCollector.from_directory` merges the snapshots
the workers write (``snapshot_dir=``) at each scrape; see
:mod:`silenttax.integrations.fleet`.

Label values are capped (``max_label_values`` per label; the costliest stages
claim them first, and a stage beyond the cap is left out, its time still in the
request histogram) so a stray name cannot multiply the series.

Examples:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from silenttax.monitor import LatencySketch
    >>> sketch = LatencySketch()
    >>> sketch.add_many([0.002, 0.004, 0.010])
    >>> registry = CollectorRegistry()
    >>> collector = register(sketch, name="ranker", registry=registry)
    >>> text = generate_latest(registry).decode()
    >>> 'silenttax_latency_seconds_count{monitor="ranker"} 3.0' in text
    True
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from silenttax._deps import optional_import
from silenttax._sketch import LatencySketch, LatencySketchState
from silenttax.errors import InputError

__all__ = ["DEFAULT_EDGES", "SilentTaxCollector", "register"]

#: ``le`` edges (seconds): powers of sqrt(2) from 2**-13 (122 µs) to 2**6 (64 s).
DEFAULT_EDGES: tuple[float, ...] = tuple(2.0 ** (k / 2) for k in range(-26, 13))
OTHER = "__other__"
_SCRAPE_FOLD_BUDGET = 0.1  # seconds a scrape may fold dead workers' files (then a thread)


def _cumulative(state: LatencySketchState, edges: Sequence[float]) -> list[int]:
    """Observations <= each edge, from the sketch's buckets (bucket i is (b**i, b**(i+1)]).

    Bucket ``i`` lies wholly at or below ``edge`` when ``(i + 1) * 2**-scale <= log2(edge)``.
    """
    running = np.concatenate(([0], np.cumsum(np.asarray(state.counts, dtype=np.int64))))
    upper = np.arange(state.offset, state.offset + len(state.counts)) + 1
    limits = np.floor(np.log2(np.asarray(edges)) * 2.0**state.scale + 1e-9)
    below: list[int] = (
        state.zero_count + running[np.searchsorted(upper, limits, side="right")]
    ).tolist()
    return below


class _Capped:
    """Label values seen so far, at most ``limit`` distinct; later ones become ``__other__``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: dict[str, set[str]] = {}

    def __call__(self, label: str, value: str) -> str:
        seen = self.seen.setdefault(label, set())
        if value in seen:
            return value
        if len(seen) >= self.limit:
            return OTHER
        seen.add(value)
        return value


class SilentTaxCollector:
    """A Prometheus collector over silenttax components, read at scrape time.

    Args:
        monitors: name -> component (``LatencySketch``, ``LatencyMonitor``,
            ``Tracer``, ``CostMonitor``, ``ResourceMonitor``, or a
            ``SilentTaxMiddleware``: its routes, status classes, tracer and cost).
        namespace: Metric name prefix.
        labels: Constant labels added to every series (e.g. ``{"model": "ranker-v7"}``).
        edges: Histogram ``le`` edges in seconds (default :data:`DEFAULT_EDGES`).
        quantiles: Quantile gauges computed from each sketch.
        max_label_values: Distinct values kept per label (stage, span, ...).
        findings: Also export the count of active (not OK) findings of each
            component's ``check()`` by code and severity (runs the check at every
            scrape; an alert rule can then name the code).

    Raises:
        InputError: an unsupported component, bad edges or quantiles.
    """

    def __init__(
        self,
        monitors: Mapping[str, Any],
        *,
        namespace: str = "silenttax",
        labels: Mapping[str, str] | None = None,
        edges: Sequence[float] = DEFAULT_EDGES,
        quantiles: Sequence[float] = (0.5, 0.95, 0.99),
        max_label_values: int = 100,
        findings: bool = False,
    ) -> None:
        if not edges or any(not (e > 0 and math.isfinite(e)) for e in edges):
            raise InputError("edges: need positive finite seconds")
        if list(edges) != sorted(set(edges)):
            raise InputError("edges: need strictly increasing values")
        if any(not 0 < q < 1 for q in quantiles):
            raise InputError(f"quantiles must be in (0, 1), got {list(quantiles)}")
        if max_label_values < 1:
            raise InputError(f"max_label_values must be >= 1, got {max_label_values!r}")
        for name, monitor in monitors.items():
            if _kind(monitor) is None:
                raise InputError(
                    f"monitors[{name!r}]: cannot export a {type(monitor).__name__} (a "
                    "LatencySketch, LatencyMonitor, Tracer, CostMonitor or ResourceMonitor)"
                )
        self.monitors = dict(monitors)
        self.namespace = namespace
        self.labels = dict(labels or {})
        self.edges = tuple(float(e) for e in edges)
        self.quantiles = tuple(quantiles)
        self.findings = findings
        self._cap = _Capped(max_label_values)
        self._lock = threading.Lock()
        self.errors: dict[str, int] = {}
        """Component name -> scrapes in which reading it failed (left out, never raised)."""
        self.last_error: str | None = None
        """The latest of those failures."""

    @classmethod
    def from_directory(
        cls, path: str | os.PathLike[str], *, name: str = "app", own: Any = None, **options: Any
    ) -> SilentTaxCollector:
        """A collector over a fleet: at each scrape it merges the worker snapshots in
        ``path`` (and the archive of dead workers) and exports them as one middleware.

        Args:
            path: The ``snapshot_dir`` the workers write to.
            name: The ``monitor`` label.
            own: The scraping worker's middleware (its live state is used, not its file).
            options: As for the constructor.
        """
        from silenttax.integrations.fleet import _folder

        collector = cls({name: _Directory(_folder(path), own)}, **options)
        writer = None if own is None else own.writer
        if writer is not None and (collector.findings or own.live is not None):
            writer.judge_every = float(own.check_interval)  # judged off the request path
        return collector

    def add(self, name: str, monitor: Any) -> None:
        """Export one more component under ``name``."""
        if _kind(monitor) is None:
            raise InputError(f"monitor: cannot export a {type(monitor).__name__}")
        with self._lock:
            self.monitors[name] = monitor

    # ------------------------------------------------------------------ metrics
    def _names(self) -> dict[str, tuple[str, str, tuple[str, ...]]]:
        return self._names_for(self.namespace)

    @staticmethod
    def _names_for(ns: str) -> dict[str, tuple[str, str, tuple[str, ...]]]:
        """Metric key -> (type, name, labels beyond ``monitor``): the one table the
        collector, the docs test and the rules (:mod:`silenttax.integrations.rules`) read."""
        return {
            "latency": ("histogram", f"{ns}_latency_seconds", ()),
            "latency_q": ("gauge", f"{ns}_latency_quantile_seconds", ("quantile",)),
            "invalid": ("counter", f"{ns}_latency_invalid", ()),
            "request": ("histogram", f"{ns}_request_seconds", ()),
            "request_q": ("gauge", f"{ns}_request_quantile_seconds", ("quantile",)),
            "stage": ("histogram", f"{ns}_stage_seconds", ("stage",)),
            "stage_q": ("gauge", f"{ns}_stage_quantile_seconds", ("stage", "quantile")),
            "requests": ("counter", f"{ns}_requests", ()),
            "span_errors": ("counter", f"{ns}_span_errors", ("span",)),
            "non_model": ("gauge", f"{ns}_non_model_share", ()),
            "cost": ("gauge", f"{ns}_cost_per_1k", ("currency",)),
            "inferences": ("counter", f"{ns}_inferences", ()),
            "rss": ("gauge", f"{ns}_rss_bytes", ()),
            "cpu": ("gauge", f"{ns}_cpu_utilization", ()),
            "findings": ("gauge", f"{ns}_findings", ("code", "severity")),
            "route": ("histogram", f"{ns}_http_request_seconds", ("route",)),
            "route_q": ("gauge", f"{ns}_http_request_quantile_seconds", ("route", "quantile")),
            "ttfb": ("histogram", f"{ns}_http_time_to_first_byte_seconds", ("route",)),
            "ttfb_q": ("gauge", f"{ns}_http_ttfb_quantile_seconds", ("route", "quantile")),
            "http": ("counter", f"{ns}_http_requests", ("route", "status")),
            "internal": ("counter", f"{ns}_internal_errors", ()),
            "observed": ("histogram", f"{ns}_observed_seconds", ("name",)),
            "observed_q": ("gauge", f"{ns}_observed_quantile_seconds", ("name", "quantile")),
            "null_rate": ("gauge", f"{ns}_feature_null_rate", ("feature",)),
            "drift": ("gauge", f"{ns}_feature_drift", ("feature", "metric")),
            "samples": ("counter", f"{ns}_feature_samples", ("outcome",)),
            "scrape_up": ("gauge", f"{ns}_scrape_up", ()),
            "scrape_errors": ("counter", f"{ns}_scrape_errors", ()),
            "scrape_seconds": ("gauge", f"{ns}_scrape_seconds", ()),
            "fleet_backlog": ("gauge", f"{ns}_fleet_backlog_files", ()),
            "component": ("gauge", f"{ns}_component_value", ("component", "name")),
        }

    _HELP: ClassVar[dict[str, str]] = {
        "latency": "Latency recorded by a silenttax monitor (buckets read from its sketch).",
        "latency_q": "Latency quantile from the sketch (within its relative accuracy).",
        "invalid": "Invalid durations rejected by the sketch.",
        "request": "Request duration seen by a silenttax tracer.",
        "request_q": "Request duration quantile from the tracer's sketch.",
        "stage": "Per-request self time of a pipeline stage.",
        "stage_q": "Per-request stage time quantile from the tracer's sketch.",
        "requests": "Requests traced.",
        "span_errors": "Spans that ended with an exception.",
        "non_model": "Share of request time spent outside the model stages.",
        "cost": "Realized cost per 1000 inferences in the latest closed window.",
        "inferences": "Inferences counted by a silenttax cost monitor.",
        "rss": "Resident set size of the monitored process.",
        "cpu": "CPU utilisation of the monitored process (share of usable cores).",
        "findings": "Active findings of the component's check() by code and severity.",
        "route": "HTTP request duration to the last body chunk, per route template.",
        "route_q": "HTTP request duration quantile per route, from the sketch.",
        "ttfb": "Time to the first response body chunk, per route template.",
        "ttfb_q": "Time-to-first-byte quantile per route, from the sketch.",
        "http": "HTTP requests per route template and status class.",
        "internal": "silenttax errors counted (never raised) in the middleware.",
        "observed": "Durations recorded with silenttax.observe().",
        "observed_q": "Quantile of the observed durations, from the sketch.",
        "null_rate": "Share of null values per feature in the live sample (last two windows).",
        "drift": "Drift effect size per feature in the live sample vs the reference.",
        "samples": "Sampled requests by outcome (rows, failed, dropped, truncated).",
        "scrape_up": "1 if the component was read in this scrape, 0 if reading it failed.",
        "scrape_errors": "Scrapes in which reading the component failed (left out).",
        "scrape_seconds": "Seconds this scrape took to read the component.",
        "fleet_backlog": "Dead workers' files left to fold; while above 0 the fleet's "
        "series are left out of the scrape (their totals would be short).",
        "component": "A value a component of your own exports (its gauges(), by name).",
    }

    def _families(self) -> dict[str, Any]:
        core: Any = optional_import("prometheus_client.core", purpose="silenttax Prometheus export")
        const = list(self.labels)
        make = {
            "histogram": core.HistogramMetricFamily,
            "gauge": core.GaugeMetricFamily,
            "counter": core.CounterMetricFamily,
        }
        return {
            key: make[kind](name, self._HELP[key], labels=[*const, "monitor", *extra])
            for key, (kind, name, extra) in self._names().items()
        }

    def describe(self) -> Iterator[Any]:
        """The metric families, without reading any component (static, as registries ask)."""
        yield from self._families().values()

    def collect(self) -> Iterator[Any]:
        """Read every component once and yield the metric families that have samples.

        Never raises: a component that fails to read (a corrupt fleet file, a bug) is
        left out of this scrape, counted in ``silenttax_scrape_errors_total`` and shown
        by ``silenttax_scrape_up`` 0, and the other components are exported as usual.
        """
        families = self._families()
        const = list(self.labels.values())
        with self._lock:
            monitors = list(self.monitors.items())
        for name, monitor in monitors:
            base = [*const, name]
            started = time.perf_counter()
            mine = self._families()
            try:
                self._collect_one(mine, base, monitor)
            except Exception as exc:
                with self._lock:
                    self.errors[name] = self.errors.get(name, 0) + 1
                    self.last_error = f"{name}: {type(exc).__name__}: {str(exc)[:200]}"
                up = 0.0
            else:
                for key, family in mine.items():
                    families[key].samples.extend(family.samples)
                up = 1.0
            families["scrape_up"].add_metric(base, up)
            families["scrape_errors"].add_metric(base, float(self.errors.get(name, 0)))
            families["scrape_seconds"].add_metric(base, time.perf_counter() - started)
        for family in families.values():
            if family.samples:
                yield family

    def _collect_one(self, families: dict[str, Any], base: list[str], monitor: Any) -> None:
        kind = _kind(monitor)
        if kind == "sketch":
            sketch = monitor.sketch if hasattr(monitor, "record") else monitor
            self._histogram(families, "latency", base, sketch.state())
            families["invalid"].add_metric(base, float(sketch.invalid))
        elif kind == "tracer":
            self._tracer(families, base, monitor.breakdown())
        elif kind == "directory":
            self._directory(families, base, monitor)
            return
        elif kind == "middleware":
            self._middleware(families, base, monitor)
        elif kind == "cost":
            self._cost(families, base, monitor)
        elif kind == "component":
            self._gauges(families, base, monitor.state().kind, monitor)
        elif kind == "resource":
            samples = monitor.samples
            if samples:
                last = samples[-1]
                families["rss"].add_metric(base, float(last.rss))
                if last.cpu_utilization is not None:
                    families["cpu"].add_metric(base, float(last.cpu_utilization))
        if self.findings and callable(getattr(monitor, "check", None)):
            self._findings(families, base, monitor)

    def _histogram(
        self, families: dict[str, Any], key: str, labels: list[str], state: LatencySketchState
    ) -> None:
        cumulative = _cumulative(state, self.edges)
        buckets = [(_le(e), float(c)) for e, c in zip(self.edges, cumulative, strict=True)]
        buckets.append(("+Inf", float(state.count)))
        families[key].add_metric(labels, buckets, state.sum)
        if state.count:
            sketch = LatencySketch.from_state(state)
            for q, value in zip(self.quantiles, sketch.quantiles(self.quantiles), strict=True):
                families[f"{key}_q"].add_metric([*labels, f"{q:g}"], float(value))

    def _tracer(self, families: dict[str, Any], base: list[str], breakdown: Any) -> None:
        self._histogram(families, "request", base, breakdown.request_sketch)
        families["requests"].add_metric(base, float(breakdown.requests))
        # the costliest stages claim the capped label values first (top-k by time)
        for stage, stats in sorted(breakdown.stages.items(), key=lambda kv: -kv[1].total):
            label = self._cap("stage", stage)
            if label == OTHER:
                continue  # folded: its time still counts in the request histogram
            self._histogram(families, "stage", [*base, label], stats.sketch)
        errors: dict[str, int] = {}
        for span, stats in sorted(breakdown.spans.items(), key=lambda kv: -kv[1].errors):
            if stats.errors:
                label = self._cap("span", span)
                errors[label] = errors.get(label, 0) + stats.errors
        for label, count in sorted(errors.items()):
            families["span_errors"].add_metric([*base, label], float(count))
        if breakdown.requests:
            families["non_model"].add_metric(base, 1.0 - float(breakdown.model_share))

    def _directory(self, families: dict[str, Any], base: list[str], directory: _Directory) -> None:
        """A fleet: counts and sketches merged fresh, the judgement (findings, live
        windows' gauges) from the fleet's latest (see :mod:`silenttax.integrations.fleet`)."""
        from silenttax.integrations.fleet import FleetBacklog, judgement, read_directory

        own = directory.own
        try:
            fleet = read_directory(
                directory.path, own=own, windows=False, fold_budget=_SCRAPE_FOLD_BUDGET
            )
        except FleetBacklog as backlog:
            families["fleet_backlog"].add_metric(base, float(backlog.files))
            return
        families["fleet_backlog"].add_metric(base, 0.0)
        if not self.findings and fleet.live is None:
            self._middleware(families, base, fleet)
            return
        interval = float(own.check_interval if own is not None else fleet.check_interval)
        judged = judgement(directory.path, own=own, max_age=3 * interval)
        self._middleware(families, base, fleet, judged=judged)
        if self.findings:
            self._counted(families, base, judged.report)

    def _middleware(
        self, families: dict[str, Any], base: list[str], middleware: Any, judged: Any = None
    ) -> None:
        for route, latency in sorted(middleware.latency().items()):
            self._histogram(families, "route", [*base, route], latency.sketch.state())
        for route, sketch in sorted(middleware.ttfb().items()):
            self._histogram(families, "ttfb", [*base, route], sketch.state())
        for (route, status), count in sorted(middleware.requests().items()):
            families["http"].add_metric([*base, route, status], float(count))
        for observed, monitor in sorted(middleware.observed().items()):
            label = self._cap("name", observed)
            if label != OTHER:
                self._histogram(families, "observed", [*base, label], monitor.sketch.state())
        families["internal"].add_metric(base, float(middleware.internal_error_count()))
        self._tracer(families, base, middleware.breakdown())
        if middleware.cost is not None:
            self._cost(families, base, middleware.cost)
        if middleware.live is not None:
            self._live(families, base, middleware.live, judged)
        for kind, component in sorted(middleware.components.items()):
            self._gauges(families, base, kind, component)

    def _gauges(self, families: dict[str, Any], base: list[str], kind: str, component: Any) -> None:
        """A user's component's ``gauges()`` (name -> number; the method is optional)."""
        gauges = getattr(component, "gauges", None)
        if not callable(gauges):
            return
        for name, value in sorted(gauges().items()):
            label = self._cap("name", str(name))
            if label != OTHER:
                families["component"].add_metric([*base, kind, label], float(value))

    def _live(self, families: dict[str, Any], base: list[str], live: Any, judged: Any) -> None:
        state = live.state()
        for outcome in ("rows", "failed", "dropped", "truncated"):
            families["samples"].add_metric([*base, outcome], float(getattr(state, outcome)))
        null_rates = live.null_rates() if judged is None else judged.null_rates
        for feature, rate in sorted(null_rates.items()):
            label = self._cap("feature", feature)
            if label != OTHER:
                families["null_rate"].add_metric([*base, label], rate)
        drift = live.drift_scores() if judged is None else judged.drift
        for feature, (metric, score) in sorted(drift.items()):
            label = self._cap("feature", feature)
            if label != OTHER:
                families["drift"].add_metric([*base, label, metric], score)

    def _cost(self, families: dict[str, Any], base: list[str], monitor: Any) -> None:
        state = monitor.state()
        windows = [w for w in state.windows if w.inferences]
        served = sum(w.inferences for w in state.windows) + state.open_inferences
        families["inferences"].add_metric(base, float(served))
        if windows and windows[-1].cost_per_1k is not None:
            families["cost"].add_metric(
                [*base, monitor.pricing.currency], float(windows[-1].cost_per_1k)
            )

    def _findings(self, families: dict[str, Any], base: list[str], monitor: Any) -> None:

        try:
            report = monitor.check()
        except Exception:  # a component that cannot judge itself yet exports no count
            return
        self._counted(families, base, report)

    def _counted(self, families: dict[str, Any], base: list[str], report: Any) -> None:
        from silenttax.report import Severity

        counts: dict[tuple[str, str], int] = {}
        for finding in report:
            if finding.severity != Severity.OK:
                key = (self._cap("code", finding.code), finding.severity.value)
                counts[key] = counts.get(key, 0) + 1
        for (code, severity), count in sorted(counts.items()):
            families["findings"].add_metric([*base, code, severity], float(count))


class _Directory:
    """A fleet's snapshot directory, read at each scrape."""

    def __init__(self, path: Any, own: Any) -> None:
        self.path = path
        self.own = own


def _le(edge: float) -> str:
    return f"{edge:.6g}"


def _kind(monitor: Any) -> str | None:
    from silenttax.cost import CostMonitor
    from silenttax.integrations.asgi import SilentTaxMiddleware
    from silenttax.monitor import LatencyMonitor, ResourceMonitor
    from silenttax.trace import Tracer

    if isinstance(monitor, LatencySketch | LatencyMonitor):
        return "sketch"
    if isinstance(monitor, Tracer):
        return "tracer"
    if isinstance(monitor, CostMonitor):
        return "cost"
    if isinstance(monitor, SilentTaxMiddleware):
        return "middleware"
    if isinstance(monitor, ResourceMonitor):
        return "resource"
    if isinstance(monitor, _Directory):
        return "directory"
    if callable(getattr(monitor, "state", None)) and callable(getattr(monitor, "check", None)):
        return "component"  # a user's (silenttax.component)
    return None


def register(
    monitor: Any,
    *,
    name: str,
    registry: Any = None,
    labels: Mapping[str, str] | None = None,
    **options: Any,
) -> SilentTaxCollector:
    """Export ``monitor`` under ``name`` through a new :class:`SilentTaxCollector` on
    ``registry`` (default: prometheus_client's global ``REGISTRY``); returns the collector.

    Options are :class:`SilentTaxCollector`'s (``namespace``, ``edges``,
    ``quantiles``, ``max_label_values``, ``findings``).
    """
    prometheus: Any = optional_import("prometheus_client", purpose="silenttax Prometheus export")
    collector = SilentTaxCollector({name: monitor}, labels=labels, **options)
    (registry if registry is not None else prometheus.REGISTRY).register(collector)
    return collector
