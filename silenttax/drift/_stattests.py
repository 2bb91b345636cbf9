"""Two-sample drift tests on raw arrays, each returning a typed :class:`DriftResult`.

Every function takes ``reference`` and ``current`` (1-D array-likes) and
returns the statistic, a p-value where the test has one (``None`` for pure
distances), an effect size on a scale-free measure, and the sample sizes.
Missing values are not dropped silently: NaN raises
:class:`~silenttax.errors.InputError` (the :class:`~silenttax.drift.DriftDetector`
tests missingness separately). scipy is imported inside the functions.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from silenttax.errors import InputError

__all__ = [
    "DriftResult",
    "anderson_darling",
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


class DriftResult(BaseModel):
    """The outcome of one two-sample test."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    method: str
    """Test name (``ks``, ``chi2``, ``psi``, ...)."""
    statistic: float
    """The test statistic (for distances: the distance)."""
    p_value: float | None
    """p-value, or None for tests without one (distances)."""
    effect_size: float
    """Scale-free size of the change (named in ``effect``)."""
    effect: str
    """What ``effect_size`` measures (e.g. ``ks_distance``, ``cohens_h``)."""
    n_reference: int
    """Reference sample size used."""
    n_current: int
    """Current sample size used."""
    details: dict[str, JsonValue] = Field(default_factory=dict)
    """Test-specific detail (bins, levels, capped p-values...)."""


def _numeric(values: npt.ArrayLike, argument: str) -> npt.NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InputError(f"{argument}: expected numbers ({exc})") from exc
    if array.size == 0:
        raise InputError(f"{argument}: is empty")
    bad = ~np.isfinite(array)
    if bad.any():
        nans = int(np.isnan(array).sum())
        raise InputError(
            f"{argument}: contains {nans} NaN and {int(bad.sum()) - nans} infinite values; "
            "drop or impute them (DriftDetector reports missing and infinite values separately)"
        )
    return array


def _labels(values: npt.ArrayLike | Sequence[Any], argument: str) -> npt.NDArray[Any]:
    array = np.asarray(values, dtype=object).ravel()
    if array.size == 0:
        raise InputError(f"{argument}: is empty")
    nulls = [i for i, v in enumerate(array) if v is None or (isinstance(v, float) and v != v)]
    if nulls:
        raise InputError(
            f"{argument}: contains {len(nulls)} missing values (None/NaN); drop them or map "
            "them to a level of their own"
        )
    return array


def _table(reference: npt.NDArray[Any], current: npt.NDArray[Any]) -> tuple[list[Any], Any]:
    """Counts of every level of the union, reference row first (levels sorted by repr)."""
    ref_counts, cur_counts = Counter(reference.tolist()), Counter(current.tolist())
    levels = sorted(set(ref_counts) | set(cur_counts), key=repr)
    table = np.array(
        [[ref_counts.get(v, 0) for v in levels], [cur_counts.get(v, 0) for v in levels]],
        dtype=np.int64,
    )
    return levels, table


def ks(reference: npt.ArrayLike, current: npt.ArrayLike) -> DriftResult:
    """Two-sample Kolmogorov-Smirnov test (same statistic and p-value as ``scipy.stats.ks_2samp``).

    Effect size: the KS distance ``D`` itself (largest gap between the two
    empirical CDFs).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> r = ks(rng.normal(0, 1, 2000), rng.normal(0.3, 1, 2000))
        >>> r.method, round(r.statistic, 3), r.p_value < 1e-6
        ('ks', 0.128, True)
    """
    from scipy.stats import ks_2samp

    ref = _numeric(reference, "reference")
    cur = _numeric(current, "current")
    res = ks_2samp(ref, cur)
    d = float(res.statistic)
    return DriftResult(
        method="ks",
        statistic=d,
        p_value=float(res.pvalue),
        effect_size=d,
        effect="ks_distance",
        n_reference=ref.size,
        n_current=cur.size,
        details={"location": float(res.statistic_location), "sign": int(res.statistic_sign)},
    )


def _quantile_bins(ref: npt.NDArray[np.float64], bins: int) -> npt.NDArray[np.float64]:
    """Inner edges at reference quantiles (duplicates removed, so ties share a bin)."""
    edges = np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1])
    return np.asarray(np.unique(edges), dtype=np.float64)


def binned_shares(
    ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64], bins: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Counts of both samples in bins at reference quantiles (smoothed shares, raw counts)."""
    edges = _quantile_bins(ref, bins)
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    return r.astype(np.float64), c.astype(np.float64), np.vstack([r, c])


def smoothed(counts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Shares with a Jeffreys (+0.5) pseudo-count per bin: an empty bin never gives log(0)."""
    shares: npt.NDArray[np.float64] = (counts + 0.5) / (counts.sum() + 0.5 * counts.size)
    return shares


def psi_counts(r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> float:
    """PSI ``sum((c - r) ln(c / r))`` from two count vectors over the same cells."""
    p, q = smoothed(r), smoothed(c)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon_counts(r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> float:
    """Jensen-Shannon distance (base 2) from two count vectors over the same cells."""
    p, q = smoothed(r), smoothed(c)
    m = 0.5 * (p + q)
    divergence = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    return math.sqrt(max(0.0, float(divergence)))


def hellinger_counts(r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> float:
    """Hellinger distance from two count vectors over the same cells."""
    p, q = smoothed(r), smoothed(c)
    return math.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(p * q)))))


def distance_result(
    method: str, effect: str, value: float, n_ref: int, n_cur: int, details: dict[str, Any]
) -> DriftResult:
    """A DriftResult for a distance: no p-value, the distance is its own effect size."""
    return DriftResult(
        method=method,
        statistic=value,
        p_value=None,
        effect_size=value,
        effect=effect,
        n_reference=n_ref,
        n_current=n_cur,
        details=details,
    )


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = 10) -> DriftResult:
    """Population stability index over reference-quantile bins.

    ``PSI = sum((c - r) * ln(c / r))`` over ``bins`` bins whose edges are
    reference quantiles (equal reference mass per bin, tied values kept
    together). Empty bins get a Jeffreys pseudo-count of 0.5 before the
    shares are taken — a principled floor, unlike 1e-4 or 1e-308 constants,
    so a stray tail value cannot blow the index up. Common reading: < 0.1
    stable, 0.1-0.25 moderate shift, > 0.25 major shift. No p-value.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> round(psi(rng.lognormal(0, 1, 20_000), rng.lognormal(0, 1, 20_000)).statistic, 4)
        0.0007
    """
    if bins < 2:
        raise InputError(f"bins must be >= 2, got {bins}")
    ref = _numeric(reference, "reference")
    cur = _numeric(current, "current")
    r, c, counts = binned_shares(ref, cur, bins)
    details = {
        "bins": int(r.size),
        "reference_counts": counts[0].tolist(),
        "current_counts": counts[1].tolist(),
    }
    return distance_result("psi", "psi", psi_counts(r, c), ref.size, cur.size, details)


def wasserstein(reference: npt.ArrayLike, current: npt.ArrayLike) -> DriftResult:
    """Earth mover's distance divided by the reference standard deviation.

    A pure location shift of ``d`` standard deviations gives exactly ``d``. No p-value.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(2)
        >>> x = rng.normal(10, 2, 50_000)
        >>> round(wasserstein(x, x + 0.2).statistic, 3)  # 0.2 / sd 2
        0.1
    """
    from scipy.stats import wasserstein_distance

    ref = _numeric(reference, "reference")
    cur = _numeric(current, "current")
    sd = float(ref.std(ddof=1)) if ref.size > 1 else 0.0
    distance = float(wasserstein_distance(ref, cur))
    value = distance / sd if sd > 0 else (0.0 if distance == 0 else math.inf)
    return DriftResult(
        method="wasserstein",
        statistic=value,
        p_value=None,
        effect_size=value,
        effect="wasserstein_sd",
        n_reference=ref.size,
        n_current=cur.size,
        details={"distance": distance, "reference_sd": sd},
    )


def chi2(
    reference: npt.ArrayLike | Sequence[Any], current: npt.ArrayLike | Sequence[Any]
) -> DriftResult:
    """Chi-square test of homogeneity on the 2 x k table of level counts.

    Levels are the union of both samples (unseen and vanished levels count).
    Identical to ``scipy.stats.chi2_contingency(table, correction=False)`` —
    a two-sample test, not goodness-of-fit against a reference taken as
    exact (which inflates false alarms). Effect size: total variation
    distance between the level shares (the share of mass that moved);
    Cramér's V is in ``details``.

    Examples:
        >>> r = chi2(["a"] * 500 + ["b"] * 500, ["a"] * 600 + ["b"] * 400)
        >>> round(r.statistic, 2), round(r.effect_size, 2), r.p_value < 1e-5
        (20.2, 0.1, True)
    """
    levels, table = _table(_labels(reference, "reference"), _labels(current, "current"))
    return chi2_from_table(table, [str(v) for v in levels])


def chi2_from_table(table: npt.NDArray[np.int64], levels: list[str]) -> DriftResult:
    """The chi-square homogeneity test on a 2 x k count table (reference row first)."""
    from scipy.stats import chi2_contingency

    table = np.asarray(table, dtype=np.int64)
    keep = table.sum(axis=0) > 0
    table, levels = table[:, keep], [lv for lv, k in zip(levels, keep.tolist(), strict=True) if k]
    n_ref, n_cur = int(table[0].sum()), int(table[1].sum())
    if n_ref == 0 or n_cur == 0:
        raise InputError("chi2: both samples need at least one value")
    shares = table / table.sum(axis=1, keepdims=True)
    tvd = float(0.5 * np.abs(shares[0] - shares[1]).sum())
    if table.shape[1] < 2:
        statistic, p_value, dof = 0.0, 1.0, 0
    else:
        res = chi2_contingency(table, correction=False)
        statistic, p_value, dof = float(res.statistic), float(res.pvalue), int(res.dof)
    total = n_ref + n_cur
    cramers_v = math.sqrt(statistic / total) if total else 0.0
    moved = np.argsort(-np.abs(shares[0] - shares[1]))[:5]
    return DriftResult(
        method="chi2",
        statistic=statistic,
        p_value=p_value,
        effect_size=tvd,
        effect="total_variation",
        n_reference=n_ref,
        n_current=n_cur,
        details={
            "dof": dof,
            "cramers_v": cramers_v,
            "levels": len(levels),
            "largest_changes": {
                levels[i]: [float(shares[0, i]), float(shares[1, i])] for i in moved.tolist()
            },
        },
    )


def _distributions(
    reference: npt.ArrayLike | Sequence[Any], current: npt.ArrayLike | Sequence[Any], bins: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int, int, str]:
    """Counts of both samples: per level for labels, per quantile bin for numbers."""
    ref_raw = np.asarray(reference, dtype=object).ravel()
    numeric = ref_raw.size > 0 and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
        for v in ref_raw[: min(ref_raw.size, 100)]
    )
    if numeric:
        ref = _numeric(reference, "reference")
        cur = _numeric(current, "current")
        r, c, _ = binned_shares(ref, cur, bins)
        return r, c, ref.size, cur.size, "quantile_bins"
    _, table = _table(_labels(reference, "reference"), _labels(current, "current"))
    r, c = table[0].astype(np.float64), table[1].astype(np.float64)
    return r, c, int(r.sum()), int(c.sum()), "levels"


def jensen_shannon(
    reference: npt.ArrayLike | Sequence[Any],
    current: npt.ArrayLike | Sequence[Any],
    *,
    bins: int = 20,
) -> DriftResult:
    """Jensen-Shannon distance with base-2 logarithms (bounded by 1).

    Numbers are compared over ``bins`` reference-quantile bins, labels over
    their levels; shares get a Jeffreys pseudo-count (+0.5 per cell), so even
    disjoint samples stay just under 1. No p-value.

    Examples:
        >>> round(jensen_shannon(["a"] * 100, ["b"] * 100).statistic, 3)  # smoothed: < 1
        0.977
    """
    r, c, n_ref, n_cur, how = _distributions(reference, current, bins)
    details = {"over": how, "cells": int(r.size)}
    value = jensen_shannon_counts(r, c)
    return distance_result(
        "jensen_shannon", "jensen_shannon_distance", value, n_ref, n_cur, details
    )


def hellinger(
    reference: npt.ArrayLike | Sequence[Any],
    current: npt.ArrayLike | Sequence[Any],
    *,
    bins: int = 20,
) -> DriftResult:
    """Hellinger distance ``sqrt(1 - sum(sqrt(p q)))``, bounded by 1. No p-value.

    Examples:
        >>> round(hellinger(["a", "b"] * 50, ["a", "b"] * 50).statistic, 3)
        0.0
    """
    r, c, n_ref, n_cur, how = _distributions(reference, current, bins)
    details = {"over": how, "cells": int(r.size)}
    value = hellinger_counts(r, c)
    return distance_result("hellinger", "hellinger_distance", value, n_ref, n_cur, details)


def anderson_darling(reference: npt.ArrayLike, current: npt.ArrayLike) -> DriftResult:
    """k-sample Anderson-Darling test (``scipy.stats.anderson_ksamp``, midrank variant).

    scipy interpolates the p-value from tables covering 0.001-0.25; outside
    that range it is clipped and ``details["p_value_clipped"]`` says so
    (0.001 then means "at most 0.001"). Effect size: the KS distance.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(3)
        >>> r = anderson_darling(rng.normal(0, 1, 500), rng.normal(1, 1, 500))
        >>> r.p_value, r.details["p_value_clipped"]
        (0.001, True)
    """
    from scipy.stats import anderson_ksamp

    ref = _numeric(reference, "reference")
    cur = _numeric(current, "current")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = anderson_ksamp([ref, cur], variant="midrank")
    clipped = any("floored" in str(w.message) or "capped" in str(w.message) for w in caught)
    return DriftResult(
        method="anderson_darling",
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        effect_size=_ks_distance(ref, cur),
        effect="ks_distance",
        n_reference=ref.size,
        n_current=cur.size,
        details={"p_value_clipped": clipped},
    )


def _ks_distance(ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64]) -> float:
    both = np.concatenate([ref, cur])
    a = np.searchsorted(np.sort(ref), both, side="right") / ref.size
    b = np.searchsorted(np.sort(cur), both, side="right") / cur.size
    return float(np.max(np.abs(a - b)))


def cramer_von_mises(reference: npt.ArrayLike, current: npt.ArrayLike) -> DriftResult:
    """Two-sample Cramér-von Mises test (``scipy.stats.cramervonmises_2samp``).

    Effect size: the KS distance.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(5)
        >>> cramer_von_mises(rng.normal(0, 1, 300), rng.normal(0, 1, 300)).p_value > 0.05
        True
    """
    from scipy.stats import cramervonmises_2samp

    ref = _numeric(reference, "reference")
    cur = _numeric(current, "current")
    res = cramervonmises_2samp(ref, cur)
    return DriftResult(
        method="cramer_von_mises",
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        effect_size=_ks_distance(ref, cur),
        effect="ks_distance",
        n_reference=ref.size,
        n_current=cur.size,
    )


def z_test(reference: npt.ArrayLike, current: npt.ArrayLike) -> DriftResult:
    """Two-sample z-test for a difference in means (unequal variances).

    ``z = (mean_c - mean_r) / sqrt(var_r / n_r + var_c / n_c)``, two-sided
    normal p-value. Effect size: the mean difference in reference standard
    deviations (Glass's delta).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(5)
        >>> r = z_test(rng.normal(0, 1, 100_000), rng.normal(0.1, 1, 100_000))
        >>> round(r.effect_size, 2), r.p_value < 1e-10
        (0.1, True)
    """
    ref = _numeric(reference, "reference")
    cur = _numeric(current, "current")
    if ref.size < 2 or cur.size < 2:
        raise InputError("z_test: each sample needs at least 2 values")
    return z_from_moments(
        ref.size,
        float(ref.mean()),
        float(ref.var(ddof=1)),
        cur.size,
        float(cur.mean()),
        float(cur.var(ddof=1)),
    )


def z_from_moments(
    n_r: int, mean_r: float, var_r: float, n_c: int, mean_c: float, var_c: float
) -> DriftResult:
    """The z-test for means from counts, means and variances."""
    from scipy.stats import norm

    se = math.sqrt(var_r / n_r + var_c / n_c)
    diff = mean_c - mean_r
    if se == 0:
        z, p = (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    else:
        z = diff / se
        p = float(2 * norm.sf(abs(z)))
    sd = math.sqrt(var_r)
    effect = diff / sd if sd > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return DriftResult(
        method="z_test",
        statistic=z,
        p_value=p,
        effect_size=effect,
        effect="mean_shift_sd",
        n_reference=n_r,
        n_current=n_c,
        details={"mean_reference": mean_r, "mean_current": mean_c},
    )


def proportion_z(reference: npt.ArrayLike, current: npt.ArrayLike) -> DriftResult:
    """Two-proportion z-test (pooled) for binary data (booleans or 0/1).

    Effect size: Cohen's h, ``2 asin(sqrt(p_c)) - 2 asin(sqrt(p_r))``
    (0.2 is "small"), which weighs a change from 1% to 2% like one from 50%
    to 64%.

    Examples:
        >>> r = proportion_z([1] * 20 + [0] * 980, [1] * 45 + [0] * 955)
        >>> round(r.effect_size, 3), r.p_value < 0.01
        (0.144, True)
    """
    ref = _numeric(reference, "reference")
    cur = _numeric(current, "current")
    for name, values in (("reference", ref), ("current", cur)):
        if not np.isin(values, (0.0, 1.0)).all():
            raise InputError(f"{name}: proportion_z needs binary values (0/1 or booleans)")
    return proportion_from_counts(int(ref.sum()), ref.size, int(cur.sum()), cur.size)


def proportion_from_counts(k_r: int, n_r: int, k_c: int, n_c: int) -> DriftResult:
    """The two-proportion z-test from success counts and sample sizes."""
    from scipy.stats import norm

    if n_r == 0 or n_c == 0:
        raise InputError("proportion_z: both samples need at least one value")
    if not (0 <= k_r <= n_r and 0 <= k_c <= n_c):
        raise InputError(
            f"proportion_z: successes must lie in [0, n] (got {k_r} of {n_r} and {k_c} of "
            f"{n_c}): the values are not all 0/1"
        )
    p_r, p_c = k_r / n_r, k_c / n_c
    pooled = (k_r + k_c) / (n_r + n_c)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_r + 1 / n_c))
    if se == 0:
        z, p = 0.0, 1.0
    else:
        z = (p_c - p_r) / se
        p = float(2 * norm.sf(abs(z)))
    h = 2 * math.asin(math.sqrt(p_c)) - 2 * math.asin(math.sqrt(p_r))
    return DriftResult(
        method="proportion_z",
        statistic=z,
        p_value=p,
        effect_size=h,
        effect="cohens_h",
        n_reference=n_r,
        n_current=n_c,
        details={"rate_reference": p_r, "rate_current": p_c},
    )
