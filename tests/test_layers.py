"""The layering rule: feature packages share code only through the core layer.

The core is ``silenttax/_*.py`` (sketches, summaries, statistics, model runners,
system facts, state) plus ``silenttax.report`` and ``silenttax.errors``. A
feature package (drift, features, monitor, cost, trace, benchmark, profile,
quantize, and those to come) may import another feature package's public
names, never its private ``_x`` modules: what two features share belongs in
the core.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "silenttax"
CORE = {"report", "errors", "cli"}


def features() -> list[str]:
    return sorted(
        p.name
        for p in PACKAGE.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name not in CORE
    )


def private_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every ``silenttax.<pkg>._x`` import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if len(parts) >= 3 and parts[0] == "silenttax" and parts[2].startswith("_"):
                out.append((node.lineno, name))
    return out


def test_no_feature_imports_another_features_private_module() -> None:
    found = features()
    assert {"drift", "features", "monitor", "cost", "trace", "benchmark", "quantize"} <= set(found)
    bad = []
    for package in found:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for line, module in private_imports(path):
                owner = module.split(".")[1]
                if owner in found and owner != package:
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not bad, "move what they share into the core layer (silenttax/_*.py):\n" + "\n".join(bad)


def test_the_core_imports_no_feature_package() -> None:
    found = set(features())
    bad = []
    for path in sorted(PACKAGE.glob("_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.startswith("silenttax.") and module.split(".")[1] in found:
                bad.append(f"{path.name}:{node.lineno} imports {module}")
    assert not bad, "the core layer must not depend on a feature:\n" + "\n".join(bad)


def test_the_rule_catches_a_private_cross_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from silenttax.monitor._sketch import LatencySketch\nimport os\n")
    assert private_imports(sample) == [(1, "silenttax.monitor._sketch")]
