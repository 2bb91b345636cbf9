"""What the machine was doing while a block was timed: other processes' CPU, stalls, steal.

A timing taken while a neighbour holds a core is not a property of the model.
:class:`Sensor` reads cheap counters before and after each measured block
(a few tens of microseconds on Linux) and turns the difference into a
:class:`Load`: the cores other processes used, the share of time runnable
tasks waited for a CPU (``/proc/pressure/cpu``, Linux PSI), steal time taken
by the hypervisor, the run queue and the CPU clock. A block is *contended*
when fewer cores were free than the measurement needs, or when tasks stalled
or were stolen from for a material share of it (:data:`STALL_LIMIT`) while
other processes ran.

Where a counter is not available (macOS, Windows, containers without PSI)
that figure is None and the others still decide.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil

from silenttax._system import usable_cores

__all__ = [
    "MIN_QUIET_ROUNDS",
    "STALL_LIMIT",
    "Load",
    "RoundLoads",
    "Sensor",
    "quiet_rounds",
    "summarize",
]

#: A block is contended when tasks waited for a CPU (PSI "some") or were stolen
#: from for more than this share of its wall time.
STALL_LIMIT = 0.10
#: Free cores below ``needed - FREE_MARGIN`` make a block contended.
FREE_MARGIN = 0.25
#: Other processes using less than this many cores do not make stalls count.
OTHERS_FLOOR = 0.1
#: Fewest uncontended rounds a verdict is drawn on (and at least half of the rounds).
MIN_QUIET_ROUNDS = 10

_PSI = "/proc/pressure/cpu"
_STAT = "/proc/stat"


def _read_psi() -> float | None:
    """Total µs some task waited for a CPU (None where PSI is not available)."""
    try:
        with open(_PSI, encoding="ascii") as fh:
            first = fh.readline()
    except OSError:
        return None
    for part in first.split():
        if part.startswith("total="):
            return float(part[6:])
    return None


def _read_stat() -> tuple[float, float, int] | None:
    """(busy seconds of all CPUs, steal seconds, runnable tasks) from ``/proc/stat``."""
    try:
        with open(_STAT, encoding="ascii") as fh:
            text = fh.read(4096)
    except OSError:
        return None
    busy = steal = 0.0
    running = 0
    tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    for line in text.splitlines():
        if line.startswith("cpu "):
            fields = [float(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal ...
            idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
            steal = fields[7] / tick if len(fields) > 7 else 0.0
            guest = sum(fields[8:10]) if len(fields) > 9 else 0.0  # already in user/nice
            busy = (sum(fields[:8]) - idle - guest) / tick - steal
        elif line.startswith("procs_running"):
            running = int(line.split()[1])
    return busy, steal, running


@dataclass(frozen=True, slots=True)
class _Reading:
    wall: float
    own_cpu: float
    busy: float | None
    steal: float | None
    psi: float | None


@dataclass(frozen=True, slots=True)
class Load:
    """What the machine did during one block (see the module docstring)."""

    seconds: float
    """Wall time of the block."""
    other_cores: float | None
    """CPU used by other processes during the block, in cores (1.0 = one busy core)."""
    free_cores: float | None
    """Usable cores minus ``other_cores``."""
    stall: float | None
    """Share of the block some task waited for a CPU (PSI "some"), 0-1."""
    steal: float | None
    """Share of the block the hypervisor took from this VM's CPUs, per CPU, 0-1."""
    run_queue: int | None
    """Runnable tasks at the end of the block (including this one)."""
    contended: bool
    """Fewer cores free than needed, or stalls / steal above :data:`STALL_LIMIT`."""

    def as_dict(self) -> dict[str, Any]:
        """Plain figures for a finding's evidence."""
        return {
            "seconds": round(self.seconds, 4),
            "other_cores": None if self.other_cores is None else round(self.other_cores, 3),
            "free_cores": None if self.free_cores is None else round(self.free_cores, 3),
            "stall": None if self.stall is None else round(self.stall, 4),
            "steal": None if self.steal is None else round(self.steal, 4),
            "run_queue": self.run_queue,
            "contended": self.contended,
        }


class Sensor:
    """Reads the machine's load around measured blocks.

    Args:
        needed: Cores the measurement needs (its threads); a block with fewer
            free cores is contended.

    Examples:
        >>> sensor = Sensor(needed=1)
        >>> mark = sensor.mark()
        >>> load = sensor.since(mark)
        >>> load.seconds >= 0 and isinstance(load.contended, bool)
        True
    """

    def __init__(self, needed: float = 1.0) -> None:
        self.needed = max(0.0, float(needed))
        self.cores = usable_cores()
        self._process = psutil.Process()

    def mark(self) -> _Reading:
        """The counters now."""
        stat = _read_stat()
        times = self._process.cpu_times()
        return _Reading(
            wall=time.perf_counter(),
            own_cpu=times.user + times.system,
            busy=None if stat is None else stat[0],
            steal=None if stat is None else stat[1],
            psi=_read_psi(),
        )

    def since(self, start: _Reading) -> Load:
        """The load between ``start`` and now."""
        end = self.mark()
        wall = max(end.wall - start.wall, 1e-9)
        other = free = steal = stall = None
        if start.busy is not None and end.busy is not None:
            total_cpus = psutil.cpu_count() or self.cores
            others = max(0.0, (end.busy - start.busy) - (end.own_cpu - start.own_cpu))
            # /proc/stat counts every CPU; spread it over the ones this process may use
            other = others / wall * min(1.0, self.cores / total_cpus)
            free = max(0.0, self.cores - other)
        if start.steal is not None and end.steal is not None:
            steal = max(0.0, end.steal - start.steal) / wall / (psutil.cpu_count() or 1)
        if start.psi is not None and end.psi is not None:
            stall = min(1.0, max(0.0, end.psi - start.psi) / 1e6 / wall)
        stat = _read_stat()
        queue = None if stat is None else stat[2]
        # counters tick at 10 ms: a block shorter than a few ticks reads as noise
        trusted = wall >= 0.05
        # stalls count only with other processes running: a measurement whose own
        # threads outnumber the cores stalls itself, and that is its figure, not noise
        others = other is not None and other > OTHERS_FLOOR
        contended = trusted and (
            (free is not None and free < self.needed - FREE_MARGIN)
            or (stall is not None and stall > STALL_LIMIT and (others or other is None))
            or (steal is not None and steal > STALL_LIMIT)
        )
        return Load(wall, other, free, stall, steal, queue, bool(contended))


class RoundLoads:
    """Per-round contention flags from windows of about ``window`` seconds of rounds.

    Call :meth:`after` with the number of rounds done after each round: when the
    window is full, the sensor reads the load since the window began and every round
    in it inherits its ``contended`` flag. ``after(rounds, close=True)`` closes the
    window now (before judging the rounds so far, and at the end).

    Examples:
        >>> loads = RoundLoads(Sensor(needed=1))
        >>> loads.after(3, close=True)
        >>> len(loads.flags), len(loads.loads)
        (3, 1)
    """

    def __init__(self, sensor: Sensor, window: float = 0.1) -> None:
        self.sensor = sensor
        self.window = window
        self.flags: list[bool] = []
        """One flag per round sensed so far."""
        self.loads: list[Load] = []
        """One load per window."""
        self._mark = sensor.mark()

    def after(self, rounds: int, *, close: bool = False) -> None:
        """Rounds done so far; closes the window when it is full (or when ``close``)."""
        if rounds <= len(self.flags):
            return
        if close or time.perf_counter() - self._mark.wall >= self.window:
            load = self.sensor.since(self._mark)
            self.loads.append(load)
            self.flags.extend([load.contended] * (rounds - len(self.flags)))
            self._mark = self.sensor.mark()


def quiet_rounds(flags: Sequence[bool], rounds: int) -> np.ndarray | None:
    """Boolean per round: the rounds not measured under contention (``flags`` per round,
    missing ones quiet); None when contended rounds left fewer than
    :data:`MIN_QUIET_ROUNDS`, or fewer than half, quiet: the machine was busy.

    Examples:
        >>> quiet_rounds([False] * 20 + [True] * 5, 25).sum()
        np.int64(20)
        >>> quiet_rounds([True] * 15 + [False] * 10, 25) is None
        True
    """
    contended = np.zeros(rounds, dtype=bool)
    given = np.asarray(list(flags)[:rounds], dtype=bool)
    contended[: given.size] = given
    quiet = int(rounds - contended.sum())
    if contended.any() and (quiet < MIN_QUIET_ROUNDS or quiet < 0.5 * rounds):
        return None
    return ~contended


def summarize(loads: list[Load]) -> dict[str, Any]:
    """Blocks, contended share and the median figures of a list of loads (evidence)."""

    def median(values: list[float]) -> float | None:
        values = sorted(v for v in values if v is not None and math.isfinite(v))
        return round(values[len(values) // 2], 3) if values else None

    contended = sum(load.contended for load in loads)
    return {
        "blocks": len(loads),
        "contended_blocks": contended,
        "contended_share": round(contended / len(loads), 3) if loads else 0.0,
        "other_cores_median": median([x.other_cores for x in loads if x.other_cores is not None]),
        "stall_median": median([x.stall for x in loads if x.stall is not None]),
        "steal_median": median([x.steal for x in loads if x.steal is not None]),
        "free_cores_median": median([x.free_cores for x in loads if x.free_cores is not None]),
        "other_cores_max": max(
            (round(x.other_cores, 3) for x in loads if x.other_cores is not None), default=None
        ),
    }
