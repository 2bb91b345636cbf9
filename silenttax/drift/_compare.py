"""Drift tests computed from column summaries (the fitted reference and the current data)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from silenttax._summary import CategoricalSummary, NumericSummary, coarsen, from_t
from silenttax.drift import _stattests as st
from silenttax.errors import InputError

__all__ = ["SUMMARY_TESTS", "aligned", "wasserstein_sd"]


def aligned(
    ref: NumericSummary, cur: NumericSummary
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """Both summaries' bucket counts on one grid (the coarser scale), union of buckets."""
    k = min(ref.scale, cur.scale)
    ir, cr = coarsen(*ref.buckets(), ref.scale - k)
    ic, cc = coarsen(*cur.buckets(), cur.scale - k)
    index = np.union1d(ir, ic)
    r = np.zeros(index.size, dtype=np.int64)
    c = np.zeros(index.size, dtype=np.int64)
    r[np.searchsorted(index, ir)] = cr
    c[np.searchsorted(index, ic)] = cc
    return index, r, c, k


def _need(ref: NumericSummary, cur: NumericSummary, minimum: int = 1) -> None:
    if ref.count < minimum or cur.count < minimum:
        raise InputError(f"need at least {minimum} finite values on each side")


def ks_summary(ref: NumericSummary, cur: NumericSummary) -> st.DriftResult:
    """KS from bucket edges (exact at edges; never above the exact D)."""
    from scipy.stats import kstwo, kstwobign

    _need(ref, cur)
    if ref.exact_values is not None and cur.exact_values is not None:
        return st.ks(ref.exact_values, cur.exact_values)
    _, r, c, k = aligned(ref, cur)
    fr = np.cumsum(r) / ref.count
    fc = np.cumsum(c) / cur.count
    gap = np.abs(fr - fc)
    d = float(gap.max())
    en = ref.count * cur.count / (ref.count + cur.count)
    if en > 10_000:  # asymptotic Kolmogorov distribution; kstwo's exact sf is slow here
        p = float(kstwobign.sf(math.sqrt(en) * d))
    else:
        p = float(kstwo.sf(d, round(en))) if en >= 1 else 1.0
    bound = float(np.max(np.maximum(r / ref.count, c / cur.count)))
    return st.DriftResult(
        method="ks",
        statistic=d,
        p_value=min(1.0, max(0.0, p)),
        effect_size=d,
        effect="ks_distance",
        n_reference=ref.count,
        n_current=cur.count,
        details={"from": "buckets", "scale": k, "max_underestimate": bound},
    )


def wasserstein_sd(ref: NumericSummary, cur: NumericSummary) -> float:
    """Wasserstein distance over the reference standard deviation, from the buckets.

    Each bucket's mass sits at its midpoint (clipped to the observed range),
    so the error is at most about one bucket width.
    """
    if ref.exact_values is not None and cur.exact_values is not None:
        return st.wasserstein(ref.exact_values, cur.exact_values).statistic
    index, r, c, k = aligned(ref, cur)
    if index.size == 0:
        return 0.0
    low, high = min(ref.min, cur.min), max(ref.max, cur.max)
    points = np.clip(from_t((index + 0.5) / 2.0**k), low, high)
    gap = np.abs(np.cumsum(r) / ref.count - np.cumsum(c) / cur.count)[:-1]
    distance = float(np.sum(gap * np.diff(points)))
    sd = ref.sd
    if sd > 0:
        return distance / sd
    return 0.0 if distance == 0 else math.inf


def wasserstein_summary(ref: NumericSummary, cur: NumericSummary) -> st.DriftResult:
    """Normalized Wasserstein distance (no p-value)."""
    _need(ref, cur)
    value = wasserstein_sd(ref, cur)
    return st.DriftResult(
        method="wasserstein",
        statistic=value,
        p_value=None,
        effect_size=value,
        effect="wasserstein_sd",
        n_reference=ref.count,
        n_current=cur.count,
        details={"reference_sd": ref.sd},
    )


def _quantile_bins(
    ref: NumericSummary, cur: NumericSummary, bins: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Counts in ``bins`` bins cut at reference quantiles (on bucket edges)."""
    _, r, c, _ = aligned(ref, cur)
    cum = np.cumsum(r)
    targets = np.arange(1, bins) * ref.count / bins
    cuts = np.unique(np.searchsorted(cum, targets, side="left"))
    starts = np.concatenate(([0], cuts + 1))
    starts = starts[starts < r.size]
    return np.add.reduceat(r, starts).astype(float), np.add.reduceat(c, starts).astype(float)


def _binned(
    name: str, effect: str, fn: Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], float]
) -> Callable[[NumericSummary, NumericSummary, int], st.DriftResult]:
    def test(ref: NumericSummary, cur: NumericSummary, bins: int) -> st.DriftResult:
        _need(ref, cur)
        r, c = _quantile_bins(ref, cur, bins)
        return st.distance_result(
            name, effect, fn(r, c), ref.count, cur.count, {"bins": int(r.size)}
        )

    return test


def levels_summary(ref: NumericSummary, cur: NumericSummary) -> st.DriftResult:
    """Chi-square over the distinct values (buckets) of a low-cardinality numeric column."""
    _need(ref, cur)
    index, r, c, k = aligned(ref, cur)
    labels = [f"{v:.6g}" for v in from_t((index + 0.5) / 2.0**k)]
    return st.chi2_from_table(np.vstack([r, c]), labels)


def z_summary(ref: NumericSummary, cur: NumericSummary) -> st.DriftResult:
    """z-test for means from the exact moments."""
    _need(ref, cur, 2)
    return st.z_from_moments(ref.count, ref.mean, ref.var, cur.count, cur.mean, cur.var)


def proportion_summary(ref: NumericSummary, cur: NumericSummary) -> st.DriftResult:
    """Two-proportion z-test for a 0/1 column (share of ones)."""
    _need(ref, cur)
    return st.proportion_from_counts(round(ref.total), ref.count, round(cur.total), cur.count)


def _raw(
    fn: Callable[[npt.ArrayLike, npt.ArrayLike], st.DriftResult],
) -> Callable[[NumericSummary, NumericSummary], st.DriftResult]:
    def test(ref: NumericSummary, cur: NumericSummary) -> st.DriftResult:
        _need(ref, cur, 2)
        result = fn(ref.values(), cur.values())
        if ref.exact_values is None:
            details = {**result.details, "from": "bucket midpoints"}
            return result.model_copy(update={"details": details})
        return result

    return test


def _label_table(
    ref: CategoricalSummary, cur: CategoricalSummary
) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Levels of both sides (``<other>`` when a cap folded some away) and the 2 x k counts."""
    if ref.count == 0 or cur.count == 0:
        raise InputError("need at least one value on each side")
    levels = sorted(set(ref.levels) | set(cur.levels))
    table = [[ref.levels.get(v, 0) for v in levels], [cur.levels.get(v, 0) for v in levels]]
    if ref.other or cur.other:
        levels.append("<other>")
        table[0].append(ref.other)
        table[1].append(cur.other)
    return levels, np.asarray(table, dtype=np.int64)


def chi2_labels(ref: CategoricalSummary, cur: CategoricalSummary) -> st.DriftResult:
    """Chi-square homogeneity over the union of levels (``other`` as one more level)."""
    levels, table = _label_table(ref, cur)
    return st.chi2_from_table(table, levels)


def _label_distance(
    name: str, effect: str, fn: Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], float]
) -> Callable[[CategoricalSummary, CategoricalSummary], st.DriftResult]:
    def test(ref: CategoricalSummary, cur: CategoricalSummary) -> st.DriftResult:
        levels, table = _label_table(ref, cur)
        value = fn(table[0].astype(np.float64), table[1].astype(np.float64))
        return st.distance_result(
            name, effect, value, ref.count, cur.count, {"levels": len(levels)}
        )

    return test


#: test name -> (applies to, function). Numeric tests take (ref, cur) or (ref, cur, bins).
SUMMARY_TESTS: dict[str, tuple[str, Callable[..., st.DriftResult]]] = {
    "ks": ("numeric", ks_summary),
    "wasserstein": ("numeric", wasserstein_summary),
    "psi": ("numeric_binned", _binned("psi", "psi", st.psi_counts)),
    "jensen_shannon": (
        "numeric_binned",
        _binned("jensen_shannon", "jensen_shannon_distance", st.jensen_shannon_counts),
    ),
    "hellinger": (
        "numeric_binned",
        _binned("hellinger", "hellinger_distance", st.hellinger_counts),
    ),
    "anderson_darling": ("numeric", _raw(st.anderson_darling)),
    "cramer_von_mises": ("numeric", _raw(st.cramer_von_mises)),
    "z_test": ("numeric", z_summary),
    "chi2": ("numeric", levels_summary),
    "proportion_z": ("numeric", proportion_summary),
    "chi2_labels": ("categorical", chi2_labels),
    "psi_labels": ("categorical", _label_distance("psi", "psi", st.psi_counts)),
    "jensen_shannon_labels": (
        "categorical",
        _label_distance("jensen_shannon", "jensen_shannon_distance", st.jensen_shannon_counts),
    ),
    "hellinger_labels": (
        "categorical",
        _label_distance("hellinger", "hellinger_distance", st.hellinger_counts),
    ),
}
