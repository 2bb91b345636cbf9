"""Credible benchmarks: a harness with statistics, A/B comparison, environment fingerprints.

Examples:
    >>> from silenttax.benchmark import benchmark
    >>> result = benchmark(lambda: sorted(range(500)), min_samples=100, min_time=0.05)
    >>> result.report()[0].code
    'latency.benchmark'
"""

from silenttax._models import onnx_fn, onnx_session, torch_fn
from silenttax.benchmark._environment import PACKAGES, Environment, environment
from silenttax.benchmark._harness import (
    BenchmarkResult,
    Comparison,
    benchmark,
    compare,
    compare_results,
)

__all__ = [
    "PACKAGES",
    "BenchmarkResult",
    "Comparison",
    "Environment",
    "benchmark",
    "compare",
    "compare_results",
    "environment",
    "onnx_fn",
    "onnx_session",
    "torch_fn",
]
