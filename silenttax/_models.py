"""Callables for benchmarking models: torch modules and ONNX Runtime sessions."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from silenttax._deps import optional_import
from silenttax.errors import InputError

__all__ = ["onnx_fn", "onnx_session", "torch_fn"]


def _torch_args(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, tuple | list):
        return tuple(inputs), {}
    return (inputs,), {}


def torch_fn(model: Any, inputs: Any) -> Callable[[], Any]:
    """A no-argument callable running ``model`` on ``inputs`` under ``torch.inference_mode``.

    Args:
        model: A ``torch.nn.Module`` in eval mode.
        inputs: A tensor, a tuple/list of positional tensors, or a dict of keyword tensors.

    Raises:
        InputError: ``model`` is not a module, or is in training mode.
        MissingDependencyError: torch is not installed.

    Examples:
        >>> import torch
        >>> fn = torch_fn(torch.nn.Linear(4, 2).eval(), torch.zeros(3, 4))
        >>> tuple(fn().shape)
        (3, 2)
    """
    torch: Any = optional_import("torch", purpose="silenttax.benchmark.torch_fn")
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise InputError("model is in training mode: call model.eval() before benchmarking")
    args, kwargs = _torch_args(inputs)

    def run() -> Any:
        with torch.inference_mode():
            return model(*args, **kwargs)

    return run


def onnx_session(
    model: Any,
    *,
    threads: int | None = None,
    spinning: bool = False,
    profiling: str | None = None,
    providers: Sequence[str] | None = None,
) -> Any:
    """An ONNX Runtime session for ``model`` (a path, bytes or ``onnx.ModelProto``).

    Spinning is off by default: ORT's intra-op threads otherwise keep spinning
    after each run and starve torch's thread pool in the same process (torch's
    p99 went from 2.8 ms to 30.9 ms in our measurements).
    """
    ort: Any = optional_import("onnxruntime", purpose="ONNX Runtime sessions")
    options = ort.SessionOptions()
    flag = "1" if spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", flag)
    options.add_session_config_entry("session.inter_op.allow_spinning", flag)
    if threads is not None:
        options.intra_op_num_threads = threads
    if profiling is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profiling
    source = _model_source(model)
    try:
        return ort.InferenceSession(
            source, sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
        )
    except Exception as exc:  # ORT raises its own exception types for bad models
        raise InputError(f"model: ONNX Runtime cannot load it: {exc}") from exc


def _model_source(model: Any) -> str | bytes:
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if not path.is_file():
            raise InputError(f"model: {str(path)!r} is not a file")
        return str(path)
    if isinstance(model, bytes | bytearray):
        return bytes(model)
    if hasattr(model, "SerializeToString"):
        data: bytes = model.SerializeToString()
        return data
    raise InputError(
        f"model must be a path, bytes or an onnx.ModelProto, got {type(model).__name__}"
    )


def onnx_feed(session: Any, inputs: Any) -> dict[str, Any]:
    """Inputs as ORT's feed dict: a dict by name, a sequence in input order, or one array."""
    names = [i.name for i in session.get_inputs()]
    if isinstance(inputs, Mapping):
        missing = [n for n in names if n not in inputs]
        if missing:
            raise InputError(f"inputs: missing model inputs {missing}")
        return dict(inputs)
    values = list(inputs) if isinstance(inputs, tuple | list) else [inputs]
    if len(values) != len(names):
        raise InputError(f"inputs: the model takes {len(names)} inputs {names}, got {len(values)}")
    return dict(zip(names, values, strict=True))


def onnx_fn(
    model: Any,
    inputs: Any,
    *,
    threads: int | None = None,
    spinning: bool = False,
) -> Callable[[], Any]:
    """A no-argument callable running an ONNX model through ONNX Runtime.

    Args:
        model: A path, bytes, ``onnx.ModelProto`` or an existing ``InferenceSession``
            (used as is: its spinning setting is whatever it was created with).
        inputs: A dict by input name, a sequence in input order, or one array.
        threads: ORT intra-op threads (default: ORT's choice, the physical cores).
        spinning: Let ORT's threads spin between runs (off by default; see
            :func:`onnx_session`).

    Examples:
        >>> import numpy as np, onnx
        >>> from onnx import helper, TensorProto
        >>> graph = helper.make_graph(
        ...     [helper.make_node("Relu", ["x"], ["y"])], "g",
        ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
        >>> fn = onnx_fn(helper.make_model(graph), np.array([-1.0, 2.0], dtype=np.float32))
        >>> fn()[0].tolist()
        [0.0, 2.0]
    """
    ort: Any = optional_import("onnxruntime", purpose="silenttax.benchmark.onnx_fn")
    session = (
        model
        if isinstance(model, ort.InferenceSession)
        else onnx_session(model, threads=threads, spinning=spinning)
    )
    feed = onnx_feed(session, inputs)

    def run() -> Any:
        return session.run(None, feed)

    return run
