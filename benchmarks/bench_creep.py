"""Latency creep calibration: simulated servers at 100 requests/s with realistic hiccups.

Each server serves log-normal latencies (median 10 ms, sigma 0.3) with, on top:

- GC pauses: 1 request in 1000 takes 50 ms longer;
- neighbour bursts: on average every 10 minutes, 1-10 s with every request 1.3x slower;
- a 3-second slowdown (1.6x) every 3-5 minutes;
- a diurnal swing of the level: +-5% over 24 hours;

and the watch folds every 8192 requests (as ``LatencyMonitor``'s sketch does), stamped
with the simulated clock. Measured:

- **false creep**: confirmed creep events on servers with no change (target: at most 1
  per server-week);
- **detection**: a sustained +25% of p50 (every latency 1.25x) or of p95 alone (sigma
  0.3 -> 0.436, the median unchanged) from a random moment: seconds to confirmation
  (target: within minutes), and whether the size's 95% interval covers the truth
  (target: >= 90% of runs).

Run: python benchmarks/bench_creep.py [--weeks 4] [--runs 40]
(the tests run a seeded, smaller version: tests/monitor/test_creep.py)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from silenttax.monitor._creep import CreepWatch

RATE = 100.0
FOLD = 8192
SIGMA = 0.3
P95_SIGMA = SIGMA + math.log(1.25) / 1.6448536269514722  # p95 x1.25, p50 unchanged


def server(seconds: float, seed: int, *, change_at: float | None = None,
           change: str = "p50") -> CreepWatch:  # fmt: skip
    """One simulated server; returns its watch."""
    rng = np.random.default_rng(seed)
    watch = CreepWatch()
    episodes: list[tuple[float, float, float]] = []  # (start, end, factor)
    t = 0.0
    while t < seconds:  # neighbour bursts
        t += rng.exponential(600.0)
        episodes.append((t, t + rng.uniform(1, 10), 1.3))
    t = 0.0
    while t < seconds:  # the 3-second slowdowns
        t += rng.uniform(180, 300)
        episodes.append((t, t + 3.0, 1.6))
    starts = np.array([e[0] for e in episodes])
    ends = np.array([e[1] for e in episodes])
    factors = np.array([e[2] for e in episodes])
    order = np.argsort(starts)
    starts, ends, factors = starts[order], ends[order], factors[order]
    total = int(seconds * RATE)
    for first in range(0, total, FOLD):
        n = min(FOLD, total - first)
        times = (first + np.arange(n)) / RATE
        sigma = np.full(n, SIGMA)
        level = np.log(0.010) + np.log1p(0.05 * np.sin(2 * np.pi * times / 86_400))
        if change_at is not None:
            after = times >= change_at
            if change == "p50":
                level = level + after * math.log(1.25)
            else:
                sigma = np.where(after, P95_SIGMA, SIGMA)
        values = np.exp(level + sigma * rng.standard_normal(n))
        # episodes overlapping this fold
        lo, hi = np.searchsorted(starts, times[0] - 10), np.searchsorted(starts, times[-1])
        for s, e, f in zip(starts[lo:hi], ends[lo:hi], factors[lo:hi], strict=True):
            values[(times >= s) & (times < e)] *= f
        values += (rng.random(n) < 1e-3) * 0.050
        watch.buffer.extend(values.tolist())
        watch.fold(now=times[-1])
    return watch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weeks", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    week = 7 * 86_400.0
    false = 0
    hiccups = 0
    for seed in range(max(1, math.ceil(args.weeks))):
        seconds = week * min(1.0, args.weeks - seed)
        watch = server(seconds, seed)
        false += len(watch.events)
        hiccups += len(watch.hiccups)
        print(f"server {seed}: {seconds / 86_400:.1f} days, {len(watch.events)} creep events, "
              f"hiccups kept {len(watch.hiccups)}", flush=True)  # fmt: skip
    print(f"false creep: {false} in {args.weeks:g} server-weeks "
          f"({false / args.weeks:.2f} per server-week)")  # fmt: skip
    for change in ("p50", "p95"):
        delays, covered, sizes, missed = [], 0, [], 0
        for run in range(args.runs):
            rng = np.random.default_rng(1000 + run)
            change_at = float(rng.uniform(1800, 5400))
            watch = server(change_at + 1800, 1000 + run, change_at=change_at, change=change)
            mine = [e for e in watch.events if e.quantile == change and e.detected_at is not None
                    and e.detected_at >= change_at]  # fmt: skip
            if not mine:
                missed += 1
                continue
            event = mine[0]
            delays.append(float(event.detected_at or 0) - change_at)
            sizes.append(event.ratio)
            # the truth: 1.25 times the diurnal level after the change over the level the
            # watch learnt in its first minute
            diurnal = 1 + 0.05 * math.sin(2 * math.pi * (change_at + 30) / 86_400)
            truth = 1.25 * diurnal
            covered += event.low <= truth <= event.high
        found = args.runs - missed
        print(
            f"+25% {change}: found {found}/{args.runs}; confirmed after "
            f"{statistics.median(delays):.0f} s (median), {max(delays):.0f} s (max); size "
            f"median {statistics.median(sizes):.3f}, 95% interval covers the truth (1.25 x the diurnal level) in "
            f"{covered}/{found} ({covered / max(found, 1):.0%})"
        )


if __name__ == "__main__":
    main()
