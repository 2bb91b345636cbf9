"""Dask: fit and check silenttax references on dataframes of any size, on the workers.

Each partition is summarised where it lives into a snapshot of a few KiB
(:mod:`silenttax.integrations.partitions`), and the snapshots are merged in
a tree of fan-in ``split_every``: no raw rows reach the client and no column
is shuffled. The result is the in-memory result on the concatenated data:
the same findings and severities, counts exact, quantiles within the
sketch's bound. Works with the threaded, process and distributed schedulers
(whichever is active, or ``scheduler=``).

Read Parquet lazily with only the columns you need, so each worker reads its
row groups and nothing else::

    import dask.dataframe as dd
    from silenttax.integrations import dask as sd

    ref = dd.read_parquet("traffic/2026-11/", columns=["age", "income", "country"])
    detector = sd.fit_drift(ref)
    report = sd.check_drift(detector, dd.read_parquet("traffic/2026-12-01/"))

Examples:
    >>> import dask.dataframe as dd, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ref = dd.from_pandas(pd.DataFrame({"x": rng.normal(0, 1, 4000)}), npartitions=4)
    >>> cur = dd.from_pandas(pd.DataFrame({"x": rng.normal(1, 1, 4000)}), npartitions=3)
    >>> detector = fit_drift(ref, scheduler="sync")
    >>> check_drift(detector, cur, scheduler="sync").filter(code="drift.numeric")[0].severity.value
    'critical'
"""

from __future__ import annotations

from typing import Any

from silenttax._deps import optional_import
from silenttax.errors import InputError
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


def _dask() -> tuple[Any, Any]:
    dask: Any = optional_import("dask", purpose="silenttax.integrations.dask")
    dataframe: Any = optional_import("dask.dataframe", purpose="silenttax.integrations.dask")
    return dask, dataframe


def _frame(data: Any, argument: str, columns: list[str] | None = None) -> Any:
    _, dd = _dask()
    if not isinstance(data, dd.DataFrame):
        raise InputError(
            f"{argument}: expected a dask.dataframe.DataFrame, got {type(data).__name__}"
        )
    if columns is not None:
        missing = [c for c in columns if c not in data.columns]
        if missing:
            raise InputError(f"{argument}: columns {missing} are not in the data")
        data = data[list(columns)]  # projected before any partition is read
    return data


def _tree(partials: list[Any], split_every: int) -> Any:
    """Merge delayed partials in a tree of fan-in ``split_every``."""
    dask, _ = _dask()
    if not isinstance(split_every, int) or split_every < 2:
        raise InputError(f"split_every must be an int >= 2, got {split_every!r}")
    level = partials or [dask.delayed(b"")]
    while len(level) > 1:
        level = [
            dask.delayed(merge_partials, pure=True)(level[i : i + split_every])
            for i in range(0, len(level), split_every)
        ]
    if len(level) == 1 and level is partials:  # one partition: still pass through a merge
        level = [dask.delayed(merge_partials, pure=True)(level)]
    return level[0]


def _run(tasks: list[Any], split_every: int, scheduler: str | None) -> bytes:
    dask, _ = _dask()
    (root,) = dask.compute(_tree(tasks, split_every), scheduler=scheduler)
    return bytes(root)


def _one(partial: bytes) -> Any:
    """A partition's partial as a one-row pandas Series (what map_partitions returns)."""
    import pandas as pd

    return pd.Series([partial], dtype=object)


def _fit_block(partition: Any, settings: tuple[str, dict[str, Any]]) -> Any:
    return _one(fit_partition(from_settings(settings), partition))


def _check_block(partition: Any, reference: str) -> Any:
    return _one(check_partition(reference, partition))


def _partials(data: Any, block: Any, argument: Any) -> list[Any]:
    """One delayed partial per partition, computed in the same task that reads the
    partition (map_partitions fuses with the read), so only a few KiB of JSON leave
    the worker — never the partition itself."""
    dask, _ = _dask()
    mapped = data.map_partitions(block, argument, meta=(None, object), enforce_metadata=False)
    first = dask.delayed(_first, pure=True)
    return [first(part) for part in mapped.to_delayed()]


def _first(series: Any) -> bytes:
    return bytes(series.iloc[0]) if len(series) else b""


def _fit(template: Any, data: Any, split_every: int, scheduler: str | None) -> Any:
    return finish(
        _run(_partials(data, _fit_block, template_settings(template)), split_every, scheduler)
    )


def fit_drift(
    ddf: Any, *, split_every: int = 8, scheduler: str | None = None, **detector_options: Any
) -> Any:
    """A ``DriftDetector`` fitted on a Dask dataframe, partition by partition on the workers.

    Args:
        ddf: The reference data.
        split_every: Fan-in of the merge tree.
        scheduler: A Dask scheduler name (``"threads"``, ``"processes"``, ``"sync"``);
            default: the active one (a distributed ``Client`` if there is one).
        detector_options: ``DriftDetector`` settings (``columns=`` also projects the
            columns before reading).

    Raises:
        InputError: not a Dask dataframe, a named column is missing, no rows, or a
            column whose kind differs between partitions (named).
    """
    from silenttax.drift import DriftDetector

    template = DriftDetector(**detector_options)
    data = _frame(ddf, "ddf", template.columns)
    return _fit(template, data, split_every, scheduler)


def fit_health(
    ddf: Any, *, split_every: int = 8, scheduler: str | None = None, **options: Any
) -> Any:
    """A ``FeatureHealth`` fitted on a Dask dataframe, partition by partition on the
    workers (arguments as :func:`fit_drift`)."""
    from silenttax.features import FeatureHealth

    template = FeatureHealth(**options)
    data = _frame(ddf, "ddf", template.columns)
    return _fit(template, data, split_every, scheduler)


def latency_sketch(
    series: Any, *, split_every: int = 8, scheduler: str | None = None, **options: Any
) -> Any:
    """A ``LatencySketch`` of a Dask series of seconds (e.g. a request log's durations),
    one sketch per partition, merged (quantiles within the sketch's relative accuracy).

    Raises:
        InputError: not a Dask series.
    """
    from silenttax.monitor import LatencySketch

    _, dd = _dask()
    if not isinstance(series, dd.Series):
        raise InputError(f"series: expected a dask.dataframe.Series, got {type(series).__name__}")
    return _fit(LatencySketch(**options), series, split_every, scheduler)


def _check(reference: Any, data: Any, split_every: int, scheduler: str | None) -> Any:
    dask, _ = _dask()
    shipped = dask.delayed(reference.to_json(), pure=True)  # one graph node, sent once
    root = _run(_partials(data, _check_block, shipped), split_every, scheduler)
    return finish(root, reference)


def check_drift(
    detector: Any, ddf: Any, *, split_every: int = 8, scheduler: str | None = None
) -> Any:
    """``detector.check(current)`` for a Dask dataframe: each partition summarised on the
    reference's grid on the workers, the windows merged, then judged once — the same
    findings as checking the concatenated data in memory. Only the reference's columns
    are read.

    Raises:
        InputError: not a Dask dataframe, or no rows.
        NotFittedError: the detector is not fitted.
    """
    data = _frame(ddf, "ddf")
    keep = check_columns(detector, "DriftDetector", list(data.columns))
    return _check(detector, data[keep], split_every, scheduler)


def check_health(
    health: Any, ddf: Any, *, split_every: int = 8, scheduler: str | None = None
) -> Any:
    """``health.check(current)`` for a Dask dataframe: each partition profiled on the
    workers with the reference's settings, the profiles merged, then judged once.

    Raises:
        InputError: not a Dask dataframe, or no rows.
        NotFittedError: the FeatureHealth is not fitted.
    """
    data = _frame(ddf, "ddf")
    keep = check_columns(health, "FeatureHealth", list(data.columns))
    return _check(health, data[keep], split_every, scheduler)
