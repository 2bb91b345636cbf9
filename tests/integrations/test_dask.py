"""Scale-out on Dask: references fitted and checked on the workers equal the in-memory path."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

import silenttax
from silenttax.drift import DriftDetector
from silenttax.errors import InputError, NotFittedError, SchemaMismatchError
from silenttax.features import FeatureHealth
from silenttax.integrations import dask as sd
from silenttax.integrations.partitions import fit_partition, merge_partials
from silenttax.monitor import LatencySketch
from tests.integrations.scaleout import frame, same_findings, same_reference


def partitioned(data: pd.DataFrame, parts: int = 8) -> tuple[dd.DataFrame, pd.DataFrame]:
    """Partitions holding *different slices* of the distribution (sorted by age), plus an
    empty partition, a partition whose 'income' is all NaN, and one with a level only it
    has: a fit that drops or double-counts a partition disagrees with the whole."""
    data = data.sort_values("age", kind="stable").reset_index(drop=True)
    edges = np.linspace(0, len(data), parts + 1).astype(int)
    chunks = [data.iloc[a:b] for a, b in itertools.pairwise(edges)]
    chunks[2] = chunks[2].assign(income=np.nan)
    last = chunks[-1]
    chunks[-1] = last.assign(country=pd.Series("only-here", index=last.index, dtype=object))
    chunks.insert(4, data.iloc[0:0])
    whole = pd.concat(chunks, ignore_index=True)
    ddf = dd.from_delayed([dask.delayed(c) for c in chunks], meta=data.iloc[0:0])
    assert ddf.npartitions == parts + 1
    return ddf, whole


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    ref, ref_whole = partitioned(frame(1))
    cur_pd = frame(2, shift=3.0)
    cur_pd["visits"] = cur_pd["visits"] + 1
    cur, cur_whole = partitioned(cur_pd, parts=5)
    return {"ref": ref, "ref_whole": ref_whole, "cur": cur, "cur_whole": cur_whole}


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_fit_drift_equals_the_in_memory_fit(data: dict[str, Any], scheduler: str) -> None:
    fitted = sd.fit_drift(data["ref"], scheduler=scheduler, split_every=3)
    same_reference(fitted, DriftDetector().fit(data["ref_whole"]))
    assert "only-here" in fitted.reference["country"].levels  # type: ignore[union-attr]


def test_check_drift_gives_the_in_memory_findings(data: dict[str, Any]) -> None:
    detector = DriftDetector().fit(data["ref_whole"])
    report = sd.check_drift(detector, data["cur"], scheduler="threads")
    same_findings(report, detector.check(data["cur_whole"]))
    assert report.filter(code="drift.numeric", subject="age")[0].severity >= "warning"


def test_fit_and_check_health_equal_the_in_memory_path(data: dict[str, Any]) -> None:
    fitted = sd.fit_health(data["ref"], scheduler="threads")
    whole = FeatureHealth().fit(data["ref_whole"])
    assert fitted.state().profiles.keys() == whole.state().profiles.keys()
    for name, profile in whole.profiles.items():
        mine = fitted.profiles[name]
        exact = ("kind", "rows", "nulls", "empty", "sentinels", "non_finite", "levels", "distinct")
        assert {k: getattr(mine, k) for k in exact} == {k: getattr(profile, k) for k in exact}
    same_findings(
        sd.check_health(fitted, data["cur"], scheduler="threads"), whole.check(data["cur_whole"])
    )


def test_latency_sketch_merges_to_the_single_pass_quantiles() -> None:
    rng = np.random.default_rng(4)
    seconds = np.sort(rng.lognormal(np.log(0.02), 0.6, 40_000))  # partitions differ
    series = dd.from_pandas(pd.Series(seconds), npartitions=7)
    sketch = sd.latency_sketch(series, scheduler="threads")
    single = LatencySketch()
    single.add_many(seconds)
    qs = [0.5, 0.9, 0.99, 0.999]
    assert sketch.count == seconds.size and sketch.state().counts == single.state().counts
    np.testing.assert_allclose(sketch.quantiles(qs), single.quantiles(qs))
    exact = np.quantile(seconds, qs, method="lower")
    assert np.all(np.abs(sketch.quantiles(qs) / exact - 1) <= sketch.relative_accuracy)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def test_a_real_local_cluster(data: dict[str, Any], client: Client) -> None:
    """Processes, 2 workers: the default scheduler is the active distributed client."""
    fitted = sd.fit_drift(data["ref"])
    same_reference(fitted, DriftDetector().fit(data["ref_whole"]))
    same_findings(sd.check_drift(fitted, data["cur"]), fitted.check(data["cur_whole"]))
    health = sd.fit_health(data["ref"])
    same_findings(sd.check_health(health, data["cur"]), health.check(data["cur_whole"]))


def test_parquet_read_lazily_with_column_projection(tmp_path: Path, data: dict[str, Any]) -> None:
    data["ref_whole"].to_parquet(tmp_path / "ref.parquet", row_group_size=1000)
    ddf = dd.read_parquet(tmp_path / "ref.parquet", columns=["age", "country"])
    fitted = sd.fit_drift(ddf, scheduler="threads")
    assert set(fitted.reference) == {"age", "country"}
    only = sd.fit_drift(
        dd.read_parquet(tmp_path / "ref.parquet"), columns=["age"], scheduler="sync"
    )
    assert set(only.reference) == {"age"}


def test_bad_inputs_are_silenttax_errors(data: dict[str, Any]) -> None:
    with pytest.raises(InputError, match=r"expected a dask\.dataframe\.DataFrame, got DataFrame"):
        sd.fit_drift(data["ref_whole"])
    with pytest.raises(InputError, match=r"columns \['nope'\] are not in the data"):
        sd.fit_drift(data["ref"], columns=["nope"])
    with pytest.raises(NotFittedError):
        sd.check_drift(DriftDetector(), data["cur"])
    with pytest.raises(InputError, match="detector: expected a DriftDetector, got FeatureHealth"):
        sd.check_drift(FeatureHealth(), data["cur"])
    with pytest.raises(NotFittedError):
        sd.check_health(FeatureHealth(), data["cur"])
    with pytest.raises(InputError, match="split_every"):
        sd.fit_drift(data["ref"], split_every=1)
    with pytest.raises(InputError, match=r"expected a dask\.dataframe\.Series"):
        sd.latency_sketch(data["ref"])
    empty = dd.from_pandas(data["ref_whole"].iloc[0:0], npartitions=1)
    with pytest.raises(InputError, match="has no rows"):
        sd.fit_drift(empty, scheduler="sync")


def test_a_column_missing_in_one_partition_is_an_error() -> None:
    a = frame(1, 500)
    b = frame(2, 500).drop(columns=["income"])
    ddf = dd.from_delayed([dask.delayed(a), dask.delayed(b)], meta=a.iloc[0:0], verify_meta=False)
    with pytest.raises(InputError, match=r"\['income'\] are in some partitions and not in others"):
        sd.fit_drift(ddf, scheduler="sync")


def test_mixed_kinds_across_partitions() -> None:
    """Object columns holding numbers in one partition and text in another (Dask would
    otherwise convert both to strings): drift cannot test them on one grid (an error);
    health widens the column to ``object``, the kind one pass over all rows gives."""
    a = pd.DataFrame({"x": pd.Series([1.5, 2.5, 3.5], dtype=object)})
    b = pd.DataFrame({"x": pd.Series(["u", "v", "w"], dtype=object)})
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_delayed([dask.delayed(a), dask.delayed(b)], meta=a.iloc[0:0])
        with pytest.raises(SchemaMismatchError, match=r"column 'x' is (float|string) in one"):
            sd.fit_drift(ddf, scheduler="sync")
        health = sd.fit_health(ddf, scheduler="sync")
    whole = FeatureHealth().fit(pd.concat([a, b], ignore_index=True))
    assert health.profiles["x"].kind == whole.profiles["x"].kind == "object"
    assert health.profiles["x"].rows == whole.profiles["x"].rows == 6


def test_partials_are_plain_json_and_merge_in_any_order() -> None:
    parts = [frame(i, 300) for i in range(5)]
    partials = [fit_partition(DriftDetector(), p) for p in parts]
    assert all(p.startswith(b'{"kind":"silenttax.drift_detector"') for p in partials)
    left = merge_partials([merge_partials(partials[:2]), merge_partials(partials[2:])])
    right = merge_partials([merge_partials(partials[3:]), *partials[:3]])
    same_reference(silenttax.load(left), silenttax.load(right))
    with pytest.raises(InputError, match="cannot merge with a"):
        merge_partials([partials[0], fit_partition(FeatureHealth(), parts[0])])
