"""Load, capacity and stability under load: an open-loop generator without coordinated
omission, capacity with an interval, a paired capacity comparison, and soaks.

``silenttax.load`` is also the function that reads any saved state back
(``silenttax.load(path)``): this module can be called like it.

Examples:
    >>> import time
    >>> from silenttax.load import run
    >>> done = run(lambda: time.sleep(0.002), rate=100, duration=0.5, calibrate=False)
    >>> done.requests > 20 and done.p99 >= 0.002
    True
"""

from __future__ import annotations

import sys
import types
from typing import Any

from silenttax.load._capacity import CapacityResult, Probe, capacity, isotonic, judge
from silenttax.load._compare import CapacityComparison, compare_capacity, judge_blocks
from silenttax.load._generator import (
    OUTCOMES,
    Exceedance,
    LoadRun,
    exceedance_bound,
    run,
    schedule,
    warmup_end,
)
from silenttax.load._soak import Slope, SoakResult, block_slope, soak
from silenttax.load._target import Target, as_target
from silenttax.load._worker import worker_process

__all__ = [
    "OUTCOMES",
    "CapacityComparison",
    "CapacityResult",
    "Exceedance",
    "LoadRun",
    "Probe",
    "Slope",
    "SoakResult",
    "Target",
    "as_target",
    "block_slope",
    "capacity",
    "compare_capacity",
    "exceedance_bound",
    "isotonic",
    "judge",
    "judge_blocks",
    "run",
    "schedule",
    "soak",
    "warmup_end",
    "worker_process",
]


class _Module(types.ModuleType):
    """``silenttax.load(path)`` keeps reading saved states once this package is imported
    (Python binds the package to the attribute ``silenttax.load``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from silenttax._registry import load

        return load(*args, **kwargs)


sys.modules[__name__].__class__ = _Module
