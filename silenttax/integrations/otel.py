"""OpenTelemetry metrics: silenttax sketches as exponential-histogram data points.

The Python SDK cannot take a pre-aggregated histogram through its instruments
(it has no ``MetricProducer``; observable instruments exist only for sums and
gauges), and recording every duration into an SDK histogram costs ~5 µs each.
silenttax's sketches already use OpenTelemetry's base-2 exponential mapping
(bucket ``i`` holds ``(base**i, base**(i+1)]``), so :func:`metrics_data` builds
the SDK's ``MetricsData`` directly — the buckets are a copy, not a re-bucketing —
and :func:`export_metrics` hands it to the user's exporter (OTLP/HTTP, gRPC, or
any ``MetricExporter``). :class:`PeriodicExport` does that on a thread started
on first use and again in a forked child (pre-fork servers), cumulative
temporality.

Note: OpenTelemetry's Prometheus exporter drops exponential histograms ("Unsupported
metric data"); export OTLP to a collector, or scrape silenttax's own Prometheus
collector (:mod:`silenttax.integrations.prometheus`).

Examples:
    >>> from silenttax.monitor import LatencySketch
    >>> sketch = LatencySketch()
    >>> sketch.add_many([0.002, 0.004, 0.010])
    >>> data = metrics_data({"ranker": sketch})
    >>> point = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    >>> point.count, point.scale, sum(point.positive.bucket_counts)
    (3, 6, 3)
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import psutil

from silenttax._deps import optional_import
from silenttax._sketch import LatencySketchState
from silenttax.errors import InputError

__all__ = ["PeriodicExport", "export_metrics", "metrics_data"]

_START_NS = int(psutil.Process().create_time() * 1e9)


def _point(state: LatencySketchState, attributes: dict[str, str], start: int, now: int) -> Any:
    export: Any = optional_import(
        "opentelemetry.sdk.metrics.export", purpose="OpenTelemetry export"
    )
    return export.ExponentialHistogramDataPoint(
        attributes=attributes,
        start_time_unix_nano=start,
        time_unix_nano=now,
        count=state.count,
        sum=state.sum,
        scale=state.scale,
        zero_count=state.zero_count,
        positive=export.Buckets(offset=state.offset, bucket_counts=list(state.counts)),
        negative=export.Buckets(offset=0, bucket_counts=[]),
        flags=0,
        min=state.min if state.count else 0.0,
        max=state.max if state.count else 0.0,
    )


def _points(monitors: Mapping[str, Any], start: int, now: int) -> dict[str, list[Any]]:
    from silenttax.integrations.asgi import SilentTaxMiddleware
    from silenttax.monitor import LatencyMonitor, LatencySketch
    from silenttax.trace import Tracer

    out: dict[str, list[Any]] = {}

    def add(metric: str, state: LatencySketchState, **attributes: str) -> None:
        out.setdefault(metric, []).append(_point(state, attributes, start, now))

    def tracer(name: str, t: Tracer) -> None:
        b = t.breakdown()
        add("silenttax.request.duration", b.request_sketch, **{"silenttax.monitor": name})
        for stage, stats in sorted(b.stages.items()):
            add(
                "silenttax.stage.duration",
                stats.sketch,
                **{"silenttax.monitor": name, "silenttax.stage": stage},
            )

    for name, monitor in monitors.items():
        if isinstance(monitor, LatencyMonitor):
            add("silenttax.latency", monitor.sketch.state(), **{"silenttax.monitor": name})
        elif isinstance(monitor, LatencySketch):
            add("silenttax.latency", monitor.state(), **{"silenttax.monitor": name})
        elif isinstance(monitor, Tracer):
            tracer(name, monitor)
        elif isinstance(monitor, SilentTaxMiddleware):
            for route, latency in sorted(monitor.latency().items()):
                add(
                    "silenttax.http.request.duration",
                    latency.sketch.state(),
                    **{"silenttax.monitor": name, "http.route": route},
                )
            tracer(name, monitor.tracer)
        else:
            raise InputError(
                f"monitors[{name!r}]: cannot export a {type(monitor).__name__} (a LatencySketch, "
                "LatencyMonitor, Tracer or SilentTaxMiddleware)"
            )
    return out


_DESCRIPTIONS = {
    "silenttax.latency": "Latency recorded by a silenttax monitor.",
    "silenttax.request.duration": "Request duration seen by a silenttax tracer.",
    "silenttax.stage.duration": "Per-request self time of a pipeline stage.",
    "silenttax.http.request.duration": "HTTP request duration to the last body chunk.",
}


def metrics_data(
    monitors: Mapping[str, Any],
    *,
    resource: Mapping[str, str] | None = None,
    start_time_unix_nano: int | None = None,
) -> Any:
    """The components' sketches as an OpenTelemetry ``MetricsData`` (cumulative).

    Args:
        monitors: name -> ``LatencySketch``, ``LatencyMonitor``, ``Tracer`` or
            ``SilentTaxMiddleware``.
        resource: Resource attributes (e.g. ``{"service.name": "ranker"}``).
        start_time_unix_nano: Start of the cumulative series (default: the
            process's start).

    Raises:
        InputError: a component that cannot be exported.
        MissingDependencyError: opentelemetry-sdk is not installed.
    """
    export: Any = optional_import(
        "opentelemetry.sdk.metrics.export", purpose="OpenTelemetry export"
    )
    resources: Any = optional_import("opentelemetry.sdk.resources")
    scope_module: Any = optional_import("opentelemetry.sdk.util.instrumentation")
    from silenttax._version import __version__

    now = time.time_ns()
    start = _START_NS if start_time_unix_nano is None else start_time_unix_nano
    metrics = [
        export.Metric(
            name=name,
            description=_DESCRIPTIONS[name],
            unit="s",
            data=export.ExponentialHistogram(
                data_points=points,
                aggregation_temporality=export.AggregationTemporality.CUMULATIVE,
            ),
        )
        for name, points in _points(monitors, start, now).items()
    ]
    scope = scope_module.InstrumentationScope("silenttax", __version__)
    return export.MetricsData(
        resource_metrics=[
            export.ResourceMetrics(
                resource=resources.Resource.create(dict(resource or {})),
                scope_metrics=[export.ScopeMetrics(scope=scope, metrics=metrics, schema_url="")],
                schema_url="",
            )
        ]
    )


def export_metrics(exporter: Any, monitors: Mapping[str, Any], **options: Any) -> Any:
    """Build :func:`metrics_data` and hand it to ``exporter.export``; returns its result."""
    return exporter.export(metrics_data(monitors, **options), timeout_millis=10_000)


class PeriodicExport:
    """Export every ``interval`` seconds on a daemon thread, started by :meth:`start`
    (call it after the server forks, or let the fork hook restart it in children).

    Export errors are counted in ``errors``, never raised into the process.
    """

    def __init__(
        self, exporter: Any, monitors: Mapping[str, Any], *, interval: float = 60.0, **options: Any
    ) -> None:
        if not interval > 0:
            raise InputError(f"interval must be > 0 seconds, got {interval!r}")
        self.exporter = exporter
        self.monitors = dict(monitors)
        self.interval = interval
        self.options = options
        self.errors = 0
        self.exports = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        ref = weakref.ref(self)

        def after_fork() -> None:  # a weak reference: the hook never keeps an exporter alive
            export = ref()
            if export is not None:
                export._after_fork()

        os.register_at_fork(after_in_child=after_fork)

    def _after_fork(self) -> None:
        if self._thread is not None:  # running in the parent: its thread is gone here, restart
            self._thread = None
            self._stop = threading.Event()
            self.start()

    def start(self) -> PeriodicExport:
        """Start the thread (once per process)."""
        if self._thread is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="silenttax-otel", daemon=True)
            self._thread.start()
        return self

    def export_now(self) -> None:
        """One export, now (errors counted)."""
        try:
            export_metrics(self.exporter, self.monitors, **self.options)
            self.exports += 1
        except Exception:
            self.errors += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.export_now()

    def stop(self) -> None:
        """Stop the thread and export once more."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
            self._thread = None  # stopped: a later fork does not restart it
        self.export_now()
