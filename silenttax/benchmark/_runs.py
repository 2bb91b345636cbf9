"""The bare model timed in fresh processes: the unit a comparison across runs needs."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from silenttax.benchmark._environment import environment
from silenttax.benchmark._harness import BenchmarkResult, _summarize
from silenttax.benchmark._spec import ModelSpec
from silenttax.benchmark._workers import Worker
from silenttax.errors import InputError

__all__ = ["fresh_runs"]


def fresh_runs(
    spec: ModelSpec,
    *,
    runs: int = 3,
    seconds: float = 0.5,
    min_samples: int = 200,
    name: str = "model",
) -> list[BenchmarkResult]:
    """Time ``spec``'s model in ``runs`` fresh worker processes, one after another.

    Latency differs between processes far more than within one (memory layout,
    thread placement, frequency): on a shared 2-core VM the medians of processes
    running the same code differed by 9-11%. A comparison with a run made at
    another time is only honest with one result per process on each side
    (``performance_gate(list_a, list_b)``, ``compare_results``). Each worker
    loads the model, warms it up for 0.2 s, then times blocks of about 10 ms
    of calls until ``seconds`` and ``min_samples`` are both reached.

    Args:
        spec: The model and its inputs (:class:`ModelSpec`: ONNX bytes, or a torch
            factory by import path).
        runs: Fresh processes, one after another.
        seconds: Seconds of timed calls per process.
        min_samples: Fewest timed calls per process.
        name: Label of the results (``"<name> run <i>"``).

    Raises:
        InputError: ``runs`` or ``seconds`` out of range, or a spec that is not a ModelSpec.
        StackError: a worker failed to start or raised (its error named).

    Example (it starts processes, so not a doctest)::

        spec = ModelSpec.onnx("model.onnx", inputs={"x": batch})
        results = fresh_runs(spec, runs=3)
        performance_gate(last_months_results, results)
    """
    if not isinstance(spec, ModelSpec):
        raise InputError(f"spec must be a ModelSpec, got {type(spec).__name__}")
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise InputError(f"runs must be an int >= 1, got {runs!r}")
    if not seconds > 0:
        raise InputError(f"seconds must be > 0, got {seconds!r}")
    env = environment()
    results = []
    with tempfile.TemporaryDirectory(prefix="silenttax-runs-") as folder:
        path = spec.write(Path(folder) / "spec")
        for i in range(runs):
            with Worker(sys.executable, label=f"run {i + 1}", threads=spec.threads) as worker:
                worker.request("load", spec=str(path))
                per_call = max(float(worker.request("warmup", seconds=0.2)["median_ns"]), 1.0)
                calls = max(1, min(10_000, int(0.01 / (per_call * 1e-9))))
                samples: list[float] = []
                began = time.perf_counter()
                while time.perf_counter() - began < seconds or len(samples) < min_samples:
                    samples.extend(ns * 1e-9 for ns in worker.request("block", calls=calls)["ns"])
                    if time.perf_counter() - began > 10 * seconds:
                        break
                wall = time.perf_counter() - began
            results.append(
                _summarize(
                    f"{name} run {i + 1}",
                    samples,
                    batch_size=spec.batch_size,
                    warmup_calls=0,
                    wall=wall,
                    cpu=0.0,
                    peak_rss=None,
                    threads=spec.threads,
                    env=env,
                )
            )
    return results
