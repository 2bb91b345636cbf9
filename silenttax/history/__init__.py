"""History: every snapshot kept, the trend shown, the creep no single comparison sees.

``silenttax.history.open(path)`` opens (or creates) a store — one SQLite file, standard
library only — that keeps every snapshot appended to it (any registered State, a live
component, a Report), the figures extracted from each (p50/p95/p99 with intervals, cost
per 1000, null rates, error rates, finding values, a custom monitor's ``gauges()``) and
every Report's findings. Rollups merge snapshots (hour, day) instead of averaging
figures, so a fleet's daily p99 is the p99 of all its requests. :meth:`History.trend`
judges the daily rollups of the last quarter: ``history.creep`` (a sustained trend,
calibrated for autocorrelated days and weekly looks) and ``history.change_point`` (dated,
sized, matched to the nearest deploy). :meth:`History.track` appends a live component's
window every minute (what it recorded since the last append, never its running total).
See ``docs/history.md``.

Examples:
    >>> import tempfile, pathlib
    >>> from silenttax import history
    >>> store = history.open(pathlib.Path(tempfile.mkdtemp()) / "model.history")
    >>> store.mark("deploy", at=0.0, version="2.3")
    >>> [m.meta["version"] for m in store.markers()]
    ['2.3']
    >>> store.close()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from silenttax.history._store import RETENTION, SCHEMA_VERSION, History, Marker, Series, open

if TYPE_CHECKING:
    from silenttax.history._check import check_series, check_trend
    from silenttax.history._extract import Scalar, extract
    from silenttax.history._track import Tracker, window
    from silenttax.history._trend import ChangePoint, TrendResult, change_point, trend_test

__all__ = [
    "RETENTION",
    "SCHEMA_VERSION",
    "ChangePoint",
    "History",
    "Marker",
    "Scalar",
    "Series",
    "Tracker",
    "TrendResult",
    "change_point",
    "check_series",
    "check_trend",
    "extract",
    "open",
    "trend_test",
    "window",
]

# the statistics need NumPy and the report model: loaded on first use, so that opening
# a store and appending to it stays light (import ~10 ms)
_LAZY = {
    "check_series": "silenttax.history._check",
    "check_trend": "silenttax.history._check",
    "Scalar": "silenttax.history._extract",
    "extract": "silenttax.history._extract",
    "ChangePoint": "silenttax.history._trend",
    "TrendResult": "silenttax.history._trend",
    "change_point": "silenttax.history._trend",
    "trend_test": "silenttax.history._trend",
    "Tracker": "silenttax.history._track",
    "window": "silenttax.history._track",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'silenttax.history' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
