"""The model under audit: an ONNX file or a torch module, and the inputs it is measured on."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from silenttax._deps import imported, optional_import
from silenttax.errors import InputError

__all__ = ["AuditModel", "load_model", "model_inputs"]

_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass
class AuditModel:
    """A model ready to measure: its torch module and/or ONNX bytes, and its inputs."""

    name: str
    torch_model: Any = None
    onnx: bytes | None = None
    inputs: tuple[np.ndarray, ...] = ()
    """Positional inputs for one call (a batch)."""
    input_names: list[str] = field(default_factory=list)
    inputs_from: str = ""
    """Where the inputs came from, said in the report."""
    notes: list[str] = field(default_factory=list)
    factory: str | None = None
    """The ``pkg.module:function`` that built the torch model (a fresh process can too)."""

    @property
    def backend(self) -> str:
        return "torch" if self.torch_model is not None else "onnxruntime"

    def torch_inputs(self) -> tuple[Any, ...]:
        torch: Any = optional_import("torch", purpose="silenttax audit")
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in self.inputs)

    def feeds(self) -> dict[str, np.ndarray]:
        return dict(zip(self.input_names, self.inputs, strict=True))


def _import_path(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"model: {spec!r} is neither a file nor a 'pkg.module:attr' import path")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules next to the user
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"model: cannot import {module_name!r}: {exc}") from exc
    try:
        value: Any = module
        for part in attr.split("."):
            value = getattr(value, part)
    except AttributeError as exc:
        raise InputError(f"model: {module_name!r} has no attribute {attr!r}") from exc
    return value


def load_model(model: Any, *, name: str | None = None) -> AuditModel:
    """An ONNX file / bytes, a torch module, or a ``pkg.module:attr`` import path of a
    module or of a factory returning one (called with no arguments).

    Raises:
        InputError: a missing file, a file that is not an ONNX model, or an import path
            that does not give a ``torch.nn.Module``.
    """
    if isinstance(model, str | os.PathLike) and (
        Path(model).suffix.lower() == ".onnx" or Path(model).exists()
    ):
        path = Path(model)
        if not path.is_file():
            raise InputError(f"model: {str(path)!r} does not exist")
        data = path.read_bytes()
        _check_onnx(data, str(path))
        return AuditModel(name=name or path.stem, onnx=data)
    if isinstance(model, bytes):
        _check_onnx(model, "model")
        return AuditModel(name=name or "onnx model", onnx=model)
    value = _import_path(model) if isinstance(model, str) else model
    torch = imported("torch")
    if torch is None and isinstance(model, str):
        torch = optional_import("torch", purpose="auditing a torch model")
    factory = None
    if torch is not None and not isinstance(value, torch.nn.Module) and callable(value):
        value = value()
        factory = model if isinstance(model, str) else None
    if torch is None or not isinstance(value, torch.nn.Module):
        raise InputError(
            f"model: expected an .onnx file or a torch.nn.Module (or a factory of one), got "
            f"{type(value).__name__}"
        )
    label = name or (model if isinstance(model, str) else type(value).__name__)
    return AuditModel(name=label, torch_model=value.eval(), factory=factory)


def _check_onnx(data: bytes, label: str) -> None:
    onnx: Any = optional_import("onnx", purpose="auditing an ONNX model")
    try:
        onnx.load_model_from_string(data)
    except Exception as exc:  # the protobuf parser raises its own DecodeError
        raise InputError(f"model: {label} is not a readable ONNX model ({exc})") from exc


def _declared(model: AuditModel) -> list[tuple[str, list[int | str | None], Any]]:
    """(name, shape, dtype) of each declared input."""
    if model.onnx is not None:
        from silenttax._models import onnx_session

        session = onnx_session(model.onnx)
        return [
            (i.name, list(i.shape), _ONNX_DTYPES.get(i.type, np.float32))
            for i in session.get_inputs()
        ]
    torch: Any = optional_import("torch")
    for module in model.torch_model.modules():
        if isinstance(module, torch.nn.Linear):
            return [("input", [None, module.in_features], np.float32)]
        if isinstance(module, torch.nn.Embedding):
            return [("input", [None, None], np.int64)]
        if len(list(module.children())) == 0 and any(True for _ in module.parameters()):
            break
    return []


def _numeric_matrix(current: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]] | None:
    names = [n for n, v in current.items() if v.dtype.kind in "fiub"]
    if not names:
        return None
    matrix = np.column_stack([current[n].astype(np.float64) for n in names])
    return matrix, names


def model_inputs(
    model: AuditModel,
    *,
    inputs: list[np.ndarray] | None,
    current: dict[str, np.ndarray] | None,
    batch_size: int,
    seed: int = 0,
) -> None:
    """Fill ``model.inputs``: given, from the current data, or synthesized; say which.

    Raises:
        InputError: inputs that do not match the model's declared inputs, or a model
            whose input shape cannot be told (give ``--inputs``).
    """
    declared = _declared(model)
    if inputs:
        model.inputs = tuple(np.asarray(a) for a in inputs)
        model.input_names = [d[0] for d in declared] or [f"input{i}" for i in range(len(inputs))]
        if declared and len(declared) != len(inputs):
            raise InputError(
                f"inputs: the model declares {len(declared)} input(s) "
                f"({', '.join(d[0] for d in declared)}), {len(inputs)} were given"
            )
        model.inputs_from = f"given ({len(inputs)} array(s))"
        return
    if not declared:
        raise InputError(
            "inputs: cannot tell this model's input shape (its first layer is not a Linear "
            "or Embedding); give --inputs FILE.npy"
        )
    model.input_names = [d[0] for d in declared]
    matrix = _numeric_matrix(current) if current is not None else None
    if len(declared) == 1 and matrix is not None:
        _, shape, dtype = declared[0]
        width = shape[1] if len(shape) == 2 else None
        values, names = matrix
        if isinstance(width, int) and width == values.shape[1] and np.dtype(dtype).kind == "f":
            rows = values[: max(batch_size, 1)]
            fill = np.nanmedian(np.where(np.isfinite(values), values, np.nan), axis=0)
            rows = np.where(np.isfinite(rows), rows, np.nan_to_num(fill))
            model.inputs = (rows.astype(dtype),)
            model.inputs_from = (
                f"the current data's {width} numeric columns ({', '.join(names)}), first "
                f"{len(rows)} rows, missing values filled with the column median"
            )
            return
    rng = np.random.default_rng(seed)
    arrays = []
    described = []
    for name, shape, dtype in declared:
        dims = [d if isinstance(d, int) and d > 0 else batch_size for d in shape]
        kind = np.dtype(dtype).kind
        if kind == "f":
            arrays.append(rng.standard_normal(dims).astype(dtype))
        elif kind == "b":
            arrays.append(rng.random(dims) < 0.5)
        else:
            arrays.append(rng.integers(0, 10, size=dims).astype(dtype))
        described.append(f"{name} {np.dtype(dtype).name}[{', '.join(map(str, dims))}]")
    model.inputs = tuple(arrays)
    model.inputs_from = (
        "synthesized from the model's declared inputs ("
        + "; ".join(described)
        + f"; dynamic dimensions = --batch-size {batch_size}): latency figures hold, "
        "accuracy figures compare outputs on random data"
    )
