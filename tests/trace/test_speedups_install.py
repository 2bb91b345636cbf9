"""The compiled recorder is used even when a source checkout shadows the install.

After ``pip install .`` (the README's first command), Python started in the clone's root
imports ``silenttax`` from the source folder, which has no compiled ``_speedups``; the
tracer then loads the installed distribution's build instead of silently running the
pure-Python recorder (issue: ``Tracer().compiled`` was False there, True elsewhere).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import silenttax
from silenttax.trace import _tracer

ROOT = Path(silenttax.__file__).resolve().parent


@pytest.mark.skipif(_tracer._speedups is None, reason="this install has no compiled recorder")
def test_a_source_folder_without_the_build_uses_the_installed_one(tmp_path: Path) -> None:
    built = Path(str(_tracer._speedups.__file__))
    # the clone: sources only, no compiled module
    source = tmp_path / "clone" / "silenttax"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    # the install: the compiled module where pip put it, named in the dist's RECORD
    site = tmp_path / "site"
    (site / "silenttax" / "trace").mkdir(parents=True)
    shutil.copy(built, site / "silenttax" / "trace" / built.name)
    info = site / "silenttax-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: silenttax\nVersion: 0.0.0\n")
    (info / "RECORD").write_text(f"silenttax/trace/{built.name},,\n")
    code = "from silenttax.trace import Tracer; print(Tracer().compiled)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "clone"), str(site)])}
    env.pop("SILENTTAX_PURE_PYTHON", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path / "clone", env=env, check=True)  # fmt: skip
    assert done.stdout.strip() == "True", done.stderr
    # without the install's build it falls back to pure Python (and says so the same way)
    (info / "RECORD").write_text("")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path / "clone", env=env, check=True)  # fmt: skip
    assert done.stdout.strip() == "False"
