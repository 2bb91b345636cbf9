"""performance_gate: calibrated under no change, powerful on tail regressions, honest on
small samples, and fed every kind of measurement the library makes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binom

from silenttax.benchmark import benchmark
from silenttax.cost import CostModel
from silenttax.errors import InputError
from silenttax.gate import exit_status, performance_gate, verdict
from silenttax.monitor import LatencyMonitor, LatencySketch
from silenttax.report import Report, Severity

_Z97 = 1.8807936081512509


def draw(rng: np.random.Generator, n: int, sigma: float, *, tail: float = 1.0) -> np.ndarray:
    x = rng.lognormal(math.log(0.01), sigma, n)
    if tail != 1.0:
        x = np.where(x > 0.01 * math.exp(sigma * _Z97), x * tail, x)  # x tail above q97
    return x


def false_alarm_limit(reps: int, alpha: float = 0.05) -> int:
    """Most regressions a calibrated gate shows in ``reps`` A/A runs (99.9% of the time)."""
    return int(binom.ppf(0.999, reps, alpha))


def regressions(make: Any, reps: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    return sum(verdict(performance_gate(*make(rng))) == "regression" for _ in range(reps))


@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_no_change_rarely_fails_the_gate(sigma: float) -> None:
    reps = 250
    hits = regressions(lambda r: (draw(r, 3000, sigma), draw(r, 3000, sigma)), reps, 1)
    assert hits <= false_alarm_limit(reps)


def test_timings_rounded_to_a_clock_tick_do_not_fail_the_gate() -> None:
    """Medians that flip between two 1 ms ticks are not a 10% regression."""
    reps = 200
    hits = regressions(
        lambda r: (np.round(draw(r, 3000, 0.5), 3), np.round(draw(r, 3000, 0.5), 3)), reps, 2
    )
    assert hits <= false_alarm_limit(reps)


def test_noise_between_runs_is_in_the_interval() -> None:
    """Five runs per side whose levels differ by 11% (process-to-process noise)."""

    def runs(rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return (
            [draw(rng, 600, 0.5) * math.exp(rng.normal(0, 0.11)) for _ in range(5)],
            [draw(rng, 600, 0.5) * math.exp(rng.normal(0, 0.11)) for _ in range(5)],
        )

    reps = 200
    assert regressions(runs, reps, 3) <= false_alarm_limit(reps)
    report = performance_gate(*runs(np.random.default_rng(4)))
    p50 = report.filter(code="gate.latency")[0]
    assert p50.evidence["method"] == "Welch t over blocks"
    assert p50.evidence["baseline_blocks"] == 5


def test_a_tail_only_p99_regression_is_caught() -> None:
    reps = 60
    rng = np.random.default_rng(5)
    caught = sum(
        verdict(performance_gate(draw(rng, 3000, 0.5), draw(rng, 3000, 0.5, tail=1.3)))
        == "regression"
        for _ in range(reps)
    )
    assert caught >= 0.9 * reps
    report = performance_gate(draw(rng, 3000, 0.5), draw(rng, 3000, 0.5, tail=1.3))
    p99 = report.filter(code="gate.latency")[1]
    assert p99.metric == "p99_ratio" and p99.severity >= Severity.WARNING
    assert p99.evidence["ratio_lower"] > 1 and p99.value == pytest.approx(1.3, rel=0.1)
    assert p99.p_value is not None and p99.p_value >= p99.evidence["p_value_raw"]  # Holm


@pytest.mark.slow
@pytest.mark.parametrize(("sigma", "power"), [(0.75, 0.9), (1.0, 0.8)])
def test_tail_only_power_targets(sigma: float, power: float) -> None:
    reps = 400
    rng = np.random.default_rng(6)
    caught = sum(
        verdict(performance_gate(draw(rng, 3000, sigma), draw(rng, 3000, sigma, tail=1.3)))
        == "regression"
        for _ in range(reps)
    )
    assert caught >= power * reps


def test_small_samples_are_inconclusive_and_say_how_many_would_decide() -> None:
    rng = np.random.default_rng(7)
    report = performance_gate(draw(rng, 200, 0.5), draw(rng, 200, 0.5))
    assert verdict(report) == "inconclusive" and exit_status(report) == 3
    p99 = report.filter(code="gate.latency")[1]
    assert p99.severity == Severity.INFO and "at least 3" in p99.message  # 380 per side
    p50 = report.filter(code="gate.latency")[0]
    if p50.evidence["verdict"] == "inconclusive":
        assert p50.evidence["samples_to_decide"] > 200


def test_every_measurement_kind_goes_through_the_gate() -> None:
    rng = np.random.default_rng(8)
    base, cand = draw(rng, 6000, 0.5), draw(rng, 6000, 0.5) * 1.5
    expected = verdict(performance_gate(base, cand))
    assert expected == "regression"
    sketch_b, sketch_c = LatencySketch(), LatencySketch()
    sketch_b.add_many(base)
    sketch_c.add_many(cand)
    assert verdict(performance_gate(sketch_b, sketch_c)) == expected
    replicas = []
    for part in np.array_split(cand, 3):  # three replicas of the candidate, merged first
        monitor = LatencyMonitor()
        for x in part:
            monitor.record(float(x))
        replicas.append(monitor.state())
    report = performance_gate(sketch_b.state(), replicas)
    assert verdict(report) == expected and report.context["candidate_samples"] == 6000
    assert verdict(performance_gate(list(base), list(cand))) == expected


def test_benchmark_results_and_memory() -> None:
    def work() -> None:
        sum(range(300))

    runs = [benchmark(work, min_samples=400, min_time=0.01, max_time=0.5) for _ in range(4)]
    report = performance_gate(runs[:2], runs[2:], max_memory_regression=0.05)
    memory = report.filter(code="gate.memory")[0]
    assert memory.evidence["baseline_n"] == 2 and memory.metric == "peak_rss_ratio"
    assert verdict(report) in ("pass", "inconclusive", "regression")
    single = performance_gate(runs[0], runs[1], max_memory_regression=0.05)
    assert single.filter(code="gate.memory")[0].evidence["verdict"] == "inconclusive"


def test_cost_is_gated_and_priced() -> None:
    rng = np.random.default_rng(9)
    base, cand = draw(rng, 5000, 0.5), draw(rng, 5000, 0.5) * 1.3
    report = performance_gate(
        base, cand, max_cost_regression=0.05, cost=CostModel(price_per_hour=3.0)
    )
    gated = report.filter(code="gate.cost")[0]
    assert gated.evidence["verdict"] == "regression"
    assert gated.value == pytest.approx(cand.mean() / base.mean(), rel=1e-9)
    priced = report.filter(code="cost.what_if")[0]
    assert priced.effect_size == pytest.approx(cand.mean() / base.mean(), rel=1e-6)


def test_new_inefficiencies_from_profiles() -> None:
    from tests.conformance.components import _profile

    profile = _profile("torch")
    rng = np.random.default_rng(10)
    report = performance_gate(draw(rng, 500, 0.5), draw(rng, 500, 0.5), profiles=(profile, profile))
    found = report.filter(code="gate.inefficiency")
    assert len(found) == 1 and found[0].severity == Severity.OK  # the same profile: nothing new
    with pytest.raises(InputError, match="profiles"):
        performance_gate([0.1] * 50, [0.1] * 50, profiles=(profile,))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("baseline", "candidate", "match"),
    [
        ([0.1, float("nan"), 0.2], [0.1, 0.2], "baseline: 1 latencies"),
        ([0.1, 0.2], [-1.0, 0.2], "candidate: 1 latencies"),
        ([], [0.1], "baseline: no samples"),
        ([0.1], ["fast"], "candidate: expected latencies"),
    ],
)
def test_bad_input_names_the_side(baseline: Any, candidate: Any, match: str) -> None:
    with pytest.raises(InputError, match=match):
        performance_gate(baseline, candidate)


def test_bad_policy_and_verdict_of_another_report() -> None:
    with pytest.raises(InputError, match="max_p99_regression"):
        performance_gate([0.1] * 10, [0.1] * 10, max_p99_regression=-0.1)
    with pytest.raises(InputError, match="alpha"):
        performance_gate([0.1] * 10, [0.1] * 10, alpha=1.5)
    with pytest.raises(InputError, match="not a gate report"):
        verdict(Report())


def test_a_policy_file_sets_the_tolerances(tmp_path: Path) -> None:
    rng = np.random.default_rng(19)
    base, cand = draw(rng, 20_000, 0.5), draw(rng, 20_000, 0.5) * 1.08
    assert verdict(performance_gate(base, cand)) == "regression"  # 8% > the 5% p50 default
    toml = tmp_path / "pyproject.toml"
    toml.write_text("[gate]\nmax_p50_regression = 0.15\nmax_p99_regression = 0.2\n")
    relaxed = performance_gate(base, cand, policy=toml)
    assert verdict(relaxed) == "pass"
    assert relaxed.filter(code="gate.latency")[0].threshold == pytest.approx(1.15)
    p50 = performance_gate(base, cand, policy={"max_p50_regression": 0.15}).filter(
        code="gate.latency"
    )[0]
    assert p50.threshold == pytest.approx(1.15) and p50.evidence["verdict"] == "pass"
    with pytest.raises(InputError, match="max_p95_regression"):
        performance_gate(base, cand, policy={"max_p95_regression": 0.1})
    (tmp_path / "bad.json").write_text('{"alpha": "low"}')
    with pytest.raises(InputError, match="alpha must be a number"):
        performance_gate(base, cand, policy=tmp_path / "bad.json")


def test_a_quantization_study_adds_its_priced_recommendation() -> None:
    from tests.conformance.components import _study

    rng = np.random.default_rng(21)
    report = performance_gate(
        draw(rng, 500, 0.5), draw(rng, 500, 0.5), study=_study(), cost=CostModel(price_per_hour=1.0)
    )
    assert report.filter(code="quantize.recommendation")
    with pytest.raises(InputError, match="QuantizationStudy"):
        performance_gate([0.1] * 50, [0.1] * 50, study="int8")


def test_a_comparison_of_separate_processes_is_not_gated_alone() -> None:
    """compare_results' samples come from separate processes: gating blocks of them would
    hide the between-process variance, so the gate asks for the results themselves."""
    from silenttax.benchmark import compare_results

    a = benchmark(lambda: sum(range(300)), min_samples=50, min_time=0.01, memory=False)
    b = benchmark(lambda: sum(range(300)), min_samples=50, min_time=0.01, memory=False)
    with pytest.raises(InputError, match="only an interleaved Comparison"):
        performance_gate(compare_results(a, b))
    report = performance_gate([a, a], [b, b])  # what it asks for instead: runs per side
    assert report.filter(code="gate.verdict") and report.filter(code="gate.latency")
