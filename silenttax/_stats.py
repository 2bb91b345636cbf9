"""Small statistics helpers shared by several modules.

scipy is imported inside the functions: these run on check paths, never on
recording paths, and ``import silenttax`` must not pull in ``scipy.stats``.
"""

from __future__ import annotations

import math

__all__ = ["lower_rank", "quantile_rank_interval"]


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
