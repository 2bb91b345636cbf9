"""``silenttax bench``: an ONNX file or a torch factory, one or two interleaved, then gated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import silenttax
from silenttax.benchmark import BenchmarkResult, Comparison
from silenttax.cli import main

FAST = ["--min-time", "0.2", "--max-time", "3"]


def onnx_model(path: Path, width: int) -> Path:
    from onnx import TensorProto, helper, numpy_helper, save

    w = numpy_helper.from_array(np.ones((width, width), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
        [w],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_one_onnx_model_then_two_interleaved_then_the_gate(tmp_path: Path) -> None:
    a = onnx_model(tmp_path / "a.onnx", 32)
    b = onnx_model(tmp_path / "b.onnx", 32)
    np.save(tmp_path / "x.npy", np.ones((4, 32), np.float32))
    out = tmp_path / "a.json"
    assert (
        main(["bench", str(a), "--input", f"x={tmp_path / 'x.npy'}", "--out", str(out), *FAST]) == 0
    )
    result = silenttax.load(out)
    assert isinstance(result, BenchmarkResult) and result.name == str(a) and result.samples
    pair = tmp_path / "ab.json"
    args = ["bench", str(a), str(b), "--input", str(tmp_path / "x.npy"), "--out", str(pair)]
    assert main([*args, *FAST]) == 0
    comparison = silenttax.load(pair)
    assert isinstance(comparison, Comparison) and comparison.rounds >= 10
    assert main(["gate", str(pair)]) in (0, 1, 3)  # the same model: any honest verdict
    assert main(["gate", str(pair), "--out", str(tmp_path / "r.json")]) in (0, 1, 3)
    gated = json.loads((tmp_path / "r.json").read_text())
    # contended rounds (a busy CI runner) are left out of the verdict, never added
    assert 0 < gated["context"]["baseline_samples"] <= len(comparison.baseline.samples)


def test_a_torch_factory_with_weights_in_a_subprocess(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    (tmp_path / "tinymodel.py").write_text(
        "import torch\n\ndef build():\n    return torch.nn.Sequential(torch.nn.Linear(8, 4))\n"
    )
    model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    np.save(tmp_path / "x.npy", np.ones((2, 8), np.float32))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "silenttax",
            "bench",
            "tinymodel:build",
            "--weights",
            "w.pt",
            "--input",
            "x.npy",
            "--out",
            "r.json",
            *FAST,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert isinstance(silenttax.load(tmp_path / "r.json"), BenchmarkResult)


@pytest.mark.parametrize(
    ("model", "message"),
    [("missing.onnx", "no such ONNX file"), ("nomodule_here:build", "cannot import")],
)
def test_bad_models_and_inputs_are_usage_errors(
    tmp_path: Path, model: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "x.npy", np.ones(3, np.float32))
    args = ["bench", model, "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.json")]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert main(["bench", model, "--input", str(tmp_path / "nope.npy"), "--out", "o.json"]) == 2
