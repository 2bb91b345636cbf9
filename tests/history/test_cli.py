"""``silenttax audit --history`` three times, then ``silenttax history show / trend /
compact / export``, in subprocesses on a real ONNX model and CSV files; the Parquet
export read back by a real DuckDB query."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import silenttax
from silenttax import history
from tests.audit.test_audit import _frame, _onnx_model, run

pytest.importorskip("onnxruntime")


def test_three_audits_with_history_then_the_history_commands(tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    _onnx_model(model)
    _frame(tmp_path / "ref.csv", 300, 0.0)
    store = tmp_path / "tiny.history"
    for i, shift in enumerate((0.0, 0.3, 0.6)):
        _frame(tmp_path / "cur.csv", 200, shift)
        done = run(
            "audit", str(model), "--reference", str(tmp_path / "ref.csv"), "--current",
            str(tmp_path / "cur.csv"), "--offline", "--max-time", "0.2", "--batch-size", "16",
            "--fail-on", "none", "--history", str(store), "--label", "env=prod",
            "--out", str(tmp_path / f"audit{i}"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    report = silenttax.load(tmp_path / "audit2" / "report.json")
    paths = [f for f in report if f.code == "history.no_data"]
    (p99,) = [
        f for f in paths if f.subject.startswith("latency.p99") and "snapshot=latency" in f.subject
    ]
    assert p99.evidence["points"] == 3 and "so far" in p99.message
    assert "since the previous" in p99.message and "since the first" in p99.message
    with history.open(store) as h:
        s = h.series("latency.p99", model="tiny", env="prod", snapshot="latency")
        assert len(s) == 3
        assert len(h.findings(model="tiny")) >= 3 * 5
    # the commands
    shown = run("history", "show", str(store), "--metric", "latency.p99", "--label", "model=tiny",
                "--label", "snapshot=latency", "--json")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["values"] == s.values
    listed = run("history", "show", str(store))
    assert "latency.p99" in listed.stdout and "snapshots" in listed.stdout
    judged = run("history", "trend", str(store), "--since", "all", "--resolution", "raw",
                 "--label", "model=tiny", "--label", "snapshot=latency", "--json",
                 str(tmp_path / "trend.json"))  # fmt: skip
    assert judged.returncode == 0, judged.stderr
    trend = silenttax.load(tmp_path / "trend.json")
    assert {f.code for f in trend} == {"history.no_data"}
    compacted = run("history", "compact", str(store))
    assert compacted.returncode == 0 and "rollups written" in compacted.stdout
    bad = run("history", "show", str(store), "--metric", "latency.p42")
    assert bad.returncode == 2 and "latency.p42" in bad.stderr and "Traceback" not in bad.stderr
    # the export, read by DuckDB without silenttax
    duckdb = pytest.importorskip("duckdb")
    exported = run("history", "export", str(store), "--out", str(tmp_path / "parquet"))
    assert exported.returncode == 0, exported.stderr
    got = duckdb.sql(
        f"SELECT value FROM read_parquet('{tmp_path / 'parquet'}/points/*/*.parquet', "
        "hive_partitioning = true) WHERE name = 'latency.p99' AND snapshot = 'latency' "
        "AND res = 0 ORDER BY epoch_seconds"
    ).fetchall()
    assert [v for (v,) in got] == s.values  # bit for bit
    rows = sqlite3.connect(store).execute("SELECT COUNT(*) FROM point").fetchone()[0]
    ((exported_rows,),) = duckdb.sql(
        f"SELECT COUNT(*) FROM read_parquet('{tmp_path / 'parquet'}/points/*/*.parquet')"
    ).fetchall()
    assert exported_rows == rows
