from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from silenttax.errors import InputError
from silenttax.profile import OnnxProfile, TorchProfile, profile_onnx, profile_torch
from silenttax.report import Severity

torch.manual_seed(0)


class Clean(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(256, 512)
        self.b = torch.nn.Linear(512, 512)
        self.c = torch.nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


class Casts(Clean):
    """Pointless dtype round trips, clones and contiguous copies on the hot path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        for _ in range(3):
            h = h.to(torch.float64).to(torch.float32).clone().t().contiguous().t().contiguous()
        return self.c(torch.relu(self.b(h)))


class PerItem(Clean):
    """A Python loop over the batch, indexing one item at a time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([Clean.forward(self, x[i].unsqueeze(0)) for i in range(x.shape[0])])


X = torch.randn(64, 256)


def compute_leads(profile: TorchProfile | OnnxProfile) -> bool:
    """Dense compute is the largest op category (its share of the step depends on the CPU:
    a CPU with AMX makes the matmuls, and so their share, small)."""
    others = (profile.data_movement_share, profile.elementwise_share, profile.other_share)
    return profile.compute_share > max(others)


def test_a_clean_model_is_not_flagged() -> None:
    profile = profile_torch(Clean().eval(), X, steps=10)
    report = profile.report()
    assert report.worst < Severity.WARNING, str(report)
    assert profile.data_movement_share < 0.05  # the bias copy_ inside addmm counts as compute
    assert compute_leads(profile)
    assert profile.top()[0].name in ("aten::linear", "aten::addmm")
    shares = (
        profile.compute_share
        + profile.data_movement_share
        + profile.elementwise_share
        + profile.other_share
        + profile.overhead_share
    )
    assert shares == pytest.approx(1.0, abs=0.02)


def test_casts_and_copies_are_flagged_by_name() -> None:
    # 27-53% of a step here on a quiet machine; a busy one stretches the matmul's threads
    # (compute) instead: the threshold is low enough that the casts are named either way
    report = profile_torch(Casts().eval(), X, steps=10).report(max_data_movement=0.03)
    finding = report.filter(code="model_bloat.data_movement")[0]
    assert finding.severity >= Severity.WARNING
    assert "aten::to" in finding.message and "aten::contiguous" in finding.message
    assert finding.recommendation


def test_per_item_python_loop_is_flagged() -> None:
    profile = profile_torch(PerItem().eval(), X, steps=3)
    assert profile.per_item_ops == pytest.approx(64, abs=1)
    finding = profile.report().filter(code="model_bloat.python_loop")[0]
    assert finding.severity is Severity.WARNING and "Python loop" in finding.message


def test_chrome_trace_json_round_trip_and_quiet_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.json"
    profile = profile_torch(Clean().eval(), X, steps=2, chrome_trace=trace)
    doc = json.loads(trace.read_text())
    assert any(e.get("name") == "silenttax::step" for e in doc["traceEvents"])
    assert profile.chrome_trace == str(trace)
    assert "USDT:" not in capfd.readouterr().err
    profile.save(tmp_path / "p.json")
    assert TorchProfile.load(tmp_path / "p.json") == profile


def test_bad_input() -> None:
    with pytest.raises(InputError, match="steps"):
        profile_torch(Clean().eval(), X, steps=0)
    with pytest.raises(InputError, match="training mode"):
        profile_torch(Clean(), X)
    with pytest.raises(InputError, match="raised RuntimeError"):
        profile_torch(Clean().eval(), torch.randn(4, 3))


def onnx_model(gathers: int = 0) -> object:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((256, 512)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((512, 10)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Relu", ["h0"], ["h"]),
    ]
    last = "h"
    perm = numpy_helper.from_array(rng.permutation(512).astype(np.int64), "perm")
    for i in range(gathers):  # shuffle the hidden units back and forth: pure data movement
        nodes.append(helper.make_node("Gather", [last, "perm"], [f"g{i}"], axis=1))
        last = f"g{i}"
    nodes.append(helper.make_node("MatMul", [last, "w2"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])],
        [w1, w2, perm],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_profile_of_a_clean_graph() -> None:
    x = np.random.default_rng(1).standard_normal((64, 256)).astype(np.float32)
    profile = profile_onnx(onnx_model(), x, steps=10, threads=1)
    assert isinstance(profile, OnnxProfile) and profile.framework == "onnxruntime"
    assert profile.ops[0].name == "MatMul" and profile.ops[0].per_step == pytest.approx(2)
    assert compute_leads(profile)
    assert profile.report().worst < Severity.WARNING
    assert {n.name for n in profile.nodes}


def test_onnx_profile_flags_data_movement() -> None:
    x = np.random.default_rng(1).standard_normal((64, 256)).astype(np.float32)
    report = profile_onnx(onnx_model(gathers=8), x, steps=10, threads=1).report()
    finding = report.filter(code="model_bloat.data_movement")[0]
    assert "Gather" in finding.message


def test_onnx_profile_of_a_torch_export(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    path = tmp_path / "clean.onnx"
    with warnings.catch_warnings():  # torch's exporter warns about its own internals
        warnings.simplefilter("ignore")
        torch.onnx.export(Clean().eval(), (X,), str(path), dynamo=True, external_data=False)
    profile = profile_onnx(path, X.numpy(), steps=5)
    assert profile.model == "clean" and compute_leads(profile)


def test_onnx_bad_input() -> None:
    with pytest.raises(InputError, match="could not run"):
        profile_onnx(onnx_model(), np.ones((2, 3), np.float32))
    with pytest.raises(InputError, match="steps"):
        profile_onnx(onnx_model(), np.ones((2, 256), np.float32), steps=0)


class Chatty(Clean):
    """Pure-Python work in forward(): time outside any op."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for i in range(100_000):  # ~5 ms of interpreter work per step
            total += i * 0.5
        return Clean.forward(self, x) + total * 0


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x)


def test_framework_overhead_is_a_warning_only_when_it_costs_enough_per_step() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy machine torch's spinning threads inflate the ops
    try:
        chatty = profile_torch(Chatty().eval(), X, steps=5).report()
    finally:
        torch.set_num_threads(threads)
    (loud,) = chatty.filter(code="model_bloat.framework_overhead")
    assert loud.severity is Severity.WARNING and loud.recommendation
    tiny = profile_torch(Tiny().eval(), torch.randn(1, 4), steps=20)
    overhead = tiny.overhead_share * tiny.step_time
    report = tiny.report(max_overhead=0.0)  # every share counts: judged on its cost alone
    (finding,) = report.filter(code="model_bloat.framework_overhead")
    expected = Severity.WARNING if overhead >= 50e-6 else Severity.INFO
    assert finding.severity is expected, (overhead, finding.message)
    if expected is Severity.INFO:
        assert "immaterial" in finding.message
    strict = tiny.report(max_overhead=0.0, min_overhead_time=0.0)
    assert strict.filter(code="model_bloat.framework_overhead")[0].severity is Severity.WARNING
    with pytest.raises(InputError, match="min_overhead_time"):
        tiny.report(min_overhead_time=-1)
