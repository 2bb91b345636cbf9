"""Checks every saved kind passes (in the spirit of river's and scikit-learn's estimator checks).

Parametrised over :data:`silenttax._registry.KINDS` through the examples in
``components.py``: every built-in runs the public contract users run on their own
components (:func:`silenttax.testing.check_component`: round trip through
``silenttax.load``, merge of partitions equals one pass, mismatched settings
refused by name, bad input, newer schema and unknown kind refused, settings
saved), and here besides: reset equals a fresh instance, light imports, the
locked public names.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from typing import Any

import pytest

from silenttax._registry import KINDS
from silenttax._state import State
from tests.conformance.components import EXAMPLES

KIND_IDS = sorted(KINDS)
SUBPACKAGES = [
    "benchmark",
    "component",
    "cost",
    "drift",
    "errors",
    "features",
    "gate",
    "monitor",
    "profile",
    "quantize",
    "report",
    "trace",
]


def _findings(report: Any) -> list[tuple[Any, ...]]:
    return [(f.code, f.subject, f.severity, f.value) for f in report]


def _state_json(obj: Any) -> str:
    return str(obj.to_json())


def test_every_kind_has_an_example_and_every_state_class_a_kind() -> None:
    assert set(EXAMPLES) == set(KINDS), "add the kind to KINDS and an Example to components.py"
    for module in SUBPACKAGES:
        importlib.import_module(f"silenttax.{module}")

    def walk(cls: type[State]) -> list[type[State]]:
        return [c for sub in cls.__subclasses__() for c in (sub, *walk(sub))]

    kinds = {c.KIND for c in walk(State) if c.__module__.startswith("silenttax.")}
    # Profile is the abstract base of the torch and ONNX profiles; its kind is never saved.
    assert kinds - {"silenttax.profile"} == set(KINDS)


@pytest.mark.parametrize("kind", KIND_IDS)
def test_builtins_pass_the_public_check_component(kind: str) -> None:
    """The contract users run on their own components, run on every built-in one."""
    from silenttax._registry import target
    from silenttax.testing import check_component

    assert check_component(target(kind), examples=EXAMPLES[kind]) == []


def _counts(obj: Any) -> dict[str, int]:
    """The exact counts a snapshot holds, by path (what merging must add up)."""
    out: dict[str, int] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if not key.endswith("reference"):  # a setting: the same on both sides
                    walk(f"{prefix}.{key}", item)
        elif isinstance(value, list):
            return
        elif isinstance(value, int) and not isinstance(value, bool):
            name = prefix.rsplit(".", 1)[-1]
            if name in {"count", "rows", "requests", "spans", "zero_count", "nulls", "invalid"}:
                out[prefix] = value

    walk("", json.loads(_state_json(obj)))
    return out


RESETTABLE = [k for k in KIND_IDS if hasattr(EXAMPLES[k].make(), "reset")]


@pytest.mark.parametrize("kind", RESETTABLE)
def test_reset_keeps_settings_and_forgets_recordings(kind: str) -> None:
    obj = EXAMPLES[kind].make()
    settings = json.loads(_state_json(obj)).get("params")
    obj.reset()
    after = json.loads(_state_json(obj))
    assert after.get("params") == settings
    assert all(v == 0 for k, v in _counts(obj).items() if not k.endswith("invalid"))


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_imports_no_heavy_module(name: str) -> None:
    code = (
        f"import sys, silenttax.{name}; "
        "print(' '.join(m for m in ('torch', 'onnxruntime', 'pandas', 'polars', 'matplotlib', "
        "'dask', 'rich') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"import silenttax.{name} pulled in {done.stdout.strip()}"


#: The public surface of each subpackage, locked (httpx's test_exported_members): a change
#: here is an API change and belongs in CHANGELOG.md.
PUBLIC = {
    "component": [
        "ALL",
        "EACH",
        "ENTRY_POINTS",
        "FIRST",
        "KIND_PATTERN",
        "MAX",
        "MIN",
        "SAME",
        "SKETCH",
        "SUM",
        "UNION",
        "Check",
        "Rule",
        "State",
        "Stateful",
        "WeightedMean",
        "load_check",
        "merge_states",
        "register",
        "register_code",
        "registered",
        "rule_of",
        "same_settings",
        "settings",
        "since",
        "with_policy",
    ],
    "benchmark": [
        "PACKAGES",
        "BenchmarkResult",
        "Comparison",
        "Environment",
        "ModelSpec",
        "StackArm",
        "StackComparison",
        "benchmark",
        "compare",
        "compare_results",
        "compare_stacks",
        "decide_pairs",
        "environment",
        "fresh_runs",
        "onnx_fn",
        "onnx_session",
        "torch_fn",
        "version_lag",
    ],
    "cost": [
        "SECONDS_PER_MONTH",
        "CostComparison",
        "CostModel",
        "CostMonitor",
        "CostMonitorState",
        "CostWindow",
        "check_cost",
    ],
    "drift": [
        "DEFAULT_CRITICAL",
        "DEFAULT_MIN_EFFECT",
        "DEFAULT_TESTS",
        "CategoricalSummary",
        "DriftDetector",
        "DriftDetectorState",
        "DriftResult",
        "DriftWindow",
        "NumericSummary",
        "adjust",
        "anderson_darling",
        "check_drift",
        "chi2",
        "cramer_von_mises",
        "hellinger",
        "jensen_shannon",
        "ks",
        "proportion_z",
        "psi",
        "wasserstein",
        "z_test",
    ],
    "errors": [
        "InputError",
        "InternalError",
        "MissingDependencyError",
        "NotFittedError",
        "SchemaMismatchError",
        "SilentTaxError",
        "StackError",
        "StateError",
    ],
    "features": ["ColumnProfile", "FeatureHealth", "FeatureHealthState", "check_health"],
    "gate": [
        "Canary",
        "CanaryState",
        "Decision",
        "Verdict",
        "exit_status",
        "log_e_above",
        "log_e_below",
        "log_e_split",
        "performance_gate",
        "verdict",
    ],
    "monitor": [
        "ADWIN",
        "CUSUM",
        "ChangeDetector",
        "DetectorState",
        "GpuStats",
        "LatencyMonitor",
        "LatencyMonitorState",
        "LatencySketch",
        "LatencySketchState",
        "PageHinkley",
        "PredictionMonitor",
        "PredictionMonitorState",
        "ResourceMonitor",
        "ResourceMonitorState",
        "ResourceSample",
        "check_latency",
        "check_resource",
        "gpu_snapshot",
        "quantile_interval",
    ],
    "profile": [
        "OnnxProfile",
        "OpStat",
        "Profile",
        "TorchProfile",
        "classify_aten",
        "classify_onnx",
        "profile_onnx",
        "profile_torch",
    ],
    "quantize": [
        "METHODS",
        "Baseline",
        "Candidate",
        "Int8Support",
        "QuantizationStudy",
        "int8_support",
        "study",
    ],
    "report": [
        "CATEGORY_PATTERN",
        "CODE_PATTERN",
        "Category",
        "CodeInfo",
        "Finding",
        "Report",
        "Severity",
        "finding_codes",
        "format_number",
        "make_finding",
        "register_code",
    ],
    "trace": [
        "Breakdown",
        "BreakdownPolicy",
        "SpanRecord",
        "SpanStats",
        "StageStats",
        "Tracer",
        "check_breakdown",
    ],
}


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_public_names_are_exported_and_locked(name: str) -> None:
    module = importlib.import_module(f"silenttax.{name}")
    exported = list(module.__all__)
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n)) or exported == sorted(
        exported
    )
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and not isinstance(v, type(sys)) and n != "annotations"
    }
    assert public == set(exported), f"silenttax.{name}: public but not in __all__, or vice versa"
    assert exported == PUBLIC[name]
