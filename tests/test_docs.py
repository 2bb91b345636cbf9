"""The README, CI script, examples and notebooks stay true."""

from __future__ import annotations

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
    assert "pip install -c constraints.txt '.[audit]'" in main_job
    assert main_job.endswith("silenttax audit --demo")
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


def test_the_custom_monitor_example_runs() -> None:
    """docs/custom-monitors.md includes this file: the page's example is what runs."""
    assert (
        '--8<-- "docs/examples/custom_monitor.py"'
        in (ROOT / "docs" / "custom-monitors.md").read_text()
    )
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "custom_monitor.py")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("custom monitor: contract kept, merged, exported, served")


def test_the_history_example_runs_and_names_the_creep() -> None:
    """docs/history.md includes this file: three months of snapshots, the creep named."""
    assert '--8<-- "docs/examples/history_trend.py"' in (ROOT / "docs" / "history.md").read_text()
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "history_trend.py")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "90 daily p99s" in done.stdout
    assert "WARNING  history.creep" in done.stdout and "projected to cross 60 ms on" in done.stdout


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_on_a_real_kernel(notebook: Path, tmp_path: Path) -> None:
    """Each notebook runs as a notebook (nbclient, an IPython kernel), offline, in a
    scratch directory; its own asserts check its results, a failing cell fails here.
    Stored notebooks carry no outputs, so the repository does not grow by megabytes."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{notebook.name} has no code cells"
    assert all(not c.outputs and c.execution_count is None for c in code), (
        f"{notebook.name}: strip the outputs before committing (jupyter nbconvert "
        "--clear-output --inplace)"
    )
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for c in code for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    leaked = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not leaked, f"{notebook.name} wrote to stderr (a leaked warning?): {leaked}"
    rich = {kind for o in outputs for kind in o.get("data", {})}
    assert "text/html" in rich, f"{notebook.name} shows no report inline"
    if notebook.name.startswith("01"):
        assert "image/png" in rich, "the per-column plots render inline"


def test_every_docs_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):
        assert str(page.relative_to(ROOT / "docs")) in nav, page


SNIPPET = re.compile(r'^-{1,2}8<-{1,2}\s*"([^"]+)"\s*$', re.MULTILINE)


def _render(page: Path) -> str:
    """The page as mkdocs renders its Markdown (the extensions and options of mkdocs.yml)."""
    import markdown
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    extensions, options = [], {}
    for item in config["markdown_extensions"]:
        name, settings = next(iter(item.items())) if isinstance(item, dict) else (item, {})
        extensions.append(name)
        options[name] = dict(settings or {})
    options["pymdownx.snippets"]["base_path"] = [str(ROOT)]
    return markdown.markdown(page.read_text(), extensions=extensions, extension_configs=options)


def _text(html_page: str) -> str:
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", html_page))


@pytest.mark.parametrize("page", sorted((ROOT / "docs").rglob("*.md")), ids=str)
def test_every_snippet_include_renders_the_file_it_names(page: Path) -> None:
    source = page.read_text()
    assert not re.search(r"-+8 <", source), f"{page.name}: a formatter mangled a --8<-- include"
    included = SNIPPET.findall(source)
    if not included:
        return
    rendered = _text(_render(page))
    assert "--8<--" not in rendered and "8 < --" not in rendered
    for name in included:
        code = (ROOT / name).read_text()
        for line in code.splitlines():
            if line.strip():
                assert line.strip() in rendered, f"{page.name}: {name}: {line!r} not rendered"


def test_snippet_check_catches_a_mangled_include(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text('```python\n--8 < --"docs/examples/quickstart.py"\n```\n')
    assert not SNIPPET.findall(page.read_text())
    assert "import" not in _text(_render(page))  # what ruff's rewrite renders: no code at all


def test_stack_check_example_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "stack_check.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "dependency.stack_aa" in done.stdout and (tmp_path / "stack.json").is_file()


@pytest.mark.slow  # one to two minutes: the capacity confirmations need their requests
def test_the_load_example_runs_and_claims_a_capacity() -> None:
    """docs/load.md includes this file."""
    assert '--8<-- "docs/examples/load_capacity.py"' in (ROOT / "docs" / "load.md").read_text()
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "load_capacity.py")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "(the stall is in it)" in done.stdout and "load." in done.stdout
