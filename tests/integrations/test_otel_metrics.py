"""Sketches exported as OpenTelemetry exponential histograms: a copy of the buckets."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

pytest.importorskip("opentelemetry.sdk.metrics")
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from silenttax.errors import InputError
from silenttax.integrations.otel import PeriodicExport, export_metrics, metrics_data
from silenttax.monitor import LatencyMonitor, LatencySketch
from silenttax.trace import Tracer


class Capture(MetricExporter):
    """A real SDK exporter subclass that keeps what it is given."""

    def __init__(self) -> None:
        super().__init__(preferred_temporality={}, preferred_aggregation={})
        self.batches: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kw: object
    ) -> MetricExportResult:
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


def _points(data: MetricsData) -> dict[str, list[object]]:
    metrics = data.resource_metrics[0].scope_metrics[0].metrics
    return {m.name: list(m.data.data_points) for m in metrics}


def test_buckets_are_a_copy_of_the_sketch() -> None:
    rng = np.random.default_rng(0)
    x = rng.lognormal(math.log(0.004), 0.7, 5_000)
    monitor = LatencyMonitor(name="ranker")
    for v in x:
        monitor.record(float(v))
    exporter = Capture()
    assert export_metrics(exporter, {"ranker": monitor}, resource={"service.name": "r"}) == (
        MetricExportResult.SUCCESS
    )
    data = exporter.batches[0]
    assert data.resource_metrics[0].resource.attributes["service.name"] == "r"
    metric = data.resource_metrics[0].scope_metrics[0].metrics[0]
    assert metric.unit == "s"
    assert metric.data.aggregation_temporality == AggregationTemporality.CUMULATIVE
    point = metric.data.data_points[0]
    state = monitor.sketch.state()
    assert (point.scale, point.positive.offset, list(point.positive.bucket_counts)) == (
        state.scale, state.offset, state.counts,
    )  # fmt: skip
    assert point.count == x.size and point.sum == pytest.approx(x.sum(), rel=1e-12)
    assert point.min == x.min() and point.max == x.max()
    assert point.attributes == {"silenttax.monitor": "ranker"}
    # OTel's bucket i holds (base**i, base**(i+1)]: the data agree with that layout
    base = 2 ** (2.0**-point.scale)
    index = np.ceil(np.log(x) / np.log(base)).astype(int) - 1
    counts = np.bincount(index - point.positive.offset, minlength=len(point.positive.bucket_counts))
    assert np.abs(counts - np.asarray(point.positive.bucket_counts)).sum() <= 2  # edge rounding


def test_otlp_protobuf_round_trip() -> None:
    encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.metrics_encoder")
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    tracer = Tracer()
    for _ in range(50):
        with tracer.span("predict"), tracer.span("forward", stage="model"):
            sum(range(100))
    sketch = LatencySketch()
    sketch.add_many([0.001, 0.002, 0.003])
    data = metrics_data({"api": tracer, "plain": sketch})
    wire = encoder.encode_metrics(data).SerializeToString()
    decoded = ExportMetricsServiceRequest.FromString(wire)
    metrics = {m.name: m for m in decoded.resource_metrics[0].scope_metrics[0].metrics}
    assert set(metrics) == {
        "silenttax.request.duration",
        "silenttax.stage.duration",
        "silenttax.latency",
    }
    point = metrics["silenttax.latency"].exponential_histogram.data_points[0]
    state = sketch.state()
    assert point.count == 3 and point.scale == state.scale
    assert list(point.positive.bucket_counts) == state.counts
    assert point.positive.offset == state.offset
    stages = metrics["silenttax.stage.duration"].exponential_histogram.data_points
    names = {a.value.string_value for p in stages for a in p.attributes if a.key.endswith("stage")}
    assert names == {"model", "predict"}


def test_periodic_export_and_bad_input() -> None:
    sketch = LatencySketch()
    sketch.add(0.01)
    exporter = Capture()
    periodic = PeriodicExport(exporter, {"s": sketch}, interval=0.05).start()
    periodic.start()  # idempotent
    import time

    time.sleep(0.3)
    periodic.stop()
    assert periodic.exports >= 2 and periodic.errors == 0 and len(exporter.batches) >= 2
    with pytest.raises(InputError, match=r"monitors\['x'\]"):
        metrics_data({"x": object()})
    with pytest.raises(InputError, match="interval"):
        PeriodicExport(exporter, {}, interval=0)
    assert os.getpid() == periodic._pid
