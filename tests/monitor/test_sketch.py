from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping.logarithm_mapping import (
    LogarithmMapping,
)

from silenttax._sketch import bound_for, scale_for
from silenttax.errors import InputError, StateError
from silenttax.monitor import LatencySketch

QS = np.array([0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0])


def rel_errors(sketch: LatencySketch, data: np.ndarray) -> np.ndarray:
    exact = np.quantile(data, QS, method="lower")
    est = sketch.quantiles(QS)
    return np.abs(est - exact) / exact


def distributions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    n = 200_000
    return {
        "lognormal": rng.lognormal(np.log(0.02), 0.75, n),
        "pareto": (rng.pareto(1.1, n) + 1) * 1e-3,
        "bimodal": np.concatenate([rng.normal(5e-3, 5e-4, n // 2), rng.normal(0.5, 0.05, n // 2)]),
        "wide": np.exp(rng.uniform(np.log(1e-6), np.log(100.0), n)),
        "constant": np.full(1000, 0.0123),
    }


@pytest.mark.parametrize("name", list(distributions()))
@pytest.mark.parametrize("accuracy", [0.001, 0.01, 0.05])
def test_quantiles_within_relative_accuracy(name: str, accuracy: float) -> None:
    data = distributions()[name]
    sketch = LatencySketch(relative_accuracy=accuracy)
    sketch.add_many(data)
    assert sketch.count == data.size
    assert rel_errors(sketch, data).max() <= accuracy
    assert sketch.min == data.min() and sketch.max == data.max()
    assert sketch.sum == pytest.approx(data.sum(), rel=1e-12)
    assert sketch.mean == pytest.approx(data.mean(), rel=1e-12)


@given(
    st.lists(
        st.floats(min_value=1e-9, max_value=1e6, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=300,
    )
)
def test_quantiles_within_accuracy_on_arbitrary_positive_data(values: list[float]) -> None:
    data = np.array(values)
    sketch = LatencySketch(relative_accuracy=0.01)
    for v in values:
        sketch.add(v)
    assert rel_errors(sketch, data).max() <= 0.01 + 1e-12


def test_scale_choice_meets_the_accuracy() -> None:
    for accuracy in (0.2, 0.05, 0.02, 0.01, 0.005, 0.001, 1e-4):
        scale = scale_for(accuracy)
        assert bound_for(scale) <= accuracy < bound_for(scale - 1)
    assert LatencySketch().scale == 6


def test_buckets_are_opentelemetry_exponential_buckets() -> None:
    rng = np.random.default_rng(3)
    values = np.exp(rng.uniform(np.log(1e-6), np.log(100.0), 2000))
    sketch = LatencySketch()
    mapping = LogarithmMapping(sketch.scale)
    ours = sketch._index(values)
    theirs = np.array([mapping.map_to_index(float(v)) for v in values])
    assert (ours == theirs).mean() > 0.999  # float rounding at exact bucket edges only
    sketch.add_many(values)
    hist = sketch.exponential_histogram()
    assert hist["scale"] == mapping.scale and hist["count"] == values.size
    assert sum(hist["positive"]["bucket_counts"]) == values.size


def test_add_and_add_many_agree() -> None:
    data = distributions()["lognormal"][:20_000]
    one, many = LatencySketch(), LatencySketch()
    for v in data.tolist():
        one.add(v)
    many.add_many(data)
    np.testing.assert_array_equal(one.quantiles(QS), many.quantiles(QS))
    assert one.state().counts == many.state().counts


def test_merge_is_exact_and_associative() -> None:
    data = distributions()["pareto"]
    whole = LatencySketch()
    whole.add_many(data)
    shards = [LatencySketch() for _ in range(7)]
    for i, shard in enumerate(shards):
        shard.add_many(data[i::7])
    merged = LatencySketch.merged(shards)
    np.testing.assert_array_equal(merged.quantiles(QS), whole.quantiles(QS))
    assert merged.state().counts == whole.state().counts
    assert merged.count == whole.count and merged.max == whole.max
    a, b, c = shards[:3]
    left = a.copy().merge(b).merge(c)
    right = a.copy().merge(b.copy().merge(c))
    assert left.state().counts == right.state().counts


@given(
    st.lists(st.floats(1e-7, 1e3), max_size=50),
    st.lists(st.floats(1e-7, 1e3), max_size=50),
    st.lists(st.floats(1e-7, 1e3), max_size=50),
)
def test_merge_laws(xs: list[float], ys: list[float], zs: list[float]) -> None:
    def sk(values: list[float]) -> LatencySketch:
        s = LatencySketch()
        s.add_many(values)
        return s

    whole = sk(xs + ys + zs).state()
    left = sk(xs).merge(sk(ys)).merge(sk(zs)).state()
    right = sk(xs).merge(sk(ys).merge(sk(zs))).state()
    swapped = sk(zs).merge(sk(xs)).merge(sk(ys)).state()
    for other in (left, right, swapped):
        assert other.counts == whole.counts and other.offset == whole.offset
        assert other.count == whole.count and other.min == whole.min and other.max == whole.max


def test_merge_of_different_accuracies_uses_the_coarser() -> None:
    data = distributions()["lognormal"]
    fine, coarse = LatencySketch(relative_accuracy=0.001), LatencySketch(relative_accuracy=0.02)
    fine.add_many(data[::2])
    coarse.add_many(data[1::2])
    merged = fine.copy().merge(coarse)
    assert merged.scale == coarse.scale
    assert rel_errors(merged, data).max() <= 0.02
    assert coarse.copy().merge(fine).state().counts == merged.state().counts


def test_json_round_trip_and_size(tmp_path: Path) -> None:
    data = distributions()["wide"]
    sketch = LatencySketch()
    sketch.add_many(data)
    text = sketch.to_json()
    assert len(text.encode()) <= 16 * 1024
    back = LatencySketch.from_json(text)
    np.testing.assert_array_equal(back.quantiles(QS), sketch.quantiles(QS))
    path = tmp_path / "s.json"
    sketch.save(path)
    assert LatencySketch.load(path).state() == sketch.state()
    doc = json.loads(text)
    doc["schema_version"] = 99
    with pytest.raises(StateError, match="newer"):
        LatencySketch.from_json(json.dumps(doc))
    with pytest.raises(StateError):
        LatencySketch.from_json(text[:-10])


def test_memory_bounded_by_range_not_count() -> None:
    sketch = LatencySketch()
    rng = np.random.default_rng(0)
    for _ in range(20):
        sketch.add_many(np.exp(rng.uniform(np.log(1e-6), np.log(100.0), 100_000)))
    # 1 µs-100 s at scale 6: log2(1e8) * 64 buckets.
    assert sketch._counts.size <= math.ceil(math.log2(1e8) * 64) + 2
    assert len(sketch._buf) == 0


def test_max_buckets_downscales_with_a_weaker_bound() -> None:
    sketch = LatencySketch(max_buckets=64)
    data = np.array([1e-9, 1e-3, 1.0, 1e3, 1e9])
    sketch.add_many(data)
    assert sketch.effective_accuracy > sketch.relative_accuracy
    assert sketch._counts.size <= 64
    assert rel_errors(sketch, data).max() <= sketch.effective_accuracy + 1e-12


def test_threads_lose_no_observations() -> None:
    sketch = LatencySketch()
    n_threads, per_thread = 8, 30_000

    def work(seed: int) -> None:
        values = np.random.default_rng(seed).lognormal(-4, 1, per_thread).tolist()
        for v in values:
            sketch.add(v)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sketch.count == n_threads * per_thread
    expected = LatencySketch()
    for i in range(n_threads):
        expected.add_many(np.random.default_rng(i).lognormal(-4, 1, per_thread))
    assert sketch.state().counts == expected.state().counts


def test_invalid_values_are_counted_never_raised() -> None:
    sketch = LatencySketch()
    for bad in (math.nan, -1.0, math.inf, None, "12ms"):
        sketch.add(bad)  # type: ignore[arg-type]
    sketch.add_many([0.5, math.nan, -2.0])
    sketch.add(0.0)
    assert sketch.invalid == 7
    assert sketch.count == 2 and sketch.quantile(0.0) == 0.0 and sketch.quantile(1.0) == 0.5


@pytest.mark.parametrize("bad", [math.nan, -1.0, math.inf, None, "12ms"])
def test_strict_raises(bad: object) -> None:
    sketch = LatencySketch(strict=True)
    with pytest.raises(InputError, match="seconds"):
        sketch.add(bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="seconds"):
        sketch.add_many([0.1, bad])


def test_queries_on_bad_arguments() -> None:
    sketch = LatencySketch()
    with pytest.raises(InputError, match="empty"):
        sketch.quantile(0.5)
    sketch.add(0.1)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        sketch.quantile(1.5)
    with pytest.raises(InputError, match="relative_accuracy"):
        LatencySketch(relative_accuracy=0)
    with pytest.raises(InputError, match="merge"):
        sketch.merge(object())  # type: ignore[arg-type]


def test_bucket_bounds_contain_the_order_statistic() -> None:
    data = np.sort(distributions()["lognormal"][:5000])
    sketch = LatencySketch()
    sketch.add_many(data)
    for rank in (0, 1, 100, 2500, 4950, 4999):
        lo, hi = sketch.bucket_bounds(rank)
        assert lo <= data[rank] <= hi
        assert abs(sketch.value_at_rank(rank) - data[rank]) <= 0.01 * data[rank]


def test_reset_equals_fresh() -> None:
    sketch = LatencySketch()
    sketch.add_many([0.1, 0.2])
    sketch.add(0.3)
    sketch.reset()
    assert sketch.state() == LatencySketch().state()
