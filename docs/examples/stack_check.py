"""A stack check you can run anywhere: an A/A self-test of this machine on a small ONNX model.

Swap ``candidate="current"`` for ``{"onnxruntime": "latest"}`` to measure an upgrade.
"""

import numpy as np
from onnx import TensorProto, helper

from silenttax.benchmark import ModelSpec, compare_stacks
from silenttax.cost import CostModel

rng = np.random.default_rng(0)
w = rng.normal(size=(128, 128)).astype(np.float32)
graph = helper.make_graph(
    [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
    "layer",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 128])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 128])],
    [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.flatten())],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8

x = rng.normal(size=(16, 128)).astype(np.float32)
spec = ModelSpec.onnx(model, inputs={"x": x}, threads=1)
# or: ModelSpec.torch("myproj.model:build", weights="w.safetensors", inputs=(x,), threads=2)
# or: ModelSpec.python("myproj.pre:build", inputs=[x])  # any callable over numpy arrays

check = compare_stacks(spec, candidate="current", pairs=3, rounds=10)
print(check.verdict, f"x{check.ratio:.3f}", [round(b, 3) for b in check.ci])
print(check.report(cost=CostModel(price_per_hour=0.68)))
check.save("stack.json")  # silenttax.load("stack.json") reads it back
