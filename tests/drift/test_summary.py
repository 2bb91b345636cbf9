from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from silenttax._summary import merge_summaries, summarize_labels, summarize_numbers
from silenttax.drift import NumericSummary
from silenttax.drift._compare import ks_summary, wasserstein_sd


def test_budget_and_size() -> None:
    x = np.random.default_rng(0).lognormal(0, 1.5, 1_000_000)
    s = summarize_numbers(x)
    assert s.distinct <= 4096
    assert len(s.model_dump_json()) <= 64 * 1024
    assert s.count == x.size and s.min == x.min() and s.max == x.max()
    assert s.mean == pytest.approx(x.mean()) and s.var == pytest.approx(x.var(ddof=1))


@pytest.mark.parametrize(
    "make",
    [
        lambda r: r.normal(0, 1, 50_000),
        lambda r: r.lognormal(0, 2, 50_000),
        lambda r: (r.pareto(1.2, 50_000) + 1) * 1e-3,
        lambda r: 1.7e9 + r.normal(0, 1000, 50_000),  # timestamps: offset, small spread
        lambda r: r.integers(1, 6, 50_000).astype(float),  # ratings: few values, exact
    ],
)
def test_ks_from_buckets_is_within_its_bound_of_the_exact_ks(make) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    a, b = make(rng), make(rng) * 1.002
    ref, cur = summarize_numbers(a), summarize_numbers(b, scale=summarize_numbers(a).scale)
    ours = ks_summary(ref, cur)
    exact = stats.ks_2samp(a, b).statistic
    assert ours.statistic <= exact + 1e-12
    assert exact - ours.statistic <= ours.details["max_underestimate"] + 1e-12
    assert exact - ours.statistic < 0.003


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.integers(min_value=0, max_value=200),
    st.sampled_from([16, 64, 4096]),
)
def test_merge_of_partitions_equals_one_pass(values: list[float], cut: int, budget: int) -> None:
    x = np.array(values)
    cut = min(cut, x.size)
    whole = summarize_numbers(x, budget=budget)
    parts = [summarize_numbers(x[:cut], budget=budget), summarize_numbers(x[cut:], budget=budget)]
    merged = merge_summaries(*parts)
    assert isinstance(merged, NumericSummary)
    assert merged.scale == whole.scale
    assert merged.runs == whole.runs
    assert (merged.count, merged.min, merged.max) == (whole.count, whole.min, whole.max)
    assert merged.total == pytest.approx(whole.total, abs=1e-6)
    swapped = merge_summaries(parts[1], parts[0])
    assert swapped.runs == whole.runs  # type: ignore[union-attr]


def test_merge_associative_on_large_data() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, 30_000), rng.lognormal(3, 1, 30_000)])
    a, b, c = (summarize_numbers(p) for p in np.array_split(x, 3))
    left = merge_summaries(merge_summaries(a, b), c)
    right = merge_summaries(a, merge_summaries(b, c))
    assert left.runs == right.runs == summarize_numbers(x).runs  # type: ignore[union-attr]


def test_nulls_and_infinities_are_kept_apart() -> None:
    s = summarize_numbers(np.array([1.0, np.nan, np.inf, -np.inf, np.inf, 2.0]))
    assert (s.count, s.nulls, s.pos_inf, s.neg_inf, s.rows) == (2, 1, 2, 1, 6)


def test_wasserstein_from_buckets() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 2, 100_000), rng.normal(0.2, 2, 100_000)
    ref = summarize_numbers(a)
    cur = summarize_numbers(b, scale=ref.scale)
    exact = stats.wasserstein_distance(a, b) / a.std(ddof=1)
    assert wasserstein_sd(ref, cur) == pytest.approx(exact, abs=0.005)


def test_labels_cap_and_merge() -> None:
    s = summarize_labels(np.array(["a", "b", None, "a", 3], dtype=object), max_levels=10)
    assert s.levels == {"a": 2, "b": 1, "3": 1} and s.nulls == 1
    many = summarize_labels(
        np.array([f"id{i}" for i in range(50)] + ["x"] * 10, dtype=object), max_levels=5
    )
    assert len(many.levels) == 5 and many.levels["x"] == 10 and many.other == 46
    merged = merge_summaries(s, s)
    assert merged.levels == {"a": 4, "b": 2, "3": 2}  # type: ignore[union-attr]
    assert json.loads(merged.model_dump_json())["type"] == "categorical"


def _runs_loop(index: np.ndarray, counts: np.ndarray) -> list[list[int]]:
    """The textbook loop the vectorised encoder must match."""
    from silenttax._summary import _GAP

    idx, cnt = index.tolist(), counts.tolist()
    runs, run, last = [], [idx[0], cnt[0]], idx[0]
    for i, c in zip(idx[1:], cnt[1:], strict=True):
        if i - last > _GAP:
            runs.append(run)
            run = [i, c]
        else:
            run.extend([0] * (i - last - 1))
            run.append(c)
        last = i
    return [*runs, run]


def test_runs_encoding_round_trips_dense_and_sparse_buckets() -> None:
    from silenttax._summary import _decode, _runs

    rng = np.random.default_rng(0)
    for trial in range(200):
        spread = 10 ** int(rng.integers(1, 12))
        n = int(rng.integers(0, 2000))
        index = np.unique(rng.integers(-spread, spread, n)).astype(np.int64)
        counts = rng.integers(1, 100, index.size).astype(np.int64)
        runs = _runs(index, counts)
        assert runs == (_runs_loop(index, counts) if index.size else []), (
            trial
        )  # the vectorised path, the same JSON
        got_index, got_counts = _decode(runs)
        np.testing.assert_array_equal(got_index, index)
        np.testing.assert_array_equal(got_counts, counts)


def _whole_column(x: np.ndarray, budget: int, scale: int | None = None) -> tuple:  # type: ignore[type-arg]
    """Buckets by the general search over the whole column, the reference for the
    block-by-block paths of summarize_numbers."""
    from silenttax._summary import coarsen, count_at, fit_buckets, to_t

    t = to_t(x[np.isfinite(x)])
    if scale is None:
        return fit_buckets(t, budget)
    index, counts = count_at(t, scale)
    while index.size > budget:
        index, counts = coarsen(index, counts, 1)
        scale -= 1
    return scale, index, counts


def _same_buckets(x: np.ndarray, budget: int, scale: int | None = None) -> None:  # type: ignore[type-arg]
    got = summarize_numbers(x, budget=budget, scale=scale)
    k, index, counts = _whole_column(x, budget, scale)
    assert got.scale == k
    np.testing.assert_array_equal(got.runs.index, index)
    np.testing.assert_array_equal(got.runs.counts, counts)
    finite = x[np.isfinite(x)]
    assert got.count == finite.size and got.nulls == int(np.isnan(x).sum())
    assert got.pos_inf == int(np.isposinf(x).sum()) and got.neg_inf == int(np.isneginf(x).sum())
    if finite.size:
        assert (got.min, got.max) == (finite.min(), finite.max())
        assert got.total == pytest.approx(finite.sum(), rel=1e-9, abs=1e-9)


@given(
    st.lists(st.integers(-60, 60), min_size=1, max_size=200),
    st.sampled_from([0, 10**6, 2**52 - 10**4, -(2**52)]),  # 2**52: neighbours share a bucket
    st.integers(1, 70_000),  # more than one block of 2**15 values
    st.integers(64, 128),  # DriftDetector's smallest budget is 64
)
def test_integer_columns_counted_block_by_block_give_the_same_buckets(
    levels: list[int], offset: int, rows: int, budget: int
) -> None:
    rng = np.random.default_rng(rows)
    x = rng.choice(np.asarray(levels, dtype=np.float64) + offset, rows)
    if offset == 0:
        x[rng.random(rows) < 0.01] = -0.0  # a negative zero is the integer 0
    x[rng.random(rows) < 0.01] = np.nan
    _same_buckets(x, budget)


@pytest.mark.parametrize("budget", [64, 4096])
@pytest.mark.parametrize(
    "make",
    [
        lambda r, n: r.normal(40, 10, n),
        lambda r, n: r.lognormal(0, 3, n),  # heavy tail
        lambda r, n: r.standard_cauchy(n),  # both signs, huge range
        lambda r, n: np.where(r.random(n) < 0.999, 5.0, r.normal(0, 1e6, n)),  # a spike
        lambda r, n: 1.7e9 + r.normal(0, 1000, n),  # timestamps: offset, small spread
        lambda r, n: r.integers(18, 90, n).astype(float),  # ages
        lambda r, n: r.integers(0, 100_000, n).astype(float),  # ids: too many for the budget
        lambda r, n: np.r_[r.integers(0, 5, n - 1), 0.5],  # one fraction in the last block
        lambda r, n: np.where(r.random(n) < 0.5, np.inf, r.normal(0, 1, n)),  # infinities
        lambda r, n: np.r_[np.full(n - 1, np.nan), 3.0],  # one value
        lambda r, n: np.full(n, 7.0),  # constant
        lambda r, n: r.normal(0, 1e300, n),  # sums overflow
    ],
)
def test_block_by_block_equals_the_whole_column(make, budget: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    for n in (10, 5000, 100_001):
        x = make(rng, n).astype(np.float64)
        x[rng.random(n) < 0.02] = np.nan
        _same_buckets(x, budget)
        ref = summarize_numbers(make(rng, n).astype(np.float64), budget=budget)
        _same_buckets(x, budget * 4, scale=ref.scale)  # current data at the reference's scale
