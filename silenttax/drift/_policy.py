"""Drift policy: the test per column family, materiality tables, p-value adjustment
and the severity decision. Pure functions and data; no I/O, no state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from silenttax._stats import adjust
from silenttax.drift import _stattests as st
from silenttax.report import Severity

__all__ = ["DEFAULT_CRITICAL", "DEFAULT_MIN_EFFECT", "DEFAULT_TESTS", "adjust"]

Family = Literal["continuous", "discrete", "boolean", "categorical", "skipped"]

#: The test each column family gets with ``tests="auto"``.
DEFAULT_TESTS: dict[str, str] = {
    "continuous": "ks",
    "discrete": "chi2",
    "boolean": "proportion_z",
    "categorical": "chi2",
}
#: Smallest material effect per family (WARNING needs significance *and* this).
DEFAULT_MIN_EFFECT: dict[str, float] = {
    "continuous": 0.05,  # Wasserstein / reference sd: the distribution moved 5% of an sd
    "discrete": 0.05,  # total variation: 5% of the mass moved between values
    "categorical": 0.05,  # total variation between level shares
    "boolean": 0.1,  # |Cohen's h|
    "missing": 0.1,  # |Cohen's h| of the null (or non-finite) rate
    "psi": 0.1,
    "jensen_shannon": 0.1,
    "hellinger": 0.1,
    "wasserstein": 0.05,
}
#: Effect at which a significant change is CRITICAL.
DEFAULT_CRITICAL: dict[str, float] = {
    "continuous": 0.5,
    "discrete": 0.25,
    "categorical": 0.25,
    "boolean": 0.5,
    "missing": 0.5,
    "psi": 0.25,
    "jensen_shannon": 0.3,
    "hellinger": 0.3,
    "wasserstein": 0.5,
}
_DISTANCES = frozenset({"psi", "jensen_shannon", "hellinger", "wasserstein"})
_NUMERIC_TESTS = frozenset(
    {
        "ks",
        "wasserstein",
        "psi",
        "jensen_shannon",
        "hellinger",
        "anderson_darling",
        "cramer_von_mises",
        "z_test",
        "chi2",
        "proportion_z",
    }
)
_LABEL_TESTS = frozenset({"chi2", "psi", "jensen_shannon", "hellinger"})
_EFFECT_NAMES = {
    "continuous": "Wasserstein distance in reference sd",
    "discrete": "total variation distance",
    "categorical": "total variation distance",
    "boolean": "|Cohen's h|",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Candidate:
    """One test awaiting the multiple-testing adjustment."""

    column: str
    kind: Literal["distribution", "null_rate", "non_finite"]
    family: str
    """The key of the materiality tables: a family, ``"missing"`` or a distance test."""
    result: st.DriftResult
    effect: float
    effect_name: str
    code: str
    histogram: dict[str, Any] | None = None
    """Plot data: overlaid reference/current shares (distribution tests only)."""

    @property
    def p_value(self) -> float | None:
        return self.result.p_value


@dataclass(frozen=True, slots=True)
class _Verdict:
    """A candidate's severity, with the adjusted p-value and the floor it was judged by."""

    candidate: _Candidate
    severity: Severity
    p_adjusted: float | None
    floor: float


def threshold(
    override: float | dict[str, float] | None, defaults: dict[str, float], name: str, key: str
) -> float:
    """The materiality threshold of column ``name`` (family or test ``key``)."""
    if isinstance(override, int | float):
        return float(override)
    if isinstance(override, dict):
        for candidate in (name, key):
            if candidate in override:
                return float(override[candidate])
    return defaults[key]


def decide(
    candidates: list[_Candidate],
    *,
    alpha: float,
    correction: str,
    min_effect: float | dict[str, float] | None,
    critical_effect: float | dict[str, float] | None,
) -> list[_Verdict]:
    """Adjust the family of p-values, then grade each candidate: CRITICAL / WARNING need
    significance and materiality; significant but immaterial is INFO."""
    tested = [c for c in candidates if c.p_value is not None]
    adjusted = adjust([float(c.p_value) for c in tested if c.p_value is not None], correction)
    adj = {id(c): a for c, a in zip(tested, adjusted, strict=True)}
    out = []
    for c in candidates:
        floor = threshold(min_effect, DEFAULT_MIN_EFFECT, c.column, c.family)
        critical = threshold(critical_effect, DEFAULT_CRITICAL, c.column, c.family)
        p_adj = adj.get(id(c))
        significant = p_adj is None or p_adj < alpha
        if significant and c.effect >= critical:
            severity = Severity.CRITICAL
        elif significant and c.effect >= floor:
            severity = Severity.WARNING
        elif significant and p_adj is not None:
            severity = Severity.INFO
        else:
            severity = Severity.OK
        out.append(_Verdict(c, severity, p_adj, floor))
    return out
