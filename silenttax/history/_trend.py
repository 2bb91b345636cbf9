"""Trends across rollups: a calibrated test for creep, a dated change point, a projection.

The unit is the rollup (a day's merged p99, a day's cost per 1000), never the request: at
a million requests a day an ordinary 3% day-to-day wobble is ~16 standard errors of the
daily p99, so a per-request test across days alarms on weather (research note
``history.md`` §5e). Day-to-day figures are autocorrelated (a busy week is busy every
day), so permutation tests and t-tests are not calibrated either: Otava's defaults
flagged 64-95% of pure-noise AR(1) series in the note's measurements.

**The alarm: a rank trend with an AR(1) sieve bootstrap.** The statistic is Spearman's
correlation of the (log) values with time, one-sided in the direction that is worse
(up for latency and cost, down for throughput). Its null distribution comes from
surrogate series with no trend and the same serial correlation (an AR(1) sieve): the
lag-1 coefficient is the larger of two estimates that a trend does not inflate — from
the first differences (``r1 = -(1 - phi) / 2``) and from the residuals around the
Theil-Sen line (Kendall's bias correction ``phi + (1 + 3 phi) / n``) — taken half a
standard error up (too little correlation in the surrogates is a false alarm), and the
AR(1) residuals are resampled with replacement. A creep is
named (``history.creep``) when the p-value is under the look's level **and** the
Theil-Sen slope is over ``margin`` per 30 days; the slope's interval comes from the
same bootstrap around the fitted line. Why this test: it was the one variant in the
note's measurements that held its level (3.7-4.7%) for day-to-day correlation 0 to 0.8
and still caught +10% per quarter creep every time.

**Looks.** Checked every week, a quarter is 13 looks, and a test at ``alpha`` on each
would alarm on far more than ``alpha`` of quiet quarters. The current call is taken as
one of a quarter's weekly looks and tested at the level that holds the whole family:
the ``alpha`` quantile, over the surrogates, of their smallest p-value across all the
looks ("min-p"), each look's p-value divided by the square of the share of the data it
sees (early looks spend less of ``alpha``, as in O'Brien-Fleming's design). A young
series (shorter than ``looks`` weeks) is looked at as it
grows: the looks are its prefixes a week apart, past and future, up to ``looks`` weeks;
a mature one is looked at through a sliding window of its length, moved a week at a
time ``looks`` times. The looks overlap, so this level is far less severe than
Bonferroni's ``alpha / looks``, and the false-alarm rate per series-quarter stays at
``alpha`` however the quarter's looks fall.

**The date: E-divisive** (one split, the energy statistic of Matteson and James) on the
same series, its p-value from the same surrogates (never a t-test after choosing the
split: that is the selection Otava's docs overlook). ``history.change_point`` names the
first day of the new level, the size (median after over median before, with a bootstrap
interval) and the nearest marker (a deploy, a version, a new environment).

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> days = np.arange(90)
    >>> creep = 0.020 * np.exp(0.10 / 90 * days + rng.normal(0, 0.03, 90))  # +10%/quarter
    >>> result = trend_test(days * 86400.0, creep)
    >>> result.creeping, round(result.slope_per_30d, 3) > 0.02
    (True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from silenttax.errors import InputError

__all__ = ["ChangePoint", "TrendResult", "change_point", "trend_test"]

_Array = npt.NDArray[np.float64]
DAY = 86400.0
MONTH = 30 * DAY


def _ranks(x: _Array) -> _Array:
    """Ranks along the last axis (ties broken by order: continuous data)."""
    return np.argsort(np.argsort(x, axis=-1), axis=-1).astype(np.float64)


def _spearman(t_ranks: _Array, y: _Array) -> _Array:
    """Spearman correlation of each row of ``y`` with the time ranks."""
    r = _ranks(y)
    r -= r.mean(axis=-1, keepdims=True)
    tr = t_ranks - t_ranks.mean()
    return np.asarray((r @ tr) / (np.sqrt((r * r).sum(axis=-1)) * math.sqrt(float(tr @ tr))))


def _ar1(x: _Array) -> tuple[float, _Array]:
    """Lag-1 coefficient (Kendall bias-corrected, clipped) and the centred residuals."""
    n = x.size
    c = x - x.mean()
    denom = float(c @ c)
    phi = float(c[1:] @ c[:-1]) / denom if denom > 0 else 0.0
    phi = min(0.95, max(-0.95, phi + (1 + 3 * phi) / n))
    resid = c[1:] - phi * c[:-1]
    return phi, resid - resid.mean()


def _phi_from_differences(x: _Array) -> float:
    """The AR(1) coefficient from the lag-1 autocorrelation of the first differences
    (``r1 = -(1 - phi) / 2``): a trend only shifts the differences' mean, so it does not
    pass for serial correlation, and a step is a single outlier among them."""
    d = np.diff(x)
    d = d - d.mean()
    denom = float(d @ d)
    r1 = float(d[1:] @ d[:-1]) / denom if denom > 0 else -0.5
    return min(0.95, max(-0.95, 1 + 2 * r1))


def _surrogates(
    x: _Array, draws: int, rng: np.random.Generator, n: int = 0, phi: float | None = None
) -> _Array:
    """``draws`` AR(1) series like ``x`` (same coefficient, resampled residuals), no
    trend, of length ``n`` (default: as long as ``x``)."""
    fitted, resid = _ar1(x)
    if phi is None:
        phi = fitted
    else:
        c = x - x.mean()
        resid = c[1:] - phi * c[:-1]
        resid = resid - resid.mean()
    n = n or x.size
    if resid.size == 0:
        return np.zeros((draws, n))
    e = rng.choice(resid, size=(draws, n + 50), replace=True)
    out = np.empty_like(e)
    out[:, 0] = e[:, 0]
    for i in range(1, e.shape[1]):  # a burn-in of 50 forgets the start
        out[:, i] = phi * out[:, i - 1] + e[:, i]
    return np.asarray(out[:, 50:])


def _theil_sen(t: _Array, y: _Array) -> _Array:
    """Theil-Sen slope of each row of ``y`` against ``t`` (median of pairwise slopes)."""
    i, j = np.triu_indices(t.size, k=1)
    dt = t[j] - t[i]
    return np.asarray(np.median((y[..., j] - y[..., i]) / dt, axis=-1))


@dataclass(frozen=True)
class TrendResult:
    """What :func:`trend_test` found on one series."""

    n: int
    """Points tested."""
    log_scale: bool
    """Whether the values were tested on the log scale (all positive: relative change)."""
    direction: str
    """``"up"`` or ``"down"``: the direction that is worse."""
    rho: float
    """Spearman correlation with time (signed so that positive is worse)."""
    p_value: float
    """One-sided sieve-bootstrap p-value of ``rho``."""
    level: float
    """The level this look was tested at (min-p over the looks: see the module docs)."""
    p_family: float
    """The p-value over the family of looks: the share of surrogates whose smallest
    p-value across the looks is at most ``p_value`` (compare with ``alpha``)."""
    phi: float
    """The fitted lag-1 autocorrelation of the series."""
    slope_per_30d: float
    """Theil-Sen slope per 30 days: a relative change on the log scale (0.05 = +5%)."""
    slope_ci: tuple[float, float]
    """Its bootstrap interval at ``1 - alpha``."""
    margin: float
    """The smallest slope per 30 days that is creep."""
    creeping: bool
    """``p_family`` at most ``alpha`` and the slope (in the worse direction) over ``margin``."""
    start_level: float
    """The fitted value at the first point (original scale)."""
    end_level: float
    """The fitted value at the last point (original scale)."""
    intercept: float = field(repr=False, default=0.0)
    """The fitted line's value at ``t = 0`` (log scale when ``log_scale``)."""
    slope_per_second: float = field(repr=False, default=0.0)
    """The same slope per second (log scale when ``log_scale``)."""
    end_time: float = field(repr=False, default=0.0)
    """The last point's time (epoch seconds)."""

    def crossing(self, threshold: float, slope: float | None = None) -> float | None:
        """Epoch seconds when the fitted line, or one of ``slope`` (per second, on the
        test's scale) through the same last fitted value, reaches ``threshold`` (None:
        a flat line, or one that moves away from it)."""
        s = self.slope_per_second if slope is None else slope
        if threshold <= 0 and self.log_scale:
            return None
        target = math.log(threshold) if self.log_scale else threshold
        end = math.log(self.end_level) if self.log_scale else self.end_level
        if s == 0 or (target - end) / s < 0:
            return None
        at = self.end_time + (target - end) / s
        return at if math.isfinite(at) else None


def _prepare(times: npt.ArrayLike, values: npt.ArrayLike) -> tuple[_Array, _Array, bool]:
    t = np.asarray(times, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise InputError(
            f"times and values: need two 1-d arrays of one length, got {t.shape}, {y.shape}"
        )
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    log = bool(y.size) and bool((y > 0).all())
    return t, (np.log(y) if log else y), log


def trend_test(
    times: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    direction: str = "up",
    alpha: float = 0.05,
    looks: int = 13,
    margin: float = 0.01,
    min_points: int = 28,
    draws: int = 999,
    seed: int = 0,
) -> TrendResult:
    """The sieve-bootstrap rank trend test on one series of rollups.

    Args:
        times: Epoch seconds of each point (a day's rollup: its start).
        values: The figure (missing values as NaN are dropped).
        direction: ``"up"`` (higher is worse: latency, cost, null rates) or ``"down"``.
        alpha: False-alarm rate per series over ``looks`` looks.
        looks: Weekly looks the false-alarm rate holds over (13: a quarter checked
            weekly); 1: this call alone.
        margin: Smallest slope per 30 days that counts (relative on the log scale: 0.01 =
            1% a month; in the values' unit when some are <= 0).
        draws: Bootstrap surrogates.
        min_points: Fewest points judged (28: four weeks of days): shorter series, and
            looks at fewer points, are not judged — the serial correlation cannot be
            told from a trend that briefly.
        seed: The bootstrap's seed (the same series gives the same answer).

    Raises:
        InputError: fewer than ``min_points`` points, a bad ``direction``, ``alpha`` or ``looks``.
    """
    if direction not in ("up", "down"):
        raise InputError(f"direction must be 'up' or 'down', got {direction!r}")
    if not 0 < alpha < 1 or looks < 1:
        raise InputError(f"need 0 < alpha < 1 and looks >= 1, got {alpha!r}, {looks!r}")
    t, y, log = _prepare(times, values)
    n = y.size
    if n < min_points:
        raise InputError(f"a trend needs at least {min_points} points (min_points), got {n}")
    sign = 1.0 if direction == "up" else -1.0
    rng = np.random.default_rng(seed)
    slope = float(_theil_sen(t, y[None, :])[0])
    intercept = float(np.median(y - slope * t))
    fitted = intercept + slope * t
    # the noise's serial correlation from the residuals around the line: a trend left in
    # would pass for autocorrelation and hide itself in the surrogates
    phi = max(_phi_from_differences(y), _ar1(y - fitted)[0])
    # a short series says little about its correlation, and too little correlation in
    # the surrogates is a false alarm: take phi one standard error up
    phi = min(0.95, phi + 0.5 * math.sqrt(max(0.0, 1 - phi * phi) / n))
    week = max(1, round(7 * DAY / float(np.median(np.diff(t)))))
    horizon = looks * week
    if n < horizon:  # young: its prefixes, a week apart, up to the horizon
        windows = [(0, m) for m in range(n % week or week, horizon + 1, week) if m >= min_points]
        length = max(horizon, n)
    else:  # mature: a sliding window of n, moved a week at a time
        windows = [(k * week, k * week + n) for k in range(looks)]
        length = n + (looks - 1) * week
    surrogates = _surrogates(y - fitted, draws, rng, length, phi)
    t_ranks = np.arange(n, dtype=np.float64)
    rho = float(_spearman(t_ranks, (sign * y)[None, :])[0])
    p = 1.0
    min_p = np.full(draws, np.inf)
    longest = max(end - start for start, end in windows)
    weight_now = 1.0
    for start, end in windows:
        null = _spearman(np.arange(end - start, dtype=np.float64), surrogates[:, start:end])
        order = np.sort(null)  # each surrogate's own p-value at this look
        # early looks (fewer points) spend less of alpha: p over the square of the share
        # of the data they see (an O'Brien-Fleming-like shape)
        weight = ((end - start) / longest) ** 2
        own = (draws - np.searchsorted(order, null, "left")) / draws / weight
        min_p = np.minimum(min_p, own)
        if (start, end) == (0, n):
            p = float((1 + np.count_nonzero(null >= rho)) / (draws + 1))
            weight_now = weight
    level = float(np.quantile(min_p, alpha, method="lower")) * weight_now
    p_family = float((1 + np.count_nonzero(min_p <= p / weight_now)) / (draws + 1))
    # the slope's interval: surrogates of the residuals around the fitted line
    around = fitted[None, :] + _surrogates(y - fitted, min(draws, 499), rng)
    boots = _theil_sen(t, around)
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    per_month = slope * MONTH
    creeping = p_family <= alpha and sign * per_month > margin
    edge = (float(fitted[0]), float(fitted[-1]))
    return TrendResult(
        n=n,
        log_scale=log,
        direction=direction,
        rho=rho,
        p_value=p,
        level=level,
        p_family=p_family,
        phi=phi,
        slope_per_30d=per_month,
        slope_ci=(float(lo) * MONTH, float(hi) * MONTH),
        margin=margin,
        creeping=bool(creeping),
        start_level=math.exp(edge[0]) if log else edge[0],
        end_level=math.exp(edge[1]) if log else edge[1],
        intercept=intercept,
        slope_per_second=slope,
        end_time=float(t[-1]),
    )


@dataclass(frozen=True)
class ChangePoint:
    """The most likely single change in a series (E-divisive)."""

    step_fits_better: bool
    """Whether two flat levels split there leave less (absolute) error than one straight
    line: a step, not a steady slope (a creep also has a "best split")."""
    index: int
    """Position of the first point of the new level."""
    at: float
    """Its time (epoch seconds)."""
    p_value: float
    """Sieve-bootstrap p-value of the energy statistic."""
    ratio: float
    """Median after over median before (original scale; a difference when not positive)."""
    ratio_ci: tuple[float, float]
    """Its bootstrap interval at 95%."""
    before: float
    """Median before."""
    after: float
    """Median after."""


def _energy(y: _Array, min_size: int) -> tuple[_Array, _Array]:
    """The E-divisive statistic of every split of each row (rows: series), and its argmax."""
    n = y.shape[-1]
    d = np.abs(y[..., :, None] - y[..., None, :])  # (rows, n, n)
    within = np.cumsum(np.cumsum(d, axis=-1), axis=-2)  # prefix sums of distances
    total = within[..., -1, -1]
    best = np.full(y.shape[:-1], -np.inf)
    where = np.zeros(y.shape[:-1], dtype=np.int64)
    for k in range(min_size, n - min_size + 1):
        a = within[..., k - 1, k - 1]  # pairs within [0, k)
        full_k = within[..., k - 1, -1]  # rows [0, k) x all columns
        cross = full_k - a  # [0, k) x [k, n)
        b = total - 2 * cross - a  # pairs within [k, n)
        m = n - k
        q = (k * m / n) * (2 * cross / (k * m) - a / (k * k) - b / (m * m))
        better = q > best
        best = np.where(better, q, best)
        where = np.where(better, k, where)
    return np.asarray(best, dtype=np.float64), np.asarray(where, dtype=np.float64)


def change_point(
    times: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    draws: int = 299,
    min_size: int = 5,
    seed: int = 0,
) -> ChangePoint | None:
    """The best single split of a series and its sieve-bootstrap p-value (None: too short).

    Args:
        times: Epoch seconds of each point.
        values: The figure.
        draws: Bootstrap surrogates.
        min_size: Fewest points on either side of the split.
        seed: The bootstrap's seed.
    """
    t, y, log = _prepare(times, values)
    n = y.size
    if n < 2 * min_size:
        return None
    rng = np.random.default_rng(seed)
    stat, split = _energy(y[None, :], min_size)
    k = int(split[0])
    null, _ = _energy(_surrogates(y, draws, rng), min_size)
    p = float((1 + np.count_nonzero(null >= stat[0])) / (draws + 1))
    before, after = y[:k], y[k:]

    def size(b: _Array, a: _Array) -> float:
        return float(np.median(a) - np.median(b))

    boots = [
        size(rng.choice(before, before.size), rng.choice(after, after.size)) for _ in range(400)
    ]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    point = size(before, after)
    convert = math.exp if log else (lambda v: v)
    slope = float(_theil_sen(t, y[None, :])[0])
    line = y - float(np.median(y - slope * t)) - slope * t
    step = np.concatenate((before - np.median(before), after - np.median(after)))
    return ChangePoint(
        step_fits_better=bool(np.abs(step).sum() < np.abs(line).sum()),
        index=k,
        at=float(t[k]),
        p_value=p,
        ratio=convert(point),
        ratio_ci=(convert(float(lo)), convert(float(hi))),
        before=convert(float(np.median(before))),
        after=convert(float(np.median(after))),
    )
