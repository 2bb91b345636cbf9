"""Assertions for pytest users: fail a test when a candidate is slower than its baseline.

Examples:
    >>> import numpy as np
    >>> from silenttax.testing import assert_no_regression
    >>> rng = np.random.default_rng(0)
    >>> before = rng.lognormal(np.log(0.01), 0.5, 20_000)
    >>> _ = assert_no_regression(before, rng.lognormal(np.log(0.01), 0.5, 20_000))
    >>> assert_no_regression(before, rng.lognormal(np.log(0.02), 0.5, 20_000))
    Traceback (most recent call last):
    ...
    AssertionError: performance regression: ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

from silenttax.errors import InputError
from silenttax.report import Report

__all__ = ["CpuHog", "assert_no_regression"]

_SPIN = "import time\nwhile True:\n    time.perf_counter()\n"


class CpuHog:
    """A noisy neighbour for tests: ``processes`` busy Python processes, stopped by pid.

    What a shared CI runner or VM does to a measurement, on purpose: start it
    before or in the middle of a measurement, stop it whenever. Each process
    spins on one core until stopped; ``stop()`` kills them by pid (SIGKILL,
    then waits), and the context manager stops them however the block ends.

    Args:
        processes: Busy processes (each takes one core).
        delay: Seconds to wait, in a background thread, before starting them
            (``start()`` returns at once): a hog that arrives mid-measurement.

    Raises:
        InputError: ``processes`` below 1 or ``delay`` negative.

    Examples:
        >>> from silenttax.testing import CpuHog
        >>> with CpuHog(processes=1) as hog:
        ...     running = len(hog.pids)
        >>> running, hog.pids
        (1, [])
    """

    def __init__(self, processes: int = 2, *, delay: float = 0.0) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise InputError(f"processes must be an int >= 1, got {processes!r}")
        if not delay >= 0:
            raise InputError(f"delay must be >= 0 seconds, got {delay!r}")
        self.processes = processes
        self.delay = float(delay)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._timer: Any = None
        self.started_at: float | None = None
        """``time.perf_counter()`` when the processes were started (None before)."""

    @property
    def pids(self) -> list[int]:
        """Process ids of the running hog processes."""
        return [p.pid for p in self._procs if p.poll() is None]

    def _spawn(self) -> None:
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-c", _SPIN],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(self.processes)
        ]
        self.started_at = time.perf_counter()

    def start(self) -> CpuHog:
        """Start the processes now, or after ``delay`` seconds in the background."""
        if self.delay > 0:
            import threading

            self._timer = threading.Timer(self.delay, self._spawn)
            self._timer.daemon = True
            self._timer.start()
        else:
            self._spawn()
        return self

    def stop(self) -> None:
        """Kill every hog process by pid and reap it (a pending delayed start is cancelled)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
            self._timer = None
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
            proc.wait(timeout=10)
        self._procs = []

    def __enter__(self) -> CpuHog:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def assert_no_regression(
    baseline: Any, candidate: Any = None, *, allow_inconclusive: bool = True, **tolerances: Any
) -> Report:
    """Raise ``AssertionError`` (the rendered gate report) when the gate says regression.

    ``baseline`` alone may be a :class:`~silenttax.benchmark.Comparison` (both sides
    interleaved in one process), as for the gate. Arguments and ``tolerances``
    (``max_p50_regression``, ``max_p99_regression``, ``max_memory_regression``,
    ``max_cost_regression``, ``alpha``, ...) are those of
    :func:`silenttax.gate.performance_gate`. An inconclusive gate passes unless
    ``allow_inconclusive=False``: too few samples is not evidence of a slowdown.

    Returns:
        The gate's report, for further checks.

    Raises:
        AssertionError: the candidate regressed (or the gate was inconclusive and
            ``allow_inconclusive`` is False); the message is the report.
    """
    from silenttax.gate import performance_gate, verdict

    report = performance_gate(baseline, candidate, **tolerances)
    result = verdict(report)
    if result == "regression" or (result == "inconclusive" and not allow_inconclusive):
        label = "performance regression" if result == "regression" else "gate inconclusive"
        raise AssertionError(f"{label}: {report.findings[0].message}\n{report.to_text()}")
    return report
