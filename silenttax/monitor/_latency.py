"""LatencyMonitor: tail latency in the request path, judged with confidence bounds."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from time import perf_counter
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar, cast

from silenttax._merge import same_settings
from silenttax._sketch import LatencySketch, LatencySketchState, as_sketch, quantile_interval
from silenttax._stability import invalid_input_finding
from silenttax._state import State, Stateful, settings, with_policy
from silenttax.errors import InputError
from silenttax.monitor._creep import CreepState, CreepWatch
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_duration as _dur

__all__ = ["LatencyMonitor", "LatencyMonitorState", "check_latency", "quantile_interval"]

_F = TypeVar("_F", bound=Callable[..., Any])


class _Timer:
    """Context manager and decorator that records elapsed seconds into a sketch."""

    __slots__ = ("_add", "_start")

    def __init__(self, add: Callable[[float], None]) -> None:
        self._add = add
        self._start = 0.0

    def __enter__(self) -> Self:
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._add(perf_counter() - self._start)

    def __call__(self, fn: _F) -> _F:
        add = self._add
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                start = perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    add(perf_counter() - start)

            return cast(_F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                add(perf_counter() - start)

        return cast(_F, wrapper)


class LatencyMonitorState(State):
    """JSON state of a :class:`LatencyMonitor`: its settings, recordings and baseline."""

    KIND: ClassVar[str] = "silenttax.latency_monitor"

    params: dict[str, Any]
    """Constructor settings."""
    sketch: LatencySketchState
    """Everything recorded."""
    baseline: LatencySketchState | None = None
    """The reference the recordings are judged against."""
    creep: CreepState | None = None
    """The creep detector's state (None when switched off)."""


class LatencyMonitor(Stateful[LatencyMonitorState]):
    """Record request latencies and judge them: quantiles, SLO, regression vs a baseline.

    Recording costs one sketch append (~0.1 µs); ``time()`` adds well under
    1 µs. Nothing here raises into the request: invalid durations are counted
    and reported by :meth:`check` (unless ``strict=True``).

    Regression against ``baseline`` is decided per quantile from confidence
    bounds, not point estimates: the current quantile's lower bound divided
    by the baseline's upper bound (both distribution-free order-statistic
    intervals, widened by the sketch resolution) must exceed
    ``1 + min_effect`` for a WARNING, ``1 + critical_effect`` for
    CRITICAL. The same distribution measured twice stays quiet; 25% slower
    traffic is flagged once there are a few thousand requests.

    Args:
        baseline: The reference: a :class:`LatencySketch` or another monitor.
        slo: Latency objective in seconds for ``slo_quantile``.
        slo_quantile: Which quantile the SLO is on (default p99).
        name: The model or endpoint: the subject of the findings and
            ``context["name"]`` of the report, as in every monitor.
        quantiles: The quantiles reported.
        min_effect: Smallest material slowdown (0.10 = 10%).
        critical_effect: Slowdown (with confidence) that is CRITICAL.
        confidence: Confidence level of the intervals.
        relative_accuracy: Accuracy of the underlying sketch.
        creep: Watch p50 and p95 for creep (:class:`~silenttax.monitor._creep.CreepWatch`:
            a rise of 20% or more that holds 30 blocks of 64 requests and
            ``creep_seconds``, told apart from hiccups; judged after 3,200 requests).
        creep_seconds: Wall seconds a rise must hold to be creep (and a recovery to end
            it); 0 for latencies replayed from a file, whose arrival times are lost.
        creep_shift: The smallest rise that is creep (0.2: +20%); above your diurnal
            swing (trough to peak), or the daily peak reads as creep.
        strict: Raise :class:`~silenttax.errors.InputError` on invalid durations.

    Examples:
        >>> import time
        >>> monitor = LatencyMonitor(name="ranker", slo=0.5)
        >>> with monitor.time():
        ...     time.sleep(0.001)
        >>> @monitor.time()
        ... def predict(x):
        ...     return x * 2
        >>> predict(21)
        42
        >>> monitor.sketch.count
        2
        >>> [f.code for f in monitor.check()]  # creep is judged after 3,200 requests
        ['latency.quantile', 'latency.quantile', 'latency.quantile', 'latency.slo']
    """

    STATE: ClassVar[type[State]] = LatencyMonitorState
    RENAMED: ClassVar[dict[str, str]] = {
        "min_regression": "min_effect",
        "critical_regression": "critical_effect",
    }

    def __init__(
        self,
        *,
        baseline: LatencySketch | LatencyMonitor | None = None,
        slo: float | None = None,
        slo_quantile: float = 0.99,
        name: str = "model",
        quantiles: Sequence[float] = (0.5, 0.95, 0.99),
        min_effect: float = 0.10,
        critical_effect: float = 0.50,
        confidence: float = 0.95,
        relative_accuracy: float = 0.01,
        creep: bool = True,
        creep_seconds: float = 60.0,
        creep_shift: float = 0.2,
        strict: bool = False,
    ) -> None:
        if not (creep_seconds >= 0 and math.isfinite(creep_seconds)):
            raise InputError(f"creep_seconds must be >= 0 seconds, got {creep_seconds!r}")
        if not (0 < creep_shift and math.isfinite(creep_shift)):
            raise InputError(f"creep_shift must be > 0 (0.2 = +20%), got {creep_shift!r}")
        if slo is not None and not (slo > 0 and math.isfinite(slo)):
            raise InputError(f"slo must be a positive number of seconds, got {slo!r}")
        for arg, q in [("slo_quantile", slo_quantile), *(("quantiles", q) for q in quantiles)]:
            if not 0 < q < 1:
                raise InputError(f"{arg}: quantiles must be in (0, 1), got {q!r}")
        if not 0 < confidence < 1:
            raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
        if not 0 <= min_effect <= critical_effect:
            raise InputError("need 0 <= min_effect <= critical_effect")
        if baseline is not None and not isinstance(baseline, LatencySketch | LatencyMonitor):
            raise InputError(
                f"baseline must be a LatencySketch or LatencyMonitor, got {type(baseline).__name__}"
            )
        if not isinstance(name, str):
            raise InputError(f"name must be a string, got {type(name).__name__}")
        self.name = name
        self.slo = slo
        self.slo_quantile = slo_quantile
        self.quantiles = tuple(quantiles)
        self.min_effect = min_effect
        self.critical_effect = critical_effect
        self.confidence = confidence
        self.baseline = baseline.sketch if isinstance(baseline, LatencyMonitor) else baseline
        self.strict = strict
        self._sketch = LatencySketch(relative_accuracy=relative_accuracy, strict=strict)
        self.creep_seconds = float(creep_seconds)
        self.creep_shift = float(creep_shift)
        self._creep = (
            CreepWatch(min_seconds=self.creep_seconds, min_shift=self.creep_shift)
            if creep
            else None
        )
        self._bind()

    def _bind(self) -> None:
        """Recording is one sketch append; the creep watch listens to the sketch's folds."""
        self._add = self._sketch.add
        self._sketch._on_fold = self._creep.consume if self._creep is not None else None

    @property
    def sketch(self) -> LatencySketch:
        """Everything recorded so far."""
        return self._sketch

    def record(self, seconds: float) -> None:
        """Record one request's latency in seconds (never raises unless ``strict=True``)."""
        self._add(seconds)

    def time(self) -> _Timer:
        """Time a block (``with monitor.time():``) or a function (``@monitor.time()``).

        Works on sync and async functions; the duration is recorded even when
        the block raises, and the exception propagates unchanged.
        """
        return _Timer(self._add)

    def merge(self, other: LatencyMonitor) -> Self:
        """Add another monitor's recordings (e.g. from another replica) into this one.

        Raises:
            InputError: ``other`` is not a LatencyMonitor.
        """
        if not isinstance(other, LatencyMonitor):
            raise InputError(f"can only merge a LatencyMonitor, got {type(other).__name__}")
        local = ("relative_accuracy", "strict")  # sketches of any accuracy merge; strict is local
        mine, theirs = (
            {k: v for k, v in m._params().items() if k not in local} for m in (self, other)
        )
        same_settings("LatencyMonitor", mine, theirs)
        self._sketch.merge(other.sketch)
        if self._creep is not None and other._creep is not None:
            self._creep.events.extend(other._creep.events)  # request numbers are per replica
            self._creep.hiccups.extend(other._creep.hiccups)
        return self

    def _params(self) -> dict[str, Any]:
        """The constructor settings, as saved."""
        return {
            "slo": self.slo,
            "slo_quantile": self.slo_quantile,
            "name": self.name,
            "quantiles": list(self.quantiles),
            "min_effect": self.min_effect,
            "critical_effect": self.critical_effect,
            "confidence": self.confidence,
            "relative_accuracy": self._sketch.relative_accuracy,
            "creep": self._creep is not None,
            "creep_seconds": self.creep_seconds,
            "creep_shift": self.creep_shift,
            "strict": self.strict,
        }

    def state(self) -> LatencyMonitorState:
        """JSON-serializable snapshot: settings, recordings and baseline."""
        return LatencyMonitorState(
            params=self._params(),
            sketch=self._sketch.state(),
            baseline=self.baseline.state() if self.baseline is not None else None,
            creep=self._creep.state() if self._creep is not None else None,
        )

    @classmethod
    def from_state(cls, state: LatencyMonitorState) -> Self:
        """Rebuild a monitor from :meth:`state`."""
        baseline = LatencySketch.from_state(state.baseline) if state.baseline else None
        monitor = cls(baseline=baseline, **settings(cls, state.params))
        monitor._sketch = LatencySketch.from_state(state.sketch, strict=monitor.strict)
        if state.creep is not None and monitor._creep is not None:
            monitor._creep = CreepWatch.from_state(state.creep)
        monitor._bind()
        return monitor

    def reset(self) -> None:
        """Forget the recordings and detected creep (the baseline and settings stay)."""
        self._sketch.reset()
        if self._creep is not None:
            self._creep.reset()
        self._bind()

    # ---------------------------------------------------------------------- check
    def check(
        self, baseline: LatencySketch | LatencyMonitor | LatencyMonitorState | None = None
    ) -> Report:
        """Findings: ``latency.quantile`` (or ``latency.regression`` against the
        baseline) per quantile, ``latency.slo`` when an SLO is set,
        ``latency.creep`` once enough was recorded, and ``stability.invalid_input`` when bad
        durations were recorded. The same as :func:`check_latency` on :meth:`state`.

        Args:
            baseline: Judge against this instead of the constructor's baseline (a
                sketch, or a monitor, e.g. last week's loaded with ``silenttax.load``),
                as ``Tracer.check(baseline)`` and ``CostMonitor.check(baseline)`` do.

        Raises:
            InputError: ``baseline`` is not a sketch, a monitor or a monitor's state.
        """
        return check_latency(self, baseline)

    def _judge(self) -> Report:
        """The findings on this monitor's recordings against ``self.baseline``."""
        sketch = self._sketch
        findings: list[Finding] = []
        n = sketch.count
        if sketch.invalid:
            findings.append(
                invalid_input_finding(
                    self.name,
                    invalid=sketch.invalid,
                    recorded=n,
                    what="durations (NaN, negative, infinite or not a number)",
                    detector="monitor.LatencyMonitor",
                    recommendation="Check the timing code that feeds the monitor.",
                )
            )
        if n == 0:
            findings.append(
                make_finding(
                    "latency.no_data",
                    severity=Severity.INFO,
                    subject=self.name,
                    message="no latencies were recorded, so none could be checked",
                    metric="count",
                    value=0.0,
                    detector="monitor.LatencyMonitor",
                )
            )
            return self._report(findings)
        findings.extend(self._quantile_finding(q) for q in self.quantiles)
        if self.slo is not None:
            findings.append(self._slo_finding())
        findings.extend(self._creep_findings())
        return self._report(findings)

    def _creep_findings(self) -> list[Finding]:
        """``latency.creep`` per creep that holds (WARNING), the latest that ended (INFO) or
        one OK; ``latency.hiccup`` (INFO) for the latest rise that came back."""
        watch = self._creep
        if watch is None:
            return []
        self._sketch._fold()  # hand the buffered latencies to the watch
        watch.fold()
        if watch.learning:
            return []  # still learning the level: nothing judged yet, so no finding
        rule = (
            f"a rise of {watch.min_shift:.0%} or more held {watch.min_blocks} blocks of "
            f"{watch.block} requests and {watch.min_seconds:g} s"
        )
        watched = f"p50 and p95 of blocks of {watch.block} requests, {watch.seen:,} watched"
        active = [e for e in watch.events if e.ended is None]
        out = [
            make_finding(
                "latency.creep",
                severity=Severity.WARNING,
                subject=self.name,
                message=(
                    f"{event.quantile} crept up {event.ratio - 1:+.0%} "
                    f"[{event.low - 1:+.0%}, {event.high - 1:+.0%}] ("
                    f"{_dur(event.before)} -> {_dur(event.after)}) from about request "
                    f"{event.started:,}, confirmed at request {event.detected:,}, and holds"
                ),
                metric=f"{event.quantile}_ratio",
                value=event.ratio,
                baseline=1.0,
                effect_size=event.ratio,
                evidence={**event.model_dump(), "rule": rule, "watched": watched},
                recommendation=(
                    "Latency rose and stayed up: compare the deployment, traffic mix and "
                    "resources around that request (silenttax.trace for the stage)."
                ),
                detector="monitor.LatencyMonitor",
            )
            for event in active
        ]
        ended = {e.quantile: e for e in watch.events if e.ended is not None}
        for name, event in sorted(ended.items()):
            if any(e.quantile == name for e in active):
                continue
            out.append(
                make_finding(
                    "latency.creep",
                    severity=Severity.INFO,
                    subject=self.name,
                    message=(
                        f"{name} creep of {event.ratio - 1:+.0%} from about request "
                        f"{event.started:,} ended at request {event.ended:,} (back near "
                        f"{_dur(event.before)})"
                    ),
                    metric=f"{name}_ratio",
                    value=event.ratio,
                    baseline=1.0,
                    evidence={**event.model_dump(), "rule": rule},
                    detector="monitor.LatencyMonitor",
                )
            )
        if not out:
            out.append(
                make_finding(
                    "latency.creep",
                    severity=Severity.OK,
                    subject=self.name,
                    message=f"no latency creep ({watched}; creep is {rule})",
                    metric="creep_events",
                    value=0.0,
                    detector="monitor.LatencyMonitor",
                )
            )
        latest = {h.quantile: h for h in watch.hiccups}
        for name, hiccup in sorted(latest.items()):
            out.append(
                make_finding(
                    "latency.hiccup",
                    severity=Severity.INFO,
                    subject=self.name,
                    message=(
                        f"{name} rose to {hiccup.peak:.2f}x its level at request "
                        f"{hiccup.started:,} and was back by request {hiccup.ended:,} "
                        f"({hiccup.seconds:.0f} s): a hiccup, not creep "
                        f"({sum(h.quantile == name for h in watch.hiccups)} of the latest kept)"
                    ),
                    metric=f"{name}_peak",
                    value=hiccup.peak,
                    evidence=hiccup.model_dump(),
                    detector="monitor.LatencyMonitor",
                )
            )
        return out

    def _report(self, findings: list[Finding]) -> Report:
        return Report(
            findings=findings,
            source="monitor.check_latency",
            context={
                "name": self.name,
                "count": self._sketch.count,
                "relative_accuracy": self._sketch.effective_accuracy,
                "baseline_count": self.baseline.count if self.baseline is not None else None,
            },
        )

    def _quantile_finding(self, q: float) -> Finding:
        sketch, label = self._sketch, f"p{q * 100:g}"
        value = sketch.quantile(q)
        ci = quantile_interval(sketch, q, self.confidence)
        evidence: dict[str, Any] = {
            "quantile": q,
            "count": sketch.count,
            "ci": list(ci) if ci else None,
            "confidence": self.confidence,
        }
        base = self.baseline
        if base is None or base.count == 0:
            return make_finding(
                "latency.quantile",
                severity=Severity.OK,
                subject=self.name,
                message=(
                    f"{label} latency {_dur(value)}"
                    + (f" ({self.confidence:.0%} CI {_dur(ci[0])}-{_dur(ci[1])})" if ci else "")
                    + f" over {sketch.count} requests"
                ),
                metric=label,
                value=value,
                unit="s",
                evidence=evidence,
                detector="monitor.LatencyMonitor",
            )
        base_value = base.quantile(q)
        base_ci = quantile_interval(base, q, self.confidence)
        ratio = value / base_value if base_value > 0 else math.inf
        evidence |= {
            "baseline_count": base.count,
            "baseline_ci": list(base_ci) if base_ci else None,
        }
        threshold = base_value * (1 + self.min_effect)
        common: dict[str, Any] = {
            "subject": self.name,
            "metric": label,
            "value": value,
            "baseline": base_value,
            "threshold": threshold,
            "unit": "s",
            "effect_size": ratio,
            "detector": "monitor.LatencyMonitor",
        }
        if ci is None or base_ci is None:
            need = "current" if ci is None else "baseline"
            return make_finding(
                "latency.regression",
                severity=Severity.INFO,
                message=(
                    f"{label} {_dur(value)} vs baseline {_dur(base_value)} ({ratio:.2f}x), but the "
                    f"{need} sample is too small to judge {label} with {self.confidence:.0%} "
                    "confidence"
                ),
                evidence=evidence,
                **common,
            )
        ratio_lo = ci[0] / base_ci[1] if base_ci[1] > 0 else math.inf
        ratio_hi = ci[1] / base_ci[0] if base_ci[0] > 0 else math.inf
        evidence |= {"ratio_ci": [ratio_lo, ratio_hi]}
        slower = f"{(ratio - 1) * 100:+.0f}%"
        if ratio_lo > 1 + self.min_effect:
            severity = (
                Severity.CRITICAL if ratio_lo > 1 + self.critical_effect else Severity.WARNING
            )
            message = (
                f"{label} latency regressed: {_dur(value)} vs baseline {_dur(base_value)} "
                f"({slower}; with {self.confidence:.0%} confidence at least "
                f"{(ratio_lo - 1) * 100:+.0f}%)"
            )
            recommendation = (
                "Compare the deployments: profile the model and trace the request pipeline."
            )
        else:
            severity, recommendation = Severity.OK, None
            message = (
                f"{label} latency {_dur(value)} vs baseline {_dur(base_value)} ({slower}; ratio CI "
                f"{ratio_lo:.2f}-{ratio_hi:.2f}): no material regression"
            )
        return make_finding(
            "latency.regression",
            severity=severity,
            message=message,
            evidence=evidence,
            recommendation=recommendation,
            **common,
        )

    def _slo_finding(self) -> Finding:
        assert self.slo is not None
        q, slo = self.slo_quantile, self.slo
        label = f"p{q * 100:g}"
        value = self._sketch.quantile(q)
        ci = quantile_interval(self._sketch, q, self.confidence)
        if value <= slo:
            severity = Severity.OK
            verdict = "within"
        elif ci is not None and ci[0] > slo:
            severity, verdict = Severity.CRITICAL, "above (with confidence)"
        else:
            severity, verdict = Severity.WARNING, "above"
        return make_finding(
            "latency.slo",
            severity=severity,
            subject=self.name,
            message=(
                f"{label} latency {_dur(value)} is {verdict} the {_dur(slo)} SLO"
                + (f" ({self.confidence:.0%} CI {_dur(ci[0])}-{_dur(ci[1])})" if ci else "")
            ),
            metric=label,
            value=value,
            threshold=slo,
            unit="s",
            effect_size=value / slo,
            evidence={"ci": list(ci) if ci else None, "count": self._sketch.count},
            recommendation=None
            if severity is Severity.OK
            else "Find where the time goes: silenttax.trace and silenttax.profile.",
            detector="monitor.LatencyMonitor",
        )


def _sketch_of(
    value: LatencySketch | LatencySketchState | LatencyMonitor | LatencyMonitorState, role: str
) -> LatencySketch:
    sketch = as_sketch(value)
    if sketch is not None:
        return sketch
    raise InputError(
        f"{role} must be a LatencyMonitor, a LatencySketch or the state of one, got "
        f"{type(value).__name__}"
    )


def check_latency(
    current: LatencyMonitor | LatencyMonitorState,
    baseline: LatencyMonitor
    | LatencyMonitorState
    | LatencySketch
    | LatencySketchState
    | None = None,
    *,
    confidence: float | None = None,
    min_effect: float | None = None,
    critical_effect: float | None = None,
    slo: float | None = None,
    slo_quantile: float | None = None,
    quantiles: Sequence[float] | None = None,
) -> Report:
    """Judge a latency snapshot, optionally against a baseline, under a policy.

    A pure function: nothing is recorded or changed. The policy defaults to the
    settings the monitor was built with; a keyword given here replaces it. The
    baseline defaults to the monitor's own. ``LatencyMonitor.check`` is this
    function on the live monitor.

    Args:
        current: The monitor, or its state (e.g. the merge of every replica's).
        baseline: What to compare with: a monitor, a sketch or the state of one.
        confidence: Confidence level of the quantile intervals.
        min_effect: Smallest material slowdown, relative (0.10 = 10%).
        critical_effect: Slowdown that is CRITICAL, relative.
        slo: Latency objective in seconds for ``slo_quantile``.
        slo_quantile: Which quantile the SLO is on.
        quantiles: The quantiles reported.

    Raises:
        InputError: a baseline of another type, or a policy value out of range.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> last_week, today = LatencyMonitor(), LatencyMonitor()
        >>> for x in rng.lognormal(-5, 0.3, 5000):
        ...     last_week.record(float(x))
        >>> for x in rng.lognormal(-5, 0.3, 5000) * 1.3:
        ...     today.record(float(x))
        >>> report = check_latency(today.state(), last_week.state(), min_effect=0.2)
        >>> [f.severity.value for f in report.filter(code="latency.regression")]
        ['warning', 'warning', 'warning']
    """
    policy = {
        "confidence": confidence,
        "min_effect": min_effect,
        "critical_effect": critical_effect,
        "slo": slo,
        "slo_quantile": slo_quantile,
        "quantiles": list(quantiles) if quantiles is not None else None,
    }
    judge = with_policy(LatencyMonitor, current, policy)
    if baseline is not None:
        judge.baseline = _sketch_of(baseline, "baseline")
    return judge._judge()
