"""``silenttax stack-check`` end to end: real worker processes, real second environments."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import silenttax
from silenttax.benchmark import StackComparison
from silenttax.cli import main
from silenttax.cli._stack import exit_status
from silenttax.report import Finding, Report, Severity
from tests.benchmark.test_stack import ROOT, _isolated_pip, _local_index, layered_env

FACTORY = "tests.benchmark.stack_models:spin_by_package"


@pytest.fixture
def x_npy(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.arange(4.0))
    return path


@pytest.fixture(autouse=True)
def _project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # factories of the project the command runs in


def _args(x: Path, *extra: str) -> list[str]:
    return [
        "stack-check",
        FACTORY,
        "--kind",
        "python",
        "--inputs",
        str(x),
        "--threads",
        "1",
        "--pairs",
        "3",
        "--rounds",
        "8",
        "--no-lag",
        *extra,
    ]


def test_this_environment_does_not_leak_into_workers(
    tmp_path: Path, x_npy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """spinlib is importable here only through PYTHONPATH; the workers must not see it."""
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "spinlib.py").write_text("FACTOR = 1.0\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "here"))
    slow = layered_env(tmp_path / "slow", {"spinlib.py": "FACTOR = 1.4\n"})
    assert main(_args(x_npy, "--python", str(slow))) == 2
    err = capsys.readouterr().err
    assert "baseline worker failed 'load'" in err and "No module named 'spinlib'" in err


def test_exit_status_follows_fail_on(tmp_path: Path, x_npy: Path) -> None:
    here = layered_env(tmp_path / "here", {"spinlib.py": "FACTOR = 1.0\n"})
    slow = layered_env(tmp_path / "slow", {"spinlib.py": "FACTOR = 1.4\n"})
    out = tmp_path / "out"
    # Run the CLI from the baseline environment itself, so "current" is that env.
    command = [
        str(here),
        "-c",
        "import sys; from silenttax.cli import main; sys.exit(main(sys.argv[1:]))",
        *_args(x_npy, "--python", str(slow), "--out", str(out), "--fail-on", "regression"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    assert "dependency.upgrade_regression" in done.stdout
    comparison = silenttax.load(out / "stack.json")
    assert isinstance(comparison, StackComparison) and comparison.verdict == "slower"
    assert silenttax.load(out / "report.json").filter(code="dependency.upgrade_regression")
    assert (out / "report.html").read_text(encoding="utf-8").lstrip().startswith("<")
    # The same measurement does not fail a gate that only acts on rot.
    report = comparison.report()
    assert exit_status(report, "rot", inconclusive=False) == 0
    assert exit_status(report, "any", inconclusive=False) == 1


def test_a_a_self_test_exits_0(tmp_path: Path, x_npy: Path) -> None:
    spec_args = [
        "stack-check",
        "tests.benchmark.stack_models:spin",
        "--kind",
        "python",
        "--inputs",
        str(x_npy),
        "--aa",
        "--pairs",
        "2",
        "--rounds",
        "4",
        "--no-lag",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(spec_args) in (0, 1)  # 1 only for a false alarm (at most alpha)
    comparison = silenttax.load(tmp_path / "out" / "stack.json")
    assert comparison.aa and comparison.report().filter(code="dependency.stack_aa")


def test_inconclusive_exits_3() -> None:
    finding = Finding(
        code="dependency.stack_inconclusive",
        category="dependency",
        severity=Severity.INFO,
        subject="stack",
        message="inconclusive",
    )
    assert exit_status(Report(findings=[finding]), "any", inconclusive=True) == 3


def test_lag_only_reads_the_package_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _isolated_pip(monkeypatch)
    url = _local_index(tmp_path / "index", "numpy", [np.__version__, "999.0.0"])
    status = main(
        ["stack-check", "model.onnx", "--lag-only", "--upgrade", "numpy", "--index-url", url]
    )
    assert status == 0
    assert "numpy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give the candidate stack"),
        (["--aa", "--pairs", "1"], "--pairs: expected a whole number >= 2"),
        (["--upgrade", "onnx runtime"], "--upgrade"),
        (["--aa", "--cores", "a,b"], "--cores"),
    ],
)
def test_bad_arguments_exit_2(
    x_npy: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["stack-check", "tests.benchmark.stack_models:spin", "--kind", "python"]
    assert main([*args, "--inputs", str(x_npy), *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stack-check", str(tmp_path / "m.onnx"), "--aa", "--inputs", "x.npy"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["stack-check", "pkg:f", "--aa"]) == 2
    assert "--inputs" in capsys.readouterr().err
