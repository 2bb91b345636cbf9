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
    "tensor(string)": np.object_,
}
#: Column names that hold what the model predicts: never fed to it.
TARGET_NAMES = frozenset({"label", "labels", "target", "y", "class", "outcome"})


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
    """How the inputs were chosen, for the report (a positional mapping, synthesized inputs)."""
    inputs_warn: bool = False
    """The inputs were mapped by position (or partly synthesized): say so as a WARNING."""
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


def _as_declared(values: np.ndarray, dtype: Any, column: str) -> np.ndarray:
    """A data column as the model's declared dtype: strings for string inputs, numbers
    (parsed from text when the column arrived as text, missing -> the column median)."""
    if np.dtype(dtype).kind == "O":
        return np.array(["" if v is None else str(v) for v in values.tolist()], dtype=object)
    if values.dtype.kind in "OUS":
        parsed = []
        for v in values.tolist():
            try:
                parsed.append(float(str(v).strip()) if v is not None else np.nan)
            except ValueError:
                parsed.append(np.nan)
        numbers = np.asarray(parsed, dtype=np.float64)
        if np.isnan(numbers).mean() > 0.5:
            raise InputError(
                f"inputs: column {column!r} is text the model's {np.dtype(dtype).name} input "
                "cannot read (more than half of it is not a number)"
            )
    else:
        numbers = values.astype(np.float64)
    finite = np.isfinite(numbers)
    fill = float(np.median(numbers[finite])) if finite.any() else 0.0
    numbers = np.where(finite, numbers, fill)
    if np.dtype(dtype).kind == "b":
        return np.asarray(numbers != 0, dtype=bool)
    return numbers.astype(dtype)


def _shaped(column: np.ndarray, shape: list[int | str | None]) -> np.ndarray:
    """One column as an input of the declared rank: ``[n]`` or ``[n, 1]``."""
    return column[:, None] if len(shape) == 2 else column


def model_inputs(
    model: AuditModel,
    *,
    inputs: list[np.ndarray] | None,
    current: dict[str, np.ndarray] | None,
    batch_size: int,
    input_columns: list[str] | None = None,
    target: str | None = None,
    seed: int = 0,
) -> None:
    """Fill ``model.inputs``: given, from the current data by name, or synthesized; say which.

    From the data, never by luck: a column named like a target (:data:`TARGET_NAMES`, or
    ``target``) is never fed. Each declared input whose name is a column is fed from
    it (one input per column, as skl2onnx pipelines declare them), with the model's
    dtype (strings as strings). A single 2-D input takes ``input_columns`` in that
    order, or, when exactly as many usable columns remain as it is wide, those in the
    data's order — with a WARNING naming the order. Inputs absent from the data are
    synthesized and named.

    Raises:
        InputError: inputs that do not match the model's declared inputs, a model whose
            input shape cannot be told (give ``--inputs``), ``input_columns`` that are not
            in the data or do not fit, or data whose columns could fit the input several
            ways (give ``--input-columns``).
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
    rows = max(batch_size, 1)
    data: dict[str, np.ndarray] = {}
    excluded: list[str] = []
    if current is not None:
        targets = {t.lower() for t in TARGET_NAMES} | ({target.lower()} if target else set())
        if target is not None and target not in current:
            raise InputError(f"target: no column {target!r} in the current data")
        for name, values in current.items():
            if name.lower() in targets:
                excluded.append(name)
            else:
                data[name] = np.asarray(values)[:rows]
    skipped = f"; not fed: {', '.join(excluded)} (a target)" if excluded else ""
    how = "as given"
    named: Any = getattr(model.torch_model, "input_names", None) if model.torch_model else None
    if input_columns is None and current is not None and _column_names(named):
        absent = [c for c in named if c not in data]
        if absent:
            raise InputError(
                f"inputs: the model's input_names {list(named)} name columns the current data "
                f"does not have: {absent}"
                + (f" (targets are never fed: {', '.join(excluded)})" if excluded else "")
            )
        input_columns, how = list(named), "the model's input_names"  # a factory declared them
    if input_columns is not None:
        if len(declared) != 1 or len(declared[0][1]) != 2:
            raise InputError(
                "input_columns: only for a model with one 2-D input; this one declares "
                + ", ".join(f"{n}{list(shape)}" for n, shape, _ in declared)
            )
        missing = [c for c in input_columns if c not in data]
        if current is None or missing:
            raise InputError(
                f"input_columns: {missing or input_columns} not in the current data"
                + (f" (targets are never fed: {', '.join(excluded)})" if excluded else "")
            )
        _matrix(model, declared[0], input_columns, data)
        model.inputs_from = (
            f"the current data's columns {', '.join(input_columns)} ({how}), first "
            f"{len(model.inputs[0])} rows{skipped}"
        )
        return
    by_name = [d for d in declared if d[0] in data]
    if by_name:
        arrays, synthesized = [], []
        for name, shape, dtype in declared:
            if name in data:
                arrays.append(_shaped(_as_declared(data[name], dtype, name), shape))
            else:
                arrays.append(_synthesize(shape, dtype, rows, seed))
                synthesized.append(name)
        model.inputs = tuple(arrays)
        model.inputs_from = (
            f"the current data's columns by input name ({', '.join(d[0] for d in by_name)}), "
            f"first {rows} rows{skipped}"
        )
        if synthesized:
            model.inputs_warn = True
            model.notes.append(
                f"inputs {', '.join(synthesized)} are not columns of the data: synthesized"
            )
            model.inputs_from += f"; synthesized: {', '.join(synthesized)}"
        return
    if data and len(declared) == 1 and len(declared[0][1]) == 2:
        name, shape, dtype = declared[0]
        width = shape[1]
        usable = [c for c, v in data.items() if _readable(v, dtype)]
        if isinstance(width, int) and len(usable) == width:
            _matrix(model, declared[0], usable, data)
            model.inputs_warn = True
            model.notes.append(
                f"input {name!r} takes {width} unnamed columns: fed by position, in the "
                f"data's order ({', '.join(usable)}); name them with --input-columns if "
                "the model was trained on another order"
            )
            model.inputs_from = (
                f"the current data's {width} columns by position ({', '.join(usable)}), "
                f"first {len(model.inputs[0])} rows{skipped}"
            )
            return
        if isinstance(width, int) and len(usable) > width:
            raise InputError(
                f"inputs: the model's input {name!r} takes {width} columns and the data has "
                f"{len(usable)} that could fill it ({', '.join(usable)}); say which with "
                "--input-columns a,b,... (input_columns=[...]), or give --inputs FILE.npy"
            )
    _synthesize_all(model, declared, batch_size, seed)
    if data:
        model.inputs_warn = True
        model.notes.append(
            "the data's columns do not match the model's inputs ("
            + ", ".join(f"{n}{list(shape)}" for n, shape, _ in declared)
            + "): every input was synthesized; name them with --input-columns or give --inputs"
        )


def _column_names(value: Any) -> bool:
    """Whether a torch module's ``input_names`` attribute names data columns."""
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(c, str) and c for c in value)
    )


def _readable(values: np.ndarray, dtype: Any) -> bool:
    """Whether a column can feed an input of ``dtype`` (numbers, or text that parses)."""
    if np.dtype(dtype).kind == "O" or values.dtype.kind in "fiub":
        return True
    try:
        _as_declared(values, dtype, "")
    except InputError:
        return False
    return True


def _matrix(
    model: AuditModel,
    declared: tuple[str, list[int | str | None], Any],
    columns: list[str],
    data: dict[str, np.ndarray],
) -> None:
    name, shape, dtype = declared
    width = shape[1]
    if isinstance(width, int) and width != len(columns):
        raise InputError(
            f"input_columns: the model's input {name!r} takes {width} columns, "
            f"{len(columns)} were named"
        )
    model.inputs = (np.column_stack([_as_declared(data[c], dtype, c) for c in columns]),)


def _synthesize(shape: list[int | str | None], dtype: Any, batch_size: int, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    dims = [d if isinstance(d, int) and d > 0 else batch_size for d in shape]
    kind = np.dtype(dtype).kind
    if kind == "f":
        return rng.standard_normal(dims).astype(dtype)
    if kind == "b":
        return rng.random(dims) < 0.5
    if kind == "O":
        return np.full(dims, "a", dtype=object)
    return rng.integers(0, 10, size=dims).astype(dtype)


def _synthesize_all(
    model: AuditModel,
    declared: list[tuple[str, list[int | str | None], Any]],
    batch_size: int,
    seed: int,
) -> None:
    arrays = []
    described = []
    for name, shape, dtype in declared:
        array = _synthesize(shape, dtype, batch_size, seed)
        arrays.append(array)
        kind = "string" if np.dtype(dtype).kind == "O" else np.dtype(dtype).name
        described.append(f"{name} {kind}[{', '.join(map(str, array.shape))}]")
    model.inputs = tuple(arrays)
    model.inputs_from = (
        "synthesized from the model's declared inputs ("
        + "; ".join(described)
        + f"; dynamic dimensions = --batch-size {batch_size}): latency figures hold, "
        "accuracy figures compare outputs on random data"
    )
