"""The quantization methods a study tries: each builds a runnable, measurable candidate."""

from __future__ import annotations

import copy
import io
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from silenttax._deps import is_installed, optional_import
from silenttax._models import onnx_feed, onnx_session
from silenttax._system import captured, quiet_stderr

__all__ = ["METHODS", "Built", "Skip", "build"]

#: Every method a study knows, in the order they are tried.
METHODS = (
    "torch_dynamic_int8",
    "torch_fx_static_int8",
    "torchao_int8_dynamic",
    "torchao_int8_weight_only",
    "ort_fp32",
    "ort_dynamic_int8",
    "ort_static_int8",
)
_TORCH_METHODS = frozenset(m for m in METHODS if m.startswith("torch"))
_QUANT_ONNX_OPS = frozenset(
    {
        "MatMulInteger",
        "DynamicQuantizeLinear",
        "QuantizeLinear",
        "DequantizeLinear",
        "QLinearMatMul",
        "ConvInteger",
        "QLinearConv",
        "DynamicQuantizeMatMul",
        "MatMulNBits",
    }
)


class Skip(Exception):
    """A method that cannot run here (missing extra, no calibration data, wrong model type)."""


@dataclass
class Built:
    """A candidate ready to measure."""

    run: Callable[[Sequence[Any]], Any]
    """Runs the candidate on one input tuple (tensors or arrays); returns the outputs."""
    artifact: Any
    """What the user keeps: the quantized module or the ONNX bytes."""
    applied: bool
    """Whether quantization changed anything (module types, graph ops)."""
    size_bytes: int
    """Serialized size."""
    backend: str
    """``torch`` or ``onnxruntime``."""
    notes: list[str] = field(default_factory=list)
    """Warnings and log lines captured while building."""


def torch_size(module: Any) -> int:
    """Bytes of ``torch.save(module.state_dict())``."""
    torch: Any = optional_import("torch")
    buffer = io.BytesIO()
    try:
        torch.save(module.state_dict(), buffer)
    except Exception:  # tensor subclasses that cannot be pickled: count raw bytes
        return sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return buffer.getbuffer().nbytes


def _changed(original: Any, quantized: Any) -> int:
    """Modules whose type changed, plus weights whose tensor type changed."""
    before = {name: type(m) for name, m in original.named_modules()}
    changed = sum(
        1 for name, m in quantized.named_modules() if before.get(name, type(m)) is not type(m)
    )
    for name, module in quantized.named_modules():
        weight = getattr(module, "weight", None)
        if (
            weight is not None
            and not callable(weight)
            and type(weight).__name__ not in ("Parameter", "Tensor")
        ):
            changed += 1
        del name
    return changed


def _has_attention(model: Any) -> bool:
    torch: Any = optional_import("torch")
    kinds = (torch.nn.MultiheadAttention, torch.nn.TransformerEncoderLayer)
    return any(isinstance(m, kinds) for m in model.modules())


def torch_runner(model: Any, *, no_fastpath: bool = False) -> Callable[[Sequence[Any]], Any]:
    """Call a module under inference mode (optionally with the MHA fast path off)."""
    torch: Any = optional_import("torch")

    def run(args: Sequence[Any]) -> Any:
        with torch.inference_mode():
            if not no_fastpath:
                return model(*args)
            previous = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
            try:
                return model(*args)
            finally:
                torch.backends.mha.set_fastpath_enabled(previous)

    return run


def onnx_runner(data: bytes, threads: int | None) -> Callable[[Sequence[Any]], Any]:
    """Call an ONNX model through an ORT session with spinning off."""
    session = onnx_session(data, threads=threads)

    def run(args: Sequence[Any]) -> Any:
        return session.run(None, onnx_feed(session, [_numpy(a) for a in args]))

    return run


def _numpy(value: Any) -> Any:
    detach = getattr(value, "detach", None)
    return detach().cpu().numpy() if callable(detach) else value


class Context:
    """What every method needs: the model, inputs, calibration and the ONNX export (cached)."""

    def __init__(
        self,
        model: Any,
        example: Sequence[Any],
        calibration: Sequence[Sequence[Any]] | None,
        threads: int | None,
        onnx_model: bytes | None,
        reduce_range: bool = False,
    ) -> None:
        self.model = model
        self.reduce_range = reduce_range
        self.example = example
        self.calibration = calibration
        self.threads = threads
        self._onnx = onnx_model
        self._export_error: str | None = None
        self.export_notes: list[str] = []

    @property
    def is_torch(self) -> bool:
        return self._onnx is None or self.model is not None

    def onnx_bytes(self) -> bytes:
        """The fp32 ONNX model: given, or exported from the torch model once."""
        if self._onnx is not None:
            return self._onnx
        if self._export_error is not None:
            raise RuntimeError(self._export_error)
        if not is_installed("onnxruntime"):
            raise Skip("needs onnxruntime: pip install 'silenttax[onnx]'")
        if not is_installed("onnxscript"):
            raise Skip("exporting to ONNX needs onnxscript: pip install 'silenttax[onnx]'")
        torch: Any = optional_import("torch")
        try:
            with tempfile.TemporaryDirectory() as folder, captured(self.export_notes):
                path = Path(folder) / "model.onnx"
                torch.onnx.export(
                    self.model, tuple(self.example), str(path), dynamo=True, external_data=False
                )
                self._onnx = path.read_bytes()
        except Exception as exc:
            self._export_error = f"torch.onnx.export failed: {type(exc).__name__}: {exc}"[:500]
            raise RuntimeError(self._export_error) from exc
        return self._onnx


#: Operators an int8 method rewrites; a graph without any has nothing to quantize.
_QUANTIZABLE_ONNX_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU"})


def _something_to_quantize(ctx: Context) -> None:
    """Raise :class:`Skip` when the model has no layer the method quantizes (tree
    ensembles, linear classifiers from skl2onnx, ...): nothing to try is not a failure."""
    if ctx.model is None:
        ops = _graph_ops(ctx.onnx_bytes())
        if not ops & _QUANTIZABLE_ONNX_OPS:
            shown = ", ".join(sorted(ops)[:6]) + (", ..." if len(ops) > 6 else "")
            raise Skip(
                "nothing to quantize: the graph has no MatMul, Gemm, Conv or recurrent op "
                f"(it has {shown})"
            )
        return
    torch: Any = optional_import("torch")
    layers = (torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU, torch.nn.modules.conv._ConvNd)
    if not any(isinstance(m, layers) for m in ctx.model.modules()):
        raise Skip("nothing to quantize: the model has no Linear, Conv, LSTM or GRU layer")


def build(method: str, ctx: Context) -> Built:
    """Build ``method``'s candidate; raises :class:`Skip` when it cannot run here."""
    if method in _TORCH_METHODS and ctx.model is None:
        raise Skip("needs a torch model (this study was given an ONNX model)")
    if method.startswith("torchao") and not is_installed("torchao"):
        raise Skip("needs torchao: pip install 'silenttax[quantize]'")
    if method in ("torch_fx_static_int8", "ort_static_int8") and not ctx.calibration:
        raise Skip("static quantization needs calibration inputs (calibration=[...])")
    if method.startswith("ort_") and not is_installed("onnxruntime"):
        raise Skip("needs onnxruntime: pip install 'silenttax[onnx]'")
    if method != "ort_fp32":
        _something_to_quantize(ctx)
    notes: list[str] = []
    with captured(notes):
        built = _BUILDERS[method](ctx)
    built.notes = notes + built.notes
    return built


def _torch_dynamic(ctx: Context) -> Built:
    torch: Any = optional_import("torch")
    ao: Any = optional_import("torch.ao.quantization")
    modules = {torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU}
    quantized = ao.quantize_dynamic(copy.deepcopy(ctx.model), modules, dtype=torch.qint8)
    attention = _has_attention(quantized)
    notes = (
        [
            "the MHA fast path is switched off around calls: it crashes on dynamically quantized "
            "Linear layers"
        ]
        if attention
        else []
    )
    return Built(
        run=torch_runner(quantized, no_fastpath=attention),
        artifact=quantized,
        applied=_changed(ctx.model, quantized) > 0,
        size_bytes=torch_size(quantized),
        backend="torch",
        notes=notes,
    )


def _torch_fx_static(ctx: Context) -> Built:
    ao: Any = optional_import("torch.ao.quantization")
    fx: Any = optional_import("torch.ao.quantization.quantize_fx")
    prepared = fx.prepare_fx(
        copy.deepcopy(ctx.model), ao.get_default_qconfig_mapping("x86"), tuple(ctx.example)
    )
    runner = torch_runner(prepared)
    for batch in ctx.calibration or []:
        runner(batch)
    quantized = fx.convert_fx(prepared)
    nodes = [n for n in quantized.graph.nodes if n.op == "call_function"]
    quantize_ops = sum("quantize" in str(n.target) for n in nodes)
    quantized_modules = sum(".quantized" in type(m).__module__ for m in quantized.modules())
    applied = quantize_ops + quantized_modules > 0
    notes = (
        []
        if applied
        else ["FX graph mode quantized nothing: the tracer kept the model's modules as leaves"]
    )
    return Built(
        run=torch_runner(quantized),
        artifact=quantized,
        applied=applied,
        size_bytes=torch_size(quantized),
        backend="torch",
        notes=notes,
    )


def _torchao(config_name: str) -> Callable[[Context], Built]:
    def build_torchao(ctx: Context) -> Built:
        with quiet_stderr(drop=lambda line: True):
            quantization: Any = optional_import("torchao.quantization")
        quantized = copy.deepcopy(ctx.model)
        quantization.quantize_(quantized, getattr(quantization, config_name)())
        return Built(
            run=torch_runner(quantized),
            artifact=quantized,
            applied=_changed(ctx.model, quantized) > 0,
            size_bytes=torch_size(quantized),
            backend="torch",
            notes=["torchao's int8 kernels are fastest under torch.compile; measured eager"],
        )

    return build_torchao


def _graph_ops(data: bytes) -> set[str]:
    onnx: Any = optional_import("onnx")
    return {node.op_type for node in onnx.load_from_string(data).graph.node}


def _ort_fp32(ctx: Context) -> Built:
    if ctx.model is None:
        raise Skip("the model is already ONNX fp32: it is the baseline")
    data = ctx.onnx_bytes()
    return Built(
        run=onnx_runner(data, ctx.threads),
        artifact=data,
        applied=True,
        size_bytes=len(data),
        backend="onnxruntime",
        notes=list(ctx.export_notes),
    )


def _ort_quantized(static: bool) -> Callable[[Context], Built]:
    def build_ort(ctx: Context) -> Built:
        quant: Any = optional_import("onnxruntime.quantization")
        source = ctx.onnx_bytes()
        with tempfile.TemporaryDirectory() as folder:
            src, dst = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
            src.write_bytes(source)
            if static:
                session = onnx_session(source)
                names = [i.name for i in session.get_inputs()]
                batches = [
                    dict(zip(names, [_numpy(a) for a in batch], strict=True))
                    for batch in ctx.calibration or []
                ]

                class Reader(quant.CalibrationDataReader):  # type: ignore[misc]
                    def __init__(self) -> None:
                        self.items = iter(batches)

                    def get_next(self) -> dict[str, Any] | None:
                        return next(self.items, None)

                quant.quantize_static(
                    str(src),
                    str(dst),
                    Reader(),
                    quant_format=quant.QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=quant.QuantType.QUInt8,
                    weight_type=quant.QuantType.QInt8,
                    # LayerNorm/Softmax inputs lose too much accuracy in int8
                    op_types_to_quantize=["MatMul", "Gemm", "Conv"],
                    reduce_range=ctx.reduce_range,
                )
            else:
                quant.quantize_dynamic(
                    str(src),
                    str(dst),
                    weight_type=quant.QuantType.QInt8,
                    reduce_range=ctx.reduce_range,
                )
            data = dst.read_bytes()
        notes = (
            ["static QDQ: MatMul/Gemm/Conv only (LayerNorm, Softmax kept fp32)"] if static else []
        )
        if ctx.reduce_range:
            notes.append(
                "reduce_range=True (7-bit weights): without VNNI, ONNX Runtime's u8 x s8 kernels "
                "saturate their 16-bit intermediate and lose accuracy"
            )
        return Built(
            run=onnx_runner(data, ctx.threads),
            artifact=data,
            applied=bool(_graph_ops(data) & _QUANT_ONNX_OPS),
            size_bytes=len(data),
            backend="onnxruntime",
            notes=notes,
        )

    return build_ort


_BUILDERS: dict[str, Callable[[Context], Built]] = {
    "torch_dynamic_int8": _torch_dynamic,
    "torch_fx_static_int8": _torch_fx_static,
    "torchao_int8_dynamic": _torchao("Int8DynamicActivationInt8WeightConfig"),
    "torchao_int8_weight_only": _torchao("Int8WeightOnlyConfig"),
    "ort_fp32": _ort_fp32,
    "ort_dynamic_int8": _ort_quantized(static=False),
    "ort_static_int8": _ort_quantized(static=True),
}
