"""Assertions for pytest users: fail a test when a candidate is slower than its baseline.

Examples:
    >>> import numpy as np
    >>> from silenttax.testing import assert_no_regression
    >>> rng = np.random.default_rng(0)
    >>> before = rng.lognormal(np.log(0.01), 0.5, 20_000)
    >>> _ = assert_no_regression(before, rng.lognormal(np.log(0.01), 0.5, 20_000))
    >>> assert_no_regression(before, rng.lognormal(np.log(0.02), 0.5, 20_000))
    Traceback (most recent call last):
    ...
    AssertionError: performance regression: ...
"""

from __future__ import annotations

from typing import Any

from silenttax.report import Report

__all__ = ["assert_no_regression"]


def assert_no_regression(
    baseline: Any, candidate: Any = None, *, allow_inconclusive: bool = True, **tolerances: Any
) -> Report:
    """Raise ``AssertionError`` (the rendered gate report) when the gate says regression.

    ``baseline`` alone may be a :class:`~silenttax.benchmark.Comparison` (both sides
    interleaved in one process), as for the gate. Arguments and ``tolerances``
    (``max_p50_regression``, ``max_p99_regression``, ``max_memory_regression``,
    ``max_cost_regression``, ``alpha``, ...) are those of
    :func:`silenttax.gate.performance_gate`. An inconclusive gate passes unless
    ``allow_inconclusive=False``: too few samples is not evidence of a slowdown.

    Returns:
        The gate's report, for further checks.

    Raises:
        AssertionError: the candidate regressed (or the gate was inconclusive and
            ``allow_inconclusive`` is False); the message is the report.
    """
    from silenttax.gate import performance_gate, verdict

    report = performance_gate(baseline, candidate, **tolerances)
    result = verdict(report)
    if result == "regression" or (result == "inconclusive" and not allow_inconclusive):
        label = "performance regression" if result == "regression" else "gate inconclusive"
        raise AssertionError(f"{label}: {report.findings[0].message}\n{report.to_text()}")
    return report
