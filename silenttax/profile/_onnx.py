"""profile_onnx: where an ONNX model's run time goes (ONNX Runtime's own profiler)."""

from __future__ import annotations

import json
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from silenttax._deps import optional_import
from silenttax._models import onnx_feed, onnx_session
from silenttax.errors import InputError
from silenttax.profile._common import OpCategory, OpStat, Profile

__all__ = ["OnnxProfile", "classify_onnx", "profile_onnx"]

_COMPUTE = (
    "MatMul",
    "Gemm",
    "Conv",
    "FusedMatMul",
    "FusedGemm",
    "FusedConv",
    "MatMulInteger",
    "ConvInteger",
    "QLinearMatMul",
    "QLinearConv",
    "DynamicQuantizeMatMul",
    "MatMulNBits",
    "Attention",
    "MultiHeadAttention",
    "GroupQueryAttention",
    "LSTM",
    "GRU",
    "RNN",
    "EmbedLayerNormalization",
    "LayerNormalization",
    "SkipLayerNormalization",
    "SimplifiedLayerNormalization",
    "BatchNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "Softmax",
    "LogSoftmax",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Einsum",
    "ConvTranspose",
    "QAttention",
    "BiasGelu",
    "FastGelu",
)
_DATA_MOVEMENT = frozenset(
    {
        "Transpose",
        "Cast",
        "Concat",
        "Gather",
        "GatherElements",
        "GatherND",
        "Slice",
        "Split",
        "Expand",
        "Tile",
        "Pad",
        "Identity",
        "ScatterND",
        "ScatterElements",
        "DequantizeLinear",
        "QuantizeLinear",
        "DynamicQuantizeLinear",
        "MemcpyToHost",
        "MemcpyFromHost",
        "Compress",
        "Resize",
        "DepthToSpace",
        "SpaceToDepth",
        "OneHot",
        "CastLike",
    }
)
_OTHER = frozenset({"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Shape", "Size", "Constant"})


def classify_onnx(op_type: str) -> OpCategory:
    """Category of an ONNX op type.

    Examples:
        >>> [classify_onnx(o) for o in ("Gemm", "Transpose", "Relu", "Reshape")]
        ['compute', 'data_movement', 'elementwise', 'other']
    """
    if op_type in _DATA_MOVEMENT:
        return "data_movement"
    if op_type in _OTHER:
        return "other"
    if any(op_type.startswith(c) for c in _COMPUTE):
        return "compute"
    return "elementwise"


class OnnxProfile(Profile):
    """A classified ONNX Runtime profile (see :func:`profile_onnx`)."""

    KIND: ClassVar[str] = "silenttax.onnx_profile"

    nodes: list[OpStat] = Field(default_factory=list)
    """Per node (``name`` is the node name), largest first."""


def profile_onnx(
    model: Any,
    inputs: Any,
    *,
    steps: int = 10,
    warmup: int = 3,
    threads: int | None = None,
    name: str | None = None,
) -> OnnxProfile:
    """Profile an ONNX model with ONNX Runtime's profiler and say where the time goes.

    Uses ORT's built-in profiling (JSON trace events with per-node ``op_name``
    and durations) on a session with spinning off; the ``warmup`` runs are
    dropped from the figures. Time is aggregated per op type and per node,
    classified as compute, data movement (Transpose, Cast, Concat, Gather,
    Slice, (De)QuantizeLinear, copies), elementwise or other; overhead is the
    ``model_run`` time no node covers.

    Args:
        model: A path, bytes or ``onnx.ModelProto``.
        inputs: A dict by input name, a sequence in input order, or one array.
        steps: Profiled runs.
        warmup: Runs first, left out of the figures.
        threads: ORT intra-op threads.
        name: Label for reports (default: the graph's name).

    Raises:
        InputError: bad arguments, or ORT cannot load or run the model.
        MissingDependencyError: onnxruntime is not installed.

    Examples:
        >>> import numpy as np
        >>> from onnx import TensorProto, helper, numpy_helper
        >>> w = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
        >>> graph = helper.make_graph(
        ...     [helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
        ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 64])],
        ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 64])], [w])
        >>> p = profile_onnx(helper.make_model(graph), np.ones((8, 64), np.float32), steps=3)
        >>> p.ops[0].name, p.ops[0].category
        ('MatMul', 'compute')
    """
    optional_import("onnxruntime", purpose="silenttax.profile.profile_onnx")
    if not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be an int >= 1, got {steps!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise InputError(f"warmup must be an int >= 0, got {warmup!r}")
    with tempfile.TemporaryDirectory(prefix="silenttax-ort-") as folder:
        session = onnx_session(model, threads=threads, profiling=str(Path(folder) / "ort"))
        feed = onnx_feed(session, inputs)
        try:
            for _ in range(warmup + steps):
                session.run(None, feed)
        except Exception as exc:  # ORT raises its own exception types
            raise InputError(f"ONNX Runtime could not run the model on the inputs: {exc}") from exc
        trace = Path(session.end_profiling())
        events = json.loads(trace.read_text())
    label = name or _graph_name(model) or "onnx model"
    return _classify(events, steps, label)


def _graph_name(model: Any) -> str | None:
    graph: Any = getattr(model, "graph", None)
    graph_name = str(getattr(graph, "name", "") or "") if graph is not None else ""
    if graph_name:
        return graph_name
    if isinstance(model, str | Path):
        return Path(model).stem
    return None


def _classify(events: list[dict[str, Any]], steps: int, label: str) -> OnnxProfile:
    runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
        key=lambda e: e["ts"],
    )[-steps:]
    if not runs:
        raise InputError("ONNX Runtime recorded no model_run events")
    start = runs[0]["ts"]
    run_time = sum(e["dur"] for e in runs) / 1e6
    by_op: dict[str, float] = defaultdict(float)
    by_node: dict[str, float] = defaultdict(float)
    node_op: dict[str, str] = {}
    op_count: Counter[str] = Counter()
    shapes: dict[str, Counter[str]] = defaultdict(Counter)
    covered = 0.0
    for e in events:
        if e.get("cat") != "Node" or e["ts"] < start or "op_name" not in e.get("args", {}):
            continue
        op = e["args"]["op_name"]
        node = e["name"].removesuffix("_kernel_time")
        seconds = e["dur"] / 1e6
        by_op[op] += seconds
        by_node[node] += seconds
        node_op[node] = op
        op_count[op] += 1
        covered += seconds
        shape = e["args"].get("input_type_shape")
        if shape:
            shapes[op][json.dumps(shape)] += 1

    def stat(key: str, seconds: float, category: OpCategory, count: int) -> OpStat:
        return OpStat(
            name=key,
            category=category,
            count=count,
            per_step=count / steps,
            self_time=seconds,
            share=seconds / run_time,
            shapes=[s for s, _ in shapes[key].most_common(3)],
        )

    ops = [
        stat(op, seconds, classify_onnx(op), op_count[op])
        for op, seconds in sorted(by_op.items(), key=lambda kv: -kv[1])
    ]
    nodes = [
        stat(node, seconds, classify_onnx(node_op[node]), steps)
        for node, seconds in sorted(by_node.items(), key=lambda kv: -kv[1])
    ]
    share: dict[str, float] = defaultdict(float)
    for op in ops:
        share[op.category] += op.share
    return OnnxProfile(
        framework="onnxruntime",
        model=label,
        steps=steps,
        wall_time=run_time,
        step_time=run_time / steps,
        compute_share=share["compute"],
        data_movement_share=share["data_movement"],
        elementwise_share=share["elementwise"],
        other_share=share["other"],
        overhead_share=max(0.0, 1.0 - covered / run_time),
        ops=ops,
        nodes=nodes,
        notes=["node times are ORT kernel times; overhead is model_run time outside them"],
    )
