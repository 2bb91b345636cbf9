"""study(): quantize a model every way available, measure each candidate, recommend one."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from silenttax._deps import imported, optional_import
from silenttax._interleave import batch_means_interval, interleave
from silenttax._models import _model_source
from silenttax._state import State
from silenttax._system import torch_threads
from silenttax.benchmark import environment
from silenttax.cost import CostModel
from silenttax.errors import InputError
from silenttax.quantize._cpu import Int8Support, int8_help, int8_support
from silenttax.quantize._methods import (
    METHODS,
    Built,
    Context,
    Skip,
    build,
    onnx_runner,
    torch_runner,
    torch_size,
)
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_bytes as _bytes
from silenttax.report._render import format_duration as _dur

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Candidate", "QuantizationStudy", "study"]


class Baseline(BaseModel):
    """The fp32 model's figures (measured in the same interleaved session as the candidates)."""

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
    round_medians: list[float] = Field(default_factory=list, repr=False)
    """Median latency of the baseline's block in each round of the session, seconds."""


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
    """Captured warnings (deprecations) and remarks, e.g. why int8 does not pay on this CPU."""
    p50: float | None = None
    """Median latency per call, seconds (same session as the baseline's)."""
    p99: float | None = None
    """99th percentile latency, seconds."""
    speedup: float | None = None
    """Baseline / candidate latency: geometric mean over the session's rounds."""
    speedup_ci: tuple[float, float] | None = None
    """95% batch-means CI of the speedup (includes phase-to-phase noise)."""
    size_bytes: int | None = None
    """Serialized size."""
    size_ratio: float | None = None
    """Size / baseline size."""
    max_abs_diff: float | None = None
    """Largest absolute difference from the fp32 outputs over the eval inputs."""
    rel_error: float | None = None
    """||candidate - fp32|| / ||fp32|| over the eval inputs."""
    top1_agreement: float | None = None
    """Share of rows whose argmax matches fp32; None unless the outputs are class scores
    (see ``classifier`` in :func:`study`): for regression or embeddings it means nothing."""
    metric: float | None = None
    """The user's metric on the candidate's outputs."""
    round_medians: list[float] = Field(default_factory=list, repr=False)
    """Median latency of the candidate's block in each round (aligned with the baseline's)."""
    artifact: Any = Field(default=None, exclude=True, repr=False)
    """The quantized module or ONNX bytes (not serialized)."""

    @property
    def usable(self) -> bool:
        """Ran, changed something and was measured."""
        return self.applied and self.error is None and self.speedup is not None

    @property
    def slower(self) -> bool:
        """Measured, and not faster than fp32 (the CI's lower end is at or below 1)."""
        return self.speedup_ci is not None and self.speedup_ci[0] <= 1


def _paired_ci(a: Candidate, b: Candidate) -> tuple[float, float] | None:
    """CI of latency(b) / latency(a) from the rounds they shared; None when unknown."""
    x, y = np.asarray(a.round_medians), np.asarray(b.round_medians)
    if x.size < 2 or x.size != y.size:
        return None
    _, lo, hi = batch_means_interval(np.log(y) - np.log(x))
    return math.exp(lo), math.exp(hi)


def _within_noise(a: Candidate, b: Candidate) -> bool:
    """Whether the two speeds cannot be told apart."""
    ci = _paired_ci(a, b)
    if ci is not None:
        return ci[0] <= 1 <= ci[1]
    if a.speedup_ci is None or b.speedup_ci is None:  # files without rounds: CIs overlap
        return False
    return a.speedup_ci[0] <= b.speedup_ci[1] and b.speedup_ci[0] <= a.speedup_ci[1]


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
    rounds: int = 0
    """Interleaved rounds of the measurement session (every candidate and fp32 in each)."""
    contention: dict[str, Any] | None = None
    """What the machine did during the session: contended share, other processes' cores."""
    busy: bool = False
    """Other processes held the cores for most of the session: speedups are not verdicts."""
    classifier: bool = False
    """Whether the outputs were treated as class scores (``top1_agreement`` shown)."""
    int8: str | None = None
    """What the CPU offers int8 (flags found or missing), as measured-on context."""
    quantized_engine: str | None = None
    """``torch.backends.quantized.engine`` during the study."""

    def best(
        self,
        *,
        max_abs_diff: float | None = None,
        max_metric_drop: float | None = None,
        min_speedup: float = 1.1,
        min_top1_agreement: float | None = None,
        max_rel_error: float | None = 0.05,
    ) -> Candidate | None:
        """The fastest usable candidate within every budget (never one that was not applied).

        A candidate qualifies when its speedup is at least ``min_speedup`` (and,
        when ``min_speedup > 1``, its CI lies above 1: a gain the noise could
        explain is no reason to switch) and it meets each budget given.
        Candidates whose speed cannot be told apart from the fastest (the
        paired CI of their latency ratio, over the rounds they shared,
        includes 1) count as equally fast; among them the most accurate
        (lowest ``rel_error``), then the smallest, wins, so back-to-back
        studies agree.

        Args:
            max_abs_diff: Largest accepted difference from the fp32 outputs.
            max_rel_error: Largest accepted relative error (output norm) vs fp32; by
                default 5%, None for no limit.
            max_metric_drop: Largest accepted drop of the user's metric (baseline - candidate).
            min_speedup: Smallest speedup worth switching for.
            min_top1_agreement: Smallest accepted argmax agreement with fp32 (class
                scores only).

        Raises:
            InputError: a budget the study cannot check (a metric drop without a
                ``metric``, top-1 agreement for outputs that are not class scores).
        """
        return self._choose(
            max_abs_diff=max_abs_diff,
            max_metric_drop=max_metric_drop,
            min_speedup=min_speedup,
            min_top1_agreement=min_top1_agreement,
            max_rel_error=max_rel_error,
        )[0]

    def _choose(
        self,
        *,
        max_abs_diff: float | None,
        max_metric_drop: float | None,
        min_speedup: float,
        min_top1_agreement: float | None,
        max_rel_error: float | None,
    ) -> tuple[Candidate | None, list[Candidate]]:
        """The choice and the other qualifying candidates within noise of the fastest."""
        base_metric = self.baseline.metric
        if max_metric_drop is not None and base_metric is None:
            raise InputError("max_metric_drop: the study was run without a metric=")
        if min_top1_agreement is not None and not self.classifier:
            raise InputError(
                "min_top1_agreement: the outputs were not treated as class scores, so top-1 "
                "agreement was not measured (study(..., classifier=True) for a classifier; "
                "otherwise budget max_rel_error or a metric)"
            )

        def within(limit: float | None, value: float | None) -> bool:
            return limit is None or (value is not None and value <= limit)

        ok = [
            c
            for c in self.candidates
            if c.usable
            and c.speedup is not None
            and c.speedup_ci is not None
            and c.speedup >= min_speedup
            and (min_speedup <= 1 or c.speedup_ci[0] > 1)
            and within(max_abs_diff, c.max_abs_diff)
            and within(max_rel_error, c.rel_error)
            and (
                max_metric_drop is None
                or (
                    c.metric is not None
                    and base_metric is not None
                    and base_metric - c.metric <= max_metric_drop
                )
            )
            and (
                min_top1_agreement is None
                or (c.top1_agreement is not None and c.top1_agreement >= min_top1_agreement)
            )
        ]
        if not ok:
            return None, []
        fastest = max(ok, key=lambda c: c.speedup or 0)
        tied = [c for c in ok if c is fastest or _within_noise(fastest, c)]
        chosen = min(
            tied,
            key=lambda c: (
                c.rel_error if c.rel_error is not None else math.inf,
                c.size_bytes or 0,
                -(c.speedup or 0),
            ),
        )
        return chosen, [c for c in tied if c is not chosen]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per candidate (needs pandas)."""
        pandas: Any = optional_import("pandas", purpose="QuantizationStudy.to_dataframe")
        rows = [c.model_dump(exclude={"artifact", "round_medians"}) for c in self.candidates]
        frame: pd.DataFrame = pandas.DataFrame(rows)
        return frame

    def table(self) -> str:
        """The candidate table as Markdown (the top-1 column only for class scores)."""
        top1 = self.classifier
        head = (
            "| method | applied | speedup [95% CI] | p50 | p99 | size | max abs diff | rel error |"
        )
        head += " top-1 |" if top1 else ""
        lines = [head + " note |", "|---" * (9 + top1) + "|"]
        b = self.baseline
        lines.append(
            f"| fp32 baseline ({b.backend}) | — | 1.00 | {_dur(b.p50)} | {_dur(b.p99)} | "
            f"{_bytes(b.size_bytes)} | 0 | 0 |" + (" 1.00 |" if top1 else "") + " |"
        )
        for c in self.candidates:
            speed = (
                f"{c.speedup:.2f} [{c.speedup_ci[0]:.2f}, {c.speedup_ci[1]:.2f}]"
                if c.speedup is not None and c.speedup_ci
                else "—"
            )
            note = (c.error or "; ".join(c.notes[-1:])).replace("|", "/")[:120]
            lines.append(
                f"| {c.method} | {'yes' if c.applied else 'no'} | {speed} | "
                f"{_dur(c.p50) if c.p50 else '—'} | {_dur(c.p99) if c.p99 else '—'} | "
                f"{_bytes(c.size_bytes) if c.size_bytes else '—'} | "
                f"{_num(c.max_abs_diff)} | {_num(c.rel_error)} |"
                + (f" {_num(c.top1_agreement, '.2f')} |" if top1 else "")
                + f" {note} |"
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

        The recommendation is :meth:`best` with these budgets (by default a
        candidate must stay within 5% relative error of the fp32 outputs and
        be at least 1.1x faster); candidates within noise of it are named.
        """
        findings: list[Finding] = []
        best, tied = self._choose(
            max_abs_diff=max_abs_diff,
            max_metric_drop=max_metric_drop,
            min_speedup=min_speedup,
            min_top1_agreement=min_top1_agreement,
            max_rel_error=max_rel_error,
        )
        if self.busy:
            findings.append(self._busy())
            best = None
        else:
            findings.append(self._recommendation(best, tied, min_speedup, max_rel_error))
        if cost is not None and best is not None:
            findings.append(self._cost(best, cost))
        findings.extend(self._candidate(c) for c in self.candidates)
        return Report(
            findings=findings,
            source="quantize.QuantizationStudy.report",
            context={"model": self.model, "baseline_p50": self.baseline.p50, "int8": self.int8},
        )

    def _busy(self) -> Finding:
        figures = self.contention or {}
        return make_finding(
            "quantize.recommendation",
            severity=Severity.INFO,
            subject=self.model,
            message=(
                "no recommendation: inconclusive: machine busy — "
                f"{figures.get('contended_share', 0):.0%} of the session had fewer free cores "
                f"than it needs (other processes used a median "
                f"{figures.get('other_cores_median') or 0:g} cores); rerun when it is quiet"
            ),
            evidence={"verdict": "inconclusive", "reason": "machine busy", "contention": figures},
            detector="quantize.QuantizationStudy",
        )

    def _recommendation(
        self,
        best: Candidate | None,
        tied: list[Candidate],
        min_speedup: float,
        max_rel_error: float | None,
    ) -> Finding:
        if best is None:
            measured = [c for c in self.candidates if c.usable]
            none_pays = bool(measured) and all(c.slower for c in measured)
            budget = f" within {max_rel_error:.0%} relative error" if max_rel_error else ""
            return make_finding(
                "quantize.recommendation",
                severity=Severity.INFO,
                subject=self.model,
                message=(
                    f"no candidate is at least {min_speedup:g}x faster{budget} and the other "
                    "budgets: keep fp32" + (f" ({self.int8})" if none_pays and self.int8 else "")
                ),
                recommendation=_help(self) if none_pays else None,
                detector="quantize.QuantizationStudy",
            )
        ties = (
            f"; {' and '.join([best.method, *(c.method for c in tied)])} are within noise of "
            "each other (paired 95% CI of their latency ratio includes 1): chose the most accurate"
            if tied
            else ""
        )
        return make_finding(
            "quantize.recommendation",
            severity=Severity.INFO,
            subject=self.model,
            message=(
                f"use {best.method}: {best.speedup:.2f}x faster (95% CI {_ci(best)}; p50 "
                f"{_dur(self.baseline.p50)} -> {_dur(best.p50 or 0)}), {best.size_ratio or 0:.0%} "
                f"of the size, rel. error {_num(best.rel_error)}, max abs diff "
                f"{_num(best.max_abs_diff)}"
                + (
                    f", top-1 agreement {best.top1_agreement:.1%}"
                    if best.top1_agreement is not None
                    else ""
                )
                + (
                    f", metric {best.metric:.4g} vs {self.baseline.metric:.4g}"
                    if best.metric is not None and self.baseline.metric is not None
                    else ""
                )
                + ties
            ),
            metric="speedup",
            value=best.speedup,
            baseline=1.0,
            threshold=min_speedup,
            effect_size=best.speedup,
            evidence={
                **best.model_dump(mode="json", exclude={"artifact", "round_medians"}),
                "within_noise": [c.method for c in tied],
            },
            recommendation=f"Ship the {best.method} artifact (candidate.artifact) after a canary.",
            detector="quantize.QuantizationStudy",
        )

    def _cost(self, best: Candidate, cost: CostModel) -> Finding:
        """Priced at ``cost``; at a price of 0 the saving is the share of machine time."""
        batch, p50 = self.baseline.batch_size, self.baseline.p50
        before = cost.cost_per_1k(batch / p50)
        after = cost.cost_per_1k(batch / (best.p50 or p50))
        # at a price of 0 the saving is the share of machine time
        saving = 1 - (after / before if before > 0 else (best.p50 or p50) / p50)
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
            effect_size=after / before,  # a cost ratio, as in cost.per_1k_increase
            evidence={"batch_size": batch, "saving": saving},
            detector="quantize.QuantizationStudy",
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
                detector="quantize.QuantizationStudy",
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
                detector="quantize.QuantizationStudy",
            )
        why = next((n for n in c.notes if n.startswith(_NOT_FASTER)), None)
        if c.speedup is None or c.speedup_ci is None:
            message = f"{c.method}: not measured"
        else:
            pace = (
                f"{c.speedup:.2f}x ({1 / c.speedup:.1f}x slower)"
                if c.speedup_ci[1] < 1
                else f"{c.speedup:.2f}x"
            )
            message = (
                f"{c.method}: {pace} (95% CI {_ci(c)}), {_bytes(c.size_bytes or 0)} "
                f"({c.size_ratio or 0:.0%}), rel. error {_num(c.rel_error)}, max abs diff "
                f"{_num(c.max_abs_diff)}"
                + (f", top-1 {c.top1_agreement:.1%}" if c.top1_agreement is not None else "")
            )
            if why:
                message += f"; {why}"
        return make_finding(
            "quantize.candidate",
            severity=Severity.INFO if c.slower else Severity.OK,
            subject=c.method,
            message=message,
            metric="speedup",
            value=c.speedup,
            baseline=1.0,
            evidence=c.model_dump(mode="json", exclude={"artifact", "round_medians"}),
            recommendation=_help(self) if why else None,
            detector="quantize.QuantizationStudy",
        )


_NOT_FASTER = "not faster than fp32 here"


def _help(s: QuantizationStudy) -> str:
    """What would make int8 pay, from the study's CPU sentence."""
    native = s.int8 is not None and "native int8" in s.int8
    return int8_help(native=native, arm=s.int8 is not None and "Arm" in s.int8)


def _ci(c: Candidate) -> str:
    return f"{c.speedup_ci[0]:.2f}-{c.speedup_ci[1]:.2f}" if c.speedup_ci else "—"


def _num(value: float | None, spec: str = ".2g") -> str:
    return "—" if value is None else format(value, spec)


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
    classifier: bool | None = None,
    reduce_range: bool | None = None,
    max_time: float = 3.0,
    threads: int | None = None,
    name: str | None = None,
) -> QuantizationStudy:
    """Quantize ``model`` every available way; measure, check and rank the candidates.

    Each method becomes a :class:`Candidate`: whether quantization actually
    changed anything (module types, graph ops: FX on a TransformerEncoder
    silently quantizes nothing), size, max abs diff and relative error vs the
    fp32 outputs on ``eval_inputs``, top-1 agreement for class scores, and the
    user's ``metric``. Then fp32 and every candidate are timed in **one
    interleaved session**: each round runs a short block of each, in a
    shuffled order, so the machine's slow and fast phases hit all of them
    alike. A speedup is the geometric mean of the per-round latency ratios,
    its 95% CI the batch-means interval over the rounds (so phase-to-phase
    noise widens it), and every p50/p99 comes from the same session. A
    candidate too slow for many rounds gets fewer, longer ones and is reported
    as a slowdown; one that is not faster than fp32 says why, from the CPU's
    int8 support (VNNI/AMX on x86, dotprod/i8mm on Arm) and torch's quantized
    engine. ONNX Runtime runs with spinning off, so the two thread pools do
    not starve each other. A method that fails is recorded, never raised; one
    that cannot run here (missing extra, no calibration data) says why.
    Deprecation warnings go to the candidate's notes.

    Args:
        model: A ``torch.nn.Module`` in eval mode, or an ONNX model (path, bytes, ModelProto).
        example_inputs: One input (tensor/array) or a tuple of inputs: what latency is measured on.
        methods: Which of :data:`METHODS` to try (default: all; unavailable ones say why).
        calibration: Input tuples for static quantization (also used for accuracy).
        eval_inputs: Input tuples for the accuracy checks (default: example + calibration).
        metric: ``metric(outputs) -> float`` over the list (one per eval input) of output
            lists; higher is better (e.g. accuracy against your labels).
        classifier: Whether the first output holds class scores, so that top-1 (argmax)
            agreement with fp32 means something. ``None`` guesses: a 2-D output with 2 to
            1000 columns. Pass ``False`` for regression or embeddings.
        reduce_range: Quantize ONNX Runtime weights to 7 bits. ``None``: on x86 CPUs
            without VNNI, where ORT's int8 kernels saturate (measured: relative error
            0.14 -> 0.01 on a TransformerEncoder).
        max_time: Seconds of measurement per candidate (fp32 counts as one).
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
        >>> c.speedup_ci[0] <= c.speedup <= c.speedup_ci[1]
        True
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
    support = int8_support(environment().cpu_flags)
    squeeze = support.saturates if reduce_range is None else reduce_range
    if is_torch:
        if model.training:
            raise InputError("model is in training mode: call model.eval() first")
        ctx = Context(model, example, calib, threads, None, reduce_range=squeeze)
        baseline_run = torch_runner(model)
        label = name or type(model).__name__
    else:
        source = _model_source(model)
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        ctx = Context(None, example, calib, threads, data, reduce_range=squeeze)
        baseline_run = onnx_runner(data, threads)
        label = name or "onnx model"
    with torch_threads(threads):
        return _run(
            ctx,
            chosen,
            baseline_run,
            evals,
            metric=metric,
            classifier=classifier,
            max_time=max_time,
            threads=threads,
            label=label,
            is_torch=is_torch,
            support=support,
        )


def _run(
    ctx: Context,
    methods: list[str],
    baseline_run: Callable[[Sequence[Any]], Any],
    evals: list[tuple[Any, ...]],
    *,
    metric: Callable[[list[list[np.ndarray]]], float] | None,
    classifier: bool | None,
    max_time: float,
    threads: int | None,
    label: str,
    is_torch: bool,
    support: Int8Support,
) -> QuantizationStudy:
    try:
        reference = [_outputs(baseline_run(e)) for e in evals]
    except Exception as exc:
        raise InputError(
            f"the fp32 model raised {type(exc).__name__} on the inputs: {exc}"
        ) from exc
    if classifier is None:
        first = reference[0][0]
        classifier = first.ndim == 2 and 2 <= first.shape[1] <= 1000
    base_metric = float(metric(reference)) if metric is not None else None
    size = torch_size(ctx.model) if is_torch else len(ctx.onnx_bytes())
    built = [_build(m, ctx, evals, reference, metric, classifier, size) for m in methods]
    example = ctx.example
    runners = {i: run for i, (fields, run) in enumerate(built) if run and fields["applied"]}
    timed = list(runners)
    fns: list[Callable[[], Any]] = [lambda: baseline_run(example)]
    fns += [functools.partial(runners[i], example) for i in timed]
    session = interleave(
        fns,
        ["fp32", *(methods[i] for i in timed)],
        max_time=max_time * len(fns),
        warmup_time=min(0.5, 0.15 * max_time),
    )
    if 0 in session.errors:
        raise InputError(f"the fp32 model raised while being timed: {session.errors[0]}")
    base_samples = np.asarray(session.samples[0])
    for slot, i in enumerate(timed, start=1):
        fields = built[i][0]
        if slot in session.errors:
            fields["error"] = session.errors[slot]
            continue
        ratio, lo, hi = session.ratio(0, slot)
        samples = np.asarray(session.samples[slot])
        fields.update(
            p50=float(np.median(samples)),
            p99=float(np.quantile(samples, 0.99)),
            speedup=1 / ratio,
            speedup_ci=(1 / hi, 1 / lo),
            round_medians=session.blocks[:, slot].tolist(),
        )
        if 1 / hi <= 1 and "int8" in methods[i]:  # the CPU explains int8, not ORT fp32
            why = f"{_NOT_FASTER} ({1 / ratio:.2f}x): {support.summary}"
            if fields["backend"] == "torch" and support.engine:
                why += f"; torch's quantized engine is {support.engine}"
            fields["notes"] = [*fields["notes"], why]
    baseline = Baseline(
        backend="torch" if is_torch else "onnxruntime",
        p50=float(np.median(base_samples)),
        p99=float(np.quantile(base_samples, 0.99)),
        size_bytes=size,
        batch_size=_batch(example),
        metric=base_metric,
        round_medians=session.blocks[:, 0].tolist(),
    )
    return QuantizationStudy(
        model=label,
        baseline=baseline,
        candidates=[Candidate(**fields) for fields, _ in built],
        threads=threads,
        rounds=session.rounds,
        contention=session.contention,
        busy=session.busy,
        classifier=classifier,
        int8=support.summary,
        quantized_engine=support.engine,
    )


def _build(
    method: str,
    ctx: Context,
    evals: list[tuple[Any, ...]],
    reference: list[list[np.ndarray]],
    metric: Callable[[list[list[np.ndarray]]], float] | None,
    classifier: bool,
    base_size: int,
) -> tuple[dict[str, Any], Callable[[Sequence[Any]], Any] | None]:
    """A candidate's fields before timing, and its runner (None: nothing to time)."""
    try:
        built: Built = build(method, ctx)
    except Skip as why:
        return {"method": method, "error": f"skipped: {why}"}, None
    except Exception as exc:
        return {"method": method, "error": f"{type(exc).__name__}: {exc}"[:500]}, None
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
        fields.update(_accuracy(outputs, reference, classifier))
        if metric is not None:
            fields["metric"] = float(metric(outputs))
    except Exception as exc:
        fields["error"] = f"{type(exc).__name__} while checking accuracy: {exc}"[:500]
        return fields, None
    return fields, built.run


def _accuracy(
    outputs: list[list[np.ndarray]], reference: list[list[np.ndarray]], classifier: bool
) -> dict[str, Any]:
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
        if classifier and ref.ndim == 2:
            agree += int(np.sum(first.argmax(axis=1) == ref.argmax(axis=1)))
            rows += ref.shape[0]
    return {
        "max_abs_diff": diffs,
        "rel_error": math.sqrt(norms[0] / norms[1]) if norms[1] > 0 else 0.0,
        "top1_agreement": agree / rows if rows else None,
    }
