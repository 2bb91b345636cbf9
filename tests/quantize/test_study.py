from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from silenttax.cost import CostModel
from silenttax.errors import InputError
from silenttax.quantize import METHODS, QuantizationStudy, study
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


def test_real_quantization_is_faster_and_smaller(mlp_study: QuantizationStudy) -> None:
    by = {c.method: c for c in mlp_study.candidates}
    for method in ("torch_dynamic_int8", "torch_fx_static_int8", "ort_dynamic_int8"):
        c = by[method]
        assert c.error is None and c.applied, (method, c.error)
        assert c.speedup is not None and c.speedup > 1, method
        assert c.size_ratio is not None and c.size_ratio < 0.4, method
        assert c.max_abs_diff is not None and c.max_abs_diff < 0.05, method
        assert c.artifact is not None
    assert by["ort_fp32"].max_abs_diff < 1e-4  # type: ignore[operator]
    assert isinstance(by["ort_dynamic_int8"].artifact, bytes)
    assert any("deprecated" in note for note in by["torch_dynamic_int8"].notes)
    assert mlp_study.baseline.batch_size == 16 and mlp_study.baseline.size_bytes > 500_000


def test_best_respects_the_budgets(mlp_study: QuantizationStudy) -> None:
    best = mlp_study.best()
    assert best is not None and best.applied and best.speedup >= 1.1  # type: ignore[operator]
    assert mlp_study.best(max_abs_diff=1e-9) is None
    assert mlp_study.best(min_speedup=1000) is None
    tight = mlp_study.best(max_abs_diff=0.05, min_speedup=1.0)
    assert tight is not None and tight.max_abs_diff <= 0.05  # type: ignore[operator]


def test_report_with_and_without_cost(mlp_study: QuantizationStudy) -> None:
    plain = mlp_study.report()
    rec = plain.filter(code="quantize.recommendation")[0]
    assert rec.message.startswith("use ") and rec.value and rec.value > 1
    assert not plain.filter(code="quantize.cost")
    priced = mlp_study.report(CostModel(price_per_hour=0.8, currency="EUR"))
    cost = priced.filter(code="quantize.cost")[0]
    assert cost.unit == "EUR" and cost.value < cost.baseline  # type: ignore[operator]
    assert "saving" in cost.message
    assert len(plain.filter(code="quantize.candidate")) == 4
    assert "torch_dynamic_int8" in mlp_study.table()


def test_json_round_trip_without_artifacts(mlp_study: QuantizationStudy, tmp_path: Path) -> None:
    mlp_study.save(tmp_path / "s.json")
    loaded = QuantizationStudy.load(tmp_path / "s.json")
    assert [c.method for c in loaded.candidates] == [c.method for c in mlp_study.candidates]
    assert all(c.artifact is None for c in loaded.candidates)
    frame = mlp_study.to_dataframe()
    assert list(frame["method"]) == [c.method for c in mlp_study.candidates]


class NoLinear(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * 2 + 1


def test_no_op_is_caught_and_never_recommended() -> None:
    s = study(NoLinear().eval(), X, methods=["torch_dynamic_int8"], max_time=0.3)
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
