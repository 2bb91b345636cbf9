from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from silenttax.benchmark import benchmark, onnx_fn, onnx_session, torch_fn
from silenttax.errors import InputError


def mlp_onnx() -> object:
    w = numpy_helper.from_array(np.eye(16, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_torch_fn_runs_in_inference_mode() -> None:
    model = torch.nn.Linear(8, 4).eval()
    fn = torch_fn(model, torch.ones(2, 8))
    out = fn()
    assert out.shape == (2, 4) and torch.is_inference(out)
    kw = torch_fn(torch.nn.Linear(8, 4).eval(), {"input": torch.ones(1, 8)})
    assert kw().shape == (1, 4)
    result = benchmark(fn, min_samples=50, min_time=0)
    assert result.p50 > 0
    with pytest.raises(InputError, match="training mode"):
        torch_fn(torch.nn.Linear(2, 2), torch.ones(1, 2))
    with pytest.raises(InputError, match=r"torch\.nn\.Module"):
        torch_fn(lambda x: x, torch.ones(1))


def test_onnx_fn_paths_bytes_protos_and_sessions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = mlp_onnx()
    x = -np.ones((3, 16), dtype=np.float32)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())  # type: ignore[attr-defined]
    for source in (model, model.SerializeToString(), str(path), path):  # type: ignore[attr-defined]
        assert onnx_fn(source, x)()[0].tolist() == np.zeros((3, 16)).tolist()
    session = onnx_session(model, threads=1)
    assert onnx_fn(session, {"x": x})()[0].shape == (3, 16)
    assert onnx_fn(model, [x], threads=1)()[0].shape == (3, 16)


def test_onnx_bad_input() -> None:
    with pytest.raises(InputError, match="not a file"):
        onnx_fn("missing.onnx", np.ones(1))
    with pytest.raises(InputError, match="cannot load"):
        onnx_fn(b"not a model", np.ones(1))
    with pytest.raises(InputError, match="takes 1 inputs"):
        onnx_fn(mlp_onnx(), [np.ones((1, 16), np.float32)] * 2)
    with pytest.raises(InputError, match="ModelProto"):
        onnx_fn(3.5, np.ones(1))
