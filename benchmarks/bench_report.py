"""The HTML report and the demo audit: size and time against the report's own JSON.

The anchors' complaints (shared/research/serving_ecosystem.md §5): ydata-profiling's
``to_html()`` took 78 s where ``to_json()`` took 2-3 s, and its pages grew with the
data (291 MB for 27k x 80); Evidently stores the data in the page. Neither is
installed here, so the anchor run side by side is the same report's JSON: the page
should cost about what the JSON costs, and neither should grow with the rows.

Workload: 50 numeric columns (10 of them shifted by 0.2 sd), reference and current
of N rows each, drift + feature health. Then ``silenttax audit --demo --offline``
end to end in a subprocess (target: under 2 minutes on 2 cores).

Run: python benchmarks/bench_report.py [--rows 1000 100000 1000000] [--no-demo]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from silenttax.drift import DriftDetector
from silenttax.features import FeatureHealth


def data(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        f"f{i:02d}": rng.standard_normal(n) * (1 + i % 3) + (0.2 if seed and i % 5 == 0 else 0)
        for i in range(50)
    }


def timed(fn: object, reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    print(f"{'rows':>9} {'check s':>8} {'html KB':>8} {'json KB':>8} {'html ms':>8} "
          f"{'json ms':>8} {'html/json time':>15}")  # fmt: skip
    for n in args.rows:
        ref, cur = data(n, 0), data(n, 1)
        t0 = time.perf_counter()
        report = DriftDetector().fit(ref).check(cur) | FeatureHealth().fit(ref).check(cur)
        check = time.perf_counter() - t0
        html_s = timed(report.to_html)
        json_s = timed(report.to_json)
        page, text = report.to_html(), report.to_json()
        print(f"{n:>9} {check:>8.2f} {len(page) / 1024:>8.1f} {len(text) / 1024:>8.1f} "
              f"{html_s * 1e3:>8.1f} {json_s * 1e3:>8.1f} {html_s / json_s:>15.2f}")  # fmt: skip
    if args.no_demo:
        return
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "silenttax", "audit", "--demo", "--offline", "--out", out],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - t0
        page = (Path(out) / "report.html").stat().st_size
        snapshots = sum(p.stat().st_size for p in (Path(out) / "snapshots").glob("*.json"))
    print(
        f"\nsilenttax audit --demo --offline: {wall:.1f} s wall, exit {done.returncode}, "
        f"report.html {page / 1024:.0f} KB, snapshots {snapshots / 1024:.0f} KB"
    )


if __name__ == "__main__":
    main()
