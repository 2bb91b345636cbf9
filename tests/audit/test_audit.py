"""``silenttax audit`` and ``silenttax report`` end to end, in subprocesses, on real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import silenttax
from silenttax import Report, Severity
from silenttax.audit import Check, judge, judge_directory
from silenttax.errors import InputError, StateError

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

# a user's package of checks (tests/component/pkgs), importable here and in the CLI runs
ACME = str(Path(__file__).resolve().parents[1] / "component" / "pkgs")
if ACME not in sys.path:
    sys.path.append(ACME)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "silenttax", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([ACME, os.environ.get("PYTHONPATH", "")])},
    )


def _key(report: Report) -> Counter[tuple[str, str, str]]:
    return Counter((f.code, f.subject, f.severity.value) for f in report)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    done = run("audit", "--demo", "--offline", "--max-time", "0.3", "--out", str(out),
               "--check", "acme_monitors:snapshot_count")  # fmt: skip
    assert done.returncode == 1, done.stderr  # the demo finds problems, by design
    assert "worst findings" in done.stdout and "report.html" in done.stdout
    return out


def test_demo_audit_covers_every_module(demo: Path) -> None:
    report = silenttax.load(demo / "report.json")
    assert isinstance(report, Report)
    categories = {f.category.value for f in report}
    assert len(categories) >= 6, categories
    codes = {f.code for f in report}
    for expected in (
        "drift.numeric",
        "feature.numeric_string",  # bmi arrives as padded strings
        "feature.null_rate",  # bp's rising nulls
        "pipeline.new_stage",  # the audit_log stage the reference deployment lacked
        "latency.regression",
        "cost.per_1k_increase",
        "resource.memory",
        "model_bloat.profile",
        "quantize.recommendation",
        "gate.verdict",
        "dependency.environment",
    ):
        assert expected in codes, expected
    new_stage = next(f for f in report if f.code == "pipeline.new_stage")
    assert "audit_log" in new_stage.message
    # nothing failed: only the version lag is skipped (offline), and the candidate's gate
    # when the quantization study ran on a busy machine (it then recommends nothing)
    busy = any(
        f.code == "quantize.recommendation" and f.evidence.get("reason") == "machine busy"
        for f in report
    )
    skipped = [f for f in report if f.code == "audit.skipped"]
    expected = ["gate", "version lag"] if busy else ["version lag"]
    assert [f.subject for f in skipped] == expected, [f.message for f in skipped]
    # two gates, told apart by their subjects
    gates = {f.subject for f in report if f.code == "gate.verdict"}
    assert "production vs reference deployment" in gates and len(gates) == (1 if busy else 2)
    assert report.environment is not None and "packages" in report.environment
    page = (demo / "report.html").read_text(encoding="utf-8")
    assert page.count('<svg class="stx-plot"') >= 12
    for section in ("Data drift", "Feature health", "Latency and pipeline", "Cost", "Gate"):
        assert f"<h2>{section}</h2>" in page


def test_a_check_of_ones_own_judges_the_audits_snapshots_and_is_rejudged(demo: Path) -> None:
    original = silenttax.load(demo / "report.json")
    mine = original.filter(code="acme.slow_route")
    assert len(mine) == 1 and mine[0].subject == "audit"
    snapshots = sorted(p.stem for p in (demo / "snapshots").glob("*.json"))
    named = mine[0].message.split(": ", 1)[1].split(", ")
    assert set(named) == set(snapshots) - {"audit_notes"} and "latency" in named
    manifest = json.loads((demo / "audit.json").read_text())
    assert any(c["rule"] == "acme_monitors:snapshot_count" for c in manifest["checks"])
    # re-judged: the recorded check runs again, and one added on the spot (with a bug of
    # its own: a finding naming it, never a traceback)
    again = judge_directory(demo, checks=["acme_monitors:broken"])
    assert [f.message for f in again.filter(code="acme.slow_route")] == [mine[0].message]
    failed = again.filter(code="stability.check_failed")
    assert [f.subject for f in failed] == ["acme_monitors:broken"] and "acme's bug" in failed[
        0
    ].message


def test_report_rejudges_the_saved_snapshots(demo: Path, tmp_path: Path) -> None:
    html, md, js = tmp_path / "r.html", tmp_path / "r.md", tmp_path / "r.json"
    done = run("report", str(demo), "--html", str(html), "--markdown", str(md), "--json", str(js))
    assert done.returncode == 1, done.stderr
    again = silenttax.load(js)
    original = silenttax.load(demo / "report.json")
    # every finding comes back from the snapshots alone (the model is not rerun)
    assert _key(again) == _key(original)
    assert again.context.get("rejudged") is True
    assert html.read_text().startswith("<!DOCTYPE html>") and md.read_text().startswith("**")
    # a stricter policy re-judged in the library: the same snapshots, another verdict
    assert judge_directory(demo).worst == Severity.CRITICAL
    # a saved report alone is re-rendered; a lone snapshot judges itself
    assert run("report", str(demo / "report.json")).returncode == 1
    assert (
        run("report", str(demo / "snapshots" / "resources.json"), "--fail-on", "none").returncode
        == 0
    )


def test_rejudging_a_directory_with_a_broken_snapshot_names_it(demo: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(demo, copy)
    (copy / "snapshots" / "latency.json").write_text("{ truncated")
    with pytest.raises(StateError, match=r"latency\.json"):
        judge_directory(copy)
    done = run("report", str(copy))
    assert done.returncode == 2 and "latency.json" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _onnx_model(path: Path, width: int = 4) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((width, 32)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((32, 2)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)


def _frame(path: Path, n: int, shift: float, columns: int = 4) -> None:
    rng = np.random.default_rng(int(shift * 10))
    data = {f"c{i}": rng.normal(shift, 1, n) for i in range(columns)}
    if path.suffix == ".csv":
        lines = [",".join(data)] + [",".join(f"{data[c][r]:.5f}" for c in data) for r in range(n)]
        path.write_text("\n".join(lines) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(data), path)


def test_audit_an_onnx_file_with_csv_and_parquet_data(tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    _onnx_model(model)
    _frame(tmp_path / "ref.csv", 400, 0.0)
    _frame(tmp_path / "cur.parquet", 300, 0.8)
    out = tmp_path / "out"
    done = run(
        "audit", str(model), "--reference", str(tmp_path / "ref.csv"), "--current",
        str(tmp_path / "cur.parquet"), "--offline", "--max-time", "0.2",
        "--price-per-hour", "0.5", "--batch-size", "16", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # every column drifted by 0.8 sd
    report = silenttax.load(out / "report.json")
    assert "current data's 4 columns by position (c0, c1, c2, c3)" in report.context["inputs"]
    (inputs,) = [f for f in report if f.code == "audit.inputs"]
    assert inputs.severity == "warning" and "--input-columns" in (inputs.recommendation or "")
    codes = {f.code for f in report}
    assert {"drift.numeric", "latency.quantile", "model_bloat.profile", "cost.per_1k"} <= codes
    # the model's own outputs on both sides (2 logits per row: its classes), judged
    (classes,) = report.filter(code="prediction.class_rate")
    assert classes.subject == "tiny: class" and classes.evidence["test"] == "chi2"
    assert any(f.code == "quantize.candidate" and f.subject == "ort_dynamic_int8" for f in report)
    # wider data than the model's input: which columns is ambiguous, one clear line (exit 2)
    _frame(tmp_path / "wide.csv", 50, 0.0, columns=6)
    wide_csv = str(tmp_path / "wide.csv")
    common = ("--reference", wide_csv, "--current", wide_csv, "--offline", "--max-time", "0.2",
              "--batch-size", "8", "--fail-on", "none")  # fmt: skip
    done = run("audit", str(model), *common, "--out", str(tmp_path / "wide"))
    assert done.returncode == 2 and "--input-columns" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = run(
        "audit", str(model), *common, "--input-columns", "c5,c0,c2,c1", "--out",
        str(tmp_path / "wide"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wide = silenttax.load(tmp_path / "wide" / "report.json")
    assert "columns c5, c0, c2, c1 (as given)" in wide.context["inputs"]
    assert not any(f.category.value == "data_drift" and f.is_problem for f in wide)
    # given inputs win; no data means no drift section, the model parts still run
    np.save(tmp_path / "batch.npy", np.ones((32, 4), dtype=np.float32))
    done = run(
        "audit", str(model), "--inputs", str(tmp_path / "batch.npy"), "--offline",
        "--max-time", "0.2", "--fail-on", "none", "--out", str(tmp_path / "given"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    given = silenttax.load(tmp_path / "given" / "report.json")
    assert given.context["inputs"] == "given (1 array(s))"
    assert not any(f.category.value == "data_drift" for f in given)
    assert any(f.code == "model_bloat.profile" for f in given)


def test_an_audit_with_a_capacity_section(tmp_path: Path) -> None:
    """``capacity_slo``: the model driven open-loop in the audit's process; its
    ``load.*`` findings are saved, re-judged, and the page plots the curve."""
    from silenttax.audit import audit

    _onnx_model(tmp_path / "tiny.onnx")
    done = audit(tmp_path / "tiny.onnx", inputs=[np.ones((4, 4), np.float32)], index=False,
                 max_time=0.1, methods=[], capacity_slo=0.05, required_rate=1e6,
                 capacity_options={"probe": 0.6, "confirm": 1.0, "max_probes": 4})  # fmt: skip
    found = [f for f in done.report if f.code.startswith("load.")]
    assert found and done.report.context["capacity"]["slo_p99"] == 0.05
    main = [f for f in found if f.code in ("load.capacity", "load.inconclusive",
                                           "load.generator_bound")]  # fmt: skip
    assert main and isinstance(main[0].evidence.get("curve"), list)
    if done.report.context["capacity"]["verdict"] == "pass":  # far below a million a second
        (cap,) = done.report.filter(code="load.capacity")
        assert cap.severity == "warning" and "below the required" in cap.message
    out = done.save(tmp_path / "out")
    again = silenttax.load(out / "report.json")
    assert {f.code for f in found} <= {f.code for f in again}
    assert "latency against offered rate" in again.to_html()
    with pytest.raises(InputError, match="capacity_slo"):
        audit(tmp_path / "tiny.onnx", capacity_slo=-1)


MODULE = """
import torch

def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))

NOT_A_MODEL = 3
"""


def test_audit_a_torch_import_path_and_gate_against_a_baseline(tmp_path: Path) -> None:
    (tmp_path / "mymodels.py").write_text(MODULE)
    common = ("--offline", "--max-time", "0.2", "--fail-on", "none")
    first = run("audit", "mymodels:make", *common, "--out", "base", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = silenttax.load(tmp_path / "base" / "report.json")
    assert "float32[1, 6]" in report.context["inputs"]
    assert {"model_bloat.profile", "quantize.recommendation", "pipeline.shadow_overhead"} <= {
        f.code for f in report
    }
    second = run(
        "audit", "mymodels:make", *common, "--baseline", "base", "--out", "again", cwd=tmp_path
    )
    assert second.returncode == 0, second.stderr
    again = silenttax.load(tmp_path / "again" / "report.json")
    gated = [f for f in again if f.code == "gate.verdict"]
    (across,) = [f for f in gated if f.subject.startswith("this audit vs the baseline audit")]
    assert "across runs: 3 vs 3 fresh processes" in across.subject
    latency = [f for f in again if f.code == "gate.latency" and f.subject == across.subject]
    assert latency and all(f.evidence.get("baseline_blocks") == 3 for f in latency)
    assert {f"run_{i}.json" for i in range(3)} <= {
        p.name for p in (tmp_path / "again" / "snapshots").iterdir()
    }


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("audit", "missing.onnx"), "does not exist"),
        (("audit", "bad.onnx"), "not a readable ONNX model"),
        (("audit", "mymodels:NOT_A_MODEL"), "expected an .onnx file or a torch.nn.Module"),
        (("audit", "nomodule:make"), "cannot import 'nomodule'"),
        (("audit", "tiny.onnx", "--reference", "bad.csv", "--current", "bad.csv"), "bad.csv"),
        (("audit", "tiny.onnx", "--reference", "ref.csv"), "give both"),
        (("audit", "tiny.onnx", "--inputs", "bad.csv"), "--inputs"),
        (("audit",), "--demo"),
        (("audit", "tiny.onnx", "--required-rate", "10"), "capacity_slo"),
        (("audit", "tiny.onnx", "--capacity-slo", "fast"), "--capacity-slo"),
        (("report", "nowhere"), "no such file"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    (tmp_path / "mymodels.py").write_text(MODULE)
    (tmp_path / "bad.onnx").write_bytes(b"\x00\x01 not protobuf at all \xff" * 10)
    (tmp_path / "bad.csv").write_bytes(b"a,b\n1,2,3,4\n\xff\xfe")
    _frame(tmp_path / "ref.csv", 20, 0.0)
    _onnx_model(tmp_path / "tiny.onnx")
    done = run(*args, "--out", "out", cwd=tmp_path) if args[0] == "audit" else run(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_judge_rules_in_memory() -> None:
    from silenttax.monitor import LatencyMonitor

    base, cur = LatencyMonitor(name="api"), LatencyMonitor(name="api")
    for i in range(2000):
        base.record(0.010 + (i % 7) * 1e-4)
        cur.record(0.020 + (i % 7) * 1e-4)
    report = judge(
        [
            Check(rule="latency", snapshots={"current": "cur", "baseline": "base"}),
            Check(rule="gate", snapshots={"current": "cur", "baseline": "base"}, subject="v2"),
        ],
        {"cur": cur.state(), "base": base.state()},
    )
    assert {f.code for f in report} >= {"latency.regression", "gate.verdict"}
    assert {f.subject for f in report if f.code.startswith("gate.")} == {"v2"}
    assert report.worst == Severity.CRITICAL
    with pytest.raises(StateError, match="unknown rule"):
        judge([Check(rule="nope", snapshots={})], {})
    with pytest.raises(StateError, match="missing"):
        judge([Check(rule="latency", snapshots={"current": "gone"})], {})


def test_manifest_lists_every_snapshot_file(demo: Path) -> None:
    manifest = json.loads((demo / "audit.json").read_text())
    named = {n for check in manifest["checks"] for n in check["snapshots"].values()}
    files = {p.stem for p in (demo / "snapshots").glob("*.json")}
    assert named == files
