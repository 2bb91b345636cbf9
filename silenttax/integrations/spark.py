"""Spark: fit and check silenttax references on Spark DataFrames, on the executors.

Each partition's Arrow record batches are summarised where they live
(``mapInArrow``) into a snapshot of a few KiB
(:mod:`silenttax.integrations.partitions`), and the snapshots are merged in a
tree (``treeAggregate``): no raw row reaches the driver and no column is
shuffled — where whylogs' Spark path groups by column and TFDV's group-by ran
out of memory at ~1e9 rows. The result is the in-memory result on the
concatenated data: the same findings and severities, counts exact. Pandas is
not used on the executors (Arrow batches are read directly).

Read Parquet with only the columns you need::

    from pyspark.sql import SparkSession
    from silenttax.integrations import spark as ss

    spark = SparkSession.builder.getOrCreate()
    ref = spark.read.parquet("traffic/2026-11/").select("age", "income", "country")
    detector = ss.fit_drift(ref)
    report = ss.check_drift(detector, spark.read.parquet("traffic/2026-12-01/"))

A partition is fitted in chunks of at most ``chunk_rows`` rows (Spark hands
Python 10,000-row batches; a chunk gathers them), so an executor holds one
chunk, never a whole partition. Errors raised on an executor (a column whose
kind changed, settings that do not merge) reach the driver as the same
``silenttax`` error, not a Java stack trace.

Examples:
    >>> from silenttax.integrations import spark as ss
    >>> ss.fit_drift([1, 2, 3])
    Traceback (most recent call last):
    ...
    silenttax.errors.InputError: df: expected a pyspark.sql.DataFrame, got list
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

from silenttax.errors import InputError, SchemaMismatchError, SilentTaxError
from silenttax.integrations.partitions import (
    check_columns,
    check_partition,
    finish,
    fit_partition,
    from_settings,
    merge_partials,
    template_settings,
)

__all__ = ["check_drift", "check_health", "fit_drift", "fit_health", "latency_sketch"]

_ERROR = b"!silenttax-error:"
_ERRORS: dict[str, type[SilentTaxError]] = {
    "InputError": InputError,
    "SchemaMismatchError": SchemaMismatchError,
}


def _frame(df: Any, argument: str = "df") -> Any:
    """``df`` if it is a Spark DataFrame (recognised without importing pyspark)."""
    kind = type(df)
    if not (
        kind.__name__ == "DataFrame" and kind.__module__.startswith("pyspark.sql")
    ):  # classic and Spark Connect DataFrames
        raise InputError(f"{argument}: expected a pyspark.sql.DataFrame, got {kind.__name__}")
    return df


def _failed(exc: SilentTaxError) -> bytes:
    return _ERROR + f"{type(exc).__name__}:{exc}".encode()


def _merge(a: bytes, b: bytes) -> bytes:
    """Two partials as one; an executor's error wins and travels to the driver."""
    if a.startswith(_ERROR):
        return a
    if b.startswith(_ERROR):
        return b
    try:
        return merge_partials([a, b])
    except SilentTaxError as exc:
        return _failed(exc)


def _summarise(
    summarise: Callable[[Any], bytes], chunk_rows: int
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The ``mapInArrow`` function: one partition's batches -> one row of snapshot bytes."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        state, chunk, rows = b"", [], 0
        try:
            for batch in batches:
                chunk.append(batch)
                rows += batch.num_rows
                if rows >= chunk_rows:
                    state = _merge(state, summarise(pa.Table.from_batches(chunk)))
                    chunk, rows = [], 0
            if rows:
                state = _merge(state, summarise(pa.Table.from_batches(chunk)))
        except SilentTaxError as exc:
            state = _failed(exc)
        yield pa.RecordBatch.from_pydict({"state": pa.array([state], pa.binary())})

    return run


def _reduce(df: Any, summarise: Callable[[Any], bytes], chunk_rows: int, depth: int) -> bytes:
    if not isinstance(depth, int) or depth < 1:
        raise InputError(f"depth must be an int >= 1, got {depth!r}")
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InputError(f"chunk_rows must be an int >= 1, got {chunk_rows!r}")
    with warnings.catch_warnings():
        # mapInArrow checks the pandas version although no pandas runs here (Arrow only)
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas")
        states = df.mapInArrow(_summarise(summarise, chunk_rows), "state binary")
    root: bytes = states.rdd.map(lambda row: bytes(row.state)).treeAggregate(
        b"", _merge, _merge, depth=depth
    )
    if root.startswith(_ERROR):
        name, _, message = root[len(_ERROR) :].decode().partition(":")
        raise _ERRORS.get(name, InputError)(message)
    return root


def _fit(template: Any, df: Any, chunk_rows: int, depth: int) -> Any:
    settings = template_settings(template)  # plain data: what the closure ships

    def summarise(table: Any) -> bytes:
        return fit_partition(from_settings(settings), table)

    return finish(_reduce(df, summarise, chunk_rows, depth))


def _project(df: Any, columns: list[str] | None) -> Any:
    if columns is None:
        return df
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"df: columns {missing} are not in the data")
    return df.select(*columns)


def fit_drift(
    df: Any, *, chunk_rows: int = 1_000_000, depth: int = 2, **detector_options: Any
) -> Any:
    """A ``DriftDetector`` fitted on a Spark DataFrame, partition by partition on the
    executors.

    Args:
        df: The reference data.
        chunk_rows: Most rows an executor summarises at once.
        depth: Depth of the merge tree (``treeAggregate``).
        detector_options: ``DriftDetector`` settings (``columns=`` also selects the
            columns before anything is read).

    Raises:
        InputError: not a Spark DataFrame, a named column is missing, or no rows.
    """
    from silenttax.drift import DriftDetector

    template = DriftDetector(**detector_options)
    return _fit(template, _project(_frame(df), template.columns), chunk_rows, depth)


def fit_health(df: Any, *, chunk_rows: int = 1_000_000, depth: int = 2, **options: Any) -> Any:
    """A ``FeatureHealth`` fitted on a Spark DataFrame (arguments as :func:`fit_drift`)."""
    from silenttax.features import FeatureHealth

    template = FeatureHealth(**options)
    return _fit(template, _project(_frame(df), template.columns), chunk_rows, depth)


def latency_sketch(
    df: Any, column: str, *, chunk_rows: int = 1_000_000, depth: int = 2, **options: Any
) -> Any:
    """A ``LatencySketch`` of column ``column`` (seconds) of a Spark DataFrame, one sketch
    per partition, merged (quantiles within the sketch's relative accuracy).

    Raises:
        InputError: not a Spark DataFrame, or no such column.
    """
    from silenttax.monitor import LatencySketch

    settings = template_settings(LatencySketch(**options))
    data = _project(_frame(df), [column])

    def summarise(table: Any) -> bytes:
        import numpy as np

        seconds = table.column(0).to_numpy(zero_copy_only=False)
        return fit_partition(from_settings(settings), np.asarray(seconds, dtype=np.float64))

    return finish(_reduce(data, summarise, chunk_rows, depth))


def _check(reference: Any, df: Any, chunk_rows: int, depth: int) -> Any:
    shipped = reference.to_json()  # the reference travels as JSON, parsed once per chunk

    def summarise(table: Any) -> bytes:
        return check_partition(shipped, table)

    return finish(_reduce(df, summarise, chunk_rows, depth), reference)


def check_drift(detector: Any, df: Any, *, chunk_rows: int = 1_000_000, depth: int = 2) -> Any:
    """``detector.check(current)`` for a Spark DataFrame: each partition summarised on the
    reference's grid on the executors, the windows merged, then judged once on the
    driver — the same findings as checking the concatenated data in memory. Only the
    reference's columns are read.

    Raises:
        InputError: not a Spark DataFrame, or no rows.
        NotFittedError: the detector is not fitted.
    """
    data = _frame(df)
    keep = check_columns(detector, "DriftDetector", list(data.columns))
    return _check(detector, data.select(*keep), chunk_rows, depth)


def check_health(health: Any, df: Any, *, chunk_rows: int = 1_000_000, depth: int = 2) -> Any:
    """``health.check(current)`` for a Spark DataFrame: each partition profiled on the
    executors with the reference's settings, the profiles merged, then judged once.

    Raises:
        InputError: not a Spark DataFrame, or no rows.
        NotFittedError: the FeatureHealth is not fitted.
    """
    data = _frame(df)
    keep = check_columns(health, "FeatureHealth", list(data.columns))
    return _check(health, data.select(*keep), chunk_rows, depth)
