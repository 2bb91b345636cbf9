"""The gate with a capacity comparison: its verdict joins the gate's (API and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from silenttax.cli import main
from silenttax.errors import InputError
from silenttax.gate import exit_status, performance_gate, verdict
from silenttax.load import CapacityComparison

RNG = np.random.default_rng(3)
PROD = RNG.lognormal(np.log(0.010), 0.3, 20_000)
SAME = RNG.lognormal(np.log(0.010), 0.3, 20_000)


def _cmp(verdict_: str, ratio: float | None, ci: tuple[float, float] | None) -> CapacityComparison:
    return CapacityComparison("old", "new", 0.05, ratio, ci, verdict_, 0.05,  # type: ignore[arg-type]
                              (300.0, None if ratio is None else 300.0 * ratio),
                              [200.0, 250.0, 300.0, 350.0], {}, 4, 0)  # fmt: skip


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        (_cmp("pass", 1.01, (0.97, 1.05)), "pass"),
        (_cmp("regression", 0.7, (0.62, 0.78)), "regression"),
        (_cmp("inconclusive", 0.93, (0.85, 1.02)), "inconclusive"),
    ],
)
def test_a_capacity_verdict_joins_the_gates(capacity: CapacityComparison, expected: str) -> None:
    """Latency alone passes here: the capacity comparison decides."""
    assert verdict(performance_gate(PROD, SAME)) == "pass"
    report = performance_gate(PROD, SAME, capacity=capacity)
    assert verdict(report) == expected
    assert exit_status(report) == {"pass": 0, "regression": 1, "inconclusive": 3}[expected]
    (found,) = report.filter(code="load.regression")
    assert found.evidence["verdict"] == capacity.verdict
    (summary,) = report.filter(code="gate.verdict")
    assert f"capacity {capacity.verdict}" in summary.message and "Holm over 2 metrics" in (
        summary.message
    )


def test_a_latency_regression_is_not_hidden_by_a_capacity_pass() -> None:
    slower = RNG.lognormal(np.log(0.013), 0.3, 20_000)
    report = performance_gate(PROD, slower, capacity=_cmp("pass", 1.0, (0.96, 1.04)))
    assert verdict(report) == "regression"


def test_the_command_line_reads_load_compares_json(tmp_path: Path) -> None:
    for name, side in (("base.txt", PROD), ("cand.txt", SAME)):
        (tmp_path / name).write_text("\n".join(f"{v:.6g}" for v in side))
    cmp = _cmp("regression", 0.7, (0.62, 0.78))
    (tmp_path / "cmp.json").write_text(json.dumps({"figures": cmp.figures(), "report": {}}))
    args = [str(tmp_path / "base.txt"), str(tmp_path / "cand.txt")]
    assert main(["gate", *args]) == 0
    assert main(["gate", *args, "--capacity", str(tmp_path / "cmp.json")]) == 1
    (tmp_path / "bad.json").write_text('{"figures": {"verdict": "maybe"}}')
    assert main(["gate", *args, "--capacity", str(tmp_path / "bad.json")]) == 2
    assert main(["gate", *args, "--capacity", str(tmp_path / "missing.json")]) == 2
    with pytest.raises(InputError, match="CapacityComparison"):
        performance_gate(PROD, SAME, capacity={"verdict": "pass"})
    back = CapacityComparison.from_figures(cmp.figures())
    assert back == cmp
