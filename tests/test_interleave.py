"""The interleaved session behind the quantization study: known factors, honest intervals."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import stats

from silenttax._interleave import Interleaved, batch_means_interval, interleave


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_known_factor_is_measured_as_such() -> None:
    """Twice the work reads as twice the latency, with an interval around it."""
    run = interleave(
        [lambda: spin(2e-4), lambda: spin(4e-4), lambda: spin(2e-4)],
        ["a", "twice", "a again"],
        max_time=0.6,
    )
    assert run.rounds >= 10 and not run.errors
    est, lo, hi = run.ratio(0, 1)
    assert lo < est < hi and lo > 1  # significantly slower...
    assert est == pytest.approx(2.0, rel=0.2)  # ...by the factor we built in
    same, lo, hi = run.ratio(0, 2)
    assert same == pytest.approx(1.0, rel=0.15)
    assert run.blocks.shape == (run.rounds, 3)
    assert all(
        len(s) == run.rounds * n for s, n in zip(run.samples, run.calls_per_block, strict=True)
    )


def test_a_very_slow_callable_is_measured_in_fewer_longer_rounds() -> None:
    """A 40x slower callable still gets rounds (one call each) and a measured ratio."""
    run = interleave(
        [lambda: spin(5e-4), lambda: spin(2e-2)], ["fast", "slow"], max_time=0.1, min_rounds=10
    )
    assert not run.errors and run.rounds >= 3
    assert run.calls_per_block[1] == 1 and run.calls_per_block[0] > 1
    est, lo, hi = run.ratio(0, 1)
    assert lo <= est <= hi and est == pytest.approx(40, rel=0.25)
    assert run.wall_time <= 4 * 0.1 + 0.5  # capped, not unbounded


def test_a_callable_that_raises_is_dropped_and_its_error_kept() -> None:
    calls = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) > 5:
            raise RuntimeError("boom")

    run = interleave([lambda: spin(1e-4), flaky], ["ok", "flaky"], max_time=0.1)
    assert "RuntimeError" in run.errors[1] and "boom" in run.errors[1]
    assert run.samples[1] == [] and run.samples[0] and run.rounds >= 10


def test_batch_means_interval_is_the_textbook_t_interval() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.2, 1, 95)
    est, lo, hi = batch_means_interval(x, 0.9, batches=5)
    means = np.array([c.mean() for c in np.array_split(x, 5)])
    want = stats.t.interval(0.9, 4, loc=means.mean(), scale=stats.sem(means))
    assert est == pytest.approx(means.mean())
    assert (lo, hi) == pytest.approx(want)
    with pytest.raises(ValueError, match="at least 2"):
        batch_means_interval([1.0])


@pytest.mark.parametrize("phi", [0.0, 0.6])
def test_batch_means_coverage_matches_confidence_under_serial_correlation(phi: float) -> None:
    """Per-round log ratios that drift in phases (AR(1)): the 95% interval covers the truth
    about 95% of the time, where a naive interval over rounds would not."""
    rng = np.random.default_rng(int(phi * 10))
    sims, n, truth = 2000, 200, math.log(1.3)
    covered = naive = 0
    for _ in range(sims):
        e = rng.normal(0, 0.05, n)
        for t in range(1, n):
            e[t] += phi * e[t - 1]
        logs = truth + e
        _, lo, hi = batch_means_interval(logs)
        covered += lo <= truth <= hi
        half = 1.96 * logs.std(ddof=1) / math.sqrt(n)
        naive += abs(logs.mean() - truth) <= half
    # 2000 runs: the binomial standard error of a 95% rate is 0.5%
    assert 0.93 <= covered / sims <= 0.97
    if phi > 0:
        assert naive / sims < 0.90  # what the interval over single rounds would claim


def test_ratio_uses_the_rounds_shared_by_both() -> None:
    blocks = np.array([[1.0, 2.0], [1.1, 2.2], [0.9, 1.8], [1.0, 2.0]])
    run = Interleaved(["a", "b"], [[], []], blocks, [1, 1], 0.0)
    est, lo, hi = run.ratio(0, 1)
    assert est == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)
