"""Serving monitors: latency quantiles, latency creep, CPU/memory/GPU.

Everything here is meant for the request path of a model server: O(1)
recording, bounded memory, thread-safe, and it never raises into the request
unless you pass ``strict=True``.
"""

from silenttax._sketch import LatencySketch, LatencySketchState
from silenttax.monitor._adwin import ADWIN
from silenttax.monitor._detectors import CUSUM, ChangeDetector, DetectorState, PageHinkley
from silenttax.monitor._gpu import GpuStats, gpu_snapshot
from silenttax.monitor._latency import (
    LatencyMonitor,
    LatencyMonitorState,
    check_latency,
    quantile_interval,
)
from silenttax.monitor._prediction import PredictionMonitor, PredictionMonitorState
from silenttax.monitor._resource import (
    ResourceMonitor,
    ResourceMonitorState,
    ResourceSample,
    check_resource,
)

__all__ = [
    "ADWIN",
    "CUSUM",
    "ChangeDetector",
    "DetectorState",
    "GpuStats",
    "LatencyMonitor",
    "LatencyMonitorState",
    "LatencySketch",
    "LatencySketchState",
    "PageHinkley",
    "PredictionMonitor",
    "PredictionMonitorState",
    "ResourceMonitor",
    "ResourceMonitorState",
    "ResourceSample",
    "check_latency",
    "check_resource",
    "gpu_snapshot",
    "quantile_interval",
]
