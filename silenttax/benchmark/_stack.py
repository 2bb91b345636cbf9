"""compare_stacks: the same model on two framework stacks, in paired fresh processes.

The unit of replication is a *pair of processes* (one per stack): process
medians differ by 8.6-11.1% between processes on a shared 2-core VM, while a
process median's own error is 1.1-1.7%, so samples pooled across processes
call identical stacks "significantly different" about half the time. Inside
each pair both workers stay alive and warm and alternate blocks of calls
(AB, BA, ...), so the machine's drift hits both; the pair's value is the
Hodges-Lehmann estimate of its per-round log ratios. The decision is made
over pairs: a t interval with K-1 degrees of freedom from the spread between
pairs (Kalibera & Jones: replicate at the level where the variance lives).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from silenttax._state import State
from silenttax._stats import hodges_lehmann
from silenttax.benchmark._environment import Environment, environment
from silenttax.benchmark._envs import (
    Index,
    Installer,
    StackEnv,
    build_env,
    installed_versions,
    resolve_pins,
)
from silenttax.benchmark._spec import ModelSpec
from silenttax.benchmark._workers import Worker
from silenttax.errors import InputError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_duration as _dur

__all__ = ["StackArm", "StackComparison", "compare_stacks", "decide_pairs"]

Verdict = Literal["faster", "slower", "equivalent", "inconclusive"]
Progress = Callable[[float, str], None]
_LABELS = ("baseline", "candidate")


def _pairs_needed(log_sd: float, target: float, have: int, confidence: float) -> int | None:
    """Pairs for a t half-width below ``target`` (log scale) at spread ``log_sd``."""
    from scipy.stats import t

    if target <= 0 or not math.isfinite(log_sd):
        return None
    if log_sd == 0:
        return max(have, 2)
    start = max(have, 2)
    for stop in (start + 64, 10_001):  # most answers are near: look there first
        n = np.arange(start, stop)
        fits = np.flatnonzero(t.ppf((1 + confidence) / 2, n - 1) * log_sd / np.sqrt(n) < target)
        if fits.size:
            return int(n[fits[0]])
        start = stop
    return None


def decide_pairs(
    log_ratios: Sequence[float], *, equivalence: float = 0.05, confidence: float = 0.95
) -> dict[str, Any]:
    """The verdict over pairs of processes, from each pair's log latency ratio.

    ``ratio = exp(mean)`` with a t interval on K-1 degrees of freedom from the
    spread between pairs. With margin ``equivalence`` (δ):

    - ``equivalent``: the whole CI lies inside [1-δ, 1+δ] (two one-sided tests,
      each at level (1-confidence)/2);
    - ``slower`` / ``faster``: the CI excludes 1 and the estimate is beyond δ;
    - ``inconclusive`` otherwise, with ``pairs_needed``: about how many pairs
      at this spread would resolve it (None when the estimate sits on a margin).

    Under no difference, a ``faster``/``slower`` verdict happens at most
    ``1 - confidence`` of the time (less, because the estimate must also pass δ).

    Examples:
        >>> import math
        >>> d = decide_pairs([math.log(r) for r in (1.31, 1.27, 1.33, 1.29, 1.30, 1.28)])
        >>> d["verdict"], round(d["ratio"], 2)
        ('slower', 1.3)
        >>> decide_pairs([0.004, -0.006, 0.002, 0.001, -0.003, 0.0])["verdict"]
        'equivalent'
    """
    from scipy.stats import t

    x = np.asarray(log_ratios, dtype=float)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise InputError("log_ratios: need at least one finite value")
    if not 0 < equivalence < 1:
        raise InputError(f"equivalence must be in (0, 1), got {equivalence!r}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
    k = int(x.size)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if k > 1 else math.nan
    p_value: float | None
    if k > 1:
        se = sd / math.sqrt(k)
        half = float(t.ppf((1 + confidence) / 2, k - 1)) * se
        p_value = float(2 * t.sf(abs(mean) / se, k - 1)) if se > 0 else 1.0 if mean == 0 else 0.0
    else:
        half, p_value = math.inf, None
    lo, hi = mean - half, mean + half
    down, up = math.log(1 - equivalence), math.log(1 + equivalence)
    verdict: Verdict
    if down <= lo and hi <= up:
        verdict = "equivalent"
    elif lo > 0 and mean > up:
        verdict = "slower"
    elif hi < 0 and mean < down:
        verdict = "faster"
    else:
        verdict = "inconclusive"
    needed = None
    if verdict == "inconclusive" and k > 1:
        margin = up if mean >= 0 else -down
        # Within the margin: shrink the CI inside it; beyond: shrink it off 1.
        target = margin - abs(mean) if abs(mean) < margin else abs(mean)
        needed = _pairs_needed(sd, target, k, confidence)
    return {
        "ratio": math.exp(mean),
        "ci": (math.exp(lo), math.exp(hi) if math.isfinite(hi) else math.inf),
        "verdict": verdict,
        "pairs_needed": needed,
        "p_value": p_value,
        "between_pair_sd": sd,
    }


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")


class StackArm(_Frozen):
    """One side of a stack comparison: its interpreter, versions and timings."""

    label: str
    """``baseline`` or ``candidate``."""
    python: str
    """The interpreter's executable."""
    source: str
    """``current`` (this process's), ``existing`` (given), ``uv`` or ``pip`` (built)."""
    requirements: list[str] = Field(default_factory=list)
    """What was installed into it, for built environments."""
    build_seconds: float = 0.0
    """Seconds the build took (0: from the cache or not built)."""
    cached: bool = False
    """Whether a built environment came from the cache."""
    python_version: str = ""
    """The worker's Python."""
    packages: dict[str, str] = Field(default_factory=dict)
    """Every distribution installed in it (normalised name -> version)."""
    build: dict[str, str] = Field(default_factory=dict)
    """Runtime build facts: torch CPU capability and oneDNN, ORT providers."""
    load_seconds: list[float] = Field(default_factory=list)
    """Per pair: seconds to import the runtime and build the model (cold start)."""
    first_call_seconds: list[float] = Field(default_factory=list)
    """Per pair: the first call's seconds (weight packing, kernel selection)."""
    medians: list[float] = Field(default_factory=list)
    """Per pair: the median of the arm's block medians, seconds per call (steady state)."""
    blocks: list[list[float]] = Field(default_factory=list)
    """Per pair, per round: the median seconds per call of the arm's block."""


class OutputDiff(_Frozen):
    """How the two arms' outputs on the example inputs differ."""

    match: bool
    """Whether every output is close (``np.allclose`` with ``rtol``/``atol``; exact for
    integers) and of the same shape."""
    max_abs: float | None = None
    """Largest absolute difference over all outputs."""
    max_rel: float | None = None
    """Largest relative difference (to the baseline's magnitude)."""
    rtol: float
    """Relative tolerance used."""
    atol: float
    """Absolute tolerance used."""
    outputs: int = 0
    """Outputs compared."""
    reason: str | None = None
    """Why they do not match, when the structure differs."""


def _diff_outputs(
    a: list[np.ndarray[Any, Any]], b: list[np.ndarray[Any, Any]], rtol: float, atol: float
) -> OutputDiff:
    def differ(reason: str) -> OutputDiff:
        return OutputDiff(match=False, rtol=rtol, atol=atol, outputs=len(a), reason=reason)

    if len(a) != len(b):
        return differ(f"{len(a)} vs {len(b)} outputs")
    max_abs = max_rel = 0.0
    match = True
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x.shape != y.shape:
            return differ(f"output {i}: shape {x.shape} vs {y.shape}")
        if x.dtype.kind not in "biufc" or y.dtype.kind not in "biufc":
            same = bool(np.array_equal(x, y))
            match &= same
            continue
        xf, yf = x.astype(np.float64), y.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(yf - xf)
            both_nan = np.isnan(xf) & np.isnan(yf)
            diff = np.where(both_nan, 0.0, diff)
        if diff.size:
            max_abs = max(max_abs, float(np.nanmax(np.where(np.isnan(diff), np.inf, diff))))
            scale = np.maximum(np.abs(xf), np.finfo(np.float64).tiny)
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                max_rel = max(
                    max_rel, float(np.max(np.where(np.isnan(diff), np.inf, diff / scale)))
                )
        if x.dtype.kind in "biu" and y.dtype.kind in "biu":
            match &= bool(np.array_equal(x, y))
        else:
            match &= bool(np.allclose(yf, xf, rtol=rtol, atol=atol, equal_nan=True))
    return OutputDiff(
        match=match, max_abs=max_abs, max_rel=max_rel, rtol=rtol, atol=atol, outputs=len(a)
    )


class StackComparison(State):
    """The same model on a baseline and a candidate stack, decided over pairs of processes.

    ``ratio`` is candidate / baseline steady-state latency (> 1: the candidate
    stack is slower). Saved and loaded like every snapshot
    (``silenttax.load``); :meth:`report` judges it.
    """

    KIND: ClassVar[str] = "silenttax.stack_comparison"

    model: dict[str, Any]
    """The ModelSpec: kind, model hash, factory, input shapes, threads and cores."""
    baseline: StackArm
    """The baseline arm."""
    candidate: StackArm
    """The candidate arm."""
    pair_log_ratios: list[float]
    """Per pair of processes: the HL estimate of log(candidate / baseline) over its rounds."""
    pair_within_se: list[float]
    """Per pair: the standard error of its per-round log ratios (within-process noise)."""
    ratio: float
    """Candidate / baseline latency, ``exp`` of the mean pair log ratio."""
    ci: tuple[float, float]
    """Confidence interval of ``ratio`` (t over pairs)."""
    confidence: float
    """Confidence level of ``ci``."""
    equivalence: float
    """The margin δ: a change inside ±δ is no change."""
    verdict: Verdict
    """``faster``, ``slower``, ``equivalent`` or ``inconclusive`` (see :func:`decide_pairs`)."""
    pairs_needed: int | None = None
    """For an inconclusive verdict: about how many pairs would resolve it at this spread."""
    p_value: float | None = None
    """Two-sided one-sample t-test of "no difference" over pairs (None with one pair)."""
    between_pair_sd: float | None = None
    """Standard deviation of the pair log ratios."""
    rounds: int
    """Interleaved rounds per pair."""
    calls_per_block: list[int] = Field(default_factory=list)
    """Calls per block in each pair."""
    outputs: OutputDiff | None = None
    """The two arms' outputs compared (None when it could not run)."""
    aa: bool = False
    """An A/A self-test: the same environment on both arms (any faster/slower is noise)."""
    cores: list[int] = Field(default_factory=list)
    """CPUs both workers were pinned to."""
    elapsed_seconds: float = 0.0
    """Wall time of the whole check, builds included."""
    notes: list[str] = Field(default_factory=list)
    """What changed the plan (stopped early at max_time, Python versions differ, ...)."""
    environment: Environment
    """The machine: CPU model and flags (a result holds only for this CPU)."""

    def differences(self) -> dict[str, tuple[str | None, str | None]]:
        """Distributions whose versions differ between the arms: name -> (baseline, candidate).

        A distribution installed on one side only counts when the model needs it
        (its runtime, numpy): a built candidate holds only the model's stack, while
        the baseline environment may hold dev tools the model never imports (listed
        by :meth:`only_in_baseline`).

        Examples:
            >>> arm = StackArm(label="baseline", python="python", source="current",
            ...                packages={"onnxruntime": "1.31.1", "numpy": "2.4.6"})
            >>> new = arm.model_copy(
            ...     update={"packages": {"onnxruntime": "1.32.0", "numpy": "2.4.6"}})
            >>> StackComparison.model_construct(
            ...     model={"packages": ["onnxruntime", "numpy"]}, baseline=arm, candidate=new
            ... ).differences()
            {'onnxruntime': ('1.31.1', '1.32.0')}
        """
        a, b = self.baseline.packages, self.candidate.packages
        needed = set(self.model.get("packages", ("numpy",)))
        return {
            name: (a.get(name), b.get(name))
            for name in sorted(set(a) | set(b))
            if a.get(name) != b.get(name) and ((name in a and name in b) or name in needed)
        }

    def only_in_baseline(self) -> list[str]:
        """Distributions the baseline has and the candidate lacks, not needed by the model."""
        a, b = self.baseline.packages, self.candidate.packages
        return sorted(set(a) - set(b) - set(self.differences()))

    def _change_text(self) -> str:
        diffs = self.differences()
        needed = self.model.get("packages", ())
        main = [n for n in diffs if n in needed] or list(diffs)
        return ", ".join(f"{n} {diffs[n][0] or '-'} -> {diffs[n][1] or '-'}" for n in main[:4]) + (
            f" (+{len(main) - 4} more)" if len(main) > 4 else ""
        )

    def report(self, *, cost: Any = None) -> Report:
        """The verdict as findings.

        - ``dependency.rot`` (WARNING): the candidate stack is faster — staying
          on the old one is a tax; with a :class:`~silenttax.cost.CostModel`,
          the saving per 1000 inferences (single-stream capacity cost);
        - ``dependency.upgrade_regression`` (WARNING): the candidate is slower —
          do not upgrade blindly;
        - ``dependency.stack_equivalent`` (OK) or ``dependency.stack_inconclusive``
          (INFO, with the pairs that would resolve it); ``dependency.stack_aa``
          instead for an A/A self-test (WARNING when it called identical stacks
          different);
        - ``dependency.output_change`` (WARNING when the outputs differ beyond
          tolerance: a faster stack that changes results is not a free upgrade);
        - ``dependency.cold_start`` (INFO): load and first-call times per arm;
        - ``dependency.version_change`` per differing distribution, and
          ``dependency.environment``: the CPU the result holds for.

        Args:
            cost: A ``CostModel`` to price the change per 1000 inferences.
        """
        findings = [self._verdict_finding(cost)]
        if self.outputs is not None:
            findings.append(self._output_finding())
        findings.append(self._cold_start_finding())
        change = f"{(self.ratio - 1) * 100:+.1f}%"
        for name, (old, new) in self.differences().items():
            findings.append(
                make_finding(
                    "dependency.version_change",
                    severity=Severity.INFO,
                    subject=name,
                    message=f"{name}: {old or 'not installed'} -> {new or 'not installed'} "
                    f"(the stacks together measured {change})",
                    evidence={"from": old, "to": new, "ratio": self.ratio},
                    detector="benchmark.StackComparison",
                )
            )
        findings.append(self._cpu_finding())
        return Report(
            findings=findings,
            source="benchmark.StackComparison.report",
            environment=self.environment.model_dump(mode="json"),
        )

    def _verdict_finding(self, cost: Any) -> Finding:
        lo, hi = self.ci
        k = len(self.pair_log_ratios)
        ci_text = (
            f"{self.confidence:.0%} CI {(lo - 1) * 100:+.1f}% to {(hi - 1) * 100:+.1f}%"
            if math.isfinite(hi)
            else "no CI from one pair"
        )
        change = self._change_text() or "no version differences"
        base_med = statistics.median(self.baseline.medians) if self.baseline.medians else math.nan
        cand_med = statistics.median(self.candidate.medians) if self.candidate.medians else math.nan
        evidence: dict[str, Any] = {
            "ci": list(self.ci),
            "verdict": self.verdict,
            "pairs": k,
            "pairs_needed": self.pairs_needed,
            "equivalence": self.equivalence,
            "between_pair_sd": self.between_pair_sd,
            "within_pair_se": float(np.mean(self.pair_within_se)) if self.pair_within_se else None,
            "baseline_latency": base_med,
            "candidate_latency": cand_med,
            "aa": self.aa,
            "differences": {k: list(v) for k, v in self.differences().items()},
            "only_in_baseline": self.only_in_baseline(),
        }
        head = (
            f"candidate stack ({change}) vs baseline: latency x{self.ratio:.3f} ({ci_text}, "
            f"{k} pair{'s' if k != 1 else ''} of processes; "
            f"p50 {_dur(base_med)} -> {_dur(cand_med)})"
        )
        recommendation = None
        if self.aa:
            false_alarm = self.verdict in ("faster", "slower")
            code = "dependency.stack_aa"
            severity = Severity.WARNING if false_alarm else Severity.OK
            message = (
                f"A/A self-test (the same environment on both arms): latency x{self.ratio:.3f} "
                f"({ci_text}, {k} pairs): verdict {self.verdict}"
                + (
                    ": a false alarm, so this machine is too noisy for this many pairs"
                    if false_alarm
                    else ", as it should be"
                )
            )
            if false_alarm:
                recommendation = (
                    "Use more pairs or a quieter machine before trusting a stack check here."
                )
        elif self.verdict == "faster":
            code, severity = "dependency.rot", Severity.WARNING
            saving = 1 - self.ratio
            message = (
                f"{head}: the newer stack is {saving:.1%} faster — dependency rot, upgrading pays"
            )
            if cost is not None and math.isfinite(base_med) and base_med > 0:
                batch = int(self.model.get("batch", 1) or 1)
                before = cost.cost_per_1k(throughput=batch / base_med)
                after = cost.cost_per_1k(throughput=batch / cand_med)
                message += (
                    f"; {before - after:.4g} {cost.currency} saved per 1000 inferences "
                    f"({before:.4g} -> {after:.4g}, capacity cost, one stream)"
                )
                evidence.update(
                    cost_per_1k_before=before, cost_per_1k_after=after, currency=cost.currency
                )
            recommendation = (
                "Upgrade (check the outputs finding first), and re-run this check on the "
                "production CPU."
            )
        elif self.verdict == "slower":
            code, severity = "dependency.upgrade_regression", Severity.WARNING
            message = (
                f"{head}: the newer stack is {self.ratio - 1:.1%} slower — do not upgrade blindly"
            )
            recommendation = (
                "Hold the upgrade or pin the slower component; profile both stacks "
                "(silenttax.profile) to find the operator that regressed."
            )
        elif self.verdict == "equivalent":
            code, severity = "dependency.stack_equivalent", Severity.OK
            message = f"{head}: equivalent within ±{self.equivalence:.0%}"
        else:
            code, severity = "dependency.stack_inconclusive", Severity.INFO
            more = (
                f"about {self.pairs_needed} pairs at this spread would resolve it"
                if self.pairs_needed
                else "more pairs will not resolve it at this spread: the estimate sits on "
                "the margin"
            )
            message = f"{head}: inconclusive at ±{self.equivalence:.0%}; {more}"
            recommendation = (
                f"Re-run with pairs={self.pairs_needed}." if self.pairs_needed else None
            )
        return make_finding(
            code,
            severity=severity,
            subject="stack",
            message=message,
            metric="latency_ratio",
            value=self.ratio,
            baseline=1.0,
            p_value=self.p_value,
            effect_size=self.ratio,
            evidence=evidence,
            recommendation=recommendation,
            detector="benchmark.StackComparison",
        )

    def _output_finding(self) -> Finding:
        out = self.outputs
        assert out is not None
        figures = (
            f"max abs diff {out.max_abs:.3g}, max rel diff {out.max_rel:.3g}"
            if out.max_abs is not None and out.max_rel is not None
            else out.reason or ""
        )
        return make_finding(
            "dependency.output_change",
            severity=Severity.OK if out.match else Severity.WARNING,
            subject="outputs",
            message=(
                f"outputs {'match' if out.match else 'differ'} on the example inputs "
                f"({out.outputs} output(s); {figures}; rtol {out.rtol:g}, atol {out.atol:g})"
            ),
            metric="max_abs_diff",
            value=out.max_abs,
            threshold=out.atol,
            evidence=out.model_dump(mode="json"),
            recommendation=(
                None
                if out.match
                else "The stacks compute different results: validate accuracy on real data "
                "before acting on the speed verdict."
            ),
            detector="benchmark.StackComparison",
        )

    def _cold_start_finding(self) -> Finding:
        def text(arm: StackArm) -> str:
            if not arm.load_seconds:
                return f"{arm.label}: not measured"
            return (
                f"{arm.label} load {_dur(statistics.median(arm.load_seconds))}, first call "
                f"{_dur(statistics.median(arm.first_call_seconds))}"
            )

        return make_finding(
            "dependency.cold_start",
            severity=Severity.INFO,
            subject="cold start",
            message=(
                "cold start (median over pairs, kept apart from steady state): "
                f"{text(self.baseline)}; {text(self.candidate)}"
            ),
            evidence={
                arm.label: {
                    "load_seconds": arm.load_seconds,
                    "first_call_seconds": arm.first_call_seconds,
                }
                for arm in (self.baseline, self.candidate)
            },
            detector="benchmark.StackComparison",
        )

    def _cpu_finding(self) -> Finding:
        env = self.environment
        build = {
            f"{arm.label}.{k}": v
            for arm in (self.baseline, self.candidate)
            for k, v in arm.build.items()
        }
        capability = build.get("candidate.torch.cpu_capability") or build.get(
            "baseline.torch.cpu_capability"
        )
        return make_finding(
            "dependency.environment",
            severity=Severity.OK,
            subject="cpu",
            message=(
                f"measured on {env.cpu_model} ({', '.join(env.cpu_flags) or 'no listed'} flags"
                + (f"; torch dispatches {capability}" if capability else "")
                + f"), cores {self.cores or 'all'}: the verdict holds for this CPU only — "
                "version regressions are often tied to one ISA"
            ),
            evidence={
                "cpu_model": env.cpu_model,
                "cpu_flags": env.cpu_flags,
                "cores": self.cores,
                **build,
            },
            detector="benchmark.StackComparison",
        )


def _arm_env(
    side: Mapping[str, str] | str | os.PathLike[str],
    label: str,
    spec: ModelSpec,
    *,
    current: Mapping[str, str],
    requirements: Sequence[str],
    env_cache: str | os.PathLike[str] | None,
    installer: Installer,
    index: Index,
    timeout: float,
) -> StackEnv:
    import sys

    if isinstance(side, str) and side == "current":
        return StackEnv(sys.executable, "current")
    if isinstance(side, str | os.PathLike):
        path = Path(side)
        if not path.exists():
            raise InputError(
                f"{label}: {str(side)!r} is neither 'current', a mapping of pins nor an interpreter"
            )
        return StackEnv(str(path), "existing")
    if not isinstance(side, Mapping) or not side:
        raise InputError(f"{label}: give a mapping of pins such as {{'onnxruntime': 'latest'}}")
    wanted: dict[str, str] = {p: "current" for p in spec.packages() if p in current}
    wanted.update({str(k): str(v) for k, v in side.items()})
    pins = resolve_pins(wanted, current=current, index=index)
    reqs = [f"{name}{pin}" for name, pin in pins.items()] + list(requirements)
    return build_env(reqs, env_cache=env_cache, installer=installer, index=index, timeout=timeout)


def compare_stacks(
    spec: ModelSpec,
    *,
    candidate: Mapping[str, str] | str | os.PathLike[str],
    baseline: Mapping[str, str] | str | os.PathLike[str] = "current",
    pairs: int = 6,
    rounds: int = 30,
    block_time: float = 0.005,
    warmup: float = 0.5,
    equivalence: float = 0.05,
    confidence: float = 0.95,
    max_time: float = 900.0,
    timeout: float = 300.0,
    output_rtol: float = 1e-4,
    output_atol: float = 1e-5,
    requirements: Sequence[str] = (),
    env_cache: str | os.PathLike[str] | None = None,
    installer: Installer = "auto",
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    find_links: Sequence[str] = (),
    progress: Progress | None = None,
) -> StackComparison:
    """Benchmark the same model on the baseline stack and a candidate stack, each in
    its own worker process, and decide over ``pairs`` pairs of fresh processes.

    The candidate environment is built from resolved pins (``"latest"`` asks the
    package index, ``"current"`` copies the baseline's version, a version or
    specifier is taken as given; the model's runtime and numpy are pinned to the
    baseline's versions unless named), with uv when available (pip
    otherwise), on this Python, cached by the hash of the pins. Both arms run
    as subprocesses (the baseline too, so both pay the same process costs),
    with the spec's thread settings and the same core set; inside each pair
    they alternate warm blocks of about ``block_time`` seconds, ``rounds``
    times. Outputs on the example inputs are compared, so a faster stack that
    changes results is flagged.

    Args:
        spec: The model, its inputs and settings (:class:`ModelSpec`).
        candidate: Pins such as ``{"onnxruntime": "latest", "torch": "==2.14.0"}``,
            an existing interpreter's path, or ``"current"`` for an A/A self-test
            (the same environment on both arms: any faster/slower is a false alarm).
        baseline: ``"current"`` (this interpreter), pins, or an interpreter's path.
        pairs: Pairs of fresh processes (at least 2; 6 by default).
        rounds: Interleaved rounds (one block per arm) in each pair.
        block_time: Seconds per block (calls per block are set from the warm-up).
        warmup: Seconds of warm-up calls per worker before measuring.
        equivalence: Margin δ: a change within ±δ is no change.
        confidence: Confidence level of the ratio's CI.
        max_time: Budget in seconds for the pairs (builds not included): later
            pairs are skipped once it is spent (at least 2 run; noted).
        timeout: Seconds any one worker request (or an install) may take.
        output_rtol: Relative tolerance of the outputs check.
        output_atol: Absolute tolerance of the outputs check.
        requirements: More requirements for built environments (the user's own
            package, e.g. ``"./myproject"``, for a torch or python factory).
        env_cache: Where built environments are kept (default
            ``~/.cache/silenttax/envs``).
        installer: ``"auto"`` (uv when available), ``"uv"`` or ``"pip"``.
        index_url: Replace the primary package index.
        extra_index_urls: More package indexes.
        find_links: Local wheel directories.
        progress: Called with (fraction done, message) as the check advances.

    Raises:
        InputError: bad arguments or an unknown package for ``"current"``.
        StackError: an environment could not be built, or a worker crashed,
            hung or broke the protocol (it is killed; the message names the arm).

    Examples:
        >>> import numpy as np, onnx
        >>> from onnx import helper, TensorProto
        >>> graph = helper.make_graph(
        ...     [helper.make_node("Relu", ["x"], ["y"])], "g",
        ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])],
        ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])])
        >>> spec = ModelSpec.onnx(helper.make_model(graph), inputs={"x": np.ones(64, np.float32)},
        ...                       threads=1)
        >>> aa = compare_stacks(spec, candidate="current", pairs=2, rounds=10, warmup=0.05)
        >>> aa.aa, len(aa.pair_log_ratios), aa.outputs.match
        (True, 2, True)
    """
    if not isinstance(spec, ModelSpec):
        raise InputError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    for name, value, low in (("pairs", pairs, 2), ("rounds", rounds, 2)):
        if not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be an int >= {low}, got {value!r}")
    for name, number in (("block_time", block_time), ("max_time", max_time), ("timeout", timeout)):
        if not (isinstance(number, int | float) and number > 0 and math.isfinite(number)):
            raise InputError(f"{name} must be a positive number, got {number!r}")
    if not (isinstance(warmup, int | float) and warmup >= 0):
        raise InputError(f"warmup must be a number >= 0, got {warmup!r}")
    if not 0 < equivalence < 1 or not 0 < confidence < 1:
        raise InputError(
            f"need 0 < equivalence < 1 and 0 < confidence < 1, got {equivalence!r}, {confidence!r}"
        )
    report = progress or (lambda fraction, message: None)
    began = time.perf_counter()
    current = installed_versions()
    index = Index(index_url, tuple(extra_index_urls), tuple(find_links))
    common = {
        "current": current,
        "requirements": requirements,
        "env_cache": env_cache,
        "installer": installer,
        "index": index,
        "timeout": max(timeout, 600.0),
    }
    report(0.0, "preparing the baseline environment")
    base_env = _arm_env(baseline, "baseline", spec, **common)  # type: ignore[arg-type]
    report(0.05, "preparing the candidate environment")
    aa = isinstance(candidate, str) and candidate == "current" and base_env.source == "current"
    if base_env.source != "current":  # "current" pins of the candidate copy the baseline's
        common["current"] = installed_versions(base_env.python)
    cand_env = _arm_env(candidate, "candidate", spec, **common)  # type: ignore[arg-type]
    envs = (base_env, cand_env)
    cores = (
        list(spec.cores)
        if spec.cores
        else sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else []
    )
    notes: list[str] = []
    arms: list[dict[str, Any]] = [
        {"load": [], "first": [], "medians": [], "blocks": []} for _ in envs
    ]
    pair_logs: list[float] = []
    pair_se: list[float] = []
    blocks: list[int] = []
    outputs: OutputDiff | None = None
    facts: list[dict[str, Any]] = [{}, {}]
    with tempfile.TemporaryDirectory(prefix="silenttax-stack-") as tmp:
        spec_path = spec.write(Path(tmp) / "spec")
        loop_began = time.perf_counter()
        for k in range(pairs):
            spent = time.perf_counter() - loop_began
            if k >= 2 and spent / k * (k + 1) > max_time:
                notes.append(
                    f"stopped after {k} of {pairs} pairs: max_time={max_time:g} s was spent"
                )
                break
            report(0.1 + 0.85 * k / pairs, f"pair {k + 1}/{pairs}")
            order = (0, 1) if k % 2 == 0 else (1, 0)
            workers: list[Worker | None] = [None, None]
            try:
                for i in order:
                    workers[i] = Worker(
                        envs[i].python,
                        label=_LABELS[i],
                        cores=cores,
                        threads=spec.threads,
                        timeout=timeout,
                    )
                live = [w for w in workers if w is not None]
                assert len(live) == 2
                for i in order:
                    answer = live[i].request("load", spec=str(spec_path))
                    arms[i]["load"].append(float(answer["load_s"]))
                    arms[i]["first"].append(float(answer["first_call_s"]))
                per_call = 1e-9
                for i in order:
                    answer = live[i].request("warmup", seconds=warmup)
                    per_call = max(per_call, float(answer["median_ns"]) * 1e-9)
                calls = max(1, min(10_000, int(block_time / per_call)))
                blocks.append(calls)
                medians: list[list[float]] = [[], []]
                for r in range(rounds):
                    for i in order if r % 2 == 0 else order[::-1]:
                        ns = live[i].request("block", calls=calls)["ns"]
                        medians[i].append(max(float(np.median(ns)), 1.0) * 1e-9)
                logs = np.log(np.asarray(medians[1]) / np.asarray(medians[0]))
                estimate = hodges_lehmann(logs, 0.95)[0]
                pair_logs.append(float(estimate))
                pair_se.append(float(np.std(logs, ddof=1) / math.sqrt(len(logs))))
                for i in (0, 1):
                    arms[i]["medians"].append(float(np.median(medians[i])))
                    arms[i]["blocks"].append(medians[i])
                if k == 0:
                    files: list[list[np.ndarray[Any, Any]]] = []
                    for i in (0, 1):
                        facts[i] = live[i].request("env")
                        answer = live[i].request("outputs", dir=str(Path(tmp) / f"out{i}"))
                        files.append([np.load(f, allow_pickle=False) for f in answer["files"]])
                    outputs = _diff_outputs(files[0], files[1], output_rtol, output_atol)
            finally:
                for w in workers:
                    if w is not None:
                        w.close()
    versions = [facts[i].get("python", "") for i in (0, 1)]
    if versions[0].rsplit(".", 1)[0] != versions[1].rsplit(".", 1)[0]:
        notes.append(
            f"the arms run different Pythons ({versions[0]} vs {versions[1]}): the "
            "interpreter is part of the change"
        )
    decision = decide_pairs(pair_logs, equivalence=equivalence, confidence=confidence)
    report(1.0, f"done: {decision['verdict']}")
    stack_arms = [
        StackArm(
            label=_LABELS[i],
            python=envs[i].python,
            source=envs[i].source,
            requirements=list(envs[i].requirements),
            build_seconds=envs[i].build_seconds,
            cached=envs[i].cached,
            python_version=str(facts[i].get("python", "")),
            packages={str(k): str(v) for k, v in facts[i].get("packages", {}).items()},
            build={str(k): str(v) for k, v in facts[i].get("build", {}).items()},
            load_seconds=arms[i]["load"],
            first_call_seconds=arms[i]["first"],
            medians=arms[i]["medians"],
            blocks=arms[i]["blocks"],
        )
        for i in (0, 1)
    ]
    sd = decision["between_pair_sd"]
    return StackComparison(
        model=spec.describe(),
        baseline=stack_arms[0],
        candidate=stack_arms[1],
        pair_log_ratios=pair_logs,
        pair_within_se=pair_se,
        ratio=decision["ratio"],
        ci=decision["ci"],
        confidence=confidence,
        equivalence=equivalence,
        verdict=decision["verdict"],
        pairs_needed=decision["pairs_needed"],
        p_value=decision["p_value"],
        between_pair_sd=sd if math.isfinite(sd) else None,
        rounds=rounds,
        calls_per_block=blocks,
        outputs=outputs,
        aa=aa,
        cores=cores,
        elapsed_seconds=time.perf_counter() - began,
        notes=notes,
        environment=environment(),
    )
