"""The README, CI script, examples and notebooks stay true."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_the_two_commands_and_ci_runs_the_test_one() -> None:
    main_job, tests = readme_commands()
    assert "pip install ." in main_job
    assert "pytest" in tests and "mypy --strict silenttax" in tests and "ruff check" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines(), ".ci/run must run the README's test command verbatim"


def test_quickstart_runs_and_docs_show_its_output() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    table = done.stdout.split("\n\n")[0]
    assert table.startswith("silenttax report — 3 checks: 1 warning, 1 info, 1 ok")
    assert table in (ROOT / "docs" / "getting-started.md").read_text()
    assert done.stdout.rstrip().endswith("CI exit code (fail on warning): 1")


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=str)
def test_notebook_code_cells_run(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert code, f"{notebook.name} has no code cells"
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    for source in code:  # the notebooks' own asserts check their results
        exec(compile(source, str(notebook), "exec"), namespace)


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):
        assert str(page.relative_to(ROOT / "docs")) in nav, page
