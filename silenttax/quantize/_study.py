"""study(): quantize a model every way available, measure each candidate, recommend one."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from silenttax._deps import imported, optional_import
from silenttax._state import State
from silenttax.benchmark._harness import benchmark, compare
from silenttax.benchmark._models import _model_source
from silenttax.cost._model import CostModel
from silenttax.errors import InputError
from silenttax.quantize._methods import (
    METHODS,
    Built,
    Context,
    Skip,
    build,
    onnx_runner,
    torch_runner,
)
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_bytes as _bytes
from silenttax.report._render import format_duration as _dur

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Candidate", "QuantizationStudy", "study"]


class Baseline(BaseModel):
    """The fp32 model's figures."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str
    """``torch`` or ``onnxruntime``."""
    p50: float
    """Median latency per call, seconds."""
    p99: float
    """99th percentile latency, seconds."""
    size_bytes: int
    """Serialized size."""
    batch_size: int
    """Items per call (first dimension of the first input)."""
    metric: float | None = None
    """The user's metric on the fp32 outputs."""


class Candidate(BaseModel):
    """One quantization method's result: applied or not, measured, checked, priced."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    method: str
    """Method name (``torch_dynamic_int8``, ``ort_static_int8``, ...)."""
    backend: str | None = None
    """``torch`` or ``onnxruntime``."""
    applied: bool = False
    """Whether quantization changed anything (a silent no-op is False)."""
    error: str | None = None
    """Why the method failed or could not run; None when it ran."""
    notes: list[str] = Field(default_factory=list)
    """Captured warnings (deprecations) and remarks."""
    p50: float | None = None
    """Median latency per call, seconds."""
    p99: float | None = None
    """99th percentile latency, seconds."""
    speedup: float | None = None
    """Baseline / candidate median latency, measured interleaved."""
    speedup_ci: tuple[float, float] | None = None
    """95% CI of the speedup."""
    size_bytes: int | None = None
    """Serialized size."""
    size_ratio: float | None = None
    """Size / baseline size."""
    max_abs_diff: float | None = None
    """Largest absolute difference from the fp32 outputs over the eval inputs."""
    rel_error: float | None = None
    """||candidate - fp32|| / ||fp32|| over the eval inputs."""
    top1_agreement: float | None = None
    """Share of rows whose argmax matches fp32 (classifier-shaped outputs)."""
    metric: float | None = None
    """The user's metric on the candidate's outputs."""
    artifact: Any = Field(default=None, exclude=True, repr=False)
    """The quantized module or ONNX bytes (not serialized)."""

    @property
    def usable(self) -> bool:
        """Ran, changed something and was measured."""
        return self.applied and self.error is None and self.speedup is not None


class QuantizationStudy(State):
    """Every candidate of :func:`study`, the fp32 baseline, and how to choose."""

    KIND: ClassVar[str] = "silenttax.quantization_study"

    model: str
    """What was studied."""
    baseline: Baseline
    """The fp32 figures."""
    candidates: list[Candidate]
    """One per method, in the order tried (failures and no-ops included)."""
    threads: int | None = None
    """Threads used for the measurements."""

    def best(
        self,
        *,
        max_abs_diff: float | None = None,
        max_metric_drop: float | None = None,
        min_speedup: float = 1.1,
        min_top1_agreement: float | None = None,
        max_rel_error: float | None = None,
    ) -> Candidate | None:
        """The fastest usable candidate within the budgets (never one that was not applied).

        Args:
            max_abs_diff: Largest accepted difference from the fp32 outputs.
            max_rel_error: Largest accepted relative error (output norm) vs fp32.
            max_metric_drop: Largest accepted drop of the user's metric (baseline - candidate).
            min_speedup: Smallest speedup worth switching for.
            min_top1_agreement: Smallest accepted argmax agreement with fp32.
        """
        ok = []
        for c in self.candidates:
            if not c.usable or (c.speedup or 0) < min_speedup:
                continue
            if max_abs_diff is not None and (
                c.max_abs_diff is None or c.max_abs_diff > max_abs_diff
            ):
                continue
            base_metric = self.baseline.metric
            if (
                max_metric_drop is not None
                and base_metric is not None
                and (c.metric is None or base_metric - c.metric > max_metric_drop)
            ):
                continue
            top1 = c.top1_agreement
            if min_top1_agreement is not None and top1 is not None and top1 < min_top1_agreement:
                continue
            ok.append(c)
        return max(ok, key=lambda c: (c.speedup or 0, -(c.size_bytes or 0)), default=None)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per candidate (needs pandas)."""
        pandas: Any = optional_import("pandas", purpose="QuantizationStudy.to_dataframe")
        rows = [c.model_dump(exclude={"artifact"}) for c in self.candidates]
        frame: pd.DataFrame = pandas.DataFrame(rows)
        return frame

    def table(self) -> str:
        """The candidate table as Markdown."""
        head = "| method | applied | speedup [95% CI] | p50 | p99 | size | max abs diff | top-1 |"
        lines = [head + " note |", "|---|---|---|---|---|---|---|---|---|"]
        b = self.baseline
        lines.append(
            f"| fp32 baseline ({b.backend}) | — | 1.00 | {_dur(b.p50)} | {_dur(b.p99)} | "
            f"{_bytes(b.size_bytes)} | 0 | 1.00 | |"
        )
        for c in self.candidates:
            speed = (
                f"{c.speedup:.2f} [{c.speedup_ci[0]:.2f}, {c.speedup_ci[1]:.2f}]"
                if c.speedup is not None and c.speedup_ci
                else "—"
            )
            note = (c.error or (c.notes[0] if c.notes else "")).replace("|", "/")[:90]
            lines.append(
                f"| {c.method} | {'yes' if c.applied else 'no'} | {speed} | "
                f"{_dur(c.p50) if c.p50 else '—'} | {_dur(c.p99) if c.p99 else '—'} | "
                f"{_bytes(c.size_bytes) if c.size_bytes else '—'} | "
                f"{f'{c.max_abs_diff:.2g}' if c.max_abs_diff is not None else '—'} | "
                f"{f'{c.top1_agreement:.2f}' if c.top1_agreement is not None else '—'} | {note} |"
            )
        return "\n".join(lines)

    def report(
        self,
        cost: CostModel | None = None,
        *,
        max_abs_diff: float | None = None,
        max_metric_drop: float | None = None,
        min_speedup: float = 1.1,
        min_top1_agreement: float | None = None,
        max_rel_error: float | None = 0.05,
    ) -> Report:
        """``quantize.*`` findings: the recommendation (priced with ``cost``), every
        candidate's figures, and the methods that failed, did nothing or were skipped.

        The recommendation is :meth:`best` with these budgets; by default a
        candidate must stay within 5% relative error of the fp32 outputs.
        """
        findings: list[Finding] = []
        best = self.best(
            max_abs_diff=max_abs_diff,
            max_metric_drop=max_metric_drop,
            min_speedup=min_speedup,
            min_top1_agreement=min_top1_agreement,
            max_rel_error=max_rel_error,
        )
        findings.append(self._recommendation(best, min_speedup))
        if cost is not None and best is not None:
            findings.append(self._cost(best, cost))
        findings.extend(self._candidate(c) for c in self.candidates)
        return Report(
            findings=findings,
            source="QuantizationStudy.report",
            context={"model": self.model, "baseline_p50": self.baseline.p50},
        )

    def _recommendation(self, best: Candidate | None, min_speedup: float) -> Finding:
        if best is None:
            return make_finding(
                "quantize.recommendation",
                severity=Severity.INFO,
                subject=self.model,
                message=(
                    f"no candidate is at least {min_speedup:g}x faster within the accuracy "
                    "budgets: keep fp32"
                ),
                detector="quantize.study",
            )
        return make_finding(
            "quantize.recommendation",
            severity=Severity.INFO,
            subject=self.model,
            message=(
                f"use {best.method}: {best.speedup:.2f}x faster (p50 {_dur(self.baseline.p50)} -> "
                f"{_dur(best.p50 or 0)}), {best.size_ratio or 0:.0%} of the size, max abs diff "
                f"{best.max_abs_diff:.2g}"
                + (f", top-1 agreement {best.top1_agreement:.1%}" if best.top1_agreement else "")
                + (
                    f", metric {best.metric:.4g} vs {self.baseline.metric:.4g}"
                    if best.metric is not None and self.baseline.metric is not None
                    else ""
                )
            ),
            metric="speedup",
            value=best.speedup,
            baseline=1.0,
            threshold=min_speedup,
            effect_size=best.speedup,
            evidence=best.model_dump(mode="json", exclude={"artifact"}),
            recommendation=f"Ship the {best.method} artifact (candidate.artifact) after a canary.",
            detector="quantize.study",
        )

    def _cost(self, best: Candidate, cost: CostModel) -> Finding:
        batch = self.baseline.batch_size
        before = cost.cost_per_1k(batch / self.baseline.p50)
        after = cost.cost_per_1k(batch / (best.p50 or self.baseline.p50))
        saving = 1 - after / before
        return make_finding(
            "quantize.cost",
            severity=Severity.INFO,
            subject=self.model,
            message=(
                f"{best.method}: {before:.4g} -> {after:.4g} {cost.currency} per 1000 inferences "
                f"at full load ({saving:.0%} saving, {cost.price_per_hour:g} {cost.currency}/h x "
                f"{cost.instances:g})"
            ),
            metric="cost_per_1k",
            value=after,
            baseline=before,
            unit=cost.currency,
            effect_size=saving,
            evidence={"batch_size": batch, "saving": saving},
            detector="quantize.study",
        )

    def _candidate(self, c: Candidate) -> Finding:
        if c.error is not None:
            skipped = c.error.startswith("skipped:")
            return make_finding(
                "quantize.skipped" if skipped else "quantize.failed",
                severity=Severity.INFO if skipped else Severity.WARNING,
                subject=c.method,
                message=f"{c.method}: {c.error}",
                evidence={"notes": c.notes},
                detector="quantize.study",
            )
        if not c.applied:
            return make_finding(
                "quantize.no_op",
                severity=Severity.WARNING,
                subject=c.method,
                message=(
                    f"{c.method} changed nothing (same modules/graph"
                    + (f", {c.size_ratio:.0%} of the size" if c.size_ratio else "")
                    + "): never recommended"
                    + (f"; {c.notes[0]}" if c.notes else "")
                ),
                evidence={"notes": c.notes},
                detector="quantize.study",
            )
        return make_finding(
            "quantize.candidate",
            severity=Severity.OK,
            subject=c.method,
            message=(
                f"{c.method}: {c.speedup:.2f}x (CI {c.speedup_ci[0]:.2f}-{c.speedup_ci[1]:.2f}), "
                f"{_bytes(c.size_bytes or 0)} ({c.size_ratio or 0:.0%}), max abs diff "
                f"{c.max_abs_diff:.2g}"
                + (f", top-1 {c.top1_agreement:.1%}" if c.top1_agreement is not None else "")
                if c.speedup is not None and c.speedup_ci
                else f"{c.method}: not measured"
            ),
            metric="speedup",
            value=c.speedup,
            baseline=1.0,
            evidence=c.model_dump(mode="json", exclude={"artifact"}),
            detector="quantize.study",
        )


# --------------------------------------------------------------------------- study
def _args(inputs: Any) -> tuple[Any, ...]:
    return tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)


def _outputs(value: Any) -> list[np.ndarray]:
    """Flatten model outputs (tensor, array, tuple, list, dict) to float numpy arrays."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, tuple | list):
        return [a for v in value for a in _outputs(v)]
    detach = getattr(value, "detach", None)
    if callable(detach):
        value = detach()
        if getattr(value, "is_quantized", False):
            value = value.dequantize()
        value = value.float().cpu().numpy()
    return [np.asarray(value, dtype=np.float64)]


def _batch(args: Sequence[Any]) -> int:
    shape = getattr(args[0], "shape", None)
    return int(shape[0]) if shape else 1


def study(
    model: Any,
    example_inputs: Any,
    *,
    methods: Sequence[str] | None = None,
    calibration: Sequence[Any] | None = None,
    eval_inputs: Sequence[Any] | None = None,
    metric: Callable[[list[list[np.ndarray]]], float] | None = None,
    max_time: float = 3.0,
    threads: int | None = None,
    name: str | None = None,
) -> QuantizationStudy:
    """Quantize ``model`` every available way; measure, check and rank the candidates.

    Each method becomes a :class:`Candidate`: whether quantization actually
    changed anything (module types, graph ops: FX on a TransformerEncoder
    silently quantizes nothing), the speedup over fp32 measured **interleaved**
    with :func:`silenttax.benchmark.compare` (ONNX Runtime with spinning off,
    so the two thread pools do not starve each other), p50/p99, size, max abs
    diff and relative error vs the fp32 outputs on ``eval_inputs``, top-1
    agreement for classifier-shaped outputs, and the user's ``metric``. A
    method that fails is recorded, never raised; one that cannot run here
    (missing extra, no calibration data) appears with the reason. Deprecation
    warnings are captured into the candidate's notes.

    Args:
        model: A ``torch.nn.Module`` in eval mode, or an ONNX model (path, bytes, ModelProto).
        example_inputs: One input (tensor/array) or a tuple of inputs: what latency is measured on.
        methods: Which of :data:`METHODS` to try (default: all; unavailable ones say why).
        calibration: Input tuples for static quantization (also used for accuracy).
        eval_inputs: Input tuples for the accuracy checks (default: example + calibration).
        metric: ``metric(outputs) -> float`` over the list (one per eval input) of output
            lists; higher is better (e.g. accuracy against your labels).
        max_time: Seconds of measurement per candidate.
        threads: Intra-op threads for torch and ONNX Runtime during the study.
        name: Label for reports.

    Raises:
        InputError: unknown method, a model in training mode, or a baseline that cannot run.

    Examples:
        >>> import torch
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> mlp = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(),
        ...                           torch.nn.Linear(512, 10)).eval()
        >>> s = study(mlp, torch.randn(16, 256), methods=["torch_dynamic_int8"], max_time=0.5)
        >>> c = s.candidates[0]
        >>> c.applied, c.size_ratio < 0.4, c.max_abs_diff < 0.05
        (True, True, True)
    """
    chosen = list(METHODS if methods is None else methods)
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise InputError(f"methods: unknown {unknown}; choose from {list(METHODS)}")
    if not max_time > 0:
        raise InputError(f"max_time must be > 0, got {max_time!r}")
    torch = imported("torch")
    is_torch = torch is not None and isinstance(model, torch.nn.Module)
    example = _args(example_inputs)
    calib = [_args(c) for c in calibration] if calibration else None
    evals = [_args(e) for e in eval_inputs] if eval_inputs else [example, *(calib or [])]
    if is_torch:
        if model.training:
            raise InputError("model is in training mode: call model.eval() first")
        ctx = Context(model, example, calib, threads, None)
        baseline_run = torch_runner(model)
        label = name or type(model).__name__
    else:
        source = _model_source(model)
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        ctx = Context(None, example, calib, threads, data)
        baseline_run = onnx_runner(data, threads)
        label = name or "onnx model"
    previous_threads = None
    if threads is not None and torch is not None:
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        return _run(ctx, chosen, baseline_run, evals, metric, max_time, threads, label, is_torch)
    finally:
        if previous_threads is not None and torch is not None:
            torch.set_num_threads(previous_threads)


def _run(
    ctx: Context,
    methods: list[str],
    baseline_run: Callable[[Sequence[Any]], Any],
    evals: list[tuple[Any, ...]],
    metric: Callable[[list[list[np.ndarray]]], float] | None,
    max_time: float,
    threads: int | None,
    label: str,
    is_torch: bool,
) -> QuantizationStudy:
    from silenttax.quantize._methods import torch_size

    try:
        reference = [_outputs(baseline_run(e)) for e in evals]
    except Exception as exc:
        raise InputError(
            f"the fp32 model raised {type(exc).__name__} on the inputs: {exc}"
        ) from exc
    example = ctx.example
    base_fn = lambda: baseline_run(example)  # noqa: E731
    base_bench = benchmark(
        base_fn,
        min_samples=50,
        min_time=min(1.0, max_time / 3),
        max_time=max_time,
        memory=False,
        name="fp32",
    )
    base_metric = float(metric(reference)) if metric is not None else None
    size = torch_size(ctx.model) if is_torch else len(ctx.onnx_bytes())
    baseline = Baseline(
        backend="torch" if is_torch else "onnxruntime",
        p50=base_bench.p50,
        p99=base_bench.p99,
        size_bytes=size,
        batch_size=_batch(example),
        metric=base_metric,
    )
    candidates = [
        _candidate(method, ctx, base_fn, evals, reference, metric, max_time, size)
        for method in methods
    ]
    return QuantizationStudy(model=label, baseline=baseline, candidates=candidates, threads=threads)


def _candidate(
    method: str,
    ctx: Context,
    base_fn: Callable[[], Any],
    evals: list[tuple[Any, ...]],
    reference: list[list[np.ndarray]],
    metric: Callable[[list[list[np.ndarray]]], float] | None,
    max_time: float,
    base_size: int,
) -> Candidate:
    try:
        built: Built = build(method, ctx)
    except Skip as why:
        return Candidate(method=method, error=f"skipped: {why}")
    except Exception as exc:
        return Candidate(method=method, error=f"{type(exc).__name__}: {exc}"[:500])
    fields: dict[str, Any] = {
        "method": method,
        "backend": built.backend,
        "applied": built.applied,
        "notes": built.notes,
        "size_bytes": built.size_bytes,
        "size_ratio": built.size_bytes / base_size if base_size else None,
        "artifact": built.artifact,
    }
    try:
        outputs = [_outputs(built.run(e)) for e in evals]
        fields.update(_accuracy(outputs, reference))
        if metric is not None:
            fields["metric"] = float(metric(outputs))
        example = ctx.example
        cmp = compare(
            base_fn,
            lambda: built.run(example),
            min_time=min(1.0, max_time / 2),
            max_time=max_time,
            names=("fp32", method),
        )
        fields.update(
            p50=cmp.candidate.p50,
            p99=cmp.candidate.p99,
            speedup=1 / cmp.ratio,
            speedup_ci=(1 / cmp.ci[1], 1 / cmp.ci[0]),
        )
    except Exception as exc:
        fields["error"] = f"{type(exc).__name__} while measuring: {exc}"[:500]
    return Candidate(**fields)


def _accuracy(outputs: list[list[np.ndarray]], reference: list[list[np.ndarray]]) -> dict[str, Any]:
    diffs, norms, agree, rows = 0.0, [0.0, 0.0], 0, 0
    for got, want in zip(outputs, reference, strict=True):
        if len(got) != len(want):
            raise ValueError(f"the candidate returns {len(got)} outputs, fp32 {len(want)}")
        for g, w in zip(got, want, strict=True):
            if g.shape != w.shape:
                raise ValueError(f"output shape {g.shape} differs from fp32 {w.shape}")
            delta = np.abs(g - w)
            diffs = max(diffs, float(delta.max()) if delta.size else 0.0)
            norms[0] += float(np.sum(delta * delta))
            norms[1] += float(np.sum(w * w))
        first, ref = got[0], want[0]
        if ref.ndim == 2 and ref.shape[1] >= 2:
            agree += int(np.sum(first.argmax(axis=1) == ref.argmax(axis=1)))
            rows += ref.shape[0]
    return {
        "max_abs_diff": diffs,
        "rel_error": math.sqrt(norms[0] / norms[1]) if norms[1] > 0 else 0.0,
        "top1_agreement": agree / rows if rows else None,
    }
