"""Credible benchmarks: a harness with statistics, A/B comparison, environment fingerprints,
and stack checks (the same model on a newer framework stack, in paired processes).

Examples:
    >>> from silenttax.benchmark import benchmark
    >>> result = benchmark(lambda: sorted(range(500)), min_samples=100, min_time=0.05)
    >>> result.report()[0].code
    'latency.benchmark'
"""

from silenttax._models import onnx_fn, onnx_session, torch_fn
from silenttax.benchmark._environment import PACKAGES, Environment, environment
from silenttax.benchmark._envs import version_lag
from silenttax.benchmark._harness import (
    BenchmarkResult,
    Comparison,
    benchmark,
    compare,
    compare_results,
)
from silenttax.benchmark._runs import fresh_runs
from silenttax.benchmark._spec import ModelSpec
from silenttax.benchmark._stack import StackArm, StackComparison, compare_stacks, decide_pairs

__all__ = [
    "PACKAGES",
    "BenchmarkResult",
    "Comparison",
    "Environment",
    "ModelSpec",
    "StackArm",
    "StackComparison",
    "benchmark",
    "compare",
    "compare_results",
    "compare_stacks",
    "decide_pairs",
    "environment",
    "fresh_runs",
    "onnx_fn",
    "onnx_session",
    "torch_fn",
    "version_lag",
]
