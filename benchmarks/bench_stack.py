"""Stack checks (``compare_stacks``): calibration, power, a real release, and build costs.

Side by side with the anchors:

- **A/A calibration** — the same environment on both arms (``candidate="current"``),
  a real ONNX MLP (4 x MatMul 256 + Relu, batch 8, one thread) in real worker
  processes, ``--reps`` checks of 6 pairs each: the rate of false faster/slower
  verdicts (must be <= alpha = 5%). The anchor on the same data: the pooled test
  the old ``compare_results`` ran (Mann-Whitney on one process per side, its
  samples treated as independent draws), here on the block medians of each
  check's first pair of processes.
- **Power and coverage** — the same python model on two environments whose
  ``spinlib.FACTOR`` differs: ``spin`` (a wall-clock busy wait 1.3x longer; the
  truth is (1.3 s + o) / (s + o) with o the call's own cost, measured on
  ``spin(0)``) and ``matmul`` (13 vs 10 float64 matmuls, about 1.3): the rate of
  ``slower`` verdicts and how often the 95% CI covers the truth.
- **A real release** — the ONNX MLP on the installed onnxruntime and on the
  previous release, pulled by name from the package index.
- **Environment builds** — uv (fresh environment directory, warm uv cache) vs
  ``python -m venv`` + pip for the same pins, and a cache hit.

Run: ``python benchmarks/bench_stack.py`` (about 10 minutes on 2 cores);
``--reps`` scales the calibration down, ``--only aa,power,real,build`` picks parts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

from silenttax.benchmark import ModelSpec, compare_stacks
from silenttax.benchmark._envs import build_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_gate import wilson  # noqa: E402
from tests.benchmark.test_stack import layered_env, mlp_onnx, previous_release  # noqa: E402


def onnx_spec(tmp: Path) -> ModelSpec:
    x = np.random.default_rng(1).normal(size=(8, 256)).astype(np.float32)
    return ModelSpec.onnx(mlp_onnx(tmp / "mlp.onnx"), inputs={"x": x}, threads=1)


def aa(reps: int, tmp: Path) -> None:
    spec = onnx_spec(tmp)
    false = pooled = 0
    sds, ses, widths = [], [], []
    began = time.perf_counter()
    for _ in range(reps):
        c = compare_stacks(spec, candidate="current", pairs=6)
        false += c.verdict in ("faster", "slower")
        a, b = c.baseline.blocks[0], c.candidate.blocks[0]
        pooled += stats.mannwhitneyu(a, b).pvalue < 0.05
        sds.append(c.between_pair_sd or 0.0)
        ses.append(float(np.mean(c.pair_within_se)))
        widths.append(c.ci[1] / c.ci[0] - 1)
    print(f"\n## A/A: the same environment on both arms, ONNX MLP, 6 pairs x {reps} checks")
    print(
        f"  ({time.perf_counter() - began:.0f} s; {(time.perf_counter() - began) / reps:.1f} s per check)"
    )
    print(f"  compare_stacks false faster/slower : {wilson(false, reps)}")
    print(
        f"  pooled MWU, one process per side   : {wilson(pooled, reps)}  (the old compare_results)"
    )
    print(
        f"  between-pair SD of log ratio (median) {np.median(sds):.1%}; within-pair SE "
        f"{np.median(ses):.1%}; ratio {np.median(sds) / max(np.median(ses), 1e-12):.1f}x"
    )
    print(f"  95% CI width (hi/lo - 1), median      {np.median(widths):.1%}")


def call_overhead(python: Path, tmp: Path) -> float:
    """Seconds one call of ``spin(0)`` takes in a worker: what a spin adds to its wait."""
    from silenttax.benchmark._workers import Worker

    spec = ModelSpec.python(
        "tests.benchmark.stack_models:spin",
        inputs=[np.arange(4.0)],
        options={"seconds": 0.0},
        paths=[ROOT],
        threads=1,
    ).write(tmp / "overhead")
    with Worker(python, label="overhead") as worker:
        worker.request("load", spec=str(spec))
        worker.request("warmup", seconds=0.2)
        ns = [np.median(worker.request("block", calls=2000)["ns"]) for _ in range(20)]
    return float(np.median(ns)) * 1e-9


def power(reps: int, tmp: Path) -> None:
    old = layered_env(tmp / "old", {"spinlib.py": "FACTOR = 1.0\n"})
    new = layered_env(tmp / "new", {"spinlib.py": "FACTOR = 1.3\n"})
    print(f"\n## Power: the same model, a 1.3x slower candidate stack, 6 pairs x {reps} checks")
    for factory, options in (("spin", {"seconds": 4e-4}), ("matmul", {"size": 96})):
        spec = ModelSpec.python(
            f"tests.benchmark.stack_models:{factory}_by_package",
            inputs=[np.arange(4.0)],
            options=options,
            paths=[ROOT],
            threads=1,
        )
        truth = 1.3
        if factory == "spin":  # the call costs a little besides the spin: truth is a bit < 1.3
            overhead = call_overhead(old, tmp)
            seconds = options["seconds"]
            truth = (1.3 * seconds + overhead) / (seconds + overhead)
        slower = covered = 0
        ratios = []
        for _ in range(reps):
            c = compare_stacks(spec, baseline=old, candidate=new, pairs=6)
            slower += c.verdict == "slower"
            covered += c.ci[0] <= truth <= c.ci[1]
            ratios.append(c.ratio)
        print(
            f"  {factory:7s} slower {wilson(slower, reps)}; CI covers {truth:.4f} "
            f"{wilson(covered, reps)}; median ratio {np.median(ratios):.4f}"
        )


def real(tmp: Path) -> None:
    import onnxruntime

    installed = onnxruntime.__version__
    other = previous_release("onnxruntime", installed)
    spec = onnx_spec(tmp)
    c = compare_stacks(spec, candidate={"onnxruntime": other}, pairs=6, env_cache=tmp / "envs")
    base = np.median(c.baseline.medians)
    cand = np.median(c.candidate.medians)
    print(f"\n## A real release: onnxruntime {installed} (baseline) vs {other} (candidate)")
    print(
        f"  ratio {c.ratio:.3f}, 95% CI [{c.ci[0]:.3f}, {c.ci[1]:.3f}], verdict {c.verdict}"
        + (f", pairs needed {c.pairs_needed}" if c.pairs_needed else "")
    )
    print(
        f"  p50 {base * 1e6:.1f} us -> {cand * 1e6:.1f} us; outputs max abs diff {c.outputs.max_abs if c.outputs else None}"
    )
    print(
        f"  candidate built by {c.candidate.source} in {c.candidate.build_seconds:.1f} s; check took {c.elapsed_seconds:.0f} s"
    )


def build(tmp: Path) -> None:
    import onnxruntime

    installed = onnxruntime.__version__
    other = previous_release("onnxruntime", installed)
    reqs = [f"onnxruntime=={other}", f"numpy=={np.__version__}"]
    print(f"\n## Environment builds: {' '.join(reqs)}")
    t = time.perf_counter()
    uv = build_env(reqs, env_cache=tmp / "uv", installer="uv")
    uv_s = time.perf_counter() - t
    t = time.perf_counter()
    hit = build_env(reqs, env_cache=tmp / "uv", installer="uv")
    hit_s = time.perf_counter() - t
    t = time.perf_counter()
    pip = build_env(reqs, env_cache=tmp / "pip", installer="pip")
    pip_s = time.perf_counter() - t
    assert hit.cached and not uv.cached and not pip.cached
    for label, env in (("uv", uv), ("pip", pip)):
        t = time.perf_counter()
        subprocess.run([env.python, "-I", "-c", "import onnxruntime"], check=True)
        print(f"  import onnxruntime in the {label} env: {time.perf_counter() - t:.2f} s")
    print(f"  uv venv + install (warm uv cache) {uv_s:6.2f} s")
    print(f"  python -m venv + pip install      {pip_s:6.2f} s   (x{pip_s / uv_s:.1f} of uv)")
    print(f"  cache hit                         {hit_s:6.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30, help="A/A checks (power: a third)")
    parser.add_argument("--only", default="aa,power,real,build")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        if "build" in parts:
            build(tmp)
        if "real" in parts:
            real(tmp)
        if "aa" in parts:
            aa(args.reps, tmp)
        if "power" in parts:
            power(max(3, args.reps // 3), tmp)


if __name__ == "__main__":
    main()
