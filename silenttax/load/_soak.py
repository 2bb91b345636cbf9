"""Soak: memory and p99 over a sustained open-loop run, as slopes per 1000 requests.

Resident memory (RSS) is read once a second (more often in a soak under 100 s) by a
sampler thread — of this process for an in-process target, of ``pid=`` for a server —
and the p99 of each window of the schedule. Each series is cut into ``blocks``
consecutive block means and the slope of those against the requests sent is an ordinary
least-squares slope with Student's t interval (block means of a minute or so are close
to independent; the raw one-second readings are not).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import psutil

from silenttax.errors import InputError
from silenttax.load._generator import LoadRun, run


@dataclass
class Slope:
    """A slope per 1000 requests with its two-sided ``1 - 2 alpha`` interval."""

    value: float
    low: float
    high: float
    points: int


def block_slope(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], *, blocks: int = 10,
                alpha: float = 0.05) -> Slope | None:  # fmt: skip
    """OLS slope of the block means of ``y`` on those of ``x``, with a t interval.

    >>> x = np.arange(1000.0); y = 2 * x + np.random.default_rng(0).normal(0, 1, 1000)
    >>> s = block_slope(x, y)
    >>> s.low < 2 < s.high
    True
    >>> block_slope(x, np.ones(1000))  # flat: an interval of width 0, never NaN
    Slope(value=0.0, low=0.0, high=0.0, points=10)
    """
    from scipy import stats

    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 * blocks or blocks < 3:
        return None
    parts = np.array_split(np.arange(x.size), blocks)
    bx = np.array([x[p].mean() for p in parts])
    by = np.array([y[p].mean() for p in parts])
    dx = bx - bx.mean()
    sxx = float((dx * dx).sum())
    if sxx <= 0:
        return None
    slope = float((dx * (by - by.mean())).sum()) / sxx
    resid = by - by.mean() - slope * dx
    stderr = math.sqrt(float((resid * resid).sum()) / (blocks - 2) / sxx)  # 0 when flat
    half = float(stats.t.ppf(1 - alpha, blocks - 2)) * stderr
    return Slope(slope, slope - half, slope + half, blocks)


@dataclass
class SoakResult:
    """The outcome of :func:`soak`."""

    run: LoadRun
    times: np.ndarray[Any, Any]
    """Seconds from the start of each memory reading."""
    rss: np.ndarray[Any, Any]
    """Resident memory, bytes, at each reading."""
    memory: Slope | None
    """MB per 1000 requests."""
    p99: Slope | None
    """Seconds of p99 per 1000 requests (window p99s)."""
    min_growth: float
    warmup: float = 0.0
    """Seconds left out of both slopes at the start."""

    def figures(self) -> dict[str, Any]:
        def slope(s: Slope | None) -> dict[str, float] | None:
            return None if s is None else {"value": s.value, "low": s.low, "high": s.high}

        return {
            "run": self.run.figures(),
            "memory_mb_per_1k": slope(self.memory),
            "p99_s_per_1k": slope(self.p99),
            "rss_first_mb": float(self.rss[0] / 2**20) if self.rss.size else None,
            "rss_last_mb": float(self.rss[-1] / 2**20) if self.rss.size else None,
            "min_growth": self.min_growth,
            "warmup": self.warmup,
        }

    def report(self) -> Any:
        """``load.memory_growth`` and ``load.p99_drift`` (see :mod:`silenttax.load`)."""
        from silenttax.load._findings import soak_findings

        return soak_findings(self)


def soak(
    target: Any,
    *,
    rate: float,
    duration: float,
    payloads: Any = None,
    pid: int | None = None,
    window: float = 5.0,
    blocks: int = 10,
    min_growth: float = 0.1,
    seed: int = 0,
    timeout: float = 10.0,
    max_in_flight: int = 256,
    alpha: float = 0.05,
    warmup: float | Literal["auto"] = "auto",
) -> SoakResult:
    """Drive ``target`` at ``rate`` for ``duration`` seconds and measure memory growth
    and p99 drift per 1000 requests.

    Args:
        target: A callable, a ModelSpec or an ``http://`` URL (see :func:`run`).
        rate: Requests per second (keep it under the capacity: ~70% of the safe one).
        duration: Seconds (ten minutes tells 1 MB per 1000 requests from noise).
        pid: The process whose memory is read (default: this one; a server's pid for
            an HTTP target).
        window: Seconds per p99 window.
        blocks: Block means the slopes are fitted on.
        min_growth: MB per 1000 requests below which growth is not named.
        alpha: One-sided error of the growth claim.
        warmup: Leading seconds left out of both slopes (memory readings and p99
            windows), or ``"auto"``: where the latencies settle (MSER-5), and at least
            ``duration / (blocks + 1)`` (caches, pools and allocator arenas fill first).

    Raises:
        InputError: a bad option, or ``pid`` is not a running process.
    """
    if not duration >= 2 * blocks:
        raise InputError(f"duration: a soak needs at least {2 * blocks} s for {blocks} blocks")
    try:
        process = psutil.Process(pid)
    except (psutil.Error, ValueError) as exc:
        raise InputError(f"pid: {pid!r} is not a process this user can read ({exc})") from None
    readings: list[tuple[float, float]] = []
    every = max(0.1, min(1.0, duration / 100))  # seconds between memory readings
    stop = threading.Event()
    start = time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            try:
                readings.append((time.perf_counter() - start, float(process.memory_info().rss)))
            except psutil.Error:
                return
            stop.wait(every)

    sampler = threading.Thread(target=sample, name="silenttax-soak", daemon=True)
    sampler.start()
    try:
        done = run(target, rate=rate, duration=duration, payloads=payloads, seed=seed,
                   timeout=timeout, max_in_flight=max_in_flight, calibrate=False,
                   warmup=warmup)  # fmt: skip
    finally:
        stop.set()
        sampler.join(timeout=5)
    cut = max(done.warmup, duration / (blocks + 1)) if warmup == "auto" else float(warmup)
    kept = [(t, m) for t, m in readings if t >= cut]
    times = np.array([t for t, _ in kept])
    rss = np.array([m for _, m in kept])
    sent = times * rate / 1000.0  # thousands of requests scheduled by then
    memory = block_slope(sent, rss / 2**20, blocks=blocks, alpha=alpha)
    edges = np.arange(0.0, duration + window, window)
    lat = done.latencies
    which = np.digitize(done.intended, edges) - 1
    centres, p99s = [], []
    for w in range(len(edges) - 1):
        chunk = lat[which == w]
        if chunk.size >= 20 and edges[w] >= cut:
            centres.append((edges[w] + window / 2) * rate / 1000.0)
            p99s.append(float(np.quantile(chunk, 0.99, method="higher")))
    p99 = (
        block_slope(
            np.array(centres), np.array(p99s), blocks=min(blocks, len(p99s) // 2), alpha=alpha
        )
        if len(p99s) >= 6 and all(math.isfinite(v) for v in p99s)
        else None
    )
    return SoakResult(done, times, rss, memory, p99, min_growth, cut)
