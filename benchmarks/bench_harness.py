"""The benchmark harness: its own overhead per sample, and agreement with torch.utils.benchmark.

Targets (model-audit issue): self-overhead per sample <= 1 µs; verdicts agree
with ``torch.utils.benchmark.Timer`` on the same functions within the CIs.

Run: python benchmarks/bench_harness.py
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.benchmark import Timer

from silenttax.benchmark import benchmark, compare, torch_fn


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def noop() -> None:
    return None


def overhead() -> None:
    n = 200_000
    bare = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            noop()
        bare.append((time.perf_counter() - start) / n)
    per_call = statistics.median(bare)
    runs = [
        benchmark(noop, warmup=0, min_samples=n, min_time=0, max_time=60, memory=False)
        for _ in range(5)
    ]
    per_sample = statistics.median(r.wall_time / len(r.samples) for r in runs)
    print(
        f"harness loop per sample: {per_sample * 1e9:.0f} ns; bare call of the same function: "
        f"{per_call * 1e9:.0f} ns; self-overhead {max(0.0, per_sample - per_call) * 1e9:.0f} ns (target <= 1000)"
    )


def agreement() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 512)
    ).eval()
    x = torch.randn(32, 512)
    a = torch.randn(256, 256)
    cases = {
        "busy-wait 200 µs": lambda: spin(2e-4),
        "matmul 256x256": lambda: a @ a,
        "MLP 512-1024-512, batch 32": torch_fn(mlp, x),
    }
    print("\nTimer reports the median of block means, which lies between the per-call median and")
    print(
        "mean of a right-skewed distribution; 'agrees' = inside [lower CI of silenttax's p50, upper CI of its mean]."
    )
    print(
        f"{'function':28s} {'p50':>10s} {'mean [95% CI]':>32s} {'Timer median':>13s} {'/mean':>6s} {'agrees':>7s}"
    )
    for label, fn in cases.items():
        ours = benchmark(fn, min_samples=300, min_time=1.0, max_time=5, threads=1, memory=False)
        timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=1).blocked_autorange(
            min_run_time=1.0
        )
        half = 1.96 * statistics.stdev(ours.samples) / len(ours.samples) ** 0.5
        lo, hi = ours.mean - half, ours.mean + half
        inside = ours.ci_median[0] <= timer.median <= hi  # type: ignore[index]
        print(
            f"{label:28s} {ours.p50 * 1e6:7.1f} µs {ours.mean * 1e6:8.1f} µs [{lo * 1e6:8.1f}, {hi * 1e6:8.1f}] "
            f"{timer.median * 1e6:10.1f} µs {timer.median / ours.mean:6.3f} {inside!s:>7s}"
        )
    c = compare(lambda: spin(2e-4), lambda: spin(2.6e-4), max_time=5)
    t_a = Timer(stmt="fn()", globals={"fn": lambda: spin(2e-4)}).blocked_autorange(min_run_time=1.0)
    t_b = Timer(stmt="fn()", globals={"fn": lambda: spin(2.6e-4)}).blocked_autorange(
        min_run_time=1.0
    )
    print(
        f"\nA/B busy-wait 200 vs 260 µs: silenttax ratio {c.ratio:.3f} [{c.ci[0]:.3f}, {c.ci[1]:.3f}] "
        f"({c.rounds} rounds); Timer medians ratio {t_b.median / t_a.median:.3f}"
    )


if __name__ == "__main__":
    overhead()
    agreement()
