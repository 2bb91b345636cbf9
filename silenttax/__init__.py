"""silenttax: find the silent AI tax.

A model in production can keep its accuracy while it gets slower, costlier and
more fragile. silenttax measures that decay (data drift, feature health,
latency, resources, cost, model bloat, dependency rot, shadow pipelines) and
reports every kind of it in one currency: a :class:`Finding`, collected in a
:class:`Report`. Every saved state — a fitted detector, a monitor, a
measurement — reads back with :func:`silenttax.load`, whatever its kind.

``import silenttax`` is light: it never imports torch, onnxruntime, pandas,
polars, dask, matplotlib or ``scipy.stats``, and the public names load on
first use (PEP 562), so serving code pays for what it touches only.

Examples:
    >>> import silenttax
    >>> report = silenttax.Report(findings=[silenttax.Finding(
    ...     code="latency.p99", category="latency", severity="warning", subject="ranker",
    ...     message="p99 48.0 ms is above the 40 ms SLO", value=0.048, threshold=0.040,
    ...     unit="s", metric="p99")])
    >>> report.exit_code(fail_on="warning")
    1
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from silenttax import errors
from silenttax._version import __version__
from silenttax.errors import SilentTaxError

if TYPE_CHECKING:
    from silenttax._current import observe, observe_prediction, stage
    from silenttax._registry import load, merge
    from silenttax.report import Category, Finding, Report, Severity

__all__ = [
    "Category",
    "Finding",
    "Report",
    "Severity",
    "SilentTaxError",
    "__version__",
    "errors",
    "load",
    "merge",
    "observe",
    "observe_prediction",
    "stage",
]

# Public name -> module that defines it; loaded on first attribute access.
_LAZY = {
    "Category": "silenttax.report",
    "Finding": "silenttax.report",
    "Report": "silenttax.report",
    "Severity": "silenttax.report",
    "load": "silenttax._registry",
    "merge": "silenttax._registry",
    "observe": "silenttax._current",
    "observe_prediction": "silenttax._current",
    "stage": "silenttax._current",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'silenttax' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
