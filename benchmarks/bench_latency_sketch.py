"""LatencySketch and LatencyMonitor against their anchors, side by side in one run.

Targets (serving-monitors issue):
- ``LatencySketch.add`` <= 0.3x ``ddsketch.DDSketch.add`` and <= 0.5x
  ``prometheus_client.Histogram.observe`` per observation;
- ``add_many`` <= 10 ns per value; merge <= 10 µs; JSON <= 16 KiB for 1 µs-100 s at 1%;
- ``LatencyMonitor.time()`` overhead <= 1 µs per request on top of the sketch (creep
  detection included; its own cost is printed beside ``creep=False``);
- accuracy vs exact percentiles, DDSketch, HdrHistogram, datasketches KLL/REQ and
  Prometheus default buckets on 1e6 log-normal and Pareto latencies;
- soak: 10 million records keep RSS flat.

Per-call costs are process-CPU medians over interleaved repeats, with the cost
of an empty loop calling a no-op subtracted from every variant.

Needs the benchmark extras: pip install ddsketch hdrhistogram datasketches prometheus-client
Run: python benchmarks/bench_latency_sketch.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

import numpy as np
import psutil
from datasketches import kll_doubles_sketch, req_floats_sketch
from ddsketch import DDSketch
from hdrh.histogram import HdrHistogram
from prometheus_client import CollectorRegistry, Histogram

from silenttax.monitor import LatencyMonitor, LatencySketch

QS = (0.5, 0.95, 0.99)


def per_call_ns(
    fns: dict[str, Callable[[float], object]], values: list[float], repeats: int
) -> dict[str, float]:
    """Median process-CPU ns per call, variants interleaved, empty-loop cost subtracted."""

    def noop(x: float) -> None:
        return None

    fns = {"<empty loop>": noop, **fns}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.disable()
            start = time.process_time_ns()
            for v in values:
                fn(v)
            elapsed = time.process_time_ns() - start
            gc.enable()
            samples[name].append(elapsed / len(values))
    medians = {name: statistics.median(s) for name, s in samples.items()}
    floor = medians.pop("<empty loop>")
    return {name: m - floor for name, m in medians.items()}


def prometheus_quantile(hist: Histogram, q: float) -> float:
    """PromQL histogram_quantile: linear interpolation inside the bucket."""
    buckets = [
        (float(s.labels["le"]), s.value)
        for s in hist.collect()[0].samples
        if s.name.endswith("_bucket")
    ]
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(cumulative - below, 1e-300)
        lower, below = upper, cumulative
    return lower


def accuracy(name: str, data: np.ndarray) -> None:
    exact = np.quantile(data, QS, method="lower")
    rows: dict[str, list[float]] = {}
    ours = LatencySketch(relative_accuracy=0.01)
    ours.add_many(data)
    rows["silenttax LatencySketch(0.01)"] = list(ours.quantiles(QS))
    dd = DDSketch(0.01)
    for v in data.tolist():
        dd.add(v)
    rows["ddsketch DDSketch(0.01)"] = [dd.get_quantile_value(q) for q in QS]
    hdr = HdrHistogram(1, 3_600_000_000, 2)  # 1 µs - 1 h, 2 significant digits
    for v in (data * 1e6).astype(np.int64).tolist():
        hdr.record_value(max(1, v))
    rows["hdrh HdrHistogram (µs, 2 digits)"] = [
        hdr.get_value_at_percentile(q * 100) / 1e6 for q in QS
    ]
    kll = kll_doubles_sketch(200)
    kll.update(data)
    rows["datasketches KLL k=200"] = [kll.get_quantile(q) for q in QS]
    req = req_floats_sketch(12, True)
    req.update(data.astype(np.float32))
    rows["datasketches REQ k=12 hra"] = [req.get_quantile(q) for q in QS]
    prom = Histogram("latency", "latency", registry=CollectorRegistry())
    for v in data.tolist():
        prom.observe(v)
    rows["prometheus default buckets"] = [prometheus_quantile(prom, q) for q in QS]
    print(
        f"\naccuracy on {data.size:,} {name} latencies (exact p50/p95/p99 = "
        + " / ".join(f"{x * 1e3:.2f}" for x in exact)
        + " ms): relative error"
    )
    print(f"  {'recorder':34s} {'p50':>8s} {'p95':>8s} {'p99':>8s}")
    for label, est in rows.items():
        errs = np.abs(np.array(est) - exact) / exact * 100
        print(f"  {label:34s} " + " ".join(f"{e:7.2f}%" for e in errs))


def soak(n: int) -> None:
    process = psutil.Process()
    sketch = LatencySketch()
    rng = np.random.default_rng(1)
    block = rng.lognormal(np.log(0.02), 0.75, 100_000).tolist()
    rss = []
    add = sketch.add
    for i in range(n // len(block)):
        for v in block:
            add(v)
        if i % (max(1, n // len(block)) // 10 or 1) == 0:
            rss.append(process.memory_info().rss)
    rss.append(process.memory_info().rss)
    mib = [r / 2**20 for r in rss]
    print(
        f"\nsoak: {sketch.count:,} add() calls; RSS from {mib[0]:.1f} to {mib[-1]:.1f} MiB "
        f"(max {max(mib):.1f}); sketch JSON {len(sketch.to_json())} B"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds, not minutes)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_calls = 50_000 if args.quick else 200_000
    values = rng.lognormal(np.log(0.02), 0.75, n_calls).tolist()

    sketch = LatencySketch()
    dd = DDSketch(0.01)
    prom = Histogram("h", "h", registry=CollectorRegistry())
    monitor = LatencyMonitor()
    plain = LatencyMonitor(creep=False)

    def timed(_: float) -> None:
        with monitor.time():
            pass

    def timed_plain(_: float) -> None:
        with plain.time():
            pass

    costs = per_call_ns(
        {
            "LatencySketch.add": sketch.add,
            "DDSketch.add": dd.add,
            "prometheus Histogram.observe": prom.observe,
            "LatencyMonitor.time() block": timed,
            "LatencyMonitor(creep=False).time()": timed_plain,
            "LatencyMonitor.record": LatencyMonitor().record,
            "LatencyMonitor(creep=False).record": LatencyMonitor(creep=False).record,
        },
        values,
        repeats=7,
    )
    print("per-observation cost (process CPU ns, empty-loop cost subtracted):")
    for name, ns in costs.items():
        print(f"  {name:32s} {ns:8.1f} ns")
    ours = costs["LatencySketch.add"]
    print(
        f"  ratio vs DDSketch.add            {ours / costs['DDSketch.add']:8.3f}  (target <= 0.3)"
    )
    vs_prom = ours / costs["prometheus Histogram.observe"]
    print(f"  ratio vs Histogram.observe       {vs_prom:8.3f}  (target <= 0.5)")
    overhead = costs["LatencyMonitor.time() block"] - ours
    print(f"  time() overhead over add         {overhead:8.1f} ns   (target <= 1000)")
    creep = costs["LatencyMonitor.record"] - costs["LatencyMonitor(creep=False).record"]
    print(f"  creep detector per record        {creep:8.1f} ns   (within the time() budget)")

    big = rng.lognormal(np.log(0.02), 0.75, 1_000_000)
    s = LatencySketch()
    s.add_many(big)
    per = []
    for _ in range(7):
        start = time.process_time_ns()
        s.add_many(big)
        per.append((time.process_time_ns() - start) / big.size)
    print(f"\nadd_many: {statistics.median(per):.2f} ns per value (target <= 10)")

    shards = []
    for i in range(16):
        shard = LatencySketch()
        shard.add_many(big[i::16])
        shards.append(shard)
    target = LatencySketch()
    merges = []
    for shard in shards:
        start = time.perf_counter_ns()
        target.merge(shard)
        merges.append((time.perf_counter_ns() - start) / 1e3)
    print(
        f"merge: {statistics.median(merges):.1f} µs median over 16 shards (target <= 10); "
        f"merged p99 {target.quantile(0.99) * 1e3:.2f} ms"
    )
    wide = LatencySketch()
    wide.add_many(np.exp(rng.uniform(np.log(1e-6), np.log(100), 1_000_000)))
    print(
        f"JSON for 1 µs-100 s at 1%: {len(wide.to_json().encode()) / 1024:.1f} KiB (target <= 16)"
    )

    n = 200_000 if args.quick else 1_000_000
    accuracy("log-normal (median 20 ms, sigma 0.75)", rng.lognormal(np.log(0.02), 0.75, n))
    accuracy("Pareto (alpha 1.5, from 1 ms)", (rng.pareto(1.5, n) + 1) * 1e-3)
    soak(1_000_000 if args.quick else 10_000_000)


if __name__ == "__main__":
    main()
