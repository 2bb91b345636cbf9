"""Input drift: calibrated, material verdicts from a bounded, mergeable reference.

Functional two-sample tests (:func:`ks`, :func:`psi`, :func:`wasserstein`,
:func:`chi2`, :func:`jensen_shannon`, :func:`hellinger`,
:func:`anderson_darling`, :func:`cramer_von_mises`, :func:`z_test`,
:func:`proportion_z`) work on raw arrays; :class:`DriftDetector` fits a
reference summary and checks whole tables.

Examples:
    >>> from silenttax.drift import chi2
    >>> r = chi2(["web"] * 60 + ["app"] * 40, ["web"] * 40 + ["app"] * 60)
    >>> round(r.statistic, 1), r.p_value < 0.01
    (8.0, True)
"""

from silenttax._summary import CategoricalSummary, NumericSummary
from silenttax.drift._detector import DriftDetector, DriftDetectorState, DriftWindow, check_drift
from silenttax.drift._policy import DEFAULT_CRITICAL, DEFAULT_MIN_EFFECT, DEFAULT_TESTS, adjust
from silenttax.drift._stattests import (
    DriftResult,
    anderson_darling,
    chi2,
    cramer_von_mises,
    hellinger,
    jensen_shannon,
    ks,
    proportion_z,
    psi,
    wasserstein,
    z_test,
)

__all__ = [
    "DEFAULT_CRITICAL",
    "DEFAULT_MIN_EFFECT",
    "DEFAULT_TESTS",
    "CategoricalSummary",
    "DriftDetector",
    "DriftDetectorState",
    "DriftResult",
    "DriftWindow",
    "NumericSummary",
    "adjust",
    "anderson_darling",
    "check_drift",
    "chi2",
    "cramer_von_mises",
    "hellinger",
    "jensen_shannon",
    "ks",
    "proportion_z",
    "psi",
    "wasserstein",
    "z_test",
]
