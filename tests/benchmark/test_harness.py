from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from silenttax.benchmark import (
    BenchmarkResult,
    benchmark,
    compare,
    compare_results,
    environment,
)
from silenttax.benchmark._harness import _summarize
from silenttax.errors import InputError
from silenttax.report import Severity


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_benchmark_measures_a_known_latency() -> None:
    result = benchmark(lambda: spin(0.001), min_samples=50, min_time=0.1, max_time=2, name="spin")
    assert len(result.samples) >= 50
    assert result.p50 == pytest.approx(0.001, rel=0.2)
    assert result.min <= result.p50 <= result.p90 <= result.p95 <= result.p99 <= result.max
    lo, hi = result.ci_median  # type: ignore[misc]
    assert lo <= result.p50 <= hi
    assert result.ci_p99 is None  # too few samples
    assert any("p99" in w and "662" in w for w in result.warnings)
    assert result.throughput == pytest.approx(1 / result.mean)
    assert result.cpu_time > 0 and result.wall_time >= 0.1
    assert result.peak_rss and result.peak_rss > 0
    assert result.warmup_calls >= 10
    assert result.environment.affinity >= 1
    finding = result.report()[0]
    assert finding.code == "latency.benchmark" and finding.subject == "spin"


def test_benchmark_stops_at_max_time_and_json_round_trip(tmp_path: Path) -> None:
    result = benchmark(lambda: spin(0.01), min_samples=10_000, min_time=0, max_time=0.2, warmup=2)
    assert result.wall_time < 0.5 and len(result.samples) < 10_000
    assert result.warmup_calls == 2
    result.save(tmp_path / "r.json")
    assert BenchmarkResult.load(tmp_path / "r.json") == result


def test_compare_flags_a_slower_candidate() -> None:
    c = compare(lambda: spin(2e-4), lambda: spin(2.6e-4), min_time=0.5, max_time=5)
    finding = c.report(min_effect=0.05)[0]
    if c.busy:  # a busy runner: no verdict, and it says why
        assert finding.severity is Severity.INFO and "machine busy" in finding.message
        return
    assert c.ratio == pytest.approx(1.3, rel=0.1)
    assert c.ci[0] > 1.05 and c.ci[0] <= c.ratio <= c.ci[1]
    assert c.p_value < 0.01 and c.rounds >= 20
    assert finding.code == "latency.ab_regression" and finding.severity is Severity.WARNING
    assert "slower" in finding.message


@pytest.mark.parametrize("attempt", range(3))
def test_a_a_comparisons_stay_quiet(attempt: int) -> None:
    c = compare(lambda: spin(2e-4), lambda: spin(2e-4), min_time=0.4, max_time=5)
    assert c.ci[0] < 1.05 and abs(c.ratio - 1) < 0.05
    assert c.report(min_effect=0.05).worst < Severity.WARNING


def test_compare_results_attributes_the_change_to_the_environment() -> None:
    base = benchmark(lambda: spin(3e-4), min_samples=200, min_time=0.1, name="model")
    new_env = base.environment.model_copy(
        update={"packages": {**base.environment.packages, "torch": "9.0.0"}}
    )
    slow = benchmark(lambda: spin(4e-4), min_samples=200, min_time=0.1, name="model")
    slow = slow.model_copy(update={"environment": new_env})
    c = compare_results(base, slow)
    assert c.ratio == pytest.approx(4 / 3, rel=0.1) and c.ci[0] > 1
    assert c.scope == "within_process" and c.p_value is None
    report = c.report()
    ab = report.filter(code="latency.ab_regression")[0]
    # One process per side cannot show a difference: reported, never called significant.
    assert ab.severity is Severity.INFO and "between-process" in ab.message
    assert ab.p_value is None
    version = report.filter(code="dependency.version_change")[0]
    assert version.subject == "torch" and "-> 9.0.0" in version.message
    assert report.filter(code="dependency.environment_diff")


def test_environment_fingerprint_and_diff() -> None:
    env = environment()
    assert env.python.startswith("CPython") and env.cpu_count >= 1
    assert "numpy" in env.packages and "silenttax" in env.packages
    assert env.diff(env) == {}
    changed = env.model_copy(update={"packages": {**env.packages, "numpy": "0.1"}})
    assert env.diff(changed) == {"packages.numpy": (env.packages["numpy"], "0.1")}
    assert env.report().filter(code="dependency.environment")[0].severity is Severity.OK


def test_environment_flags_oversubscription(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    finding = environment().report().filter(code="dependency.threads")[0]
    assert finding.subject == "OMP_NUM_THREADS" and finding.severity is Severity.WARNING


def test_environment_flags_ort_beside_torch() -> None:
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401

    env = environment()
    assert {"torch", "onnxruntime"} <= set(env.runtimes)
    assert "torch.intra_op" in env.threads
    assert env.report().filter(code="dependency.ort_spinning")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: benchmark(42), "callable"),  # type: ignore[arg-type]
        (lambda: benchmark(lambda: 1 / 0), "ZeroDivisionError"),
        (lambda: benchmark(lambda: None, min_samples=0), "min_samples"),
        (lambda: benchmark(lambda: None, warmup=-1), "warmup"),
        (lambda: benchmark(lambda: None, min_time=5, max_time=1), "max_time"),
        (lambda: compare(lambda: None, "fn"), "candidate_fn"),  # type: ignore[arg-type]
        (lambda: compare(lambda: None, lambda: None, min_rounds=3), "min_rounds"),
    ],
)
def test_bad_input_is_a_clear_error(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        call()


def test_threads_are_set_and_restored() -> None:
    import torch

    before = torch.get_num_threads()
    seen = []
    benchmark(lambda: seen.append(torch.get_num_threads()), threads=1, min_samples=5, min_time=0)
    assert set(seen) == {1} and torch.get_num_threads() == before


def test_order_statistic_cis_have_coverage() -> None:
    rng = np.random.default_rng(0)
    from silenttax.benchmark._harness import _summarize

    env = environment()
    covered = 0
    true_median = np.exp(-7)
    for _ in range(200):
        s = rng.lognormal(-7, 0.3, 300).tolist()
        r = _summarize(
            "x",
            s,
            batch_size=1,
            warmup_calls=0,
            wall=1,
            cpu=1,
            peak_rss=None,
            threads=None,
            env=env,
        )
        covered += r.ci_median[0] <= true_median <= r.ci_median[1]  # type: ignore[index]
    assert covered / 200 >= 0.92


def test_the_noise_verdict_follows_report_not_measurement_time() -> None:
    from silenttax.benchmark._harness import _summarize

    rng = np.random.default_rng(0)
    samples = (0.001 * (1 + rng.uniform(-0.08, 0.08, 400))).tolist()  # IQR about 8% of median
    result = _summarize(
        "m",
        samples,
        batch_size=1,
        warmup_calls=0,
        wall=1,
        cpu=1,
        peak_rss=None,
        threads=None,
        env=environment(),
    )
    assert 0.05 < result.noise < 0.10 and not result.noisy
    strict = result.report(max_noise=0.05)[0]
    assert strict.severity is Severity.WARNING and "noisy run" in strict.message
    lenient = result.report(max_noise=0.2)[0]
    assert lenient.severity is Severity.OK and "noisy run" not in lenient.message
    old = json.loads(result.to_json())  # a file from before: the verdict was stored
    old["noisy"], old["warnings"] = True, ["noisy run: IQR is 12% of the median"]
    loaded = BenchmarkResult.model_validate(old)
    assert loaded.warnings == [] and loaded.report(max_noise=0.2)[0].severity is Severity.OK


def _process(name: str, scale: float, rng: np.random.Generator, n: int = 300) -> BenchmarkResult:
    samples = (rng.lognormal(np.log(1e-3), 0.05, n) * scale).tolist()
    return _summarize(
        name,
        samples,
        batch_size=1,
        warmup_calls=0,
        wall=1.0,
        cpu=1.0,
        peak_rss=None,
        threads=None,
        env=environment(),
    )


def test_compare_results_on_several_processes_tests_their_medians() -> None:
    rng = np.random.default_rng(5)
    noise = lambda: float(np.exp(rng.normal(0, 0.09)))  # noqa: E731 - between-process spread
    base = [_process("old", noise(), rng) for _ in range(6)]
    slow = [_process("new", 1.4 * noise(), rng) for _ in range(6)]
    c = compare_results(base, slow)
    assert c.scope == "between_processes" and c.process_medians is not None
    assert [len(m) for m in c.process_medians] == [6, 6]
    medians = [np.log(m) for m in c.process_medians]
    expected = stats.ttest_ind(medians[1], medians[0], equal_var=False)
    assert c.p_value == pytest.approx(expected.pvalue)
    assert c.ratio == pytest.approx(np.exp(medians[1].mean() - medians[0].mean()))
    assert c.ci[0] <= 1.4 <= c.ci[1] and c.ci[0] > 1
    assert c.report()[0].severity is Severity.WARNING
    assert len(c.baseline.samples) == 6 * 300  # the display summary pools all processes


def test_compare_results_a_a_between_processes_is_calibrated() -> None:
    """Identical stacks, processes differing by ~9% as measured on the 2-core class: the
    pooled test of the old compare_results called them different about half the time;
    per-process medians must hold alpha (here within a binomial bound)."""
    rng = np.random.default_rng(11)
    trials, alarms, pooled_alarms = 300, 0, 0
    for _ in range(trials):
        sides = [
            [_process(n, float(np.exp(rng.normal(0, 0.09))), rng, 120) for _ in range(4)]
            for n in ("a", "b")
        ]
        c = compare_results(sides[0], sides[1])
        assert c.p_value is not None
        alarms += c.p_value < 0.05
        a = np.log(sides[0][0].samples)
        b = np.log(sides[1][0].samples)
        pooled_alarms += stats.mannwhitneyu(a, b).pvalue < 0.05
    assert stats.binomtest(alarms, trials, 0.05).pvalue > 0.001, alarms
    assert pooled_alarms > trials / 3  # what the one-process-per-side pooled test did


def test_compare_results_rejects_unbalanced_sides() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="at least two per side"):
        compare_results(_process("a", 1, rng), [_process("b", 1, rng), _process("b", 1, rng)])
    with pytest.raises(InputError, match="baseline"):
        compare_results([], _process("b", 1, rng))


def test_a_maximum_alone_means_at_most() -> None:
    """``max_time`` below the default minimum: the run takes at most that (was an error)."""
    result = benchmark(lambda: spin(1e-4), max_time=0.3, warmup=2)
    # the measurement contract: timed for at most max_time plus the call running when
    # it was reached (a preempted call is longer, and counted as such), not 1 s
    assert 0 < result.wall_time <= 0.3 + result.max + 0.01
    assert len(result.samples) >= 1
    with pytest.raises(InputError, match="min_time <= max_time"):
        benchmark(lambda: None, min_time=2.0, max_time=0.3)  # both given: still refused
    c = compare(lambda: spin(1e-4), lambda: spin(1e-4), max_time=0.4, warmup=2)
    assert c.rounds >= 1  # it ran within the shorter budget (it raised before)


def test_assert_no_regression_takes_a_comparison_alone() -> None:
    from silenttax.testing import assert_no_regression

    c = compare(lambda: spin(2e-4), lambda: spin(4e-4), min_time=0.4, max_time=5)
    if c.busy:  # a busy runner: inconclusive, which fails only when asked to
        with pytest.raises(AssertionError, match="gate inconclusive"):
            assert_no_regression(c, allow_inconclusive=False)
        return
    with pytest.raises(AssertionError, match="performance regression"):
        assert_no_regression(c)
