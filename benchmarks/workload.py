"""The drift benchmark workload (shared by the benchmark and a small test).

20 numeric columns of mixed shapes and 5 categorical columns of 20 levels;
6 columns drift: num_00..num_04 by +0.1 sd, and cat_0 with 10% of the mass
moved to one level.
"""

from __future__ import annotations

import numpy as np

LEVELS = np.array([f"level_{i:02d}" for i in range(20)])


def _column(rng: np.random.Generator, i: int, n: int) -> np.ndarray:
    shape = i % 4
    if shape == 0:
        return rng.normal(0, 1, n)
    if shape == 1:
        return rng.lognormal(0, 1, n)
    if shape == 2:
        return rng.uniform(0, 10, n)
    return rng.exponential(2, n)


def make_workload(
    n: int, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """(reference, current, drifted column names), n rows each."""
    ref_rng, cur_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    reference: dict[str, np.ndarray] = {}
    current: dict[str, np.ndarray] = {}
    for i in range(20):
        name = f"num_{i:02d}"
        reference[name] = _column(ref_rng, i, n)
        column = _column(cur_rng, i, n)
        if i < 5:
            column = column + 0.1 * column.std()
        current[name] = column
    uniform = np.full(20, 1 / 20)
    moved = uniform * 0.9
    moved[0] += 0.1
    for j in range(5):
        reference[f"cat_{j}"] = ref_rng.choice(LEVELS, n, p=uniform)
        current[f"cat_{j}"] = cur_rng.choice(LEVELS, n, p=moved if j == 0 else uniform)
    drifted = [f"num_{i:02d}" for i in range(5)] + ["cat_0"]
    return reference, current, drifted
