"""Fleet merges: ``silenttax.merge`` and ``silenttax merge`` on replicas' saved snapshots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import silenttax
from silenttax.cli import main
from silenttax.drift import DriftDetector
from silenttax.errors import InputError, StateError
from silenttax.monitor import LatencyMonitor, LatencySketch


def replicas(tmp_path: Path, n: int = 5) -> tuple[Path, np.ndarray]:
    """``n`` replicas' LatencyMonitor snapshots in a directory, and all their latencies."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "replicas"
    folder.mkdir()
    everything = []
    for i in range(n):
        seconds = rng.lognormal(np.log(0.01 * (1 + i / 10)), 0.3, 2000)
        monitor = LatencyMonitor(name="ranker")
        for s in seconds:
            monitor.record(float(s))
        monitor.save(folder / f"replica-{i}.json")
        everything.append(seconds)
    return folder, np.concatenate(everything)


def test_merge_a_directory_equals_one_monitor_over_all_traffic(tmp_path: Path) -> None:
    folder, seconds = replicas(tmp_path)
    merged = silenttax.merge(folder)
    single = LatencySketch()
    single.add_many(seconds)
    assert isinstance(merged, LatencyMonitor)
    assert merged.sketch.count == seconds.size
    assert merged.sketch.state().counts == single.state().counts
    same = silenttax.merge(sorted(folder.glob("*.json")))
    assert same.sketch.state() == merged.sketch.state()


def test_merge_cli_writes_the_merged_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, seconds = replicas(tmp_path, 3)
    out = tmp_path / "merged.json"
    status = main(["merge", str(folder), "--out", str(out)])
    text = capsys.readouterr().out
    assert "merged 3 LatencyMonitor snapshot(s)" in text and status in (0, 1)
    merged = silenttax.load(out)
    assert merged.sketch.count == seconds.size


def test_mismatched_kinds_and_settings_name_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = replicas(tmp_path, 2)
    sketch = LatencySketch()
    sketch.add(0.01)
    odd = folder / "sketch.json"
    odd.write_text(sketch.to_json())
    with pytest.raises(InputError, match=r"sketch\.json: a LatencySketch cannot merge with"):
        silenttax.merge(folder)
    data = {"x": np.arange(100.0)}
    DriftDetector(budget=256).fit(data).save(tmp_path / "a.json")
    DriftDetector(budget=512).fit(data).save(tmp_path / "b.json")
    with pytest.raises(InputError, match=r"b\.json: cannot merge with .*a\.json.*'budget'"):
        silenttax.merge([tmp_path / "a.json", tmp_path / "b.json"])
    assert main(["merge", str(folder)]) == 2
    assert "sketch.json" in capsys.readouterr().err


def test_unreadable_files_and_unmergeable_kinds(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StateError, match=r"bad\.json"):
        silenttax.merge([bad])
    with pytest.raises(InputError, match=r"holds no \.json snapshot"):
        silenttax.merge(_empty_dir(tmp_path))
    report = silenttax.Report(findings=[])
    with pytest.raises(InputError, match="does not merge"):
        silenttax.merge([json.loads(report.to_json())])


def _empty_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_drift_detectors_fitted_on_shards_merge_into_the_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = np.sort(rng.normal(0, 1, 3000))
    paths = []
    for i, shard in enumerate(np.array_split(x, 3)):
        paths.append(DriftDetector().fit({"x": shard}).save(tmp_path / f"d{i}.json"))
    merged = silenttax.merge(paths)
    whole = DriftDetector().fit({"x": x})
    assert merged.state().rows == 3000
    assert merged.reference["x"].runs == whole.reference["x"].runs  # type: ignore[union-attr]
