"""Calibration of the load verdicts (issue "Stability under load"): the paired capacity
comparison and the soak's memory-growth test, with known truth.

Parts (``--part``, default both):

- ``ab``: ``compare_capacity``'s verdict (:func:`silenttax.load.judge_blocks`) on
  simulated M/M/1 servers (a vectorised Lindley recursion: seconds of CPU instead of
  hours of real runs). Baseline mu = 400/s, p99 <= 40 ms: capacity 284.9/s. Cases: the
  candidate the same (false alarms: a "regression" verdict), and 10% lower capacity
  (power). Each comparison drives both arms with the same Poisson arrivals per block
  and rate (common random numbers; services independent) on the default ladder
  0.8-1.2 x a centre that is the true capacity times a lognormal error of 7% (the
  spread of the capacity search measured in bench_load.py), drops 0.3 s of warm-up per
  block, and judges at tolerance 5%, alpha 5%. Targets: power >= 80%, false alarms
  <= 5%, within 5 minutes of runs (blocks x 5 rates x 2 arms x block seconds).
- ``soak``: real soaks of an in-process target at 200 requests/s, one that keeps 1 KB
  per request (1 MB per 1000: the issue's size) and one that keeps nothing, ``--runs``
  each: how often ``load.memory_growth`` is a WARNING. Target: every leak named, at most
  5% of clean runs. The issue's soak is 10 minutes; ``--soak-seconds`` sets it (60 s by
  default: 12,000 requests, 12 MB kept). ``--part clean`` runs the clean soaks only
  (each process reads its own memory: run several side by side for more of them);
  ``--part torch`` clean soaks of a small torch MLP, whose allocator churns.

Run: python benchmarks/bench_load_calibration.py [--part ab,soak] [--reps 400] [--runs 5]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from silenttax.load import judge_blocks, schedule, soak
from silenttax.load._compare import LADDER

MU, SLO = 400.0, 0.040
TRUTH = MU - math.log(100) / SLO  # M/M/1: P(T > t) = exp(-(mu - lambda) t)


def _exceeding(arrivals: np.ndarray, mu: float, rng: np.random.Generator,
               warmup: float) -> tuple[int, int]:  # fmt: skip
    """Requests over the SLO and requests after the warm-up, one FIFO server."""
    service = rng.exponential(1 / mu, arrivals.size)
    end = 0.0
    over = kept = 0
    for t, s in zip(arrivals.tolist(), service.tolist(), strict=True):
        end = max(end, t) + s
        if t >= warmup:
            kept += 1
            over += end - t > SLO
    return over, kept


def _compare(mu_b: float, blocks: int, block: float, rng: np.random.Generator) -> str:
    centre = TRUTH * float(np.exp(rng.normal(0, 0.07)))
    ladder = [centre * f for f in LADDER]
    over = np.zeros((2, blocks, len(ladder)))
    count = np.zeros((2, blocks, len(ladder)))
    for r in range(blocks):
        for k, rate in enumerate(ladder):
            arrivals = schedule(rate, block, seed=int(rng.integers(1 << 31)))
            for arm, mu in enumerate((MU, mu_b)):
                over[arm, r, k], count[arm, r, k] = _exceeding(arrivals, mu, rng, 0.3)
    return judge_blocks(over, count, ladder, draws=400,
                        seed=int(rng.integers(1 << 31))).verdict  # fmt: skip


def ab(reps: int) -> None:
    # a candidate with 10% less capacity: lambda*_B = 0.9 lambda*_A
    slower = 0.9 * TRUTH + math.log(100) / SLO
    print(f"truth: baseline capacity {TRUTH:.1f}/s; 10% lower: mu_B = {slower:.1f}/s")
    print(f"{'blocks':>6} {'block':>6} {'minutes':>8} {'false alarms':>14} {'power':>8}"
          f" {'inconclusive (null / -10%)':>28}")  # fmt: skip
    for blocks, block in ((6, 3.0), (8, 3.0), (12, 3.5)):
        rng = np.random.default_rng(blocks * 100 + int(block * 10))
        null = [_compare(MU, blocks, block, rng) for _ in range(reps)]
        alt = [_compare(slower, blocks, block, rng) for _ in range(reps)]
        fa = null.count("regression") / reps
        power = alt.count("regression") / reps
        se = math.sqrt(max(fa * (1 - fa), 1e-4) / reps)
        minutes = blocks * 5 * 2 * block / 60
        print(f"{blocks:>6} {block:>6.1f} {minutes:>8.1f} {fa:>8.1%} ±{1.96 * se:.1%}"
              f" {power:>8.1%} {null.count('inconclusive') / reps:>14.0%} / "
              f"{alt.count('inconclusive') / reps:.0%}", flush=True)  # fmt: skip


def _torch_model() -> object:
    """A small torch MLP on one thread, its forward a clean target whose allocator churns
    (a fresh input and activations every request)."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))

    def predict() -> None:
        with torch.inference_mode():
            model(torch.randn(16, 64))

    return predict


def soak_runs(runs: int, seconds: float, which: str = "both") -> None:
    kept: list[bytes] = []

    def leaky() -> None:
        kept.append(bytes(1000))

    def clean() -> None:
        bytes(1000)

    targets = (("leak 1 MB/1000", leaky), ("clean", clean))
    if which == "torch":
        targets = (("clean torch MLP", _torch_model()),)  # type: ignore[assignment]
    for name, target in targets if which != "clean" else targets[1:]:
        named = []
        slopes = []
        began = time.perf_counter()
        for i in range(runs):
            found = soak(target, rate=200, duration=seconds, seed=i)
            warn = any(f.code == "load.memory_growth" and f.severity.value == "warning"
                       for f in found.report())  # fmt: skip
            named.append(warn)
            m = found.memory
            slopes.append("none" if m is None else f"{m.value:+.2f} [{m.low:+.2f}, {m.high:+.2f}]")
            kept.clear()
        print(f"{name:>15}: growth named in {sum(named)}/{runs} soaks of {seconds:g} s "
              f"({(time.perf_counter() - began) / runs:.0f} s each); MB per 1000: "
              + "; ".join(slopes), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default="ab,soak")
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--soak-seconds", type=float, default=60.0)
    args = parser.parse_args()
    parts = args.part.split(",")
    if "ab" in parts:
        ab(args.reps)
    if "soak" in parts:
        soak_runs(args.runs, args.soak_seconds)
    if "clean" in parts:  # clean soaks only: start several such processes side by side
        soak_runs(args.runs, args.soak_seconds, "clean")
    if "torch" in parts:  # a clean torch model (its allocator churns), likewise
        soak_runs(args.runs, args.soak_seconds, "torch")


if __name__ == "__main__":
    main()
