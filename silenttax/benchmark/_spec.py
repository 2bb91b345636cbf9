"""ModelSpec: how a model travels to another environment, as files and never as pickle."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from silenttax._deps import imported
from silenttax._models import _model_source
from silenttax.errors import InputError

__all__ = ["ModelSpec"]

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
Kind = Literal["onnx", "torch", "python"]


def _array(name: str, value: Any) -> np.ndarray[Any, Any]:
    torch = imported("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind == "O" and all(isinstance(v, str) for v in array.ravel().tolist()):
        array = array.astype(str)  # strings travel as a fixed-width unicode .npy
    if array.dtype.kind not in "biufcU":
        raise InputError(
            f"inputs[{name!r}]: needs a numeric, boolean or string array (it travels as .npy "
            f"without pickle), got dtype {array.dtype}"
        )
    return array


def _inputs(inputs: Any) -> tuple[list[tuple[str, np.ndarray[Any, Any]]], bool]:
    """Inputs as (name, array) pairs ("" for positional) and whether they are named."""
    if isinstance(inputs, Mapping):
        if not inputs:
            raise InputError("inputs: give at least one array")
        for key in inputs:
            if not isinstance(key, str) or not key:
                raise InputError(f"inputs: names must be non-empty strings, got {key!r}")
        return [(k, _array(k, v)) for k, v in inputs.items()], True
    values = list(inputs) if isinstance(inputs, tuple | list) else [inputs]
    if not values:
        raise InputError("inputs: give at least one array")
    return [("", _array(str(i), v)) for i, v in enumerate(values)], False


def _json_kwargs(options: Mapping[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    try:
        json.dumps(options, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"options: must be plain JSON values (they travel as JSON): {exc}"
        ) from exc
    return options


class ModelSpec:
    """A model, its example inputs and its thread settings, as files another
    interpreter can load without pickle.

    Three kinds, each built by a class method:

    - :meth:`onnx`: the ``.onnx`` bytes and named inputs — ideal for an
      onnxruntime upgrade, since the model bytes are identical on both sides;
    - :meth:`torch`: an import path of a factory (``"pkg.mod:build"``) that
      returns an ``nn.Module``, weights as a state_dict file (``torch.save``,
      read back with ``weights_only=True``), a ``.safetensors`` file or an
      in-memory state_dict, and example inputs; the factory's module must be
      importable in the other environment (``paths`` are put on its
      ``sys.path``);
    - :meth:`python`: a factory returning any callable over numpy arrays
      (a scikit-learn pipeline, a numpy pre-processing step).

    ``threads`` (OMP/MKL/OpenBLAS, torch intra-op, ORT intra-op) and
    ``cores`` (CPU affinity) travel with the spec, so both arms of a
    comparison run with the same settings.

    Examples:
        >>> import numpy as np, onnx
        >>> from onnx import helper, TensorProto
        >>> graph = helper.make_graph(
        ...     [helper.make_node("Relu", ["x"], ["y"])], "g",
        ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
        >>> spec = ModelSpec.onnx(helper.make_model(graph),
        ...                       inputs={"x": np.ones(2, np.float32)}, threads=1)
        >>> spec.kind, spec.describe()["inputs"]
        ('onnx', [{'name': 'x', 'shape': [2], 'dtype': 'float32'}])
    """

    __slots__ = (
        "_inputs",
        "_state_dict",
        "batch_size",
        "cores",
        "factory",
        "kind",
        "model",
        "named",
        "options",
        "paths",
        "spinning",
        "threads",
        "weights",
    )

    def __init__(
        self,
        kind: Kind,
        *,
        inputs: Any,
        model: bytes | None = None,
        factory: str | None = None,
        options: Mapping[str, Any] | None = None,
        weights: str | os.PathLike[str] | None = None,
        state_dict: Mapping[str, Any] | None = None,
        paths: Sequence[str | os.PathLike[str]] | None = None,
        threads: int | None = None,
        cores: Sequence[int] | None = None,
        spinning: bool = False,
        batch_size: int = 1,
    ) -> None:
        if kind not in ("onnx", "torch", "python"):
            raise InputError(f"kind must be 'onnx', 'torch' or 'python', got {kind!r}")
        if kind == "onnx" and not model:
            raise InputError("model: an ONNX spec needs the model's bytes or path")
        if kind != "onnx" and (not isinstance(factory, str) or not _FACTORY.match(factory)):
            raise InputError(
                f"factory: needs an import path 'package.module:function', got {factory!r}"
            )
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise InputError(f"threads must be an int >= 1 or None, got {threads!r}")
        if cores is not None:
            cores = tuple(cores)
            if not cores or not all(isinstance(c, int) and c >= 0 for c in cores):
                raise InputError(f"cores must be CPU numbers >= 0, got {cores!r}")
            available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
            if available is not None and not set(cores) <= available:
                raise InputError(
                    f"cores: {sorted(set(cores) - available)} are not CPUs this process may "
                    f"use ({sorted(available)})"
                )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if weights is not None:
            if not Path(weights).is_file():
                raise InputError(f"weights: {str(weights)!r} is not a file")
            weights = str(Path(weights).resolve())
        self.kind: Kind = kind
        self.model = model
        self.factory = factory
        self.options = _json_kwargs(options)
        self.weights: str | None = weights
        self._state_dict = state_dict
        self._inputs, self.named = _inputs(inputs)
        default_paths = [os.getcwd()] if kind != "onnx" else []
        self.paths = [
            str(Path(p).resolve()) for p in (paths if paths is not None else default_paths)
        ]
        self.threads = threads
        self.cores: tuple[int, ...] | None = tuple(sorted(cores)) if cores is not None else None
        self.spinning = bool(spinning)
        self.batch_size = batch_size

    @classmethod
    def onnx(
        cls,
        model: Any,
        *,
        inputs: Any,
        threads: int | None = None,
        cores: Sequence[int] | None = None,
        spinning: bool = False,
        batch_size: int = 1,
    ) -> ModelSpec:
        """An ONNX model (a path, bytes or ``onnx.ModelProto``) with its inputs (a dict by
        input name, a sequence in input order, or one array). ORT's threads do not spin
        between runs unless ``spinning`` (an idle worker would steal the other's cores)."""
        source = _model_source(model)
        data = Path(source).read_bytes() if isinstance(source, str) else source
        return cls(
            "onnx",
            model=data,
            inputs=inputs,
            threads=threads,
            cores=cores,
            spinning=spinning,
            batch_size=batch_size,
        )

    @classmethod
    def torch(
        cls,
        factory: str,
        *,
        inputs: Any,
        weights: Any = None,
        options: Mapping[str, Any] | None = None,
        paths: Sequence[str | os.PathLike[str]] | None = None,
        threads: int | None = None,
        cores: Sequence[int] | None = None,
        batch_size: int = 1,
    ) -> ModelSpec:
        """A torch model built by ``factory(**options)`` (``"pkg.mod:build"``), with
        ``weights`` a state_dict file (``torch.save``; ``.safetensors`` too) or an
        in-memory state_dict, run under ``torch.inference_mode`` on ``inputs``
        (positional tensors/arrays, or a dict of keyword ones)."""
        path, state = (None, weights) if isinstance(weights, Mapping) else (weights, None)
        return cls(
            "torch",
            factory=factory,
            inputs=inputs,
            weights=path,
            state_dict=state,
            options=options,
            paths=paths,
            threads=threads,
            cores=cores,
            batch_size=batch_size,
        )

    @classmethod
    def python(
        cls,
        factory: str,
        *,
        inputs: Any,
        options: Mapping[str, Any] | None = None,
        paths: Sequence[str | os.PathLike[str]] | None = None,
        threads: int | None = None,
        cores: Sequence[int] | None = None,
        batch_size: int = 1,
    ) -> ModelSpec:
        """Any callable over numpy arrays, built by ``factory(**options)`` and called as
        ``fn(*inputs)`` (or ``fn(**inputs)`` for a dict)."""
        return cls(
            "python",
            factory=factory,
            inputs=inputs,
            options=options,
            paths=paths,
            threads=threads,
            cores=cores,
            batch_size=batch_size,
        )

    @property
    def inputs(self) -> dict[str, np.ndarray[Any, Any]] | list[np.ndarray[Any, Any]]:
        """The example inputs (a dict by name, or a list in order)."""
        if self.named:
            return dict(self._inputs)
        return [a for _, a in self._inputs]

    def packages(self) -> list[str]:
        """Distributions the model needs in the other environment (besides the user's own)."""
        need = {"onnx": ["onnxruntime", "numpy"], "torch": ["torch", "numpy"]}.get(
            self.kind, ["numpy"]
        )
        if self.weights and self.weights.endswith(".safetensors"):
            need.append("safetensors")
        return need

    def describe(self) -> dict[str, Any]:
        """What the spec is, as JSON: kind, model hash, factory, input shapes, settings."""
        out: dict[str, Any] = {"kind": self.kind, "packages": self.packages()}
        if self.model is not None:
            out["model_sha256"] = hashlib.sha256(self.model).hexdigest()
            out["model_bytes"] = len(self.model)
        if self.factory:
            out["factory"] = self.factory
            out["options"] = self.options
        if self.weights:
            out["weights"] = self.weights
        elif self._state_dict is not None:
            out["weights"] = "<in-memory state_dict>"
        out["inputs"] = [
            {"name": name, "shape": list(a.shape), "dtype": str(a.dtype)}
            for name, a in self._inputs
        ]
        out.update(
            threads=self.threads, cores=self.cores, spinning=self.spinning, batch=self.batch_size
        )
        if self.kind != "onnx":
            out["paths"] = self.paths
        return out

    def predictor(self) -> Any:
        """The model loaded in this process, as the stack check's worker loads it: a
        callable with no argument running one inference on the spec's inputs (what
        :func:`silenttax.load.run` drives).

        Raises:
            InputError: the model could not be loaded here (a missing package, a factory
                that fails).
        """
        import tempfile

        from silenttax.benchmark._worker import LOADERS

        with tempfile.TemporaryDirectory(prefix="silenttax-spec-") as tmp:
            path = self.write(tmp)
            try:
                model = LOADERS[self.kind](json.loads(path.read_text(encoding="utf-8")))
                model.call()  # builds what is built lazily while its files still exist
            except Exception as exc:
                raise InputError(
                    f"the {self.kind} model could not be loaded here: {type(exc).__name__}: {exc}"
                ) from exc
        call: Any = model.call
        return call

    def write(self, directory: str | os.PathLike[str]) -> Path:
        """Materialise the spec in ``directory`` (model, weights, ``.npy`` inputs and
        ``spec.json``); returns the path of ``spec.json``, what a worker loads."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        spec: dict[str, Any] = {
            "kind": self.kind,
            "threads": self.threads,
            "spinning": self.spinning,
            "paths": self.paths,
        }
        if self.model is not None:
            (root / "model.onnx").write_bytes(self.model)
            spec["model"] = str(root / "model.onnx")
        if self.factory:
            spec["factory"] = self.factory
            spec["kwargs"] = self.options
        if self._state_dict is not None:
            from silenttax._deps import optional_import

            torch: Any = optional_import(
                "torch", purpose="a ModelSpec with an in-memory state_dict"
            )
            torch.save(dict(self._state_dict), root / "weights.pt")
            spec["weights"] = str(root / "weights.pt")
        elif self.weights:
            spec["weights"] = self.weights
        spec["inputs"] = []
        for i, (name, array) in enumerate(self._inputs):
            path = root / f"input_{i}.npy"
            np.save(path, array, allow_pickle=False)
            spec["inputs"].append({"name": name, "file": str(path)})
        target = root / "spec.json"
        target.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        return target

    def __repr__(self) -> str:
        what = self.factory or f"{len(self.model or b'')} bytes of ONNX"
        return (
            f"ModelSpec({self.kind}: {what}, {len(self._inputs)} input(s), threads={self.threads})"
        )
