from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from silenttax.benchmark import environment
from silenttax.cost import CostModel
from silenttax.errors import InputError
from silenttax.quantize import (
    METHODS,
    Baseline,
    Candidate,
    QuantizationStudy,
    int8_support,
    study,
)
from silenttax.report import Severity

torch.manual_seed(0)


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(256, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
    ).eval()


X = torch.randn(16, 256)
CALIB = [torch.randn(16, 256) for _ in range(4)]


@pytest.fixture(scope="module")
def mlp_study() -> QuantizationStudy:
    return study(
        mlp(),
        X,
        calibration=CALIB,
        max_time=0.6,
        methods=["torch_dynamic_int8", "torch_fx_static_int8", "ort_fp32", "ort_dynamic_int8"],
    )


def test_real_candidates_have_consistent_figures(mlp_study: QuantizationStudy) -> None:
    """Whatever this CPU makes of int8, every figure is present and agrees with the others."""
    base = mlp_study.baseline
    assert mlp_study.rounds >= 10 and len(base.round_medians) == mlp_study.rounds
    by = {c.method: c for c in mlp_study.candidates}
    support = int8_support(environment().cpu_flags)
    for method in ("torch_dynamic_int8", "torch_fx_static_int8", "ort_dynamic_int8"):
        c = by[method]
        assert c.error is None and c.applied, (method, c.error)
        assert c.speedup is not None and c.speedup_ci is not None and c.p50 is not None
        assert 0 < c.speedup_ci[0] <= c.speedup <= c.speedup_ci[1], method
        assert len(c.round_medians) == mlp_study.rounds
        # p50s come from the same session as the speedup: where the speedup is clear, the
        # p50 column points the same way (the two estimators differ on a busy machine)
        if c.speedup_ci[0] > 1.2:
            assert c.p50 < base.p50, method
        if c.speedup_ci[1] < 1 / 1.2:
            assert c.p50 > base.p50, method
        assert c.size_ratio is not None and c.size_ratio < 0.4, method
        assert c.max_abs_diff is not None and c.max_abs_diff < 0.05, method
        assert c.rel_error is not None and c.rel_error < 0.05, method
        assert c.artifact is not None
        why = [n for n in c.notes if n.startswith("not faster than fp32 here")]
        if c.speedup_ci[0] <= 1:  # int8 did not pay here: the CPU's flags say why
            assert len(why) == 1 and support.summary in why[0], (method, c.notes)
            if c.backend == "torch":
                assert f"quantized engine is {support.engine}" in why[0]
            finding = mlp_study.report().filter(code="quantize.candidate", subject=method)[0]
            assert support.summary in finding.message and finding.recommendation
        else:
            assert not why, (method, c.notes)
    reduced = any("reduce_range=True" in n for n in by["ort_dynamic_int8"].notes)
    assert reduced is support.saturates  # without VNNI, ORT int8 weights use 7 bits
    assert by["ort_fp32"].max_abs_diff < 1e-4  # type: ignore[operator]
    assert isinstance(by["ort_dynamic_int8"].artifact, bytes)
    assert any("deprecated" in note for note in by["torch_dynamic_int8"].notes)
    assert base.batch_size == 16 and base.size_bytes > 500_000
    assert mlp_study.classifier and by["ort_fp32"].top1_agreement == 1.0


def test_best_respects_the_budgets(mlp_study: QuantizationStudy) -> None:
    best = mlp_study.best(min_speedup=0)
    assert best is not None and best.applied
    exact = mlp_study.best(max_abs_diff=1e-9)  # ORT fp32 can match torch bit for bit
    assert exact is None or exact.max_abs_diff == 0.0
    assert mlp_study.best(min_speedup=1000) is None
    tight = mlp_study.best(max_abs_diff=0.05, min_speedup=0)
    assert tight is not None and tight.max_abs_diff <= 0.05  # type: ignore[operator]
    chosen = mlp_study.best()
    if chosen is not None:  # only a candidate significantly faster than fp32
        assert chosen.speedup_ci is not None and chosen.speedup_ci[0] > 1
        assert chosen.speedup >= 1.1 and chosen.rel_error <= 0.05  # type: ignore[operator]
    with pytest.raises(InputError, match="metric"):
        mlp_study.best(max_metric_drop=0.01)


def _candidate(method: str, speedup: float, ci: tuple[float, float], **kw: Any) -> Candidate:
    rng = np.random.default_rng(len(method))
    rounds = kw.pop("rounds", None)
    return Candidate(
        method=method,
        backend="torch",
        applied=True,
        speedup=speedup,
        speedup_ci=ci,
        p50=0.001 / speedup,
        size_bytes=kw.pop("size_bytes", 1000),
        size_ratio=0.25,
        max_abs_diff=kw.pop("max_abs_diff", 0.01),
        rel_error=kw.pop("rel_error", 0.01),
        round_medians=(0.001 / speedup * rng.lognormal(0, 0.02, 40)).tolist()
        if rounds is None
        else rounds,
        **kw,
    )


def _study(*candidates: Candidate, classifier: bool = False) -> QuantizationStudy:
    base = Baseline(
        backend="torch",
        p50=0.001,
        p99=0.002,
        size_bytes=4000,
        batch_size=8,
        round_medians=[0.001] * 40,
    )
    return QuantizationStudy(
        model="m", baseline=base, candidates=list(candidates), rounds=40, classifier=classifier
    )


def test_a_candidate_over_the_error_budget_is_never_recommended() -> None:
    fast_but_wrong = _candidate("ort_dynamic_int8", 3.0, (2.8, 3.2), rel_error=0.14)
    slower_but_right = _candidate("torch_dynamic_int8", 1.5, (1.4, 1.6), rel_error=0.02)
    s = _study(fast_but_wrong, slower_but_right)
    assert s.best() is slower_but_right  # the default budget is 5% relative error
    assert s.best(max_rel_error=None) is fast_but_wrong
    rec = s.report().filter(code="quantize.recommendation")[0]
    assert rec.subject == "m" and "torch_dynamic_int8" in rec.message
    assert _study(fast_but_wrong).best() is None
    assert (
        "within 5% relative error"
        in _study(fast_but_wrong).report().problems("ok").findings[0].message
    )
    with pytest.raises(InputError, match="class scores"):
        s.best(min_top1_agreement=0.99)  # top-1 means nothing for these outputs
    classes = _study(
        _candidate("a", 2.0, (1.9, 2.1), top1_agreement=0.76),
        _candidate("b", 1.3, (1.2, 1.4), top1_agreement=0.995),
        classifier=True,
    )
    assert classes.best(min_top1_agreement=0.99).method == "b"  # type: ignore[union-attr]


def test_candidates_within_noise_are_named_and_the_most_accurate_wins() -> None:
    rng = np.random.default_rng(1)
    shared = 0.0004 * rng.lognormal(0, 0.3, 40)  # both saw the same slow and fast phases
    a = _candidate("torch_dynamic_int8", 2.05, (1.9, 2.2), rel_error=0.03, rounds=list(shared))
    b = _candidate(
        "ort_static_int8",
        2.0,
        (1.85, 2.15),
        rel_error=0.01,
        rounds=list(shared * rng.lognormal(0, 0.05, 40)),
    )
    far = _candidate("ort_fp32", 1.2, (1.15, 1.25), rel_error=0.0)
    s = _study(a, b, far)
    assert s.best() is b  # tied on speed: the more accurate one, whichever was a hair faster
    rec = s.report().filter(code="quantize.recommendation")[0]
    assert "are within noise" in rec.message and "torch_dynamic_int8" in rec.message
    assert rec.evidence["within_noise"] == ["torch_dynamic_int8"]
    clear = _candidate("torch_dynamic_int8", 3.0, (2.9, 3.1), rel_error=0.03)
    assert _study(clear, b).best() is clear  # clearly faster: speed wins


def test_a_slow_candidate_is_reported_as_a_slowdown_with_the_reason() -> None:
    why = "not faster than fp32 here (0.06x): " + int8_support(["avx2"], "x86_64").summary
    slow = _candidate("torchao_int8_dynamic", 0.06, (0.055, 0.065), notes=[why])
    s = _study(slow).model_copy(update={"int8": int8_support(["avx2"], "x86_64").summary})
    finding = s.report().filter(code="quantize.candidate")[0]
    assert finding.severity is Severity.INFO and "16.7x slower" in finding.message
    assert "no AVX512-VNNI" in finding.message and "VNNI or AMX" in (finding.recommendation or "")
    rec = s.report().filter(code="quantize.recommendation")[0]
    assert "keep fp32" in rec.message and "VNNI or AMX" in (rec.recommendation or "")
    assert s.best(min_speedup=0) is slow and s.best() is None


@pytest.mark.parametrize(
    ("flags", "machine", "native", "saturates"),
    [
        (["avx2", "fma"], "x86_64", False, True),
        (["avx2", "avx512f", "avx512_vnni"], "x86_64", True, False),
        (["avx2", "avx_vnni"], "x86_64", True, False),
        (["avx2", "amx_tile", "amx_int8"], "x86_64", True, False),
        (["asimd"], "aarch64", False, False),
        (["asimd", "asimddp", "i8mm"], "aarch64", True, False),
        ([], "aarch64", None, False),
    ],
)
def test_int8_support_is_read_off_the_flags(
    flags: list[str], machine: str, native: bool | None, saturates: bool
) -> None:
    support = int8_support(flags, machine)
    assert support.native is native and support.saturates is saturates
    assert support.engine == torch.backends.quantized.engine  # torch is imported here
    for flag in flags:
        if flag in ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"):
            assert flag in support.summary


def test_report_with_and_without_cost(mlp_study: QuantizationStudy) -> None:
    plain = mlp_study.report(min_speedup=0)  # whatever int8 does on this CPU, one is chosen
    rec = plain.filter(code="quantize.recommendation")[0]
    if mlp_study.busy:  # measured beside other work: no recommendation, and it says why
        assert rec.evidence["reason"] == "machine busy" and not plain.filter(code="quantize.cost")
        return
    best = mlp_study.best(min_speedup=0)
    assert best is not None and rec.message.startswith(f"use {best.method}: ")
    assert rec.value == best.speedup
    assert not plain.filter(code="quantize.cost")
    priced = mlp_study.report(CostModel(price_per_hour=0.8, currency="EUR"), min_speedup=0)
    cost = priced.filter(code="quantize.cost")[0]
    assert cost.unit == "EUR" and "saving" in cost.message
    assert cost.effect_size == pytest.approx(cost.value / cost.baseline)  # type: ignore[operator]
    # the price follows the latencies measured in the study's one session
    ratio = best.p50 / mlp_study.baseline.p50  # type: ignore[operator]
    assert cost.value == pytest.approx(cost.baseline * ratio)  # type: ignore[operator]
    assert len(plain.filter(code="quantize.candidate")) == 4
    assert "torch_dynamic_int8" in mlp_study.table()


def test_json_round_trip_without_artifacts(mlp_study: QuantizationStudy, tmp_path: Path) -> None:
    mlp_study.save(tmp_path / "s.json")
    loaded = QuantizationStudy.load(tmp_path / "s.json")
    assert [c.method for c in loaded.candidates] == [c.method for c in mlp_study.candidates]
    assert all(c.artifact is None for c in loaded.candidates)
    assert loaded.best(min_speedup=0) == mlp_study.best(min_speedup=0).model_copy(  # type: ignore[union-attr]
        update={"artifact": None}
    )
    assert loaded.int8 == mlp_study.int8 and loaded.rounds == mlp_study.rounds
    frame = mlp_study.to_dataframe()
    assert list(frame["method"]) == [c.method for c in mlp_study.candidates]


class NoLinear(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * 2 + 1


class ScaledLinear(torch.nn.Linear):
    """A Linear subclass: quantize_dynamic swaps exact types only, so it stays fp32."""


def test_nothing_to_quantize_is_skipped_not_a_warning() -> None:
    s = study(NoLinear().eval(), X, methods=["torch_dynamic_int8"], max_time=0.3)
    c = s.candidates[0]
    assert c.applied is False and c.error is not None and "nothing to quantize" in c.error
    assert s.best(min_speedup=0) is None
    (finding,) = s.report().filter(code="quantize.skipped")
    assert finding.severity is Severity.INFO and "no Linear, Conv" in finding.message
    assert not s.report().filter(code="quantize.no_op")


def test_no_op_is_caught_and_never_recommended() -> None:
    model = torch.nn.Sequential(ScaledLinear(X.shape[1], 8)).eval()
    s = study(model, X, methods=["torch_dynamic_int8"], max_time=0.3)
    c = s.candidates[0]
    assert c.applied is False and c.error is None
    assert s.best(min_speedup=0) is None
    assert s.report().filter(code="quantize.no_op")[0].severity is Severity.WARNING


def test_transformer_encoder_does_not_crash_the_study() -> None:
    layer = torch.nn.TransformerEncoderLayer(
        d_model=64, nhead=4, dim_feedforward=128, batch_first=True
    )
    model = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    x = torch.randn(4, 16, 64)
    s = study(
        model,
        x,
        calibration=[torch.randn(4, 16, 64) for _ in range(2)],
        max_time=0.5,
        methods=["torch_dynamic_int8", "torch_fx_static_int8"],
    )
    dyn, fx = s.candidates
    assert dyn.error is None and dyn.applied and dyn.speedup is not None
    assert any("fast path" in n for n in dyn.notes)
    # FX either keeps the encoder as a leaf (a silent no-op, caught) or fails to trace it
    # (recorded): never applied, never recommended, never raised.
    assert fx.applied is False
    assert fx.error is not None or "quantized nothing" in " ".join(fx.notes)
    assert s.best(min_speedup=0) is not fx


class DataDependent(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # Python control flow on data: FX cannot trace it
            return self.lin(x)
        return -self.lin(x)


def test_a_failing_method_is_recorded_not_raised() -> None:
    s = study(
        DataDependent().eval(), X, calibration=CALIB, methods=["torch_fx_static_int8"], max_time=0.3
    )
    c = s.candidates[0]
    assert c.error is not None and not c.applied
    assert s.report().filter(code="quantize.failed")[0].subject == "torch_fx_static_int8"


def test_unavailable_methods_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchao", None)  # as if torchao were not installed
    s = study(mlp(), X, methods=["torchao_int8_dynamic", "ort_static_int8"], max_time=0.3)
    reasons = {c.method: c.error for c in s.candidates}
    assert "pip install 'silenttax[quantize]'" in reasons["torchao_int8_dynamic"]  # type: ignore[operator]
    assert "calibration" in reasons["ort_static_int8"]  # type: ignore[operator]
    assert all(not c.applied for c in s.candidates)
    assert {f.code for f in s.report().filter(code="quantize.skipped")} == {"quantize.skipped"}


def test_an_onnx_model_and_a_user_metric() -> None:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((256, 512)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.standard_normal((512, 10)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])],
        [w, w2],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)]
    ).SerializeToString()
    x = rng.standard_normal((16, 256)).astype(np.float32)
    labels = np.argmax(x[:, :10], axis=1)

    def accuracy(outputs: list[list[np.ndarray]]) -> float:
        return float(np.mean(outputs[0][0].argmax(axis=1) == labels))

    s = study(
        model,
        x,
        methods=["torch_dynamic_int8", "ort_fp32", "ort_dynamic_int8"],
        metric=accuracy,
        max_time=0.4,
    )
    by = {c.method: c for c in s.candidates}
    assert "torch model" in by["torch_dynamic_int8"].error  # type: ignore[operator]
    assert "baseline" in by["ort_fp32"].error  # type: ignore[operator]
    dyn = by["ort_dynamic_int8"]
    assert dyn.applied and dyn.metric is not None and s.baseline.metric is not None
    assert s.baseline.backend == "onnxruntime"


def test_bad_input() -> None:
    with pytest.raises(InputError, match="unknown"):
        study(mlp(), X, methods=["fp8"])
    with pytest.raises(InputError, match="training mode"):
        study(torch.nn.Linear(4, 4), torch.randn(2, 4))
    with pytest.raises(InputError, match="raised"):
        study(mlp(), torch.randn(2, 3), methods=["torch_dynamic_int8"])
    assert set(METHODS) >= {"torch_dynamic_int8", "ort_static_int8"}
