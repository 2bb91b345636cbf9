"""Scale-out on Dask: fit drift and feature-health references on a Parquet dataset larger
than a worker's memory, beside the single-process path on a slice that fits.

Workload: ``--rows`` rows (default 50M) x 20 columns — 14 float (normal, log-normal
with 5% nulls, uniform), 2 int, 4 categorical with 20 levels (one with 2% nulls) —
written as a Parquet dataset of ``--partitions`` files by Dask itself (no row
reaches the client). A ``LocalCluster`` of 2 worker processes, one thread each,
``--memory-limit`` per worker (default 1.5 GiB, smaller than the data), fits
``fit_drift`` and ``fit_health`` reading the dataset lazily. Reported: rows/s
in total and per core, state bytes per partition and merged, the merge's share
of the time, peak worker RSS (sampled), and two baselines without Dask: one
file read (one Arrow thread) and fitted in this process — the single-process
path per core, which the target compares with (per-core rows/s within 1.5x) —
and the machine's own ceiling, two plain processes reading and fitting half the
files each at the same time (what two cores give this work with no engine).

Run: ``python benchmarks/bench_scale.py`` (about 15 minutes on 2 cores; ``--rows``
scales it).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import threading
import time
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import psutil
from distributed import Client, LocalCluster

from silenttax.drift import DriftDetector
from silenttax.features import FeatureHealth
from silenttax.integrations import dask as sd
from silenttax.integrations.partitions import fit_partition, merge_partials

LEVELS = np.array([f"level_{i:02d}" for i in range(20)], dtype=object)


def make_partition(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {}
    for i in range(6):
        data[f"normal_{i}"] = rng.normal(i, 1 + i / 3, rows)
    for i in range(4):
        x = rng.lognormal(3, 0.7, rows)
        x[rng.random(rows) < 0.05] = np.nan
        data[f"lognormal_{i}"] = x
    for i in range(4):
        data[f"uniform_{i}"] = rng.uniform(0, 100, rows)
    data["count_0"] = rng.poisson(3, rows).astype(np.int64)
    data["count_1"] = rng.integers(0, 1000, rows)
    for i in range(4):
        labels = LEVELS[rng.integers(0, 20, rows)]
        if i == 0:
            labels = labels.copy()
            labels[rng.random(rows) < 0.02] = None
        data[f"cat_{i}"] = pd.Series(labels, dtype="string")
    return pd.DataFrame(data)


def write_dataset(path: Path, rows: int, partitions: int) -> None:
    per = rows // partitions
    meta = make_partition(0, 1).iloc[0:0]
    ddf = dd.from_map(make_partition, range(partitions), [per] * partitions, meta=meta)
    ddf.to_parquet(path, write_index=False)


class PeakRSS:
    """Peak RSS of the cluster's worker processes, sampled every 0.2 s."""

    def __init__(self, client: Client) -> None:
        info = client.scheduler_info()["workers"]
        pids = client.run(lambda: __import__("os").getpid())
        self.processes = [psutil.Process(pid) for pid in pids.values()]
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        assert len(info) == len(self.processes)

    def run(self) -> None:
        while not self.stop.is_set():
            total = 0
            for p in self.processes:
                try:
                    self.peak = max(self.peak, p.memory_info().rss)
                    total += 1
                except psutil.Error:
                    pass
            time.sleep(0.2)

    def __enter__(self) -> PeakRSS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _fit_files(job: tuple[str, list[str]]) -> tuple[int, float]:
    """Read (one Arrow thread) and fit files in this process: rows, seconds."""
    label, files = job
    make = DriftDetector if label == "DriftDetector" else FeatureHealth
    began, rows = time.perf_counter(), 0
    for file in files:
        frame = pd.read_parquet(file, use_threads=False)
        make().fit(frame)
        rows += len(frame)
    return rows, time.perf_counter() - began


def ceiling(label: str, files: list[Path]) -> float:
    """Rows/s of two plain processes at once (no Dask), each timing its own half."""
    halves = [(label, [str(f) for f in files[i::2]]) for i in range(2)]
    warm = (label, [str(files[0])])
    # each process imports and fits once before it is timed (a warm-up task sent to
    # the pool may land twice on the same process, leaving the other one cold)
    with multiprocessing.get_context("spawn").Pool(2, _fit_files, (warm,)) as pool:
        done = pool.map(_fit_files, halves, chunksize=1)
    return sum(rows for rows, _ in done) / max(seconds for _, seconds in done)


def spark_fit(label: str, path: Path, batch: int) -> float:
    """Seconds to fit ``label`` on the dataset with the Spark adapter (local[2]), Arrow
    batches of ``batch`` rows (Spark's default: 10,000)."""
    import os
    import sys

    from pyspark.sql import SparkSession

    from silenttax.integrations import spark as ss

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    df = session.read.parquet(str(path))
    fit = ss.fit_drift if label == "DriftDetector" else ss.fit_health
    fit(df.limit(1000))  # Python workers started
    began = time.perf_counter()
    fit(df)
    wall = time.perf_counter() - began
    session.stop()
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--partitions", type=int, default=100)
    parser.add_argument("--memory-limit", default="1.5GiB")
    parser.add_argument("--spark", action="store_true", help="also fit with Spark (local[2])")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "traffic"
        began = time.perf_counter()
        with dask.config.set(scheduler="processes", num_workers=2):
            write_dataset(path, args.rows, args.partitions)
        size = sum(f.stat().st_size for f in path.glob("*.parquet"))
        print(
            f"dataset: {args.rows:,} rows x 20 columns in {args.partitions} Parquet files, "
            f"{size / 2**30:.2f} GiB on disk (written in {time.perf_counter() - began:.0f} s)"
        )
        first = next(iter(sorted(path.glob("*.parquet"))))
        one = pd.read_parquet(first)
        print(f"in memory: {one.memory_usage(deep=True).sum() * args.partitions / 2**30:.1f} GiB")
        rows_per_part = len(one)
        files = sorted(path.glob("*.parquet"))
        for label, make in (("DriftDetector", DriftDetector), ("FeatureHealth", FeatureHealth)):
            fits, reads, threaded = [], [], []
            for _ in range(3):
                t = time.perf_counter()
                frame = pd.read_parquet(first, use_threads=False)
                reads.append(time.perf_counter() - t)
                t = time.perf_counter()
                make().fit(frame)
                fits.append(time.perf_counter() - t)
                t = time.perf_counter()
                make().fit(pd.read_parquet(first))
                threaded.append(time.perf_counter() - t)
            fit_only = rows_per_part / min(fits)
            single = rows_per_part / (min(fits) + min(reads))  # the same work as a worker's
            partial = fit_partition(make(), one)
            print(
                f"\n{label}: single process, one file ({rows_per_part:,} rows), one core: read + "
                f"fit {single / 1e6:.2f}M rows/s (fit alone {fit_only / 1e6:.2f}M; read with "
                f"Arrow's threads + fit {rows_per_part / min(threaded) / 1e6:.2f}M); state "
                f"{len(partial) / 1024:.0f} KiB"
            )
            top = ceiling(label, files[: max(2, len(files) // 5)])
            print(
                f"  two plain processes at once (no Dask): {top / 1e6:.2f}M rows/s total, "
                f"{top / 2e6:.2f}M per core (x{single / (top / 2):.2f} below one process alone)"
            )
            t = time.perf_counter()
            merge_partials([partial] * 8)
            merge_s = (time.perf_counter() - t) / 7
            with (
                LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=True,
                    memory_limit=args.memory_limit,
                    dashboard_address=None,
                ) as cluster,
                Client(cluster) as client,
            ):
                ddf = dd.read_parquet(path)
                fit = sd.fit_drift if label == "DriftDetector" else sd.fit_health
                with PeakRSS(client) as rss:
                    t = time.perf_counter()
                    fitted = fit(ddf)
                    wall = time.perf_counter() - t
            total = args.rows / wall
            merged = len(fitted.to_json())
            print(
                f"  LocalCluster (2 processes x 1 thread, {args.memory_limit} each): {wall:.1f} s, "
                f"{total / 1e6:.2f}M rows/s total, {total / 2e6:.2f}M rows/s per core "
                f"(single-process read + fit per core is x{single / (total / 2):.2f} of that; "
                f"the two plain processes x{top / total:.2f} of the cluster's total)"
            )
            print(
                f"  merged state {merged / 1024:.0f} KiB; one merge {merge_s * 1e3:.1f} ms "
                f"({args.partitions - 1} merges = {(args.partitions - 1) * merge_s / wall:.1%} of "
                f"the wall time); peak worker RSS {rss.peak / 2**20:.0f} MiB"
            )
            for batch in [10_000, 200_000] if args.spark else []:
                wall = spark_fit(label, path, batch)
                print(
                    f"  Spark local[2] (mapInArrow + treeAggregate, Arrow batches of {batch:,} "
                    f"rows): {wall:.1f} s, "
                    f"{args.rows / wall / 1e6:.2f}M rows/s total (x{wall * total / args.rows:.2f} "
                    "of the Dask cluster's time)"
                )


if __name__ == "__main__":
    main()
