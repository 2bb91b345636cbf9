"""The pure checks: a snapshot (often merged), an optional baseline, a policy.

Each judges exactly as the component's own ``check()`` does, reads its policy
from the saved settings unless a keyword replaces it, and changes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import silenttax
from silenttax.cost import CostModel, CostMonitor, check_cost
from silenttax.drift import DriftDetector, check_drift
from silenttax.errors import InputError
from silenttax.features import FeatureHealth, check_health
from silenttax.monitor import LatencyMonitor, ResourceMonitor, check_latency, check_resource
from silenttax.report import Report, Severity


def _verdicts(report: Report) -> list[tuple[str, str | None, Severity]]:
    return sorted((f.code, f.subject, f.severity) for f in report)


def _latencies(seed: int, n: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(-5, 0.3, n) * scale


def _monitor(values: np.ndarray, **settings: Any) -> LatencyMonitor:
    monitor = LatencyMonitor(creep=False, **settings)
    for x in values:
        monitor.record(float(x))
    return monitor


def test_check_latency_on_merged_replicas_is_the_check_of_one_monitor() -> None:
    base, cur = _latencies(0, 6000), _latencies(1, 6000, scale=1.25)
    baseline = _monitor(base)
    replicas = [_monitor(part) for part in np.array_split(cur, 3)]
    merged = replicas[0].state()
    for other in replicas[1:]:
        merged = silenttax.load(merged).merge(other).state()
    whole = _monitor(cur)
    assert _verdicts(check_latency(merged, baseline.state())) == _verdicts(whole.check(baseline))
    regressions = check_latency(merged, baseline.state()).filter(code="latency.regression")
    assert {f.severity for f in regressions} == {Severity.WARNING}
    # the policy replaces the saved settings; nothing recorded changes
    lenient = check_latency(merged, baseline.state(), min_effect=0.6, critical_effect=0.9)
    assert {f.severity for f in lenient.filter(code="latency.regression")} == {Severity.OK}
    strict = check_latency(merged, baseline, critical_effect=0.1)
    assert {f.severity for f in strict.filter(code="latency.regression")} == {Severity.CRITICAL}
    assert silenttax.load(merged).sketch.count == 6000


def test_check_latency_policy_and_arguments_are_checked() -> None:
    monitor = _monitor(_latencies(0, 2000))
    with pytest.raises(InputError, match="min_effect"):
        check_latency(monitor, min_effect=0.5, critical_effect=0.1)
    with pytest.raises(InputError, match="baseline"):
        check_latency(monitor, baseline=[0.1, 0.2])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="current"):
        check_latency({"sketch": []})  # type: ignore[arg-type]
    slo = check_latency(monitor, slo=1e-6).filter(code="latency.slo")[0]
    assert slo.severity == Severity.CRITICAL and slo.threshold == 1e-6


def test_check_cost_takes_its_baseline_and_policy_at_check_time() -> None:
    t0 = 1_700_000_000.0
    before, after = (
        CostMonitor(CostModel(price_per_hour=2.0)),
        CostMonitor(CostModel(price_per_hour=2.6)),
    )
    before.record(inferences=1000, now=t0)
    before.close_window(now=t0 + 3600)
    after.record(inferences=1000, now=t0)
    after.close_window(now=t0 + 3600)
    increase = check_cost(after.state(), before).filter(code="cost.per_1k_increase")[0]
    assert increase.effect_size == pytest.approx(1.3)
    assert increase.severity == Severity.WARNING
    assert check_cost(after, before.state(), critical_effect=0.25).worst == Severity.CRITICAL
    assert check_cost(after, before, min_effect=0.4).worst == Severity.OK
    assert _verdicts(after.check(before)) == _verdicts(check_cost(after.state(), before))
    with pytest.raises(InputError, match="baseline"):
        check_cost(after, baseline=3.0)  # type: ignore[arg-type]


def test_check_resource_reads_a_saved_monitor_under_another_policy() -> None:
    monitor = ResourceMonitor(gpu=False)
    for served in range(0, 1000, 100):
        monitor.sample(inferences=served)
    state = monitor.state()
    assert _verdicts(check_resource(state)) == _verdicts(monitor.check())
    cpu = check_resource(state, saturation=1e-9).filter(code="resource.cpu")[0]
    assert cpu.threshold == pytest.approx(1e-9)
    with pytest.raises(InputError, match="saturation"):
        check_resource(state, saturation=2.0)


def _table(seed: int, n: int, shift: float = 0.0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(40 + shift, 10, n),
        "plan": rng.choice(["a", "b", "c"], n).tolist(),
    }


def test_check_drift_on_merged_partition_snapshots_matches_the_data_path() -> None:
    reference = DriftDetector().fit(_table(0, 8000))
    current = _table(1, 8000, shift=2.0)
    parts = [
        DriftDetector().fit({k: np.asarray(v)[i::4] for k, v in current.items()}) for i in range(4)
    ]
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    by_summary = check_drift(merged.state(), reference.state())
    by_data = reference.check(current)
    assert _verdicts(by_summary) == _verdicts(by_data)
    assert by_summary.filter(subject="age", code="drift.numeric")[0].severity >= Severity.WARNING
    quiet = check_drift(merged, reference, min_effect=5.0, critical_effect=9.0)
    assert quiet.filter(subject="age", code="drift.numeric")[0].severity == Severity.INFO


def test_check_drift_window_and_a_column_summarised_as_another_kind() -> None:
    reference = DriftDetector().fit(_table(0, 4000))
    reference.update(_table(2, 4000))
    assert _verdicts(check_drift(reference)) == _verdicts(reference.check())
    retyped = DriftDetector().fit({"age": ["x", "y"] * 2000, "plan": ["a", "b"] * 2000})
    report = check_drift(retyped.state(), reference.state())
    change = report.filter(code="drift.type_change", subject="age")
    assert len(change) == 1 and change[0].severity == Severity.CRITICAL
    assert not report.filter(code="drift.missing_column")
    with pytest.raises(InputError, match="reference"):
        check_drift(_table(0, 10))


def test_check_health_on_merged_profiles_matches_the_data_path() -> None:
    rng = np.random.default_rng(3)
    reference = FeatureHealth().fit({"x": rng.normal(size=4000), "c": ["a", "b"] * 2000})
    x = rng.normal(size=4000)
    x[::10] = np.nan
    current = {"x": x, "c": ["a", "b"] * 2000, "extra": [1] * 4000}
    halves = [
        FeatureHealth().fit({k: np.asarray(v)[i::2] for k, v in current.items()}) for i in (0, 1)
    ]
    merged = halves[0].merge(halves[1])
    assert _verdicts(check_health(merged.state(), reference.state())) == _verdicts(
        reference.check(current)
    )
    null = check_health(merged, reference).filter(code="feature.null_rate")[0]
    assert null.severity == Severity.CRITICAL  # 10 points of rows more
    relaxed = check_health(merged, reference, critical_effect=0.5)
    assert relaxed.filter(code="feature.null_rate")[0].severity == Severity.WARNING
    with pytest.raises(InputError, match="max_levels"):
        check_health(FeatureHealth(max_levels=5).fit(current), reference)
