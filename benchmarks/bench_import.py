"""How much `import silenttax` adds on top of `import numpy, pydantic`.

Target (foundation issue): at most 100 ms more than the anchor, and none of
torch, onnxruntime, scipy.stats, pandas, polars, matplotlib, dask imported.

The public names load on first use, so the script also times what a user pays
on first touch: ``from silenttax import Finding, Report`` (pydantic's model
machinery) and building the first report (pydantic builds the validators then).

Each variant runs in a fresh interpreter; variants are interleaved so machine
noise hits both alike; medians are reported.

Run: python benchmarks/bench_import.py [--repeats 21]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

ANCHOR = "import numpy, pydantic"
TARGET = "import numpy, pydantic, silenttax"
NAMES = "import numpy, pydantic; from silenttax import Finding, Report"
FIRST = (
    NAMES + "; Report(findings=[Finding(code='a.b', category='cost', severity='ok', "
    "subject='s', message='m')]).to_json()"
)
HEAVY = ("torch", "onnxruntime", "scipy.stats", "pandas", "polars", "matplotlib", "dask")


def run_once(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    run_once(TARGET)  # warm the file cache and bytecode
    anchor, target, empty, names, first = [], [], [], [], []
    for _ in range(args.repeats):
        empty.append(run_once("pass"))
        anchor.append(run_once(ANCHOR))
        target.append(run_once(TARGET))
        names.append(run_once(NAMES))
        first.append(run_once(FIRST))
    m_empty, m_anchor, m_target, m_names, m_first = (
        statistics.median(x) for x in (empty, anchor, target, names, first)
    )
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, silenttax; print([m for m in {HEAVY!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"interpreter start           {m_empty * 1e3:7.1f} ms")
    print(f"{ANCHOR:<27} {(m_anchor - m_empty) * 1e3:7.1f} ms  (anchor)")
    print(f"{TARGET:<27} {(m_target - m_empty) * 1e3:7.1f} ms")
    print(f"silenttax adds              {(m_target - m_anchor) * 1e3:7.1f} ms  (target <= 100 ms)")
    print(f"ratio vs anchor             {(m_target - m_empty) / (m_anchor - m_empty):7.2f}x")
    print(f"+ import Finding, Report   {(m_names - m_anchor) * 1e3:7.1f} ms over anchor")
    print(f"+ first Report serialized  {(m_first - m_anchor) * 1e3:7.1f} ms over anchor")
    print(f"heavy modules imported      {loaded}")


if __name__ == "__main__":
    main()
