"""Small statistics helpers shared by several modules.

scipy is imported inside the functions: these run on check paths, never on
recording paths, and ``import silenttax`` must not pull in ``scipy.stats``.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "adjust",
    "hodges_lehmann",
    "hodges_lehmann_shift",
    "lower_rank",
    "quantile_rank_interval",
]


def lower_rank(n: int, q: float) -> int:
    """0-based rank of the q-quantile as the lower order statistic: ``floor(q (n - 1))``.

    This is NumPy's ``method="lower"``.

    Examples:
        >>> lower_rank(101, 0.5), lower_rank(100, 0.99), lower_rank(1, 0.3)
        (50, 98, 0)
    """
    return min(n - 1, max(0, math.floor(q * (n - 1) + 1e-9)))


def quantile_rank_interval(n: int, q: float, confidence: float = 0.95) -> tuple[int, int] | None:
    """Distribution-free confidence interval for the q-quantile, as 0-based ranks.

    With ``X_(1) <= ... <= X_(n)`` the sorted sample, ``P(X_(l) <= xi_q <= X_(u))``
    is at least ``confidence`` where ``l`` and ``u`` come from the
    Binomial(n, q) distribution of how many observations fall below the true
    quantile ``xi_q`` (the textbook order-statistic interval). Returns ``None``
    when ``n`` is too small for the interval to exist inside the sample (e.g.
    fewer than ~300 observations for a 95% interval on p99).

    Examples:
        >>> quantile_rank_interval(1000, 0.5)
        (468, 531)
        >>> quantile_rank_interval(100, 0.99) is None
        True
    """
    from scipy.stats import binom

    tail = (1.0 - confidence) / 2.0
    # B = #observations below xi_q ~ Binomial(n, q). X_(l) <= xi_q <=> B >= l and
    # xi_q <= X_(u) <=> B <= u - 1, so take the largest l with P(B <= l - 1) <= tail
    # and the smallest u with P(B >= u) <= tail (1-based order statistics).
    lo = int(binom.ppf(tail, n, q))
    hi = int(binom.ppf(1.0 - tail, n, q)) + 1
    if lo < 1 or hi > n:
        return None
    return lo - 1, hi - 1


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def hodges_lehmann(x: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """One-sample Hodges-Lehmann location estimate with its distribution-free CI.

    The estimate is the median of the Walsh averages ``(x_i + x_j) / 2``; the
    interval comes from the Wilcoxon signed-rank distribution (normal
    approximation), as in Hollander & Wolfe. Valid for any symmetric noise,
    such as per-round log ratios of an interleaved A/B run.

    Examples:
        >>> est, lo, hi = hodges_lehmann([0.1, 0.12, 0.09, 0.11, 0.3, 0.1, 0.08, 0.1, 0.13, 0.1])
        >>> round(est, 3), lo < est < hi
        (0.105, True)
    """
    import numpy as np

    values = np.sort(np.asarray(x, dtype=float))
    n = values.size
    i, j = np.triu_indices(n)
    walsh = np.sort((values[i] + values[j]) / 2)
    estimate = float(np.median(walsh))
    big_n = walsh.size
    spread = _z(confidence) * math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    k = math.floor(n * (n + 1) / 4 - spread)
    k = max(0, min(k, big_n // 2))
    return estimate, float(walsh[k]), float(walsh[big_n - 1 - k])


def hodges_lehmann_shift(
    x: Any, y: Any, confidence: float = 0.95, max_size: int = 1500
) -> tuple[float, float, float]:
    """Two-sample Hodges-Lehmann shift ``y - x`` with its Mann-Whitney CI.

    Samples larger than ``max_size`` are thinned evenly after sorting (the
    estimate depends on the distributions, not on every value).

    Examples:
        >>> est, lo, hi = hodges_lehmann_shift([1.0, 2.0, 3.0, 4.0] * 10, [2.0, 3.0, 4.0, 5.0] * 10)
        >>> est, lo <= 1.0 <= hi
        (1.0, True)
    """
    import numpy as np

    def thin(values: Any) -> Any:
        v = np.sort(np.asarray(values, dtype=float))
        if v.size > max_size:
            v = v[np.linspace(0, v.size - 1, max_size).round().astype(int)]
        return v

    a, b = thin(x), thin(y)
    n, m = a.size, b.size
    diffs = np.sort((b[None, :] - a[:, None]).ravel())
    estimate = float(np.median(diffs))
    k = math.floor(n * m / 2 - _z(confidence) * math.sqrt(n * m * (n + m + 1) / 12))
    k = max(0, min(k, diffs.size // 2))
    return estimate, float(diffs[k]), float(diffs[diffs.size - 1 - k])


def adjust(p_values: list[float], method: str) -> list[float]:
    """Holm (family-wise) or Benjamini-Hochberg (``"fdr"``) adjusted p-values.

    Examples:
        >>> [round(p, 3) for p in adjust([0.01, 0.04, 0.03], "holm")]
        [0.03, 0.06, 0.06]
        >>> [round(p, 3) for p in adjust([0.01, 0.04, 0.03], "fdr")]
        [0.03, 0.04, 0.04]
    """
    m = len(p_values)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p_values[i]))
            adjusted[i] = running
    elif method == "fdr":
        running = 1.0
        for rank in range(m - 1, -1, -1):
            i = order[rank]
            running = min(running, min(1.0, m * p_values[i] / (rank + 1)))
            adjusted[i] = running
    else:
        adjusted = [min(1.0, p) for p in p_values]
    return adjusted
