"""Model-output drift: the label-free early warning, built only through the public API.

:class:`PredictionMonitor` records what the model answers (scores, classes, regression
values) on the request path, keeps mergeable summaries of them (a drift detector
fitted block by block), and judges them against a reference window — the outputs on
validation data, or the previous release's — with the drift module's calibrated tests
(:func:`silenttax.drift.check_drift`: KS on the score or value distribution, a
proportion test on the positive rate, chi-squared on the class rates, Holm across
them). It is written against :mod:`silenttax.component`, :mod:`silenttax.drift` and
:mod:`silenttax.report` only: the worked example of a custom monitor (see
``docs/custom-monitors.md``).
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, Self, cast

from pydantic import JsonValue

from silenttax.component import SAME, SUM, State, Stateful, same_settings
from silenttax.drift import DriftDetector, DriftDetectorState, check_drift
from silenttax.errors import InputError
from silenttax.report import Finding, Report, Severity, make_finding

__all__ = ["PredictionMonitor", "PredictionMonitorState"]

Output = Literal["auto", "score", "class", "value"]
_BLOCK = 512  # outputs buffered before they are summarised (amortised O(1) per record)
# drift codes of the detector -> the prediction code they become
_CODES = {
    "drift.numeric": "prediction.drift",
    "drift.categorical": "prediction.class_rate",
    "drift.boolean": "prediction.class_rate",
    "drift.null_rate": "prediction.invalid",
    "drift.non_finite": "prediction.invalid",
}
_COLUMNS = {"score": "score", "value": "value", "class": "class", "positive": "positive rate"}


class PredictionMonitorState(State):
    """Snapshot of a :class:`PredictionMonitor` (merges across replicas: summaries merge
    exactly, counts add up, settings must agree)."""

    KIND: ClassVar[str] = "silenttax.prediction_monitor"

    params: Annotated[dict[str, JsonValue], SAME]
    """Settings (must match to merge)."""
    resolved: str | None = None
    """The kind of output recorded (``output="auto"`` decides at the first record)."""
    outputs: DriftDetectorState | None = None
    """Summaries of every recorded output (None: nothing recorded yet)."""
    reference: DriftDetectorState | None = None
    """The reference window's summaries (None: judged only against a ``baseline``)."""
    recorded: Annotated[int, SUM] = 0
    """Outputs recorded."""
    invalid: Annotated[int, SUM] = 0
    """Outputs that could not be read as the kind recorded (dropped, counted)."""


class PredictionMonitor(Stateful[PredictionMonitorState]):
    """Record model outputs and judge their drift against a reference window.

    Args:
        output: What the model answers: ``"score"`` (a probability of the positive
            class, or a probability vector), ``"class"`` (a label), ``"value"`` (a
            regression output), or ``"auto"`` (decided at the first record: a bool,
            string or integer is a class, a float in [0, 1] a score, another float a
            value; set it explicitly in production).
        threshold: Scores at or above it are positive (the positive rate is tested).
        positive: For ``"class"`` outputs, the positive label: its rate is tested on
            its own as well (``None``: only the class distribution).
        reference: The reference window: another monitor (or its state) that recorded
            the outputs on validation data or of the previous release.
        name: What the findings are about (the model's name).
        alpha: The false-alarm rate over all of the outputs' tests (Holm).
        min_effect: Smallest material change, per family as for
            :class:`~silenttax.drift.DriftDetector` (None: the drift module's table:
            0.1 Cohen's h for the positive rate, 0.05 for distributions).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> validation = PredictionMonitor(output="score")
        >>> for p in rng.beta(2, 8, 4000):
        ...     validation.record(float(p))
        >>> served = PredictionMonitor(output="score", reference=validation)
        >>> for p in rng.beta(3, 7, 4000):  # the model now says "positive" more often
        ...     served.record(float(p))
        >>> sorted({f.code for f in served.check().problems()})
        ['prediction.class_rate', 'prediction.drift']
    """

    STATE: ClassVar[type[State]] = PredictionMonitorState

    def __init__(
        self,
        *,
        output: Output = "auto",
        threshold: float = 0.5,
        positive: str | int | bool | None = None,
        reference: PredictionMonitor | PredictionMonitorState | None = None,
        name: str = "model",
        alpha: float = 0.05,
        min_effect: float | dict[str, float] | None = None,
    ) -> None:
        if output not in ("auto", "score", "class", "value"):
            raise InputError(f"output must be auto, score, class or value, got {output!r}")
        given: object = threshold
        if (
            isinstance(given, bool)
            or not isinstance(given, numbers.Real)
            or not 0 < float(given) < 1
        ):
            raise InputError(f"threshold must be in (0, 1), got {threshold!r}")
        if positive is not None and output not in ("auto", "class"):
            raise InputError(f"positive: a class label, for output='class' (got {output!r})")
        self.output: Output = output
        self.threshold = float(threshold)
        self.positive: str | None = None if positive is None else str(positive)
        self.name = str(name)
        self.alpha = alpha
        self.min_effect = min_effect
        self._detector_settings: dict[str, Any] = {"alpha": alpha, "min_effect": min_effect}
        DriftDetector(**self._detector_settings)  # validates alpha and min_effect now
        self.reference: DriftDetectorState | None = _outputs_of(reference, "reference")
        self._resolved: str | None = None if output == "auto" else output
        self._outputs: DriftDetector | None = None
        self._buffer: list[Any] = []
        self._lock = threading.Lock()
        self.recorded = 0
        """Outputs recorded."""
        self.invalid = 0
        """Outputs that could not be read as the kind recorded (dropped)."""

    # ------------------------------------------------------------------ recording
    def record(self, output: Any) -> None:
        """Record one model output (never raises: an unreadable output is counted in
        ``invalid`` and dropped; NaN scores and values are kept, as missing)."""
        try:
            kind = self._resolved or self._resolve(output)
            value = _read(output, kind)
        except Exception:
            value = _INVALID
        if value is _INVALID:
            with self._lock:
                self.invalid += 1
            return
        with self._lock:
            self.recorded += 1
            self._buffer.append(value)
            full = len(self._buffer) >= _BLOCK
        if full:
            self._fold()

    def record_many(self, outputs: Sequence[Any]) -> None:
        """Record a batch of outputs (each as :meth:`record`)."""
        for output in outputs:
            self.record(output)

    def _resolve(self, output: Any) -> str:
        value = (
            output.item() if hasattr(output, "item") and getattr(output, "ndim", 1) == 0 else output
        )
        if isinstance(value, bool | str | numbers.Integral) or self.positive is not None:
            kind = "class"
        elif isinstance(value, numbers.Real):
            kind = "score" if 0.0 <= float(value) <= 1.0 else "value"
        else:
            kind = "class"  # a probability vector: its argmax
        self._resolved = kind
        return kind

    def _fold(self) -> None:
        """Summarise the buffered outputs into the mergeable detector."""
        with self._lock:
            block, self._buffer = self._buffer, []
        if not block:
            return
        columns = self._columns(block)
        detector = DriftDetector(**self._detector_settings).fit(columns)
        with self._lock:
            if self._outputs is None:
                self._outputs = detector
            else:
                self._outputs.merge(detector)

    def _columns(self, block: list[Any]) -> dict[str, list[Any]]:
        kind = self._resolved
        if kind == "class":
            columns: dict[str, list[Any]] = {"class": block}
            if self.positive is not None:
                columns["positive"] = [v == self.positive for v in block]
            return columns
        if kind == "score":
            return {
                "score": block,
                "positive": [None if math.isnan(v) else v >= self.threshold for v in block],
            }
        return {"value": block}

    def reset(self) -> None:
        """Forget the recorded outputs (settings and reference are kept)."""
        with self._lock:
            self._buffer, self._outputs = [], None
            self.recorded = self.invalid = 0
            if self.output == "auto":
                self._resolved = None

    # ------------------------------------------------------------------ judging
    def check(self, baseline: PredictionMonitor | PredictionMonitorState | None = None) -> Report:
        """Drift of the recorded outputs against ``baseline`` (another monitor or its
        state; default: the ``reference`` given at construction). Pure: nothing is
        changed. Without either, one INFO finding says what would decide.

        Raises:
            InputError: ``baseline`` is not a PredictionMonitor or its state.
        """
        reference = _outputs_of(baseline, "baseline") if baseline is not None else self.reference
        current = self._current()
        findings: list[Finding] = []
        if self.invalid:
            share = self.invalid / (self.invalid + self.recorded)
            findings.append(
                make_finding(
                    "prediction.invalid",
                    severity=Severity.WARNING if share > 0.01 else Severity.INFO,
                    subject=self.name,
                    message=f"{self.invalid:,} outputs ({share:.1%}) could not be read as "
                    f"{self._resolved or self.output} outputs and were dropped",
                    metric="invalid_share",
                    value=share,
                    threshold=0.01,
                    detector="monitor.PredictionMonitor",
                )
            )
        if reference is None or current is None:
            why = "no reference window" if reference is None else "no outputs recorded yet"
            findings.append(
                make_finding(
                    "prediction.drift",
                    severity=Severity.INFO,
                    subject=self.name,
                    message=f"model outputs not judged: {why} (record the outputs on "
                    "validation data or of the previous release in a PredictionMonitor and "
                    "pass it as reference= or baseline=)",
                    detector="monitor.PredictionMonitor",
                )
            )
            return Report(findings=findings, source="monitor.PredictionMonitor")
        judged = check_drift(current, reference, alpha=self.alpha, min_effect=self.min_effect)
        findings += [self._translate(f) for f in judged if f.code in _CODES]
        return Report(findings=findings, source="monitor.PredictionMonitor", context=judged.context)

    def _translate(self, finding: Finding) -> Finding:
        column = _COLUMNS.get(finding.subject, finding.subject)
        code = _CODES[finding.code]
        if finding.subject == "class" and finding.code == "drift.numeric":
            code = "prediction.class_rate"
        message = finding.message.replace(f"'{finding.subject}'", f"{self.name}'s {column}")
        return make_finding(
            code,
            severity=finding.severity,
            subject=f"{self.name}: {column}",
            message=message,
            metric=finding.metric,
            value=finding.value,
            baseline=finding.baseline,
            threshold=finding.threshold,
            unit=finding.unit,
            p_value=finding.p_value,
            effect_size=finding.effect_size,
            evidence={**finding.evidence, "drift_code": finding.code},
            recommendation=finding.recommendation
            or "The model answers differently with no label yet to say whether it is "
            "right: look at its inputs' drift, then at fresh labels.",
            detector="monitor.PredictionMonitor",
        )

    def _current(self) -> DriftDetectorState | None:
        self._fold()
        with self._lock:
            return None if self._outputs is None else self._outputs.state()

    def gauges(self) -> dict[str, float]:
        """Figures for a Prometheus gauge (``silenttax_component_value``): outputs
        recorded and dropped, and the positive rate where there is one."""
        out = {"recorded": float(self.recorded), "invalid": float(self.invalid)}
        current = self._current()
        if current is not None and "positive" in current.reference:
            summary = current.reference["positive"]
            rows = summary.rows - summary.nulls
            levels = getattr(summary, "levels", None)
            if levels is not None and rows:
                out["positive_rate"] = float(levels.get("True", 0)) / rows
            elif rows and hasattr(summary, "mean"):
                out["positive_rate"] = float(summary.mean)
        return out

    # ------------------------------------------------------------------ snapshot
    def _params(self) -> dict[str, JsonValue]:
        return {
            "output": self.output,
            "threshold": self.threshold,
            "positive": self.positive,
            "name": self.name,
            "alpha": self.alpha,
            "min_effect": cast(JsonValue, self.min_effect),
        }

    def state(self) -> PredictionMonitorState:
        """The snapshot (recorded outputs summarised; mergeable across replicas)."""
        current = self._current()
        return PredictionMonitorState(
            params=self._params(),
            resolved=self._resolved,
            outputs=current,
            reference=self.reference,
            recorded=self.recorded,
            invalid=self.invalid,
        )

    @classmethod
    def from_state(cls, state: PredictionMonitorState) -> Self:
        """Rebuild from :meth:`state`."""
        monitor = cls(**dict(state.params), reference=None)  # type: ignore[arg-type]
        monitor.reference = state.reference
        monitor._resolved = state.resolved
        monitor._outputs = (
            None if state.outputs is None else DriftDetector.from_state(state.outputs)
        )
        monitor.recorded, monitor.invalid = state.recorded, state.invalid
        return monitor

    def merge(self, other: PredictionMonitor | PredictionMonitorState) -> Self:
        """Add another replica's (or partition's) outputs.

        Raises:
            InputError: the settings, the kind of output or the reference differ (named).
        """
        theirs = other.state() if isinstance(other, PredictionMonitor) else other
        if not isinstance(theirs, PredictionMonitorState):
            raise InputError(f"can only merge a PredictionMonitor, got {type(other).__name__}")
        same_settings("PredictionMonitor", self._params(), dict(theirs.params))
        if theirs.reference != self.reference:
            raise InputError("cannot merge PredictionMonitors: 'reference' differs")
        if None not in (self._resolved, theirs.resolved) and self._resolved != theirs.resolved:
            raise InputError(
                f"cannot merge PredictionMonitors: 'output' is {self._resolved!r} here and "
                f"{theirs.resolved!r} in the other"
            )
        self._fold()
        with self._lock:
            self._resolved = self._resolved or theirs.resolved
            if theirs.outputs is not None:
                other_outputs = DriftDetector.from_state(theirs.outputs)
                if self._outputs is None:
                    self._outputs = other_outputs
                else:
                    self._outputs.merge(other_outputs)
            self.recorded += theirs.recorded
            self.invalid += theirs.invalid
        return self


_INVALID = object()


def _read(output: Any, kind: str) -> Any:
    """One output as the recorded kind (``_INVALID``: unreadable)."""
    if hasattr(output, "tolist"):
        output = output.tolist()
    if kind == "class":
        if isinstance(output, list | tuple):
            probabilities = [float(p) for p in output]
            if not probabilities or any(math.isnan(p) for p in probabilities):
                return _INVALID
            return str(max(range(len(probabilities)), key=probabilities.__getitem__))
        if isinstance(output, float) and math.isnan(output):
            return _INVALID
        return str(output) if isinstance(output, str | bool | numbers.Integral) else _INVALID
    if isinstance(output, list | tuple):
        if kind != "score" or len(output) != 2:
            return _INVALID
        output = output[1]  # the positive class's probability
    if isinstance(output, bool) or not isinstance(output, numbers.Real):
        return _INVALID
    value = float(output)
    if kind == "score" and not math.isnan(value) and not 0.0 <= value <= 1.0:
        return _INVALID
    return value


def _outputs_of(source: Any, argument: str) -> DriftDetectorState | None:
    """The recorded outputs' summaries of a monitor or its state (None for None)."""
    if source is None:
        return None
    if isinstance(source, PredictionMonitor):
        return source._current()
    if isinstance(source, PredictionMonitorState):
        return source.outputs
    if isinstance(source, Mapping):
        return PredictionMonitorState.model_validate(source).outputs
    raise InputError(f"{argument}: a PredictionMonitor or its state, got {type(source).__name__}")
