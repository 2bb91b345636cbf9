from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest

from silenttax.errors import InputError
from silenttax.monitor import LatencyMonitor, LatencySketch, quantile_interval
from silenttax.report import Severity


def lognormal(seed: int, n: int, median: float = 0.02, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(median), 0.6, n) * scale


def filled(data: np.ndarray, **kwargs: object) -> LatencyMonitor:
    monitor = LatencyMonitor(**kwargs)  # type: ignore[arg-type]
    monitor.sketch.add_many(data)
    return monitor


def test_time_context_manager_and_decorators() -> None:
    monitor = LatencyMonitor()
    with monitor.time():
        time.sleep(0.01)

    @monitor.time()
    def double(x: int) -> int:
        return 2 * x

    @monitor.time()
    async def triple(x: int) -> int:
        await asyncio.sleep(0.005)
        return 3 * x

    assert double(4) == 8
    assert double.__name__ == "double"
    assert asyncio.run(triple(2)) == 6
    assert monitor.sketch.count == 3
    assert monitor.sketch.max >= 0.01


def test_exceptions_propagate_and_time_is_recorded() -> None:
    monitor = LatencyMonitor()

    @monitor.time()
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        boom()
    with pytest.raises(ValueError, match="inner"), monitor.time():
        raise ValueError("inner")
    assert monitor.sketch.count == 2


def test_check_reports_quantiles_with_figures() -> None:
    data = lognormal(0, 20_000)
    report = filled(data, name="ranker").check()
    # 20k steady requests: the creep detector has learnt the level and saw no climb
    assert [f.code for f in report] == ["latency.quantile"] * 3 + ["latency.creep"]
    assert report.worst is Severity.OK
    for finding, q in zip(report, (0.5, 0.95, 0.99), strict=False):
        exact = np.quantile(data, q, method="lower")
        assert finding.value == pytest.approx(exact, rel=0.01)
        assert finding.subject == "ranker" and finding.unit == "s"
        lo, hi = finding.evidence["ci"]  # type: ignore[misc]
        assert lo <= finding.value <= hi
        assert f"{finding.metric} latency" in finding.message


@pytest.mark.parametrize("seed", range(12))
def test_same_distribution_stays_quiet(seed: int) -> None:
    base = LatencySketch()
    base.add_many(lognormal(1000 + seed, 5000))
    report = filled(lognormal(seed, 5000), baseline=base).check()
    # 5,000 requests: creep is judged too (the level is learnt from 3,200)
    assert [f.code for f in report] == ["latency.regression"] * 3 + ["latency.creep"]
    assert report.worst is Severity.OK, str(report)


@pytest.mark.parametrize("seed", range(6))
def test_25_percent_slower_is_a_warning(seed: int) -> None:
    base = filled(lognormal(1000 + seed, 5000))
    report = filled(lognormal(seed, 5000, scale=1.25), baseline=base).check()
    by_metric = {f.metric: f for f in report}
    assert by_metric["p50"].severity is Severity.WARNING
    assert by_metric["p95"].severity is Severity.WARNING
    assert by_metric["p50"].effect_size == pytest.approx(1.25, rel=0.05)
    assert "regressed" in by_metric["p50"].message


def test_large_regression_is_critical() -> None:
    base = filled(lognormal(1, 5000))
    report = filled(lognormal(2, 5000, scale=2.0), baseline=base).check()
    assert report.worst is Severity.CRITICAL


def test_small_baseline_is_info_not_a_verdict() -> None:
    base = filled(lognormal(1, 100))
    report = filled(lognormal(2, 5000, scale=1.5), baseline=base).check()
    p99 = next(f for f in report if f.metric == "p99")
    assert p99.severity is Severity.INFO and "too small" in p99.message


def test_slo() -> None:
    data = lognormal(0, 5000)
    p99 = np.quantile(data, 0.99)
    ok = filled(data, slo=p99 * 2).check().filter(code="latency.slo")[0]
    assert ok.severity is Severity.OK and ok.threshold == p99 * 2
    bad = filled(data, slo=p99 / 2).check().filter(code="latency.slo")[0]
    assert bad.severity is Severity.CRITICAL
    assert bad.value == pytest.approx(p99, rel=0.01)
    near = filled(data, slo=p99 * 0.995).check().filter(code="latency.slo")[0]
    assert near.severity is Severity.WARNING  # above, but inside the CI


def test_invalid_durations_are_reported_not_raised() -> None:
    monitor = LatencyMonitor()
    for bad in (None, math.nan, -0.5, "fast"):
        monitor.record(bad)  # type: ignore[arg-type]
    monitor.record(0.01)
    report = monitor.check()
    invalid = report.filter(code="stability.invalid_input")[0]
    assert invalid.severity is Severity.WARNING and invalid.value == 4
    strict = LatencyMonitor(strict=True)
    with pytest.raises(InputError):
        strict.record(-1.0)


def test_no_data() -> None:
    report = LatencyMonitor().check()
    assert [f.code for f in report] == ["latency.no_data"]


def test_bad_configuration() -> None:
    with pytest.raises(InputError, match="slo"):
        LatencyMonitor(slo=-1)
    with pytest.raises(InputError, match="quantiles"):
        LatencyMonitor(quantiles=(0.5, 1.0))
    with pytest.raises(InputError, match="baseline"):
        LatencyMonitor(baseline=[0.1, 0.2])  # type: ignore[arg-type]


def test_merge_replicas() -> None:
    a, b = filled(lognormal(1, 1000)), filled(lognormal(2, 1000))
    a.merge(b)
    assert a.sketch.count == 2000


def test_quantile_interval_coverage() -> None:
    """The distribution-free interval covers the true quantile at least ~95% of the time."""
    true_p95 = math.exp(math.log(0.02) + 0.6 * 1.6448536269514722)
    covered = 0
    trials = 300
    for seed in range(trials):
        sketch = LatencySketch()
        sketch.add_many(lognormal(seed, 400))
        interval = quantile_interval(sketch, 0.95)
        assert interval is not None
        covered += interval[0] <= true_p95 <= interval[1]
    # Binomial(300, 0.95) is below 0.92 with probability < 1%.
    assert covered / trials >= 0.92


def test_the_baseline_can_come_at_check_time() -> None:
    """As Tracer.check(baseline): last week's monitor, loaded, judges today's."""
    import silenttax

    last_week = filled(lognormal(1, 5000))
    today = filled(lognormal(2, 5000) * 1.3)
    given = today.check(silenttax.load(last_week.to_json()))
    built = filled(lognormal(2, 5000) * 1.3, baseline=last_week).check()
    assert [(f.code, f.severity) for f in given] == [(f.code, f.severity) for f in built]
    assert given.filter(code="latency.regression")[0].severity >= Severity.WARNING
    assert today.baseline is None  # judging against another baseline changes nothing
    with pytest.raises(InputError, match="baseline"):
        today.check(baseline=[0.1, 0.2])  # type: ignore[arg-type]
