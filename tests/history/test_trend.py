"""The trend statistics against the textbook and scipy, and their calibration: seeded,
smaller versions of ``benchmarks/bench_history_trend.py`` (false alarms per
series-quarter checked weekly, on autocorrelated days; power on creep)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from silenttax.errors import InputError
from silenttax.history import change_point, trend_test
from silenttax.history._trend import (
    DAY,
    _ar1,
    _energy,
    _phi_from_differences,
    _spearman,
    _surrogates,
    _theil_sen,
)


def _days(
    n: int, phi: float, rng: np.random.Generator, *, sd: float = 0.03, creep: float = 0.0,
    step: float = 0.0, at: int = 45,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``n`` daily values: lognormal AR(1) noise of ``sd``, ``creep`` per 90 days, a step."""
    e = rng.normal(0, 1, n + 50)
    x = np.zeros(n + 50)
    for i in range(1, n + 50):
        x[i] = phi * x[i - 1] + e[i]
    d = np.arange(n)
    noise = x[50:] * sd * math.sqrt(1 - phi**2)
    return d * DAY, 0.02 * np.exp(noise + creep / 90 * d + step * (d >= at))


def test_the_statistics_are_the_textbook_ones() -> None:
    rng = np.random.default_rng(3)
    t, y = _days(60, 0.5, rng, creep=0.1)
    rho = float(_spearman(np.arange(60.0), y[None, :])[0])
    assert rho == pytest.approx(stats.spearmanr(np.arange(60), y).statistic)
    slope = float(_theil_sen(t, np.log(y)[None, :])[0])
    assert slope == pytest.approx(stats.theilslopes(np.log(y), t).slope)
    # the energy statistic of one split, by its definition
    z = np.log(y[:20])
    k = 8
    a, b = z[:k], z[k:]
    cross = np.abs(a[:, None] - b[None, :]).mean()
    within_a = np.abs(a[:, None] - a[None, :]).mean()
    within_b = np.abs(b[:, None] - b[None, :]).mean()
    q = k * (20 - k) / 20 * (2 * cross - within_a - within_b)
    best, where = _energy(z[None, :], 3)
    grid = [
        (kk * (20 - kk) / 20) * (2 * np.abs(z[:kk, None] - z[None, kk:]).mean()
        - np.abs(z[:kk, None] - z[None, :kk]).mean() - np.abs(z[kk:, None] - z[None, kk:]).mean())
        for kk in range(3, 18)
    ]  # fmt: skip
    assert max(grid) == pytest.approx(float(best[0]))
    assert grid[k - 3] == pytest.approx(q)
    assert int(where[0]) == 3 + int(np.argmax(grid))


def test_the_sieve_keeps_the_serial_correlation_and_ignores_a_trend() -> None:
    rng = np.random.default_rng(4)
    _, y = _days(400, 0.6, rng)
    x = np.log(y)
    phi, resid = _ar1(x)
    assert phi == pytest.approx(0.6, abs=0.1)
    assert abs(resid.mean()) < 1e-12
    fake = _surrogates(x, 200, rng)
    lag1 = np.mean([np.corrcoef(s[1:], s[:-1])[0, 1] for s in fake])
    assert lag1 == pytest.approx(phi, abs=0.08)
    # a trend shifts the differences' mean only: the estimate barely moves
    trended = x + np.linspace(0, 0.5, x.size)
    assert _phi_from_differences(trended) == pytest.approx(_phi_from_differences(x), abs=0.02)
    assert _ar1(trended)[0] > phi + 0.1  # ... where the plain estimate takes it for correlation


def _alarms(runs: int, **kw: float) -> tuple[float, float | None]:
    """Share of quarters with any creep alarm, looked at weekly from day 28 to 90."""
    rng = np.random.default_rng(11)
    hits, first = 0, []
    for run in range(runs):
        t, y = _days(90, rng=rng, **kw)
        for look in range(28, 91, 7):
            if trend_test(t[:look], y[:look], draws=299, seed=run).creeping:
                hits += 1
                first.append(look)
                break
    return hits / runs, (float(np.median(first)) if first else None)


@pytest.mark.parametrize("phi", [0.0, 0.8])
def test_no_creep_is_named_on_a_quiet_quarter_checked_weekly(phi: float) -> None:
    alpha, runs = 0.05, 60
    rate, _ = _alarms(runs, phi=phi)
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs), rate


def test_ten_percent_a_quarter_is_found_within_the_quarter() -> None:
    rate, median = _alarms(30, phi=0.5, creep=0.10)
    assert rate >= 0.8, rate
    assert median is not None and median <= 77


def test_the_result_carries_the_slope_its_interval_and_a_crossing() -> None:
    rng = np.random.default_rng(8)
    t, y = _days(90, 0.3, rng, creep=0.15)
    r = trend_test(t, y)
    assert r.creeping and r.log_scale and r.direction == "up"
    truth = 0.15 / 3  # per 30 days, on the log scale
    assert r.slope_ci[0] < truth < r.slope_ci[1]
    limit = r.end_level * 1.1
    at = r.crossing(limit)
    assert at is not None and at > t[-1]
    fitted = math.exp(r.intercept + r.slope_per_second * at)
    assert fitted == pytest.approx(limit)
    # the other way round: throughput falling is the worse direction
    down = trend_test(t, 1 / y, direction="down")
    assert down.creeping and down.slope_per_30d < 0
    assert not trend_test(t, 1 / y, direction="up").creeping
    with pytest.raises(InputError, match="min_points"):
        trend_test(t[:10], y[:10])
    with pytest.raises(InputError, match="direction"):
        trend_test(t, y, direction="sideways")


def test_a_step_is_dated_and_sized() -> None:
    rng = np.random.default_rng(9)
    t, y = _days(90, 0.3, rng, step=0.10, at=50)
    cp = change_point(t, y)
    assert cp is not None and cp.p_value <= 0.05
    assert abs(cp.index - 50) <= 2 and cp.at == t[cp.index]
    assert cp.ratio_ci[0] < math.exp(0.10) < cp.ratio_ci[1]
    quiet = change_point(*_days(90, 0.5, np.random.default_rng(10)))
    assert quiet is not None and quiet.p_value > 0.01
