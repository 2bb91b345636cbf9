"""Package-level contracts: public names, import lightness, command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import silenttax
from silenttax import report as report_pkg

HEAVY = (
    "torch",
    "onnxruntime",
    "scipy.stats",
    "pandas",
    "polars",
    "matplotlib",
    "dask",
    "opentelemetry",
    "pynvml",
)


def test_public_names_are_locked() -> None:
    assert silenttax.__all__ == [
        "Category",
        "Finding",
        "Report",
        "Severity",
        "SilentTaxError",
        "__version__",
        "errors",
        "load",
        "merge",
        "observe",
        "observe_prediction",
        "stage",
    ]
    assert report_pkg.__all__ == sorted(report_pkg.__all__)
    for name in silenttax.__all__ + report_pkg.__all__:
        assert hasattr(silenttax, name) or hasattr(report_pkg, name)


def test_version_matches_the_installed_metadata() -> None:
    from importlib.metadata import version

    assert silenttax.__version__ == version("silenttax")


@pytest.mark.parametrize(
    "module", ["silenttax", "silenttax.report", "silenttax.errors", "silenttax.cli"]
)
def test_import_pulls_in_no_heavy_module(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import {module} imported: {out}"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "silenttax", *args], capture_output=True, text=True, check=False
    )


def test_cli_version_and_help() -> None:
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"silenttax {silenttax.__version__}"
    done = run_cli("--help")
    assert done.returncode == 0 and "silent AI tax" in done.stdout
    done = run_cli()
    assert done.returncode == 0 and "usage: silenttax" in done.stdout


def test_cli_usage_error_is_one_line_and_exit_2() -> None:
    done = run_cli("--bogus")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "unrecognized arguments: --bogus" in done.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("silenttax")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "silenttax" in done.stdout


def test_main_returns_status_in_process() -> None:
    from silenttax.cli import main

    assert main(["--version"]) == 0
    assert main(["--nope"]) == 2
