"""``silenttax gate``: every input format, and the documented exit statuses."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from silenttax.benchmark import benchmark
from silenttax.cli import main
from silenttax.monitor import LatencySketch


def latencies(seed: int, n: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(math.log(0.01), 0.5, n) * scale


def write_lines(path: Path, values: np.ndarray, header: bool = False) -> Path:
    text = ("latency_s\n" if header else "") + "\n".join(f"{v:.9f}" for v in values)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def test_exit_statuses_pass_regression_inconclusive(tmp_path: Path) -> None:
    base = write_lines(tmp_path / "base.txt", latencies(1, 20_000), header=True)
    same = write_lines(tmp_path / "same.csv", latencies(2, 20_000))
    slow = write_lines(tmp_path / "slow.txt", latencies(3, 20_000, 1.4))
    small = write_lines(tmp_path / "small.txt", latencies(4, 150))
    assert main(["gate", str(base), str(same)]) == 0
    assert main(["gate", str(base), str(slow), "--out", str(tmp_path / "r.json")]) == 1
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["context"]["verdict"] == "regression"
    assert main(["gate", str(small), str(small)]) == 3


def test_json_inputs_benchmark_result_sketch_samples_and_blocks(tmp_path: Path) -> None:
    def work() -> None:
        sum(range(200))

    result = benchmark(work, min_samples=500, min_time=0.01, max_time=0.5)
    result.save(tmp_path / "bench.json")
    sketch = LatencySketch()
    sketch.add_many(latencies(5, 5000))
    sketch.save(tmp_path / "sketch.json")
    (tmp_path / "samples.json").write_text(json.dumps({"samples": list(latencies(6, 5000))}))
    blocks = [list(latencies(7 + i, 1000)) for i in range(5)]
    (tmp_path / "blocks.json").write_text(json.dumps({"blocks": blocks}))
    assert main(["gate", str(tmp_path / "bench.json"), str(tmp_path / "bench.json")]) in (0, 3)
    assert main(["gate", str(tmp_path / "sketch.json"), str(tmp_path / "samples.json")]) in (0, 3)
    status = main(["gate", str(tmp_path / "blocks.json"), str(tmp_path / "samples.json")])
    assert status in (0, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"rows": [1, 2]}', "without 'kind', 'samples' or 'blocks'"),
        ("0.1\nfast\n", "line 2"),
        ("{not json", "not valid JSON"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(
    tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    assert main(["gate", str(bad), str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert main(["gate", str(tmp_path / "missing.txt"), str(bad)]) == 2
    assert main(["gate", str(bad), str(bad), "--alpha", "2"]) == 2


def test_the_installed_command(tmp_path: Path) -> None:
    base = write_lines(tmp_path / "base.txt", latencies(8, 20_000))
    slow = write_lines(tmp_path / "slow.txt", latencies(9, 20_000, 1.4))
    done = subprocess.run(
        [sys.executable, "-m", "silenttax", "gate", str(base), str(slow), "--markdown"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "gate.latency" in done.stdout and "regression" in done.stdout


@pytest.mark.parametrize("command", [[], ["drift"], ["gate"], ["bench"]])
def test_every_help_page_renders(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: silenttax")
    if command == ["gate"]:
        assert "0 pass, 1 regression, 3 inconclusive, 2 usage error" in out
