"""Interleaved A/B on a busy machine: paired verdicts, contended rounds left out, and the
``ab_regression`` line never contradicting the gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from silenttax._system import usable_cores
from silenttax.benchmark import Comparison, compare
from silenttax.gate import performance_gate, verdict
from silenttax.testing import CpuHog


def synthetic(factor: float, *, rounds: int = 200, calls: int = 10, phase_sd: float = 0.3,
              seed: int = 0, contended: list[bool] | None = None):  # fmt: skip
    """Interleaved samples where every round has its own machine phase (log-normal, big),
    shared by both sides; the candidate is ``factor`` times slower."""
    rng = np.random.default_rng(seed)
    phase = np.repeat(np.exp(rng.normal(0, phase_sd, rounds)), calls)
    base = 1e-3 * phase * rng.lognormal(0, 0.05, rounds * calls)
    cand = 1e-3 * factor * phase * rng.lognormal(0, 0.05, rounds * calls)
    return Comparison.from_rounds(
        base, cand, rounds=rounds, calls_per_round=calls, round_contended=contended or []
    )


def test_phases_shared_by_both_sides_cancel_in_the_paired_gate() -> None:
    same = synthetic(1.0)
    # unpaired, a 30% phase-to-phase spread would leave p50 within +-5% undecidable
    assert verdict(performance_gate(same)) == "pass"
    slower = synthetic(1.3, seed=1)
    report = performance_gate(slower)
    assert verdict(report) == "regression"
    p50 = report.filter(code="gate.latency")[0]
    assert p50.evidence["method"].startswith("paired t over 10 batches")
    assert p50.evidence["ratio_lower"] < 1.3 < p50.evidence["ratio_upper"] or math.isclose(
        p50.value, 1.3, rel_tol=0.02
    )


def test_the_paired_interval_is_the_textbook_t_interval_of_the_batch_differences() -> None:
    from scipy import stats

    c = synthetic(1.1, seed=3)
    keep = c.quiet_rounds()
    assert keep is not None and keep.all()
    base = np.asarray(c.baseline.samples).reshape(200, 10)
    cand = np.asarray(c.candidate.samples).reshape(200, 10)
    diffs = [
        math.log(np.median(b)) - math.log(np.median(a))
        for a, b in zip(np.array_split(base, 10), np.array_split(cand, 10), strict=True)
    ]
    lo, hi = stats.t.interval(0.95, 9, loc=np.mean(diffs), scale=stats.sem(diffs))
    assert c.ratio == pytest.approx(math.exp(np.mean(diffs)))
    assert c.ci == pytest.approx((math.exp(lo), math.exp(hi)))
    assert c.p_value == pytest.approx(stats.ttest_1samp(diffs, 0).pvalue)


def test_contended_rounds_are_left_out_and_a_mostly_busy_run_is_inconclusive() -> None:
    rounds = 200
    # the candidate's rounds look 3x slower only while the machine was busy
    flags = [r % 4 == 0 for r in range(rounds)]
    c = synthetic(1.0, contended=flags, seed=4)
    inflated = np.asarray(c.candidate.samples).reshape(rounds, 10)
    inflated[np.asarray(flags)] *= 3
    c = Comparison.from_rounds(
        c.baseline.samples, inflated.ravel(), rounds=rounds, calls_per_round=10,
        round_contended=flags,
    )  # fmt: skip
    assert verdict(performance_gate(c)) == "pass"  # judged on the 150 quiet rounds
    busy = Comparison.from_rounds(
        c.baseline.samples, inflated.ravel(), rounds=rounds, calls_per_round=10,
        round_contended=[r % 4 != 0 for r in range(rounds)],
    )  # fmt: skip
    report = performance_gate(busy)
    assert busy.busy and verdict(report) == "inconclusive"
    assert all(f.evidence["reason"] == "machine busy" for f in report.filter(code="gate.latency"))
    line = busy.report().filter(code="latency.ab_regression")[0]
    assert "machine busy" in line.message and line.severity == "info"


@pytest.mark.parametrize("factor", [1.0, 1.02, 1.04, 1.06, 1.08, 1.2, 1.6])
def test_the_ab_line_and_the_gate_never_disagree(factor: float) -> None:
    for seed in range(5):
        c = synthetic(factor, rounds=60, phase_sd=0.05, seed=seed)
        gate = verdict(performance_gate(c))
        line = c.report().filter(code="latency.ab_regression")[0]
        p50 = performance_gate(c).filter(code="gate.latency")[0].evidence["verdict"]
        assert line.evidence["gate_verdict"] == p50
        slower = "slower" in line.message
        assert slower == (p50 == "regression"), (factor, seed, line.message)
        if gate == "pass":
            assert line.severity <= "info"


def test_a_a_under_a_hog_started_mid_run_is_never_a_regression() -> None:
    x = np.random.default_rng(0).normal(size=(96, 96))

    def work() -> float:
        return float((x @ x).sum())

    with CpuHog(processes=usable_cores(), delay=0.4):
        c = compare(work, work, min_time=1.2, max_time=1.2)
    assert c.contention is not None and c.contention["blocks"] >= 5
    assert c.round_contended is not None and len(c.round_contended) == c.rounds
    assert any(c.round_contended), c.contention  # the hog was seen
    report = performance_gate(c)
    assert verdict(report) != "regression", report.to_text()


def test_bench_runs_until_the_gate_decides() -> None:
    calls = []

    def decided(c: object) -> bool:
        calls.append(c)
        return len(calls) >= 2

    x = np.random.default_rng(0).normal(size=(32, 32))
    c = compare(lambda: x @ x, lambda: x @ x, min_time=0.3, max_time=30, until=decided)
    assert len(calls) == 2 and c.rounds >= calls[-1].rounds  # type: ignore[attr-defined]
    assert c.baseline.wall_time * 2 < 10  # it stopped long before max_time


def test_a_quantization_study_beside_a_hog_says_machine_busy_instead_of_recommending() -> None:
    torch = pytest.importorskip("torch")
    from silenttax.quantize import study

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 4))
    with CpuHog(processes=usable_cores()):
        s = study(mlp.eval(), torch.randn(8, 64), methods=["torch_dynamic_int8"], max_time=0.4)
    assert s.contention is not None and s.contention["contended_blocks"] > 0, s.contention
    (recommendation,) = s.report().filter(code="quantize.recommendation")
    if s.busy:
        assert "machine busy" in recommendation.message
        assert recommendation.evidence["reason"] == "machine busy"
    loaded = type(s).model_validate_json(s.model_dump_json())
    assert loaded.busy == s.busy and loaded.contention == s.contention


def test_fresh_runs_time_the_model_in_separate_processes(tmp_path: object) -> None:
    pytest.importorskip("onnxruntime")

    from onnx import TensorProto, helper, numpy_helper

    from silenttax.benchmark import BenchmarkResult, ModelSpec, fresh_runs
    from silenttax.errors import InputError

    w = numpy_helper.from_array(np.eye(16, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])], [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    spec = ModelSpec.onnx(model, inputs={"x": np.ones((4, 16), np.float32)})
    results = fresh_runs(spec, runs=2, seconds=0.1, min_samples=50, name="tiny")
    assert [r.name for r in results] == ["tiny run 1", "tiny run 2"]
    assert all(isinstance(r, BenchmarkResult) and len(r.samples) >= 50 for r in results)
    assert all(r.environment.python for r in results)
    with pytest.raises(InputError, match="runs"):
        fresh_runs(spec, runs=0)
    with pytest.raises(InputError, match="ModelSpec"):
        fresh_runs("model.onnx")  # type: ignore[arg-type]
