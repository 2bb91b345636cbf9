"""DriftDetector and FeatureHealth beside the scipy floor (and Evidently / alibi-detect if installed).

Workload (benchmarks/workload.py): 200k reference + 200k current rows, 20 numeric
columns of mixed shapes + 5 categorical (20 levels); 6 columns drift.

Targets (drift issue):
- ``check()`` with a fitted reference <= 0.3x the scipy floor (per-column
  ``ks_2samp`` + ``chi2_contingency``);
- ``fit()`` >= 1M rows/s over all 25 columns; fitted reference <= 1 MiB;
- peak extra memory during ``check`` <= 2x the current frame's numeric data;
- FeatureHealth ``check`` <= the scipy floor;
- verdicts: all 6 drifted columns found, at most 1 false alarm.

Each variant runs 3 times interleaved; medians of wall time.
Run: python benchmarks/bench_drift.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.workload import make_workload
from silenttax.drift import DriftDetector
from silenttax.features import FeatureHealth


def scipy_floor(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray]) -> set[str]:
    flagged = set()
    for name, values in ref.items():
        if values.dtype.kind == "f":
            p = stats.ks_2samp(values, cur[name]).pvalue
        else:
            a, b = Counter(values.tolist()), Counter(cur[name].tolist())
            levels = sorted(set(a) | set(b))
            table = np.array([[a.get(v, 0) for v in levels], [b.get(v, 0) for v in levels]])
            p = stats.chi2_contingency(table, correction=False).pvalue
        if p < 0.05:
            flagged.add(name)
    return flagged


def timed(fn: Callable[[], Any], rounds: list[float]) -> Any:
    start = time.perf_counter()
    out = fn()
    rounds.append(time.perf_counter() - start)
    return out


def optional_anchors(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray]) -> None:
    try:
        import pandas as pd
        from evidently import Report as EvidentlyReport
        from evidently.presets import DataDriftPreset
    except ImportError:
        print("Evidently: not installed (pip install evidently to add it to this table)")
    else:
        start = time.perf_counter()
        EvidentlyReport([DataDriftPreset()]).run(pd.DataFrame(cur), pd.DataFrame(ref))
        print(f"Evidently DataDriftPreset: {time.perf_counter() - start:.2f} s")
    try:
        from alibi_detect.cd import TabularDrift
    except ImportError:
        print("alibi-detect: not installed (pip install alibi-detect to add it to this table)")
    else:
        start = time.perf_counter()
        names = list(ref)
        cats = {i: None for i, n in enumerate(names) if ref[n].dtype.kind != "f"}
        codes = {
            n: {v: i for i, v in enumerate(np.unique(ref[n]))}
            for n in names
            if ref[n].dtype.kind != "f"
        }

        def encode(data: dict[str, np.ndarray]) -> np.ndarray:
            return np.column_stack(
                [
                    data[n] if data[n].dtype.kind == "f" else np.vectorize(codes[n].get)(data[n])
                    for n in names
                ]
            ).astype(np.float32)

        TabularDrift(encode(ref), p_val=0.05, categories_per_feature=cats).predict(encode(cur))
        print(f"alibi-detect TabularDrift: {time.perf_counter() - start:.2f} s")


def as_frame(data: dict[str, np.ndarray]) -> Any:
    """The workload as users pass it: a pandas DataFrame, strings as Python objects."""
    import pandas as pd

    return pd.DataFrame(
        {
            k: (v if v.dtype.kind == "f" else pd.Series(v.astype(object), dtype=object))
            for k, v in data.items()
        }
    )


def cold_first_check(rows: int) -> float:
    """Seconds of the first ``check`` in a fresh process (lazy imports included)."""
    import subprocess

    code = (
        f"import sys, time; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})\n"
        "from benchmarks.workload import make_workload\n"
        "from benchmarks.bench_drift import as_frame\n"
        f"ref, cur, _ = make_workload({rows}, seed=0)\n"
        "ref, cur = as_frame(ref), as_frame(cur)\n"
        "from silenttax.drift import DriftDetector\n"
        "d = DriftDetector().fit(ref)\n"
        "t = time.perf_counter(); d.check(cur); print(time.perf_counter() - t)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument(
        "--frame",
        action="store_true",
        help="pass pandas DataFrames with object-dtype string columns, as users do "
        "(the scipy floor still runs on the NumPy arrays)",
    )
    args = parser.parse_args()
    ref, cur, drifted = make_workload(args.rows, seed=0)
    if args.frame:
        print(f"cold first check in a fresh process: {cold_first_check(args.rows):.2f} s")
    numeric_bytes = sum(v.nbytes for v in cur.values() if v.dtype.kind == "f")
    floor_t: list[float] = []
    fit_t: list[float] = []
    check_t: list[float] = []
    health_fit_t: list[float] = []
    health_t: list[float] = []
    detector = DriftDetector()
    health = FeatureHealth()
    stats.ks_2samp([0.0, 1.0], [0.5, 2.0])  # import scipy.stats' machinery outside the timings
    ref_in: Any = as_frame(ref) if args.frame else ref
    cur_in: Any = as_frame(cur) if args.frame else cur
    for _ in range(3):
        floor_flags = timed(lambda: scipy_floor(ref, cur), floor_t)
        timed(lambda: detector.fit(ref_in), fit_t)
        report = timed(lambda: detector.check(cur_in), check_t)
        timed(lambda: health.fit(ref_in), health_fit_t)
        timed(lambda: health.check(cur_in), health_t)
    tracemalloc.start()
    detector.check(cur_in)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    floor = statistics.median(floor_t)
    fit, check = statistics.median(fit_t), statistics.median(check_t)
    hfit, hcheck = statistics.median(health_fit_t), statistics.median(health_t)
    size = len(detector.to_json().encode())
    flagged = {f.subject for f in report.problems() if f.code != "drift.dataset"}
    shape = "pandas DataFrames, object-dtype strings" if args.frame else "dicts of NumPy arrays"
    print(f"workload: {args.rows:,} + {args.rows:,} rows, 25 columns, 6 drifted ({shape})\n")
    print(f"{'variant':44s} {'seconds':>8s} {'x floor':>8s}")
    print(f"{'scipy floor: ks_2samp + chi2_contingency':44s} {floor:8.3f} {1:8.2f}")
    print(
        f"{'silenttax DriftDetector.check (fitted)':44s} {check:8.3f} {check / floor:8.2f}  (target <= 0.3)"
    )
    print(
        f"{'silenttax DriftDetector.fit':44s} {fit:8.3f} {fit / floor:8.2f}  "
        f"({args.rows / fit / 1e6:.2f}M rows/s; target >= 1M)"
    )
    print(
        f"{'silenttax FeatureHealth.check (fitted)':44s} {hcheck:8.3f} {hcheck / floor:8.2f}  (target <= 1)"
    )
    print(f"{'silenttax FeatureHealth.fit':44s} {hfit:8.3f} {hfit / floor:8.2f}")
    print(f"\nfitted reference: {size / 1024:.0f} KiB for 25 columns (target <= 1024 KiB)")
    print(
        f"peak traced memory during check: {peak / 2**20:.1f} MiB = {peak / numeric_bytes:.2f}x the "
        f"current numeric data ({numeric_bytes / 2**20:.1f} MiB; target <= 2x)"
    )
    tp, fp = len(flagged & set(drifted)), len(flagged - set(drifted))
    ftp, ffp = len(floor_flags & set(drifted)), len(floor_flags - set(drifted))
    print(
        f"verdicts: silenttax {tp}/6 drifted found, {fp} false alarm(s) {sorted(flagged - set(drifted))}; "
        f"scipy floor (p < 0.05, no correction) {ftp}/6, {ffp} false alarm(s)"
    )
    optional_anchors(ref, cur)


if __name__ == "__main__":
    main()
