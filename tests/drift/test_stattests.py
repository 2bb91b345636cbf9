from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from silenttax.drift import (
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
from silenttax.errors import InputError


@pytest.mark.parametrize(
    ("n", "m", "shift"), [(30, 40, 0.0), (500, 800, 0.2), (20_000, 15_000, 0.05)]
)
def test_ks_matches_scipy(n: int, m: int, shift: float) -> None:
    rng = np.random.default_rng(n)
    a, b = rng.normal(0, 1, n), rng.normal(shift, 1, m)
    ours, theirs = ks(a, b), stats.ks_2samp(a, b)
    assert abs(ours.statistic - theirs.statistic) <= 1e-12
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-12, abs=1e-300)
    assert (ours.n_reference, ours.n_current) == (n, m)


def test_chi2_is_the_contingency_test_over_the_union_of_levels() -> None:
    ref = ["a"] * 300 + ["b"] * 200 + ["gone"] * 50
    cur = ["a"] * 250 + ["b"] * 260 + ["new"] * 40
    ours = chi2(ref, cur)
    table = np.array([[300, 200, 50, 0], [250, 260, 0, 40]])
    theirs = stats.chi2_contingency(table, correction=False)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
    assert ours.details["dof"] == 3
    shares = table / table.sum(axis=1, keepdims=True)
    assert ours.effect_size == pytest.approx(0.5 * np.abs(shares[0] - shares[1]).sum())
    assert chi2(["x"] * 5, ["x"] * 9).p_value == 1.0


def test_cramer_von_mises_and_anderson_darling_match_scipy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 300), rng.normal(0.1, 1, 400)
    cvm = cramer_von_mises(a, b)
    ref = stats.cramervonmises_2samp(a, b)
    assert cvm.statistic == pytest.approx(ref.statistic) and cvm.p_value == pytest.approx(
        ref.pvalue
    )
    ad = anderson_darling(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns when it clips the p-value
        ref_ad = stats.anderson_ksamp([a, b], variant="midrank")
    assert ad.statistic == pytest.approx(ref_ad.statistic)
    assert ad.p_value == pytest.approx(ref_ad.pvalue)


def test_wasserstein_is_normalised_by_the_reference_sd() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.lognormal(0, 1, 5000), rng.lognormal(0.1, 1, 5000)
    r = wasserstein(a, b)
    assert r.statistic == pytest.approx(stats.wasserstein_distance(a, b) / a.std(ddof=1))
    assert r.p_value is None
    x = rng.normal(5, 3, 10_000)
    assert wasserstein(x, x + 0.3).statistic == pytest.approx(0.1, rel=0.02)


def test_jensen_shannon_and_hellinger_are_bounded_and_textbook() -> None:
    ref, cur = ["a"] * 70 + ["b"] * 30, ["a"] * 40 + ["b"] * 60
    p = (np.array([70, 30]) + 0.5) / 101
    q = (np.array([40, 60]) + 0.5) / 101
    m = (p + q) / 2
    js = math.sqrt(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m)))
    assert jensen_shannon(ref, cur).statistic == pytest.approx(js)
    assert hellinger(ref, cur).statistic == pytest.approx(math.sqrt(1 - np.sum(np.sqrt(p * q))))
    far = jensen_shannon(["a"] * 10_000, ["b"] * 10_000)
    assert 0.99 < far.statistic <= 1.0
    rng = np.random.default_rng(3)
    assert jensen_shannon(rng.normal(0, 1, 2000), rng.normal(0, 1, 2000)).statistic < 0.1


def test_psi_formula_and_no_blow_up_on_clean_heavy_tails() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.pareto(1.1, 20_000), rng.pareto(1.1, 20_000)
    clean = psi(a, b)
    assert clean.statistic < 0.01  # one stray tail value cannot blow it up
    edges = np.unique(np.quantile(a, np.linspace(0, 1, 11)[1:-1]))
    r = np.bincount(np.searchsorted(edges, a, side="right"), minlength=10)
    c = np.bincount(np.searchsorted(edges, b, side="right"), minlength=10)
    pr, pc = (r + 0.5) / (r.sum() + 5), (c + 0.5) / (c.sum() + 5)
    assert clean.statistic == pytest.approx(np.sum((pc - pr) * np.log(pc / pr)))
    shifted = psi(a, a * 3 + 1)
    assert shifted.statistic > 0.1


def test_z_tests_textbook() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(10, 2, 1000), rng.normal(10.3, 3, 800)
    r = z_test(a, b)
    z = (b.mean() - a.mean()) / math.sqrt(a.var(ddof=1) / 1000 + b.var(ddof=1) / 800)
    assert r.statistic == pytest.approx(z)
    assert r.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert r.effect_size == pytest.approx((b.mean() - a.mean()) / a.std(ddof=1))
    p = proportion_z([True] * 30 + [False] * 70, [True] * 45 + [False] * 55)
    pooled = 75 / 200
    z2 = (0.45 - 0.30) / math.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert p.statistic == pytest.approx(z2)
    assert p.effect_size == pytest.approx(
        2 * math.asin(math.sqrt(0.45)) - 2 * math.asin(math.sqrt(0.3))
    )


@pytest.mark.parametrize("fn", [ks, psi, wasserstein, z_test, cramer_von_mises, anderson_darling])
def test_missing_values_are_not_dropped_silently(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="NaN"):
        fn([1.0, 2.0, float("nan")], [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="empty"):
        fn([], [1.0, 2.0])


def test_bad_labels_and_binaries() -> None:
    with pytest.raises(InputError, match="missing"):
        chi2(["a", None], ["a"])
    with pytest.raises(InputError, match="binary"):
        proportion_z([0, 1, 2], [0, 1])
