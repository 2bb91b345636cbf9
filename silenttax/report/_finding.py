"""Finding: the one result currency every silenttax module reports in."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, field_validator

from silenttax.report._enums import Category, Severity, category

__all__ = ["CODE_PATTERN", "Finding"]

#: Finding codes are lower-case dotted ``area.what`` ids (``latency.creep``).
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Finding(BaseModel):
    """One thing a check found, whether it passed or not.

    Every module fills the same fields; detector-specific detail goes in
    ``evidence``. ``threshold`` is on ``value``'s scale and ``metric`` names
    that value, so ``value`` vs ``threshold`` is always a like-for-like
    comparison. A check that passed still yields a finding with severity
    ``ok``: dashboards need to see what was checked, not only what failed.

    Examples:
        >>> f = Finding(
        ...     code="latency.p99", category="latency", severity="warning",
        ...     subject="resnet50", message="p99 latency 48.0 ms exceeds the 40 ms SLO",
        ...     metric="p99", value=0.048, threshold=0.040, unit="s",
        ... )
        >>> f.severity > "info", f.category
        (True, <Category.LATENCY: 'latency'>)
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        ser_json_inf_nan="constants",
        use_attribute_docstrings=True,
        defer_build=True,
    )

    code: str
    """Stable lower-case dotted id of what was checked, e.g. ``drift.numeric``."""
    category: Annotated[Category | str, BeforeValidator(category)]
    """Which kind of decay this is about: a built-in :class:`Category` (``data_drift``,
    ``latency``, ...) or a user's own (a lower-case identifier, e.g. ``business``)."""
    severity: Severity
    """``ok`` < ``info`` < ``warning`` < ``critical``; ``ok`` for a passed check."""
    subject: str
    """What it is about: a column, model, span, stage or package name."""
    message: str
    """One human sentence with the figures in it."""
    metric: str | None = None
    """Name of the quantity in ``value`` (e.g. ``ks_statistic``, ``p99``)."""
    value: float | None = None
    """The measured value of ``metric`` on the current data."""
    baseline: float | None = None
    """The same quantity on the reference / baseline, when there is one."""
    threshold: float | None = None
    """The limit ``value`` was compared with, on ``value``'s scale."""
    unit: str | None = None
    """SI unit of ``value``/``baseline``/``threshold`` (``s``, ``B``, ``USD``); None if unitless."""
    p_value: float | None = None
    """p-value of the statistical test behind the verdict, in [0, 1]; never NaN."""
    effect_size: float | None = None
    """Size of the change on a scale-free measure (named in ``evidence`` when not obvious)."""
    evidence: dict[str, JsonValue] = Field(default_factory=dict)
    """Detector-specific detail, JSON-able (sample sizes, bins, examples, CIs)."""
    recommendation: str | None = None
    """What to do about it, when there is something to do."""
    detector: str | None = None
    """The component or check that judged, as ``<subpackage>.<name>`` (e.g.
    ``drift.DriftDetector``, ``trace.check_breakdown``); the statistical test, where
    there is one, is in ``evidence["test"]``."""
    created_at: datetime = Field(default_factory=_utcnow)
    """When the finding was made (UTC, timezone-aware)."""

    @field_validator("code")
    @classmethod
    def _valid_code(cls, code: str) -> str:
        if not CODE_PATTERN.match(code):
            raise ValueError(
                f"finding code {code!r} must be lower-case dotted 'area.what' "
                "(letters, digits, underscores), e.g. 'latency.creep'"
            )
        return code

    @field_validator("p_value")
    @classmethod
    def _valid_p_value(cls, p: float | None) -> float | None:
        if p is not None and not (0.0 <= p <= 1.0):
            raise ValueError(f"p_value must be within [0, 1], got {p!r}")
        return p

    @field_validator("created_at")
    @classmethod
    def _aware(cls, when: datetime) -> datetime:
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    @property
    def is_problem(self) -> bool:
        """True for ``warning`` and ``critical`` findings."""
        return self.severity >= Severity.WARNING

    def __str__(self) -> str:
        return f"[{self.severity.value.upper()}] {self.code} {self.subject}: {self.message}"
