from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from silenttax import Report
from silenttax._files import _read_csv, read_table
from silenttax._input import to_table
from silenttax.cli import main
from silenttax.errors import InputError


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "silenttax", *args], capture_output=True, text=True, check=False
    )


def test_demo_runs_on_the_bundled_real_data() -> None:
    done = run("drift", "--demo")
    assert done.returncode == 1, done.stderr  # it finds drift, by design: fails on WARNING
    assert "diabetes" in done.stdout
    assert "drift.dataset" in done.stdout and "columns drifted" in done.stdout
    assert "hdl" in done.stdout  # HDL cholesterol differs between the sexes


def write_csv(path: Path, rows: int, shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, rows)
    city = rng.choice(["oslo", "rome"], rows)
    lines = ["x,city,n"] + [
        f"{a:.5f},{c},{i % 7}" for i, (a, c) in enumerate(zip(x, city, strict=True))
    ]
    path.write_text("\n".join(lines) + "\n")


def test_files_out_html_and_fail_on(tmp_path: Path) -> None:
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.csv"
    write_csv(ref, 3000, 0.0, 1)
    write_csv(cur, 3000, 1.0, 2)
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    done = run("drift", str(ref), str(cur), "--out", str(out), "--html", str(html))
    assert done.returncode == 1, done.stderr  # 9 CRITICALs used to exit 0 by default
    report = Report.load(out)
    assert report.filter(subject="x", code="drift.numeric")[0].severity.value == "critical"
    assert "<table" in html.read_text()
    assert run("drift", str(ref), str(cur), "--fail-on", "none").returncode == 0
    assert run("drift", str(ref), str(cur), "--fail-on", "critical").returncode == 1
    assert main(["drift", str(ref), str(ref)]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["drift"], "give REFERENCE and CURRENT"),
        (["drift", "missing.csv", "other.csv"], "no such file"),
        (["drift", "--demo", "a.csv"], "--demo takes no files"),
        (["drift", "--demo", "--alpha", "3"], "--alpha"),
        (["drift", "--fail-on", "sometimes"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stderr.strip().count("\n") == 0


def test_csv_without_pyarrow_infers_types_like_pyarrow(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,c,d\n1,x,1.5,\n2,y,,3\n3,,2.5,4\n")
    plain = to_table(_read_csv(path))
    arrow = to_table(read_table(path))
    assert plain.kinds == arrow.kinds == {"a": "int", "b": "string", "c": "float", "d": "int"}
    for name in plain.names:
        assert plain[name].tolist() == pytest.approx(arrow[name].tolist(), nan_ok=True) or (
            plain[name].tolist() == arrow[name].tolist()
        )
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1\n")
    with pytest.raises(InputError, match="line 2"):
        _read_csv(bad)
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(InputError, match=r"expected a \.csv"):
        read_table(tmp_path / "t.txt")


def test_report_json_is_plain_json(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main(["drift", "--demo", "--out", str(out), "--fail-on", "none"]) == 0
    doc = json.loads(out.read_text())
    assert doc["kind"] == "silenttax.report" and doc["findings"]


def test_parquet_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    for name, shift in (("ref", 0.0), ("cur", 1.0)):
        table = pa.table({"x": rng.normal(shift, 1, 2000), "city": rng.choice(["a", "b"], 2000)})
        pq.write_table(table, tmp_path / f"{name}.parquet")
    out = tmp_path / "r.json"
    status = main(
        ["drift", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"), "--out", str(out)]
    )
    assert status == 1  # x drifted: a finding at the default --fail-on warning
    report = Report.load(out)
    assert report.filter(subject="x", code="drift.numeric")[0].severity.value == "critical"
    assert report.filter(subject="city", code="drift.categorical")[0].severity.value == "ok"


@pytest.mark.parametrize("reader", ["pyarrow", "csv module"])
def test_padded_numbers_in_a_csv_are_named(
    tmp_path: Path, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's first fat feature, in the format most batch data arrives in: `a` written
    as '  1.18 ' in every third row of the current CSV. Read text first, the column stays
    text and the check names the padding, as for Parquet; clean numbers with NA stay
    numbers."""
    from silenttax import _files

    if reader == "csv module":
        monkeypatch.setattr(_files, "is_installed", lambda name: False)
    rng = np.random.default_rng(5)
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.csv"
    for path, padded in ((ref, False), (cur, True)):
        values = rng.normal(1.0, 0.2, 600)
        lines = ["a,n,city"]
        for i, v in enumerate(values):
            a = f"  {v:.2f} " if padded and i % 3 == 0 else f"{v:.2f}"
            n = "NA" if i % 50 == 0 else str(i % 7)
            lines.append(f"{a},{n},{'oslo' if i % 2 else 'rome'}")
        path.write_text("\n".join(lines) + "\n")
    reference, current = _files.read_table(ref), _files.read_table(cur)
    from silenttax._input import to_table

    assert to_table(reference).kinds == {"a": "float", "n": "int", "city": "string"}
    assert to_table(current).kinds["a"] in ("string", "object")
    out = tmp_path / "r.json"
    assert main(["drift", str(ref), str(cur), "--out", str(out)]) == 1
    report = Report.load(out)
    named = {(f.code, f.subject) for f in report.problems()}
    assert {("feature.whitespace", "a"), ("feature.numeric_string", "a")} <= named, named
    assert not [f for f in report.problems() if f.subject == "n"]  # NA is missing, not text
