"""profile_torch: where a torch model's step time goes (torch.profiler, classified)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, ClassVar

from silenttax._deps import optional_import
from silenttax._models import torch_fn
from silenttax._system import quiet_stderr
from silenttax.errors import InputError
from silenttax.profile._common import OpCategory, OpStat, Profile

__all__ = ["TorchProfile", "classify_aten", "profile_torch"]

_STEP = "silenttax::step"
_COMPUTE = (
    "linear",
    "addmm",
    "mm",
    "bmm",
    "matmul",
    "baddbmm",
    "addmv",
    "mv",
    "dot",
    "einsum",
    "conv",
    "_convolution",
    "convolution",
    "mkldnn_convolution",
    "scaled_dot_product",
    "_scaled_dot_product",
    "_native_multi_head_attention",
    "_transformer_encoder_layer_fwd",
    "lstm",
    "gru",
    "rnn_",
    "_thnn_fused",
    "embedding",
    "layer_norm",
    "native_layer_norm",
    "batch_norm",
    "_batch_norm",
    "native_batch_norm",
    "group_norm",
    "instance_norm",
    "softmax",
    "_softmax",
    "log_softmax",
    "_log_softmax",
    "max_pool",
    "avg_pool",
    "adaptive_",
    "_weight_int8pack_mm",
    "_weight_int4pack_mm",
    "fbgemm",
    "linear_dynamic",
    "quantized_",
    "_addmm_activation",
    "cudnn_",
    "_efficient_attention",
    "_flash_attention",
)
_DATA_MOVEMENT = frozenset(
    {
        "to",
        "_to_copy",
        "copy_",
        "contiguous",
        "clone",
        "cat",
        "stack",
        "hstack",
        "vstack",
        "index",
        "index_select",
        "index_put_",
        "_index_put_impl_",
        "select",
        "slice",
        "narrow",
        "gather",
        "scatter",
        "scatter_",
        "scatter_add",
        "masked_select",
        "masked_fill",
        "take",
        "repeat",
        "repeat_interleave",
        "tile",
        "flip",
        "roll",
        "constant_pad_nd",
        "pad",
        "item",
        "_local_scalar_dense",
        "to_dense",
        "type_as",
        "_copy_from",
        "_copy_from_and_resize",
        "empty_like",
        "zeros_like",
        "ones_like",
        "full_like",
        "lift_fresh",
        "fill_",
        "zero_",
        "unbind",
        "split_with_sizes_copy",
        "pin_memory",
        "_pin_memory",
    }
)
_VIEWS = frozenset(
    {
        "view",
        "reshape",
        "_reshape_alias",
        "transpose",
        "t",
        "permute",
        "expand",
        "squeeze",
        "unsqueeze",
        "as_strided",
        "flatten",
        "unflatten",
        "detach",
        "alias",
        "split",
        "chunk",
        "view_as",
        "expand_as",
        "numpy_T",
        "resolve_conj",
        "resolve_neg",
        "empty",
        "empty_strided",
        "lift",
        "unsafe_view",
        "_unsafe_view",
    }
)
_PER_ITEM = frozenset({"select", "index", "item", "_local_scalar_dense", "slice"})


def classify_aten(name: str) -> OpCategory:
    """Category of an aten (or quantized) op name.

    Examples:
        >>> names = ("aten::addmm", "aten::_to_copy", "aten::relu", "aten::view")
        >>> [classify_aten(n) for n in names]
        ['compute', 'data_movement', 'elementwise', 'other']
    """
    op = name.split("::", 1)[-1]
    if name.startswith("quantized::") or any(op.startswith(p) for p in _COMPUTE):
        return "compute"
    if op in _DATA_MOVEMENT:
        return "data_movement"
    if op in _VIEWS:
        return "other"
    return "elementwise"


class TorchProfile(Profile):
    """A classified ``torch.profiler`` profile (see :func:`profile_torch`)."""

    KIND: ClassVar[str] = "silenttax.torch_profile"


def profile_torch(
    model: Any,
    example_inputs: Any,
    *,
    steps: int = 10,
    warmup: int = 3,
    record_shapes: bool = True,
    with_stack: bool = False,
    chrome_trace: str | Path | None = None,
    name: str | None = None,
) -> TorchProfile:
    """Profile ``model(example_inputs)`` with ``torch.profiler`` and say where the time goes.

    Runs ``warmup`` steps unprofiled, then ``steps`` steps inside the profiler,
    each under a ``silenttax::step`` label (CPU, plus CUDA when the model is on
    a GPU). Profiling costs 1.5-6x on short windows, so never time anything
    inside it: use :mod:`silenttax.benchmark` for timings.

    Every op's self time is attributed to its **top-most aten ancestor** and
    classified from that ancestor (so the bias ``copy_`` inside ``addmm`` counts
    as compute, not data movement): compute (matmul, conv, attention, norms,
    ...), data movement (``to``, ``copy_``, ``contiguous``, ``clone``,
    ``cat``/``stack``, indexing, transfers), elementwise, or other (views).
    Framework overhead is the step time no op covers (Python, module
    dispatch). Kineto's ``USDT:`` lines are kept off stderr.

    Args:
        model: A ``torch.nn.Module`` in eval mode.
        example_inputs: A tensor, tuple/list of tensors, or dict of keyword tensors.
        steps: Profiled steps.
        warmup: Unprofiled steps first.
        record_shapes: Record input shapes (shown per op).
        with_stack: Record Python stacks (slower; for the Chrome trace).
        chrome_trace: Write the Chrome trace (chrome://tracing, Perfetto) to this path.
        name: Label for reports (default: the model's class name).

    Raises:
        InputError: bad arguments, or the model raised on the inputs.
        MissingDependencyError: torch is not installed.

    Examples:
        >>> import torch
        >>> mlp = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU()).eval()
        >>> p = profile_torch(mlp, torch.randn(64, 256), steps=3)
        >>> p.top()[0].category, 0 <= p.overhead_share <= 1
        ('compute', True)
    """
    torch: Any = optional_import("torch", purpose="silenttax.profile.profile_torch")
    if not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be an int >= 1, got {steps!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise InputError(f"warmup must be an int >= 0, got {warmup!r}")
    fn = torch_fn(model, example_inputs)
    label = name or type(model).__name__
    on_gpu = any(p.is_cuda for p in model.parameters()) and torch.cuda.is_available()
    for _ in range(warmup + 1):
        try:
            fn()
        except Exception as exc:
            raise InputError(f"model raised {type(exc).__name__} on the inputs: {exc}") from exc
    activities = [torch.profiler.ProfilerActivity.CPU]
    if on_gpu:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    began = time.perf_counter()
    with quiet_stderr():
        with torch.profiler.profile(
            activities=activities, record_shapes=record_shapes, with_stack=with_stack
        ) as prof:
            for _ in range(steps):
                with torch.profiler.record_function(_STEP):
                    fn()
                if on_gpu:
                    torch.cuda.synchronize()
        events = list(prof.events())
        if chrome_trace is not None:
            prof.export_chrome_trace(str(chrome_trace))
    wall = time.perf_counter() - began
    return _classify(events, steps, label, wall, chrome_trace, on_gpu)


def _top(event: Any) -> Any:
    """The top-most op ancestor below the step label."""
    top = event
    parent = event.cpu_parent
    while parent is not None and parent.name != _STEP and not parent.is_user_annotation:
        top = parent
        parent = parent.cpu_parent
    return top


def _classify(
    events: list[Any], steps: int, label: str, wall: float, trace: str | Path | None, gpu: bool
) -> TorchProfile:
    step_events = [e for e in events if e.name == _STEP]
    step_total = sum(e.cpu_time_total for e in step_events) / 1e6
    if not step_total:
        raise InputError("the profiler recorded no steps")
    uncovered = sum(e.self_cpu_time_total for e in step_events) / 1e6
    by_category: dict[str, float] = defaultdict(float)
    by_top: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    shapes: dict[str, Counter[str]] = defaultdict(Counter)
    per_item = 0
    for event in events:
        if event.name == _STEP or event.is_user_annotation:
            continue
        top = _top(event)
        seconds = event.self_cpu_time_total / 1e6
        by_category[classify_aten(top.name)] += seconds
        by_top[top.name] += seconds
        if top is event:  # count each top-level call once
            counts[event.name] += 1
            if event.input_shapes:
                shapes[event.name][str(event.input_shapes)] += 1
            if event.name.split("::", 1)[-1] in _PER_ITEM:
                per_item += 1
    ops = [
        OpStat(
            name=op,
            category=classify_aten(op),
            count=counts[op],
            per_step=counts[op] / steps,
            self_time=seconds,
            share=seconds / step_total,
            shapes=[s for s, _ in shapes[op].most_common(3)],
        )
        for op, seconds in sorted(by_top.items(), key=lambda kv: -kv[1])
    ]
    notes = ["GPU kernel time is not in the CPU shares"] if gpu else []
    return TorchProfile(
        framework="torch",
        model=label,
        steps=steps,
        wall_time=wall,
        step_time=step_total / steps,
        compute_share=by_category["compute"] / step_total,
        data_movement_share=by_category["data_movement"] / step_total,
        elementwise_share=by_category["elementwise"] / step_total,
        other_share=by_category["other"] / step_total,
        overhead_share=max(0.0, uncovered / step_total),
        ops=ops,
        per_item_ops=per_item / steps,
        chrome_trace=str(trace) if trace is not None else None,
        notes=notes,
    )
