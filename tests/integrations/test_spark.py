"""Scale-out on Spark: a real local SparkSession (2 executor threads, Python workers).

References fitted and checked on the executors equal the in-memory path on the
concatenated data, partitions holding different slices of the distribution.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from silenttax.drift import DriftDetector
from silenttax.errors import InputError, NotFittedError
from silenttax.features import FeatureHealth
from silenttax.integrations import spark as ss
from silenttax.monitor import LatencySketch
from tests.integrations.scaleout import frame, same_findings, same_reference

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs a Java runtime (.ci/run installs one)", allow_module_level=True)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors run this interpreter
    session = (
        SparkSession.builder.master("local[2]")
        .appName("silenttax-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.files.openCostInBytes", str(1 << 40))  # a file is a partition
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    _stop_jvm()


def _stop_jvm() -> None:
    """End the JVM that pyspark started: after ``stop()`` it lives (and spins) until this
    process exits; it exits itself when its stdin closes."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    gateway.shutdown()
    proc = getattr(gateway, "proc", None)
    if proc is not None:
        proc.stdin.close()
        proc.wait(timeout=30)
    SparkContext._gateway = SparkContext._jvm = None


def written(directory: Path, data: pd.DataFrame, parts: int) -> pd.DataFrame:
    """``data`` as one Parquet file per slice of ages (partitions differ), with a slice
    whose 'income' is all NaN and one with a level only it has; returns the whole."""
    data = data.sort_values("age", kind="stable").reset_index(drop=True)
    edges = np.linspace(0, len(data), parts + 1).astype(int)
    chunks = [data.iloc[a:b] for a, b in itertools.pairwise(edges)]
    chunks[2] = chunks[2].assign(income=np.nan)
    last = chunks[-1]
    chunks[-1] = last.assign(country=pd.Series("only-here", index=last.index, dtype=object))
    directory.mkdir()
    for i, chunk in enumerate(chunks):
        chunk.to_parquet(directory / f"part-{i:03d}.parquet", index=False)
    return pd.concat(chunks, ignore_index=True)


@pytest.fixture(scope="module")
def data(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("spark")
    ref_whole = written(root / "ref", frame(1), parts=6)
    cur_pd = frame(2, shift=3.0)
    cur_pd["visits"] = cur_pd["visits"] + 1
    cur_whole = written(root / "cur", cur_pd, parts=4)
    ref, cur = spark.read.parquet(str(root / "ref")), spark.read.parquet(str(root / "cur"))
    assert ref.rdd.getNumPartitions() == 6
    return {"ref": ref, "ref_whole": ref_whole, "cur": cur, "cur_whole": cur_whole}


@pytest.mark.parametrize("chunk_rows", [1_000_000, 700])  # a partition in one or many chunks
def test_fit_drift_equals_the_in_memory_fit(data: dict[str, Any], chunk_rows: int) -> None:
    fitted = ss.fit_drift(data["ref"], chunk_rows=chunk_rows)
    same_reference(fitted, DriftDetector().fit(data["ref_whole"]))
    assert "only-here" in fitted.reference["country"].levels  # type: ignore[union-attr]


def test_check_drift_gives_the_in_memory_findings(data: dict[str, Any]) -> None:
    detector = DriftDetector().fit(data["ref_whole"])
    report = ss.check_drift(detector, data["cur"])
    same_findings(report, detector.check(data["cur_whole"]))
    assert report.filter(code="drift.numeric", subject="age")[0].severity >= "warning"
    visits = report.filter(subject="visits")[0]
    assert visits.severity >= "warning"


def test_fit_and_check_health_equal_the_in_memory_path(data: dict[str, Any]) -> None:
    fitted = ss.fit_health(data["ref"], depth=3)
    whole = FeatureHealth().fit(data["ref_whole"])
    for name, profile in whole.profiles.items():
        mine = fitted.profiles[name]
        exact = ("kind", "rows", "nulls", "empty", "sentinels", "non_finite", "levels", "distinct")
        assert {k: getattr(mine, k) for k in exact} == {k: getattr(profile, k) for k in exact}
    same_findings(ss.check_health(fitted, data["cur"]), whole.check(data["cur_whole"]))


def test_latency_sketch_merges_to_the_single_pass_quantiles(spark: Any) -> None:
    rng = np.random.default_rng(4)
    seconds = np.sort(rng.lognormal(np.log(0.02), 0.6, 40_000))  # partitions differ
    df = spark.createDataFrame([(float(x),) for x in seconds], "seconds double").repartition(5)
    sketch = ss.latency_sketch(df, "seconds", chunk_rows=3000)
    single = LatencySketch()
    single.add_many(seconds)
    qs = [0.5, 0.9, 0.99, 0.999]
    assert sketch.count == seconds.size and sketch.state().counts == single.state().counts
    np.testing.assert_allclose(sketch.quantiles(qs), single.quantiles(qs))


def test_column_projection(data: dict[str, Any]) -> None:
    fitted = ss.fit_drift(data["ref"], columns=["age", "country"])
    assert set(fitted.reference) == {"age", "country"}
    health = ss.fit_health(data["ref"].select("income"))
    assert set(health.profiles) == {"income"}


def test_bad_inputs_are_silenttax_errors(spark: Any, data: dict[str, Any]) -> None:
    with pytest.raises(InputError, match=r"expected a pyspark\.sql\.DataFrame, got DataFrame"):
        ss.fit_drift(data["ref_whole"])
    with pytest.raises(InputError, match=r"columns \['nope'\] are not in the data"):
        ss.fit_drift(data["ref"], columns=["nope"])
    with pytest.raises(NotFittedError):
        ss.check_drift(DriftDetector(), data["cur"])
    with pytest.raises(InputError, match="detector: expected a DriftDetector, got FeatureHealth"):
        ss.check_drift(FeatureHealth(), data["cur"])
    with pytest.raises(NotFittedError):
        ss.check_health(FeatureHealth(), data["cur"])
    with pytest.raises(InputError, match="depth"):
        ss.fit_drift(data["ref"], depth=0)
    with pytest.raises(InputError, match="has no rows"):
        ss.fit_drift(data["ref"].limit(0))
    with pytest.raises(InputError, match=r"no such column|not in the data"):
        ss.latency_sketch(data["ref"], "nope")


def test_an_error_on_an_executor_arrives_as_the_same_silenttax_error(spark: Any) -> None:
    """A column silenttax cannot read (here: arrays) raises on the executors; the driver
    gets the InputError naming the column, not a Java stack trace."""
    df = spark.createDataFrame([([1.0, 2.0], 1.0), ([3.0], 2.0)], "vec array<double>, x double")
    with pytest.raises(InputError, match="vec"):
        ss.fit_drift(df)
