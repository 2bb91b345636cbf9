"""Runtime hints for the tracer: garbage-collection pauses, CPU use and threads.

Nothing here touches the per-span hot path. GC pauses are recorded by one
process-wide ``gc.callbacks`` hook (shared by every tracer that asks for
hints, removed when the last one is gone) and matched to spans when a batch
is aggregated; CPU time and thread counts are sampled once per batch.
"""

from __future__ import annotations

import gc
import threading
import time
from array import array
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["GcPauses", "gc_pauses", "overlap_ns"]

_perf_ns = time.perf_counter_ns
_Array = npt.NDArray[np.int64]


class GcPauses:
    """The recent garbage-collection pauses of this process (perf_counter_ns).

    Kept flat, ``[start0, end0, start1, end1, ...]``, in an ``array`` that the
    hook extends two values at a time; it holds the last ``capacity`` to
    ``2 * capacity`` pauses, and readers copy only the tail they need.
    """

    def __init__(self, capacity: int = 65536) -> None:
        self._flat = array("q")
        self._capacity = capacity
        self._started = 0
        self._users = 0
        self._lock = threading.Lock()

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = _perf_ns()
        elif self._started:
            flat = self._flat
            flat.extend((self._started, _perf_ns()))  # one call: never half a pause
            self._started = 0
            if len(flat) > 4 * self._capacity:
                del flat[: len(flat) - 2 * self._capacity]

    def acquire(self) -> None:
        """One more user: install the hook if it is the first."""
        with self._lock:
            self._users += 1
            if self._users == 1:
                gc.callbacks.append(self._callback)

    def release(self) -> None:
        """One user fewer: remove the hook with the last."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self._callback in gc.callbacks:
                gc.callbacks.remove(self._callback)

    def between(self, start: int, end: int) -> tuple[_Array, _Array]:
        """Pauses overlapping [start, end], as sorted (starts, ends) arrays."""
        take = 512
        while True:
            tail = np.frombuffer(self._flat[-take:], dtype=np.int64).reshape(-1, 2)
            if not tail.size or tail[0, 1] <= start or 2 * len(tail) < take:
                break  # reached pauses before the window, or the whole record
            take *= 4
        keep = (tail[:, 1] > start) & (tail[:, 0] < end)
        return tail[keep, 0], tail[keep, 1]


gc_pauses = GcPauses()


def overlap_ns(starts: _Array, ends: _Array, pause_starts: _Array, pause_ends: _Array) -> _Array:
    """Per interval [starts[i], ends[i]]: nanoseconds of the (disjoint, sorted) pauses inside it.

    Examples:
        >>> s, e = np.array([0, 10]), np.array([10, 30])
        >>> overlap_ns(s, e, np.array([5, 12, 28]), np.array([8, 14, 40])).tolist()
        [3, 4]
    """
    if not pause_starts.size:
        return np.zeros(starts.shape, dtype=np.int64)
    before = np.concatenate(([0], np.cumsum(pause_ends - pause_starts)))

    def paused_until(t: _Array) -> _Array:
        i = np.searchsorted(pause_starts, t, side="right")  # pauses begun by t
        last = np.maximum(i - 1, 0)
        still = np.where(i > 0, np.maximum(0, pause_ends[last] - t), 0)
        result: _Array = before[i] - still
        return result

    overlap: _Array = np.maximum(0, paused_until(ends) - paused_until(starts))
    return overlap
