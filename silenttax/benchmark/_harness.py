"""A credible benchmark harness: warm-up until stable, order statistics, interleaved A/B."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from silenttax._state import State
from silenttax._stats import hodges_lehmann_shift, quantile_rank_interval
from silenttax._system import torch_threads
from silenttax.benchmark._environment import Environment, environment
from silenttax.errors import InputError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_duration as _dur

__all__ = ["BenchmarkResult", "Comparison", "benchmark", "compare", "compare_results"]

_pc = time.perf_counter
#: Samples needed before a percentile is reported without a caveat (MLPerf LoadGen's rule).
MIN_SAMPLES = {"p90": 64, "p95": 130, "p99": 662}


def _call_checked(fn: Callable[[], Any], label: str) -> None:
    try:
        fn()
    except Exception as exc:
        raise InputError(f"{label} raised {type(exc).__name__}: {exc}") from exc


def _validate(fn: Any, label: str) -> None:
    if not callable(fn):
        raise InputError(
            f"{label} must be callable (pass a lambda or functools.partial), got "
            f"{type(fn).__name__}"
        )


def _warm_up(fns: list[Callable[[], Any]], warmup: int | Literal["auto"], budget: float) -> int:
    """Warm up: a fixed count, or blocks until the running median stops improving."""
    if warmup != "auto":
        if not isinstance(warmup, int) or warmup < 0:
            raise InputError(f"warmup must be 'auto' or an int >= 0, got {warmup!r}")
        for _ in range(warmup):
            for fn in fns:
                fn()
        return warmup
    deadline = _pc() + budget
    calls = 0
    previous = math.inf
    while True:
        block = []
        for _ in range(5):
            for fn in fns:
                start = _pc()
                fn()
                block.append(_pc() - start)
            calls += 1
        median = statistics.median(block)
        if (previous - median) <= 0.05 * previous and calls >= 10:
            return calls
        previous = min(previous, median)
        if _pc() >= deadline:
            return calls


class BenchmarkResult(State):
    """Per-call latencies of one function and what they say (seconds throughout)."""

    KIND: ClassVar[str] = "silenttax.benchmark_result"

    name: str
    """What was measured."""
    samples: list[float]
    """Per-call latencies in call order, seconds."""
    p50: float
    """Median latency."""
    p90: float
    """90th percentile (see ``warnings`` when samples are too few)."""
    p95: float
    """95th percentile."""
    p99: float
    """99th percentile."""
    mean: float
    """Mean latency."""
    iqr: float
    """Interquartile range."""
    min: float
    """Fastest call."""
    max: float
    """Slowest call."""
    throughput: float
    """Calls (or items, with ``batch_size``) per second: batch / mean latency."""
    batch_size: int = 1
    """Items per call."""
    ci_median: tuple[float, float] | None = None
    """95% order-statistic CI of the median."""
    ci_p99: tuple[float, float] | None = None
    """95% order-statistic CI of p99 (None: too few samples)."""
    noise: float
    """IQR / median (torch.utils.benchmark warns above 0.10)."""
    warmup_calls: int
    """Calls made before measuring."""
    wall_time: float
    """Seconds spent measuring."""
    cpu_time: float
    """Process CPU seconds spent measuring (all threads)."""
    peak_rss: int | None = None
    """Peak resident memory during the run, bytes (sampled every 10 ms)."""
    threads: int | None = None
    """torch intra-op threads set for the run, if any."""
    warnings: list[str] = Field(default_factory=list)
    """Caveats of the measurement itself (too few samples for a percentile); whether the
    run was too noisy is judged by :meth:`report` with its ``max_noise``."""
    environment: Environment
    """Where it ran."""

    @model_validator(mode="before")
    @classmethod
    def _drop_frozen_verdict(cls, data: Any) -> Any:
        """Files from before the noise verdict moved to :meth:`report` still load."""
        if isinstance(data, dict) and "noisy" in data:
            data = {k: v for k, v in data.items() if k != "noisy"}
            data["warnings"] = [w for w in data.get("warnings", []) if not w.startswith("noisy")]
        return data

    @property
    def noisy(self) -> bool:
        """Whether ``noise`` exceeds 0.10 (``report(max_noise=)`` judges with your limit)."""
        return self.noise > 0.10

    def report(self, *, max_noise: float = 0.10) -> Report:
        """``latency.benchmark``: the figures; WARNING when the run was too noisy to trust
        (IQR / median above ``max_noise``)."""
        noisy = self.noise > max_noise
        message = (
            f"{self.name}: p50 {_dur(self.p50)} (95% CI {_dur(self.ci_median[0])}-"
            f"{_dur(self.ci_median[1])}), p99 {_dur(self.p99)}, {self.throughput:.4g}/s over "
            f"{len(self.samples)} calls; noise {self.noise:.1%}"
            if self.ci_median
            else f"{self.name}: p50 {_dur(self.p50)} over {len(self.samples)} calls"
        )
        caveats = [*self.warnings]
        if noisy:
            caveats.append(f"noisy run: IQR is {self.noise:.0%} of the median")
        if caveats:
            message += "; " + "; ".join(caveats)
        finding = make_finding(
            "latency.benchmark",
            severity=Severity.WARNING if noisy else Severity.OK,
            subject=self.name,
            message=message,
            metric="p50",
            value=self.p50,
            unit="s",
            evidence={
                "p90": self.p90,
                "p95": self.p95,
                "p99": self.p99,
                "noise": self.noise,
                "samples": len(self.samples),
                "ci_median": list(self.ci_median) if self.ci_median else None,
            },
            recommendation=(
                "The machine was noisy: rerun on a quiet machine or compare interleaved "
                "(silenttax.benchmark.compare)."
                if noisy
                else None
            ),
            detector="benchmark.BenchmarkResult",
        )
        return Report(
            findings=[finding],
            source="benchmark.BenchmarkResult.report",
            environment=self.environment.model_dump(mode="json"),
        )


def _summarize(
    name: str,
    samples: list[float],
    *,
    batch_size: int,
    warmup_calls: int,
    wall: float,
    cpu: float,
    peak_rss: int | None,
    threads: int | None,
    env: Environment,
) -> BenchmarkResult:
    x = np.asarray(samples, dtype=float)
    ordered = np.sort(x)
    p = np.quantile(x, [0.25, 0.5, 0.75, 0.9, 0.95, 0.99])
    n = x.size
    warnings = [
        f"{n} samples are too few for a reliable {label} (need >= {need})"
        for label, need in MIN_SAMPLES.items()
        if n < need
    ]

    def ci(q: float) -> tuple[float, float] | None:
        ranks = quantile_rank_interval(n, q)
        return None if ranks is None else (float(ordered[ranks[0]]), float(ordered[ranks[1]]))

    noise = float((p[2] - p[0]) / p[1]) if p[1] > 0 else 0.0
    mean = float(x.mean())
    return BenchmarkResult(
        name=name,
        samples=x.tolist(),
        p50=float(p[1]),
        p90=float(p[3]),
        p95=float(p[4]),
        p99=float(p[5]),
        mean=mean,
        iqr=float(p[2] - p[0]),
        min=float(ordered[0]),
        max=float(ordered[-1]),
        throughput=batch_size / mean if mean > 0 else math.inf,
        batch_size=batch_size,
        ci_median=ci(0.5),
        ci_p99=ci(0.99),
        noise=noise,
        warmup_calls=warmup_calls,
        wall_time=wall,
        cpu_time=cpu,
        peak_rss=peak_rss,
        threads=threads,
        warnings=warnings,
        environment=env,
    )


def _check_budget(min_samples: int, min_time: float | None, max_time: float) -> float:
    """Validate the budget; returns ``min_time`` (not given: 1 s, or ``max_time`` when
    that is shorter — a user who gives only a maximum means "at most")."""
    if min_time is None:
        min_time = min(1.0, max_time) if max_time > 0 else 1.0
    if not isinstance(min_samples, int) or min_samples < 1:
        raise InputError(f"min_samples must be an int >= 1, got {min_samples!r}")
    if not (min_time >= 0 and max_time > 0 and max_time >= min_time):
        raise InputError(
            f"need 0 <= min_time <= max_time and max_time > 0, got "
            f"min_time={min_time!r}, max_time={max_time!r}"
        )
    return min_time


def benchmark(
    fn: Callable[[], Any],
    *,
    warmup: int | Literal["auto"] = "auto",
    min_samples: int = 100,
    min_time: float | None = None,
    max_time: float = 10.0,
    threads: int | None = None,
    batch_size: int = 1,
    name: str | None = None,
    memory: bool = True,
) -> BenchmarkResult:
    """Time ``fn()`` call by call, credibly.

    Warm-up runs in blocks until the running median stops improving (or a
    fixed count); then calls are timed one by one with ``perf_counter`` until
    both ``min_samples`` and ``min_time`` are met, or ``max_time`` is hit
    (MLPerf LoadGen's rule). The result keeps every sample and reports
    p50/p90/p95/p99, order-statistic CIs, IQR/median noise, throughput, CPU
    time and peak RSS, with caveats when there are too few samples for a
    percentile (< 662 for p99).

    Args:
        fn: The callable to time (use a lambda or ``functools.partial`` for arguments).
        warmup: ``"auto"`` or a number of calls.
        min_samples: Fewest timed calls.
        min_time: Fewest seconds of timed calls (default 1 s, or ``max_time`` if shorter).
        max_time: Most seconds of timed calls.
        threads: torch intra-op threads during the run (restored afterwards).
        batch_size: Items per call (for throughput).
        name: Label for reports (default: the function's name).
        memory: Sample RSS every 10 ms in a background thread.

    Raises:
        InputError: ``fn`` is not callable, raises, or the budget is invalid.

    Examples:
        >>> result = benchmark(lambda: sum(range(1000)), min_samples=200, min_time=0.05)
        >>> len(result.samples) >= 200, result.p50 <= result.p99
        (True, True)
    """
    _validate(fn, "fn")
    min_time = _check_budget(min_samples, min_time, max_time)
    label = name or str(getattr(fn, "__name__", "fn"))
    with torch_threads(threads):
        _call_checked(fn, label)
        warm = _warm_up([fn], warmup, max(0.5, 0.2 * max_time))
        samples, wall, cpu, peak = _measure(fn, min_samples, min_time, max_time, memory)
    return _summarize(
        label,
        samples,
        batch_size=batch_size,
        warmup_calls=warm,
        wall=wall,
        cpu=cpu,
        peak_rss=peak,
        threads=threads,
        env=environment(),
    )


def _measure(
    fn: Callable[[], Any], min_samples: int, min_time: float, max_time: float, memory: bool
) -> tuple[list[float], float, float, int | None]:
    from silenttax.monitor import ResourceMonitor

    monitor = ResourceMonitor(interval=0.01, gpu=False, uss=False).start() if memory else None
    samples: list[float] = []
    append = samples.append
    cpu0 = time.process_time()
    began = _pc()
    stop_at = began + max_time
    now = began
    while (len(samples) < min_samples or now - began < min_time) and now < stop_at:
        start = _pc()
        fn()
        now = _pc()
        append(now - start)
    wall = now - began
    cpu = time.process_time() - cpu0
    peak = None
    if monitor is not None:
        monitor.stop()
        peak = max((s.rss for s in monitor.samples), default=None)
    return samples, wall, cpu, peak


class Comparison(State):
    """Baseline vs candidate: the latency ratio with a confidence interval."""

    KIND: ClassVar[str] = "silenttax.comparison"

    baseline: BenchmarkResult
    """The baseline's samples and figures."""
    candidate: BenchmarkResult
    """The candidate's samples and figures."""
    ratio: float
    """Candidate / baseline median latency (> 1: the candidate is slower)."""
    ci: tuple[float, float]
    """Confidence interval of ``ratio``."""
    confidence: float = 0.95
    """Confidence level of ``ci``."""
    p_value: float | None
    """Two-sided p-value of "no difference" (None when no valid test exists: one
    process per side)."""
    method: str
    """How ``ci`` and ``p_value`` were computed."""
    rounds: int = 0
    """Interleaved rounds (0 for results measured separately)."""
    scope: Literal["interleaved", "within_process", "between_processes"] = "interleaved"
    """What noise ``ci`` covers: ``interleaved`` (one process, rounds alternating:
    each round is its own control), ``within_process`` (one separate process per
    side: the CI leaves out between-process variance, so no significance is
    claimed), ``between_processes`` (several processes per side: tested on
    per-process medians)."""
    process_medians: list[list[float]] | None = None
    """Per side, the median latency of each process (``between_processes`` only)."""
    calls_per_round: int | None = None
    """Calls of each side per round (``interleaved``; None in files from before it was kept:
    then ``len(samples) // rounds``)."""
    round_contended: list[bool] | None = None
    """Per round, whether the machine was busy (another process held a core the
    measurement needed, or tasks stalled or were stolen from: see :attr:`contention`).
    Contended rounds are left out of the verdict."""
    contention: dict[str, Any] | None = None
    """What the machine did during the run: blocks sensed, contended share, median
    cores used by other processes, CPU stall and steal shares."""

    def quiet_rounds(self) -> Any:
        """Boolean per round: rounds the verdict uses (None: too few quiet rounds to
        judge, the machine was busy for most of the run)."""
        from silenttax._contention import quiet_rounds

        return quiet_rounds(self.round_contended or [], self.rounds)

    @property
    def round_calls(self) -> int:
        """Calls of each side per round (derived for files from before it was kept)."""
        return self.calls_per_round or max(1, len(self.baseline.samples) // max(self.rounds, 1))

    @property
    def contended_share(self) -> float:
        """Share of the rounds measured while the machine was busy (0 when not sensed)."""
        flags = self.round_contended or []
        return sum(flags) / len(flags) if flags else 0.0

    @property
    def busy(self) -> bool:
        """The machine was busy for so much of the run that no verdict can be drawn."""
        return self.scope == "interleaved" and self.quiet_rounds() is None

    def paired(self, q: float, statistic: Any = None) -> tuple[float, float, int] | None:
        """Paired log ratio of the ``q``-quantile over batches of quiet rounds.

        ``(mean log ratio, its standard error, batches)`` from
        :func:`silenttax._interleave.paired_batches` (candidate minus baseline per
        batch of rounds, both sides measured in the same seconds); None when the
        comparison is not interleaved, the machine was busy, or fewer than 2 batches.
        ``statistic`` replaces the log quantile (a function of one batch's samples).
        """
        from silenttax._interleave import paired_batches

        keep = self.quiet_rounds() if self.scope == "interleaved" else None
        if keep is None or self.rounds < 4:
            return None
        calls = self.round_calls

        def log_quantile(x: Any) -> float:
            return math.log(max(float(np.quantile(x, q)), 1e-12))

        diffs = paired_batches(
            self.baseline.samples,
            self.candidate.samples,
            calls,
            statistic or log_quantile,
            keep=keep,
        )
        if diffs.size < 2:
            return None
        return float(diffs.mean()), float(diffs.std(ddof=1) / math.sqrt(diffs.size)), diffs.size

    @classmethod
    def from_rounds(
        cls,
        baseline: Sequence[float],
        candidate: Sequence[float],
        *,
        rounds: int,
        calls_per_round: int,
        round_contended: Sequence[bool] = (),
        loads: Sequence[Any] = (),
        names: tuple[str, str] = ("baseline", "candidate"),
        wall_time: float = 0.0,
        threads: int | None = None,
        confidence: float = 0.95,
    ) -> Comparison:
        """A Comparison of two callables you interleaved yourself: per-call latencies
        (seconds) in call order, ``calls_per_round`` of each per round; optionally a
        contention flag per round and the :class:`silenttax._contention.Load` of each
        sensed window. The ratio is the paired estimate over quiet rounds, as
        :func:`compare` computes it.

        Raises:
            InputError: fewer than ``rounds * calls_per_round`` samples on a side.

        Examples:
            >>> import numpy as np
            >>> a = np.tile([1e-3, 2e-3], 50)
            >>> c = Comparison.from_rounds(a, 1.2 * a, rounds=50, calls_per_round=2)
            >>> round(c.ratio, 3), c.rounds
            (1.2, 50)
        """
        if calls_per_round < 1 or rounds < 1:
            raise InputError("rounds and calls_per_round must be >= 1")
        need = rounds * calls_per_round
        sides = [list(map(float, baseline)), list(map(float, candidate))]
        for label, side in zip(("baseline", "candidate"), sides, strict=True):
            if len(side) < need:
                raise InputError(f"{label}: {len(side)} samples, {need} needed for {rounds} rounds")
        return _comparison(
            names, sides, rounds, calls_per_round, list(round_contended), list(loads), 0,
            wall_time, 0.0, threads, environment(), confidence,
        )  # fmt: skip

    def report(self, *, min_effect: float = 0.05, critical_effect: float = 0.50) -> Report:
        """``latency.ab_regression`` (plus ``dependency.*`` when the environments differ).

        WARNING when the whole CI of the ratio is above ``1 + min_effect``
        (significant and material), CRITICAL when it is above
        ``1 + critical_effect``; an improvement is INFO; otherwise OK.

        Args:
            min_effect: Smallest material slowdown (0.05 = 5%).
            critical_effect: Slowdown that is CRITICAL (0.50 = 50%).

        Raises:
            InputError: not ``0 <= min_effect <= critical_effect``.
        """
        if not 0 <= min_effect <= critical_effect:
            raise InputError(
                f"need 0 <= min_effect <= critical_effect, got {min_effect!r}, {critical_effect!r}"
            )
        lo, hi = self.ci
        name = f"{self.candidate.name} vs {self.baseline.name}"
        change = f"{(self.ratio - 1) * 100:+.1f}%"
        ci_text = f"{self.confidence:.0%} CI {(lo - 1) * 100:+.1f}% to {(hi - 1) * 100:+.1f}%"
        p_text = "" if self.p_value is None else f", p = {self.p_value:.2g}"
        evidence: dict[str, Any] = {}
        if self.scope == "within_process":
            # One process per side: the CI covers only within-process noise, so it
            # cannot say the sides differ (between processes medians vary ~10%).
            severity = Severity.INFO if abs(self.ratio - 1) > min_effect else Severity.OK
            verdict = (
                "not decidable from one process per side: the CI leaves out between-process "
                "variance; measure several processes per side or use compare_stacks"
            )
            ci_text = ci_text.replace("CI", "within-process CI")
        elif self.scope == "interleaved":
            # The same paired test the gate runs, so this line and the gate never disagree.
            from silenttax.gate import performance_gate

            gate = performance_gate(self, max_p50_regression=min_effect)
            p50 = next(f for f in gate.findings if f.metric == "p50_ratio")
            decided = str(p50.evidence["verdict"])
            evidence = {"gate_verdict": decided, "reason": p50.evidence.get("reason")}
            if decided == "regression":
                lower = p50.value if p50.value is not None else 1.0
                lower = float(p50.evidence.get("ratio_lower", lower))  # type: ignore[arg-type]
                severity = Severity.CRITICAL if lower > 1 + critical_effect else Severity.WARNING
                verdict = "slower"
            elif hi < 1 and not self.busy:
                severity, verdict = Severity.INFO, "faster"
            elif decided == "pass":
                severity = Severity.OK
                verdict = f"no material difference (within +{min_effect:.0%})"
            else:
                severity = Severity.INFO
                verdict = "inconclusive: " + (
                    "machine busy" if self.busy else str(p50.evidence.get("need") or "too close")
                )
        elif lo > 1 + min_effect:
            severity = Severity.CRITICAL if lo > 1 + critical_effect else Severity.WARNING
            verdict = "slower"
        elif hi < 1:
            severity, verdict = Severity.INFO, "faster"
        else:
            severity, verdict = Severity.OK, "no material difference"
        findings: list[Finding] = [
            make_finding(
                "latency.ab_regression",
                severity=severity,
                subject=name,
                message=(
                    f"{name}: median latency {change} ({ci_text}{p_text}): "
                    f"{verdict}; p50 {_dur(self.baseline.p50)} -> {_dur(self.candidate.p50)}"
                ),
                metric="latency_ratio",
                value=self.ratio,
                baseline=1.0,
                threshold=1 + min_effect,
                p_value=self.p_value,
                effect_size=self.ratio,
                evidence={
                    "ci": list(self.ci),
                    "method": self.method,
                    "rounds": self.rounds,
                    "scope": self.scope,
                    "contention": self.contention,
                    **evidence,
                },
                recommendation=(
                    "The candidate is slower beyond min_effect: profile it "
                    "(silenttax.profile) before shipping."
                    if severity >= Severity.WARNING
                    else None
                ),
                detector="benchmark.Comparison",
            )
        ]
        findings.extend(self._dependencies(change, ci_text))
        return Report(
            findings=findings,
            source="benchmark.Comparison.report",
            environment=self.candidate.environment.model_dump(mode="json"),
        )

    def _dependencies(self, change: str, ci_text: str) -> list[Finding]:
        differences = self.baseline.environment.diff(self.candidate.environment)
        out = []
        for key, (old, new) in sorted(differences.items()):
            area = key.split(".", 1)[0]
            code = {
                "packages": "dependency.version_change",
                "threads": "dependency.thread_change",
            }.get(area, "dependency.platform_change")
            subject = key.split(".", 1)[1] if "." in key else key
            out.append(
                make_finding(
                    code,
                    severity=Severity.INFO,
                    subject=subject,
                    message=(
                        f"{subject}: {old} -> {new}; measured change with it: {change} ({ci_text})"
                    ),
                    evidence={"from": _plain(old), "to": _plain(new), "ratio": self.ratio},
                    detector="benchmark.Comparison",
                )
            )
        if out:
            versions = [f.subject for f in out if f.code == "dependency.version_change"]
            summary = (
                f"the environments differ in {len(out)} way(s)"
                + (f" (versions: {', '.join(versions)})" if versions else "")
                + f"; the {change} change is attributable to them together, not to any one"
            )
            out.insert(
                0,
                make_finding(
                    "dependency.environment_diff",
                    severity=Severity.INFO,
                    subject="environment",
                    message=summary,
                    metric="differences",
                    value=float(len(out)),
                    evidence={k: [_plain(a), _plain(b)] for k, (a, b) in differences.items()},
                    detector="benchmark.Comparison",
                ),
            )
        return out


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def compare(
    baseline_fn: Callable[[], Any],
    candidate_fn: Callable[[], Any],
    *,
    warmup: int | Literal["auto"] = "auto",
    min_rounds: int = 20,
    calls_per_round: int | None = None,
    min_time: float | None = None,
    max_time: float = 10.0,
    threads: int | None = None,
    confidence: float = 0.95,
    names: tuple[str, str] = ("baseline", "candidate"),
    until: Callable[[Comparison], bool] | None = None,
    progress: Callable[[Comparison, float], None] | None = None,
) -> Comparison:
    """A/B-compare two callables interleaved in the same time window.

    Each round runs ``calls_per_round`` calls of each, in alternating order
    (AB, BA, AB, ...), so machine noise hits both alike. While it runs, the
    machine's load is sensed every 0.1 s (:mod:`silenttax._contention`: other
    processes' CPU, CPU stall and steal): rounds measured while fewer cores
    were free than the run needs are flagged in ``round_contended`` and left
    out of the verdict; when they are most of the run the comparison is
    ``busy`` and no verdict is drawn ("inconclusive: machine busy").

    The ratio is the paired estimate: quiet rounds cut into 10 contiguous
    batches, per batch the log of candidate median over baseline median,
    their mean and its Student t interval (batch means: rounds are serially
    correlated, batches nearly not). The deployment gate tests the same
    statistic (:meth:`Comparison.paired`), so the two never disagree.

    With ``until``, the run is adaptive: after ``min_time`` and every
    second or so, ``until(comparison_so_far)`` is asked and the run stops
    when it returns True (for example, when the gate has decided every
    metric) or ``max_time`` is reached.

    Args:
        baseline_fn: The reference callable.
        candidate_fn: The callable under test.
        warmup: ``"auto"`` or a number of calls of each.
        min_rounds: Fewest rounds (at least 10).
        calls_per_round: Calls of each per round (default: about 5 ms worth).
        min_time: Fewest seconds of measurement (default 1 s, or ``max_time`` if shorter).
        max_time: Most seconds of measurement.
        threads: torch intra-op threads during the run (the cores the run needs;
            default: torch's current setting, or 1 without torch).
        confidence: Confidence level of the ratio's CI.
        names: Labels of the two callables.
        until: Stop early once this returns True for the comparison so far.
        progress: Called with the comparison so far and the seconds spent, at each
            ``until`` check (a progress line).

    Examples:
        >>> import time
        >>> def spin(seconds):
        ...     end = time.perf_counter() + seconds
        ...     while time.perf_counter() < end:
        ...         pass
        >>> c = compare(lambda: spin(2e-4), lambda: spin(3e-4), min_time=0.3)
        >>> 1.3 < c.ratio < 1.7 and c.ci[0] > 1
        True
    """
    from silenttax._contention import RoundLoads, Sensor
    from silenttax._system import intra_op_threads

    _validate(baseline_fn, "baseline_fn")
    _validate(candidate_fn, "candidate_fn")
    min_time = _check_budget(min_rounds, min_time, max_time)
    if min_rounds < 10:
        raise InputError(f"min_rounds must be >= 10 for a CI, got {min_rounds}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
    fns = [baseline_fn, candidate_fn]
    with torch_threads(threads):
        sensed = RoundLoads(Sensor(needed=threads or intra_op_threads() or 1))
        _call_checked(baseline_fn, names[0])
        _call_checked(candidate_fn, names[1])
        warm = _warm_up(fns, warmup, max(0.5, 0.2 * max_time))
        if calls_per_round is None:
            start = _pc()
            baseline_fn()
            candidate_fn()
            per_pair = max(_pc() - start, 1e-7)
            calls_per_round = max(1, min(100, int(0.005 / per_pair)))
        samples: list[list[float]] = [[], []]
        env = environment()
        cpu0 = time.process_time()
        began = _pc()
        next_check = began + min_time
        rounds = 0
        while True:
            now = _pc()
            if now - began >= max_time or (rounds >= min_rounds and now >= next_check):
                if now - began >= max_time or until is None:
                    break
                sensed.after(rounds, close=True)  # every round judged so far has its load
                partial = _comparison(
                    names, samples, rounds, calls_per_round, sensed.flags, sensed.loads, warm,
                    now - began, time.process_time() - cpu0, threads, env, confidence,
                )  # fmt: skip
                if progress is not None:
                    progress(partial, now - began)
                if until(partial):
                    break
                next_check = _pc() + max(1.0, 0.25 * (now - began))
            order = (0, 1) if rounds % 2 == 0 else (1, 0)
            for which in order:
                fn = fns[which]
                block = samples[which]
                for _ in range(calls_per_round):
                    start = _pc()
                    fn()
                    block.append(_pc() - start)
            rounds += 1
            sensed.after(rounds)  # the machine over ~0.1 s windows of rounds
        sensed.after(rounds, close=True)
        wall, cpu = _pc() - began, time.process_time() - cpu0
    if rounds < 10:
        raise InputError(
            f"only {rounds} rounds fit in max_time={max_time} s; raise max_time or make the "
            "calls cheaper"
        )
    return _comparison(
        names, samples, rounds, calls_per_round, sensed.flags, sensed.loads, warm, wall, cpu,
        threads, env, confidence,
    )  # fmt: skip


def _comparison(
    names: tuple[str, str],
    samples: list[list[float]],
    rounds: int,
    calls: int,
    contended: list[bool],
    loads: list[Any],
    warm: int,
    wall: float,
    cpu: float,
    threads: int | None,
    env: Environment,
    confidence: float,
) -> Comparison:
    """A Comparison of interleaved samples so far: the paired estimate over quiet rounds."""
    from scipy.stats import t

    from silenttax._contention import summarize

    results = [
        _summarize(
            names[i],
            samples[i][: rounds * calls],
            batch_size=1,
            warmup_calls=warm,
            wall=wall / 2,
            cpu=cpu / 2,
            peak_rss=None,
            threads=threads,
            env=env,
        )
        for i in (0, 1)
    ]
    flags = (contended + [False] * rounds)[:rounds]
    draft = Comparison(
        baseline=results[0],
        candidate=results[1],
        ratio=1.0,
        ci=(1.0, 1.0),
        confidence=confidence,
        p_value=None,
        method="paired batches of interleaved rounds",
        rounds=rounds,
        calls_per_round=calls,
        round_contended=flags,
        contention=summarize(loads),
    )
    paired = draft.paired(0.5)
    if paired is None:  # a busy machine: describe all rounds, judge none
        paired = draft.model_copy(update={"round_contended": None}).paired(0.5)
    if paired is None:
        return draft
    estimate, se, k = paired
    if se > 0:
        half = float(t.ppf(0.5 + confidence / 2, k - 1)) * se
        p_value = float(2 * t.sf(abs(estimate) / se, k - 1))
    else:
        half, p_value = 0.0, 1.0 if estimate == 0 else 0.0
    return draft.model_copy(
        update={
            "ratio": math.exp(estimate),
            "ci": (math.exp(estimate - half), math.exp(estimate + half)),
            "p_value": p_value,
            "method": (
                f"paired t over {k} batches of interleaved rounds (log ratio of batch "
                "medians, candidate / baseline; contended rounds left out)"
            ),
        }
    )


def compare_results(
    baseline: BenchmarkResult | Sequence[BenchmarkResult],
    candidate: BenchmarkResult | Sequence[BenchmarkResult],
    *,
    confidence: float = 0.95,
) -> Comparison:
    """Compare results measured separately (e.g. in two environments).

    Latency varies between processes far more than within one: on a shared
    2-core VM the medians of processes running the *same* code differed by
    8.6-11.1%, while a process median's own error was 1.1-1.7%. So the unit
    of comparison is the process:

    - **several results per side** (one per process): Welch's t on the log
      medians of the processes; ``scope="between_processes"``; this is a valid
      test of "the sides differ";
    - **one result per side**: the ratio comes from the two-sample
      Hodges-Lehmann shift of log latencies, and its interval covers only the
      noise *within* each process; ``scope="within_process"``, ``p_value`` is
      None and the report never calls the difference significant.

    Prefer :func:`compare` (interleaved, one process) when both can run side by
    side, and :func:`compare_stacks` (paired fresh processes) for two
    environments. The report lists environment differences as
    ``dependency.*`` findings.

    Raises:
        InputError: not BenchmarkResults, or one side has several results and
            the other one.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> env = environment()
        >>> def fake(name, scale):
        ...     s = (rng.lognormal(-7, 0.1, 500) * scale).tolist()
        ...     return _summarize(name, s, batch_size=1, warmup_calls=0, wall=1, cpu=1,
        ...                       peak_rss=None, threads=None, env=env)
        >>> one = compare_results(fake("old", 1.0), fake("new", 1.25))
        >>> one.scope, one.p_value, 1.2 < one.ratio < 1.3
        ('within_process', None, True)
        >>> many = compare_results([fake("old", s) for s in (1.0, 1.08, 0.95)],
        ...                        [fake("new", 1.25 * s) for s in (1.03, 0.92, 1.1)])
        >>> many.scope, many.ci[0] > 1
        ('between_processes', True)
    """
    sides = []
    for role, value in (("baseline", baseline), ("candidate", candidate)):
        results = [value] if isinstance(value, BenchmarkResult) else list(value)
        if not results or not all(isinstance(r, BenchmarkResult) for r in results):
            raise InputError(f"{role}: give a BenchmarkResult or a list of them")
        sides.append(results)
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
    if len(sides[0]) == 1 and len(sides[1]) == 1:
        a, b = np.log(sides[0][0].samples), np.log(sides[1][0].samples)
        estimate, lo, hi = hodges_lehmann_shift(a, b, confidence)
        return Comparison(
            baseline=sides[0][0],
            candidate=sides[1][0],
            ratio=math.exp(estimate),
            ci=(math.exp(lo), math.exp(hi)),
            confidence=confidence,
            p_value=None,
            method=(
                "two-sample Hodges-Lehmann on log latencies; the CI covers within-process "
                "noise only (one process per side), so no significance test is reported"
            ),
            rounds=0,
            scope="within_process",
        )
    if len(sides[0]) < 2 or len(sides[1]) < 2:
        raise InputError(
            "baseline, candidate: give one result per side, or at least two per side (one per "
            f"process), got {len(sides[0])} and {len(sides[1])}"
        )
    from scipy.stats import ttest_ind

    medians = [[float(np.median(r.samples)) for r in side] for side in sides]
    la, lb = np.log(medians[0]), np.log(medians[1])
    test = ttest_ind(lb, la, equal_var=False)
    interval = test.confidence_interval(confidence)
    estimate = float(lb.mean() - la.mean())
    lo_b, hi_b = float(interval.low), float(interval.high)
    if not (math.isfinite(lo_b) and math.isfinite(hi_b)):  # identical medians on a side
        lo_b = hi_b = estimate
    pooled = [_pool(side) for side in sides]
    return Comparison(
        baseline=pooled[0],
        candidate=pooled[1],
        ratio=math.exp(estimate),
        ci=(math.exp(lo_b), math.exp(hi_b)),
        confidence=confidence,
        p_value=float(test.pvalue) if math.isfinite(test.pvalue) else 1.0,
        method=(
            f"Welch t on per-process log medians ({len(la)} vs {len(lb)} processes); "
            "ratio of geometric means of the medians"
        ),
        rounds=0,
        scope="between_processes",
        process_medians=medians,
    )


def _pool(results: list[BenchmarkResult]) -> BenchmarkResult:
    """Several processes' results as one summary (for display; tests use the medians)."""
    first = results[0]
    samples = [x for r in results for x in r.samples]
    return _summarize(
        first.name,
        samples,
        batch_size=first.batch_size,
        warmup_calls=first.warmup_calls,
        wall=sum(r.wall_time for r in results),
        cpu=sum(r.cpu_time for r in results),
        peak_rss=max((r.peak_rss for r in results if r.peak_rss is not None), default=None),
        threads=first.threads,
        env=first.environment,
    )
