"""Calibration and power of silenttax.gate, side by side with the anchors' rules.

Gate (``performance_gate``), workloads of research/gate_canary.md §8:

- W1 A/A log-normal, sigma 0.25 / 0.5 / 1.0, n 200 / 3000 / 10000 per side;
- W2 A/A with 1% outliers x10; W3 A/A rounded to 1 ms; W4 A/A bimodal 80/20;
- W5 A/A in 5 blocks per side with a block random effect (CV 11%);
- W6 tail-only x1.1 / x1.3 / x1.5 above q97; W7 uniform x1.05 / x1.10;
- W8 the same median, sigma x1.3 (a wider spread: the tail moves, p50 not);
- W9 peak memory and cost per 1000 inferences +5% / +10% over 5 runs per
  side with 2% run-to-run noise (memory A/A too).

Anchors, run on the same draws: Kayenta's judge (Mann-Whitney at 98%, no
margin), pyperf's Welch t-test on means, pytest-benchmark's ``mean:5%``, and a
CodSpeed-style 2% gate on the medians.

Canary (``Canary``, the same counts and e-processes, vectorised over a
stream), W10: a 5% split, requests up to ``--requests``, the decision read
after every request. A/A false rollback and false halt ever; +30% / +15%
tail-only p99 regressions (rollback rate and tail events to roll back); a
split of 4.5% instead of the declared 5% (halt). The anchor: a naive one-sided
binomial test on the same tail events, repeated every 50 events.

W11, the horizon: no-change and +30% p99 streams cut at ``--horizon`` requests
(promoted by it, rolled back), and streams whose p99 exceedance-rate ratio is
exactly the one a canary promoted at the horizon states it would have caught
with 80% power (the share of them rolled back checks the statement).

Run: ``python benchmarks/bench_gate.py`` (about 15 minutes on 2 cores);
``--reps`` and ``--requests`` scale it down; ``--only horizon`` runs W11 alone.
"""

from __future__ import annotations

import argparse
import math
import time
import zlib
from collections.abc import Callable

import numpy as np
from scipy import stats

from silenttax.gate import log_e_above, log_e_split, performance_gate, verdict
from silenttax.gate._canary import HALT_SHARE

_Z97 = 1.8807936081512509
Draw = Callable[[np.random.Generator, int], np.ndarray]


def wilson(k: int, n: int) -> str:
    z = 1.96
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{p:6.1%} [{max(0, centre - half):.1%}, {min(1, centre + half):.1%}]"


def lognormal(sigma: float, *, tail: float = 1.0, scale: float = 1.0) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        x = rng.lognormal(math.log(0.01), sigma, n) * scale
        if tail != 1.0:
            q97 = 0.01 * math.exp(sigma * _Z97)
            x = np.where(x > q97, x * tail, x)
        return x

    return draw


def outliers(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.lognormal(math.log(0.01), 0.5, n)
    return np.where(rng.random(n) < 0.01, x * 10, x)


def rounded(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.round(rng.lognormal(math.log(0.01), 0.5, n), 3)  # 1 ms clock


def bimodal(rng: np.random.Generator, n: int) -> np.ndarray:
    hit = rng.random(n) < 0.8
    return np.where(
        hit, rng.lognormal(math.log(0.004), 0.3, n), rng.lognormal(math.log(0.02), 0.4, n)
    )


def anchors(base: np.ndarray, cand: np.ndarray) -> dict[str, bool]:
    """Does each anchor's rule call the candidate a regression?"""
    mw = stats.mannwhitneyu(cand, base, alternative="two-sided").pvalue
    welch = stats.ttest_ind(cand, base, equal_var=False)
    return {
        "kayenta": bool(mw < 0.02 and np.median(cand) > np.median(base)),
        "pyperf t-test": bool(welch.pvalue < 0.05 and welch.statistic > 0),
        "pytest-benchmark mean:5%": bool(cand.mean() > 1.05 * base.mean()),
        "median 2% gate": bool(np.median(cand) > 1.02 * np.median(base)),
    }


ONLY = ""  # --only: run only the cells whose name has this


def gate_cell(
    name: str, base: Draw, cand: Draw, n: int, reps: int, blocks: int = 1, cv: float = 0.0
) -> None:
    if ONLY not in name:
        return
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    counts = {"silenttax": 0, "inconclusive": 0}
    anchor_counts: dict[str, int] = {}
    for _ in range(reps):
        if blocks > 1:
            per = n // blocks
            b = [base(rng, per) * math.exp(rng.normal(0, cv)) for _ in range(blocks)]
            c = [cand(rng, per) * math.exp(rng.normal(0, cv)) for _ in range(blocks)]
            result = verdict(performance_gate(b, c))
            flat_b, flat_c = np.concatenate(b), np.concatenate(c)
        else:
            flat_b, flat_c = base(rng, n), cand(rng, n)
            result = verdict(performance_gate(flat_b, flat_c))
        counts["silenttax"] += result == "regression"
        counts["inconclusive"] += result == "inconclusive"
        for key, hit in anchors(flat_b, flat_c).items():
            anchor_counts[key] = anchor_counts.get(key, 0) + hit
    line = f"{name:<44} n={n:>5}  silenttax {wilson(counts['silenttax'], reps)}"
    line += f" (inconclusive {counts['inconclusive'] / reps:.0%})"
    line += "".join(f" | {k} {v / reps:.0%}" for k, v in anchor_counts.items())
    print(line, flush=True)


def block_cell(name: str, metric: str, rise: float, reps: int) -> None:
    """W9: five runs per side, 2% run-to-run noise; ``metric`` is memory or cost."""
    if ONLY not in name:
        return
    from silenttax.benchmark import environment
    from silenttax.benchmark._harness import _summarize

    env = environment()
    rng = np.random.default_rng(zlib.crc32(name.encode()))

    def runs(scale: float) -> list[object]:
        out = []
        for _ in range(5):
            noise = math.exp(rng.normal(0, 0.02))
            latency = rng.lognormal(math.log(0.01), 0.5, 600)
            if metric == "cost":
                latency = latency * scale * noise
            rss = int(2e9 * (scale if metric == "memory" else 1.0) * noise)
            out.append(
                _summarize(
                    "m",
                    latency.tolist(),
                    batch_size=1,
                    warmup_calls=0,
                    wall=1.0,
                    cpu=1.0,
                    peak_rss=rss,
                    threads=None,
                    env=env,
                )
            )
        return out

    hits = 0
    option = "max_memory_regression" if metric == "memory" else "max_cost_regression"
    code = "gate.memory" if metric == "memory" else "gate.cost"
    for _ in range(reps):
        report = performance_gate(runs(1.0), runs(1.0 + rise), **{option: 0.05})
        hits += report.filter(code=code)[0].evidence["verdict"] == "regression"
    print(f"{name:<44} 5+5 runs  silenttax {wilson(hits, reps)}", flush=True)


def record_cost() -> None:
    """ns per record_control / record_canary after the burn-in (two watched quantiles)."""
    from silenttax.gate import Canary

    canary = Canary(baseline=np.random.default_rng(0).lognormal(-4.6, 0.5, 5000))
    values = np.random.default_rng(1).lognormal(-4.6, 0.5, 200_000).tolist()
    best = math.inf
    for _ in range(5):
        start = time.perf_counter_ns()
        for x in values:
            canary.record_control(x)
        best = min(best, (time.perf_counter_ns() - start) / len(values))
    empty = math.inf
    for _ in range(5):
        start = time.perf_counter_ns()
        for _x in values:
            pass
        empty = min(empty, (time.perf_counter_ns() - start) / len(values))
    print(f"\nCanary.record_control: {best - empty:.0f} ns per request (p50 and p99 watched)")


def canary_stream(
    rng: np.random.Generator,
    requests: int,
    *,
    tail: float = 1.0,
    true_split: float = 0.05,
    split: float = 0.05,
    tol: float = 0.05,
    alpha: float = 0.05,
    burn: int = 1000,
    quantiles: tuple[float, ...] = (0.5, 0.99),
) -> dict[str, float]:
    """One canary stream, its decision read after every request (Canary's rule, vectorised)."""
    arm = rng.random(requests) < true_split
    x = rng.lognormal(0.0, 1.0, requests)
    if tail != 1.0:
        q97 = math.exp(_Z97)
        x = np.where(arm & (x > q97), x * tail, x)
    control = np.flatnonzero(~arm)
    start = int(control[burn - 1]) + 1
    edges = np.quantile(x[control[:burn]], quantiles)
    bar = math.log(len(quantiles) / (alpha * (1 - HALT_SHARE)))  # Canary's split of alpha
    a, v = arm[start:], x[start:]
    out = {"rollback": math.inf, "events": math.inf, "naive": math.inf, "halt": math.inf}
    for edge in edges:
        above = v > edge
        c, k = np.cumsum(~a & above), np.cumsum(a & above)
        over = np.cumsum(a & (v > edge * (1 + tol)))
        at = np.flatnonzero(a & above)  # the rollback e-value rises only at canary events
        if at.size:
            up = log_e_above(k[at], k[at] + c[at], split)
            hit = np.flatnonzero((up >= bar) & (over[at] * (1 - split) > c[at] * split))
            if hit.size and at[hit[0]] < out["rollback"]:
                out["rollback"] = float(at[hit[0]])
                out["events"] = float(k[at[hit[0]]] + c[at[hit[0]]])
        events = np.flatnonzero(above)
        every = events[49::50]  # the anchor: a fresh binomial test every 50 tail events
        if every.size:
            p = stats.binom.sf(k[every] - 1, k[every] + c[every], split)
            naive = np.flatnonzero(p < alpha / len(quantiles))
            if naive.size:
                out["naive"] = min(out["naive"], float(every[naive[0]]))
    m = np.cumsum(a)
    srm = log_e_split(m, np.arange(1, len(a) + 1), split)
    halted = np.flatnonzero(srm >= math.log(1 / (alpha * HALT_SHARE)))
    if halted.size:
        out["halt"] = float(halted[0])
    return out


def canary_cells(reps: int, requests: int) -> None:
    print(
        f"\ncanary: 5% split, {requests:,} requests, decision read after every request, {reps} streams"
    )
    cases = [
        ("A/A: false rollback ever", {}, "rollback"),
        ("A/A: naive binomial test every 50 events", {}, "naive"),
        ("A/A: false halt ever", {}, "halt"),
        ("p99 +30% tail-only: rollback", {"tail": 1.3}, "rollback"),
        ("p99 +15% tail-only: rollback", {"tail": 1.15}, "rollback"),
        ("split 4.5% declared 5%: halt", {"true_split": 0.045}, "halt"),
    ]
    for name, kwargs, key in cases:
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        results = [canary_stream(rng, requests, **kwargs) for _ in range(reps)]  # type: ignore[arg-type]
        hits = sum(math.isfinite(r[key]) for r in results)
        line = f"  {name:<44} {wilson(hits, reps)}"
        if key == "rollback" and "tail" in kwargs:
            events = [r["events"] for r in results if math.isfinite(r["events"])]
            if events:
                line += f"; tail events to roll back: median {np.median(events):.0f}, p90 {np.percentile(events, 90):.0f}"
        print(line, flush=True)


def canary_horizon_cells(reps: int, horizon: int) -> None:
    """A horizon: healthy canaries promote by it; regressions still roll back; the stated
    80%-power guarantee checked by streams whose p99 exceedance-rate ratio is the one stated."""
    from scipy.optimize import brentq

    from silenttax.gate._canary import _detectable_ratio

    print(f"\ncanary with horizon={horizon:,} requests, 5% split, {reps} streams")
    for name, kwargs in [("A/A", {}), ("p99 +30% tail-only", {"tail": 1.3})]:
        rng = np.random.default_rng(zlib.crc32(name.encode() + b"horizon"))
        results = [canary_stream(rng, horizon, **kwargs) for _ in range(reps)]  # type: ignore[arg-type]
        rolled = sum(math.isfinite(r["rollback"]) for r in results)
        halted = sum(math.isfinite(r["halt"]) and not math.isfinite(r["rollback"]) for r in results)
        promoted = reps - rolled - halted
        print(
            f"  {name:<22} promoted by the horizon {wilson(promoted, reps)}; "
            f"rolled back {wilson(rolled, reps)}; halted {halted}",
            flush=True,
        )
    # the guarantee: tail events at the p99 edge by the horizon, the ratio stated for them
    events = round((horizon - 1000) * 0.01)  # both arms above the p99 edge after the burn-in
    bar = math.log(2 / (0.05 * (1 - HALT_SHARE)))
    stated = _detectable_ratio(events, 0.05, bar, 20.0, 0.8)
    assert stated is not None
    e99 = math.exp(stats.norm.ppf(0.99))
    q97 = math.exp(_Z97)

    def ratio(tail: float) -> float:  # canary's rate above the p99 edge / control's (0.01)
        return float(stats.norm.sf(math.log(max(e99 / tail, q97)))) / 0.01

    tail = brentq(lambda t: ratio(t) - stated, 1.0, e99 / q97 - 1e-9)
    rng = np.random.default_rng(zlib.crc32(b"guarantee"))
    results = [canary_stream(rng, horizon, tail=tail) for _ in range(reps)]
    caught = sum(math.isfinite(r["rollback"]) for r in results)
    print(
        f"  stated guarantee: {stated:.2f}x the control's rate above the p99 edge with 80% "
        f"power at ~{events:,} tail events; streams at exactly that ratio (tail x{tail:.3f}) "
        f"rolled back {wilson(caught, reps)}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--canary-reps", type=int, default=1000)
    parser.add_argument("--horizon", type=int, default=200_000, help="canary horizon, requests")
    parser.add_argument("--only", default="", help="run only the cells whose name has this")
    args = parser.parse_args()
    if args.only in ("horizon", "canary"):  # the canary's cells alone
        if args.only == "canary":
            canary_cells(args.canary_reps, args.requests)
        canary_horizon_cells(args.canary_reps, args.horizon)
        return
    global ONLY
    ONLY = args.only.removeprefix("canary") if args.only.startswith("canary") else args.only
    t0 = time.perf_counter()
    reps = args.reps
    print(f"gate: rate of 'regression' verdicts with a 95% interval, {reps} reps per cell")
    for sigma in (0.25, 0.5, 1.0):
        for n in (200, 3000, 10000):
            gate_cell(f"W1 A/A sigma={sigma}", lognormal(sigma), lognormal(sigma), n, reps)
    gate_cell("W2 A/A 1% outliers x10", outliers, outliers, 3000, reps)
    gate_cell("W3 A/A rounded to 1 ms", rounded, rounded, 3000, reps)
    gate_cell("W4 A/A bimodal 80/20", bimodal, bimodal, 3000, reps)
    gate_cell("W5 A/A 5 blocks, block CV 11%", lognormal(0.5), lognormal(0.5), 3000, reps, 5, 0.11)
    for sigma in (0.5, 0.75, 1.0):
        for k in (1.1, 1.3, 1.5):
            gate_cell(
                f"W6 tail-only x{k} sigma={sigma}",
                lognormal(sigma),
                lognormal(sigma, tail=k),
                3000,
                reps,
            )
    for k in (1.05, 1.10):
        gate_cell(f"W7 uniform x{k} sigma=0.5", lognormal(0.5), lognormal(0.5, scale=k), 3000, reps)
    gate_cell("W8 same median, sigma 0.5 -> 0.65", lognormal(0.5), lognormal(0.65), 3000, reps)
    block_cell("W9 A/A peak memory", "memory", 0.0, reps)
    for rise in (0.05, 0.10):
        block_cell(f"W9 peak memory +{rise:.0%}", "memory", rise, reps)
        block_cell(f"W9 cost per 1000 +{rise:.0%}", "cost", rise, reps)
    if not ONLY or "record" in ONLY:
        record_cost()
    if not ONLY or "canary" in ONLY:
        canary_cells(args.canary_reps, args.requests)
        canary_horizon_cells(args.canary_reps, args.horizon)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
