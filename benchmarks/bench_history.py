"""The history store against the issue's targets (issue "History"):

- ``import silenttax.history`` <= 10 ms (fresh interpreter, bytecode cached, median of 9,
  over ``import silenttax``);
- a model-year <= 25 MB: here 5 routes' LatencyMonitor windows (what ``History.track``
  appends) and a CostMonitor every minute (31 tracked figures) and a 20-column
  FeatureHealth of 100,000 rows a day, under the default retention (raw 7 days, hourly
  90, daily forever). The steady state of a year is built directly: the last 7 days at
  one snapshot a minute, the 358 days before at one an hour (what compaction leaves of
  them), then ``compact()``;
- append p99 <= 1 ms (the minute phase);
- opening the year-old store <= 50 ms and a daily series-year <= 10 ms (fresh process);
- 16 writer processes appending for ``--soak`` seconds: zero lost appends, zero errors.

Run: python benchmarks/bench_history.py [--days 365] [--soak 60]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

T0 = 1_735_689_600.0  # 2025-01-01
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
ROUTES = 5


def _import_ms() -> float:
    code = (
        "import time; import silenttax; t = time.perf_counter(); import silenttax.history; "
        "print((time.perf_counter() - t) * 1e3)"
    )
    # bytecode cached, as in every installed package (a shell with PYTHONDONTWRITEBYTECODE
    # set measures compiling the modules instead: 17-18 ms here)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", "import silenttax.history"], check=True, env=env)
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True, env=env).stdout) for _ in range(9)]  # fmt: skip
    return statistics.median(runs)


def _states(rng: np.random.Generator, variants: int = 40) -> tuple[list, list]:
    from silenttax.cost import CostModel, CostMonitor
    from silenttax.history import window
    from silenttax.monitor import LatencyMonitor

    latency, cost = [], []
    for _ in range(variants):
        m = LatencyMonitor()
        for v in rng.lognormal(np.log(0.02), 0.4, 200):
            m.record(float(v))
        latency.append(window(m.state(), None))  # what History.track appends: a window
        c = CostMonitor(CostModel(price_per_hour=2.0), window=60)
        c.record(int(rng.integers(500, 1500)), busy_seconds=30.0, now=T0)
        c.record(1, now=T0 + 61)
        cost.append(c.state())
    return latency, cost


def _health(rng: np.random.Generator):  # type: ignore[no-untyped-def]
    from silenttax.features import FeatureHealth

    rows = 100_000  # a day of a busy feature table: the summaries are at their budget
    data = {f"f{i}": rng.normal(0, 1, rows) for i in range(16)}
    data.update({f"c{i}": rng.choice(["a", "b", "c", None], rows).tolist() for i in range(4)})
    return FeatureHealth().fit(data).state()


def _build(path: Path, days: int) -> dict[str, float]:
    from silenttax import history

    rng = np.random.default_rng(0)
    latency, cost = _states(rng)
    health = _health(rng)
    store = history.open(path)
    appends: list[float] = []

    def snapshot_at(at: float, timed: bool) -> None:
        for r in range(ROUTES):
            t = time.perf_counter()
            store.append(latency[int(rng.integers(len(latency)))], at=at,
                         labels={"model": "ranker", "route": f"/r{r}"})  # fmt: skip
            if timed:
                appends.append(time.perf_counter() - t)
        store.append(cost[int(rng.integers(len(cost)))], at=at, labels={"model": "ranker"})

    start = time.perf_counter()
    end = T0 + days * DAY
    minute_from = end - 7 * DAY
    at = T0
    while at < minute_from:  # what compaction leaves of the older days: hourly snapshots
        snapshot_at(at + 1, timed=False)
        if at % DAY == 0:
            store.append(health, at=at + 1, labels={"model": "ranker"})
        at += HOUR
    while at < end:
        snapshot_at(at + 1, timed=True)
        if at % DAY == 0:
            store.append(health, at=at + 1, labels={"model": "ranker"})
        at += MINUTE
    store.compact()
    built = time.perf_counter() - start
    store.close()  # waits for a compaction under way; the WAL is checkpointed
    store = history.open(path)
    stats = store.stats()
    store.compact(vacuum=True)
    packed = store.stats()["bytes"]
    store.close()
    return {
        "build_seconds": built,
        "bytes": stats["bytes"],
        "bytes_vacuumed": packed,
        "snapshots": stats["snapshot"],
        "points": stats["point"],
        "series": stats["series"],
        "append_p50_ms": float(np.quantile(appends, 0.5) * 1e3),
        "append_p99_ms": float(np.quantile(appends, 0.99) * 1e3),
    }


def _open_and_read(path: Path) -> dict[str, float]:
    code = f"""
import time, json
t = time.perf_counter()
from silenttax import history
h = history.open({str(path)!r})
opened = time.perf_counter() - t
t = time.perf_counter()
s = h.series("latency.p99", resolution="1d", model="ranker", route="/r0")
daily = time.perf_counter() - t
t = time.perf_counter()
for r in range(5):
    h.series("latency.p99", resolution="1d", model="ranker", route=f"/r{{r}}", since="90d")
quarter = time.perf_counter() - t
print(json.dumps({{"open_ms": opened * 1e3, "daily_year_ms": daily * 1e3, "points": len(s),
                  "five_quarters_ms": quarter * 1e3}}))
"""
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                      text=True, check=True).stdout) for _ in range(5)]  # fmt: skip
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _writer(path: str, worker: int, seconds: float) -> tuple[int, int, float]:
    from silenttax import history
    from silenttax.monitor import LatencyMonitor

    store = history.open(path, timeout=60)
    monitor = LatencyMonitor()
    monitor.record(0.01)
    store.append(monitor, labels={"replica": worker})  # the first one imports what it needs
    done, errors, worst = 1, 0, 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        try:
            store.append(monitor, labels={"replica": worker})
            done += 1
        except Exception:
            errors += 1
        worst = max(worst, time.perf_counter() - t)
        time.sleep(0.05)
    store.close()
    return done, errors, worst


def _soak(folder: Path, seconds: float, writers: int = 16) -> dict[str, float]:
    from silenttax import history

    path = folder / "soak.db"
    history.open(path).close()
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        got = pool.starmap(_writer, [(str(path), w, seconds) for w in range(writers)])
    with history.open(path) as store:
        stored = store.stats()["snapshot"]
    return {
        "writers": writers,
        "appended": sum(g[0] for g in got),
        "stored": stored,
        "errors": sum(g[1] for g in got),
        "worst_append_ms": max(g[2] for g in got) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--soak", type=float, default=60.0)
    parser.add_argument("--import-only", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-history-"))
    print(f"import silenttax.history: {_import_ms():.1f} ms over import silenttax (target <= 10)")
    if args.import_only:
        return
    built = _build(folder / "year.db", args.days)
    print(f"model-year store ({args.days} days): {built['bytes'] / 2**20:.1f} MiB, "
          f"{built['bytes_vacuumed'] / 2**20:.1f} MiB after compact(vacuum=True) "
          f"(target <= 25), {built['snapshots']:.0f} snapshots, {built['points']:.0f} points, "
          f"{built['series']:.0f} series, built in {built['build_seconds']:.0f} s")  # fmt: skip
    print(f"append: p50 {built['append_p50_ms']:.2f} ms, p99 {built['append_p99_ms']:.2f} ms "
          "(target p99 <= 1)")  # fmt: skip
    read = _open_and_read(folder / "year.db")
    print(f"open: {read['open_ms']:.1f} ms (target <= 50); daily series-year "
          f"({read['points']:.0f} points): {read['daily_year_ms']:.1f} ms (target <= 10); "
          f"5 routes x 90 days: {read['five_quarters_ms']:.1f} ms")  # fmt: skip
    soak = _soak(folder, args.soak)
    print(f"{soak['writers']:.0f} writers for {args.soak:g} s: {soak['appended']:.0f} appended, "
          f"{soak['stored']:.0f} stored, {soak['errors']:.0f} errors, worst append "
          f"{soak['worst_append_ms']:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
