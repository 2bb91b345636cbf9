"""What the scale-out adapters (Dask, Spark) are held to: the in-memory result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import silenttax
from silenttax.drift import DriftDetector

LEVELS = [f"c{i:02d}" for i in range(20)]


def frame(seed: int, n: int = 6000, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(40 + shift, 10, n)
    income = rng.lognormal(10, 0.5, n)
    income[rng.random(n) < 0.05] = np.nan
    country = pd.Series(rng.choice(LEVELS, n), dtype=object)
    country[rng.random(n) < 0.02] = None
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "visits": rng.poisson(3, n).astype(np.int64),
            "active": rng.random(n) < 0.3,
            "country": country,
        }
    )


def same_findings(a: silenttax.Report, b: silenttax.Report) -> None:
    key = lambda f: (f.code, f.subject)  # noqa: E731
    left, right = sorted(a, key=key), sorted(b, key=key)
    assert [(f.code, f.subject, f.severity) for f in left] == [
        (f.code, f.subject, f.severity) for f in right
    ]
    for x, y in zip(left, right, strict=True):
        for field in ("value", "p_value", "effect_size"):
            vx, vy = getattr(x, field), getattr(y, field)
            assert (vx is None) == (vy is None), (x.code, x.subject, field)
            if vx is not None:
                assert vx == pytest.approx(vy, rel=1e-6, abs=1e-12), (x.code, x.subject, field)


def same_reference(a: DriftDetector, b: DriftDetector) -> None:
    sa, sb = a.state(), b.state()
    assert sa.kinds == sb.kinds and sa.rows == sb.rows
    for name, summary in sa.reference.items():
        other = sb.reference[name]
        exact = {"total", "total_sq"}  # float sums: equal up to rounding
        assert summary.model_dump(exclude=exact) == other.model_dump(exclude=exact), name
        if hasattr(summary, "total"):
            assert summary.total == pytest.approx(other.total, rel=1e-12)
