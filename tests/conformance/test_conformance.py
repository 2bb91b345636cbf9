"""Checks every saved kind passes (in the spirit of river's and scikit-learn's estimator checks).

Parametrised over :data:`silenttax._registry.KINDS` through the examples in
``components.py``: round trip through ``silenttax.load`` (text and file) with
the same report, merge of partitions equals one pass, merge rejects
mismatched settings naming them, reset equals a fresh instance, bad input
raises a silenttax error, a newer schema or an unknown kind is refused with a
message naming kind and versions.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import silenttax
from silenttax._registry import KINDS
from silenttax._state import State, Stateful
from silenttax.errors import SilentTaxError, StateError
from tests.conformance.components import EXAMPLES

KIND_IDS = sorted(KINDS)
SUBPACKAGES = [
    "benchmark",
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
def test_round_trip_through_silenttax_load(kind: str, tmp_path: Path) -> None:
    example = EXAMPLES[kind]
    obj = example.make()
    text = _state_json(obj)
    assert json.loads(text)["kind"] == kind
    back = silenttax.load(text)
    assert type(back) is type(obj)
    assert _state_json(back) == text
    path = obj.save(tmp_path / "state.json")
    assert path == tmp_path / "state.json" and path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # atomic: no temp file left
    from_file = silenttax.load(path)
    assert _state_json(from_file) == text
    assert _state_json(silenttax.load(json.loads(text))) == text
    if example.judge is not None:
        assert _findings(example.judge(from_file)) == _findings(example.judge(obj))


@pytest.mark.parametrize("kind", KIND_IDS)
def test_a_newer_schema_and_an_unknown_kind_are_refused(kind: str) -> None:
    data = json.loads(_state_json(EXAMPLES[kind].make()))
    data["schema_version"] = 99
    with pytest.raises(StateError, match=r"schema_version 99") as caught:
        silenttax.load(data)
    assert kind in str(caught.value)
    data["kind"] = kind + "_from_the_future"
    with pytest.raises(StateError, match="unknown state kind"):
        silenttax.load(data)


MERGEABLE = [k for k in KIND_IDS if EXAMPLES[k].halves is not None]


@pytest.mark.parametrize("kind", MERGEABLE)
def test_merge_of_partitions_equals_one_pass(kind: str) -> None:
    example = EXAMPLES[kind]
    assert example.halves is not None and example.merge is not None
    a, b, whole = example.halves()
    counts_a, counts_b = _counts(a), _counts(b)
    merged = example.merge(a, b)
    got = _counts(merged)
    assert got == {k: counts_a[k] + counts_b[k] for k in got}, "counts add up exactly"
    if whole is not None:
        assert got == _counts(whole)
        if example.judge is not None:
            assert [f[:3] for f in _findings(example.judge(merged))] == [
                f[:3] for f in _findings(example.judge(whole))
            ]


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


MISMATCHABLE = [k for k in KIND_IDS if EXAMPLES[k].mismatched is not None]


@pytest.mark.parametrize("kind", MISMATCHABLE)
def test_merge_rejects_mismatched_settings(kind: str) -> None:
    example = EXAMPLES[kind]
    assert example.mismatched is not None and example.merge is not None
    a, b, setting = example.mismatched()
    before = _state_json(a)
    with pytest.raises(SilentTaxError, match=repr(setting)):
        example.merge(a, b)
    assert _state_json(a) == before, "a refused merge changes nothing"


RESETTABLE = [k for k in KIND_IDS if hasattr(EXAMPLES[k].make(), "reset")]


@pytest.mark.parametrize("kind", RESETTABLE)
def test_reset_keeps_settings_and_forgets_recordings(kind: str) -> None:
    obj = EXAMPLES[kind].make()
    settings = json.loads(_state_json(obj)).get("params")
    obj.reset()
    after = json.loads(_state_json(obj))
    assert after.get("params") == settings
    assert all(v == 0 for k, v in _counts(obj).items() if not k.endswith("invalid"))


@pytest.mark.parametrize("kind", [k for k in KIND_IDS if EXAMPLES[k].bad_input is not None])
def test_bad_input_raises_a_silenttax_error(kind: str) -> None:
    bad = EXAMPLES[kind].bad_input
    assert bad is not None
    with pytest.raises(SilentTaxError):
        bad()


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
        "CODE_PATTERN",
        "Category",
        "CodeInfo",
        "Finding",
        "Report",
        "Severity",
        "finding_codes",
        "format_number",
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


def _component(kind: str) -> Any:
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


WITH_SETTINGS = [
    k
    for k in KIND_IDS
    if issubclass(_component(k), Stateful) and "params" in _component(k).STATE.model_fields
]


@pytest.mark.parametrize("kind", WITH_SETTINGS)
def test_every_constructor_setting_is_saved(kind: str) -> None:
    """The settings a state saves are exactly the constructor's keywords (less those
    the state keeps in a field of their own, such as ``baseline``), so a new
    keyword cannot be forgotten in ``state()`` and reload with its default."""
    obj = EXAMPLES[kind].make()
    state = obj.state()
    keywords = {
        name
        for name, p in inspect.signature(type(obj).__init__).parameters.items()
        if name != "self" and p.kind is not p.VAR_KEYWORD
    }
    own_fields = set(type(state).model_fields) & keywords
    local = {  # another process's, or code (never saved)
        "silenttax.resource_monitor": {"pid"},
        # (feature_health and drift are saved as health_reference / drift_reference)
        "silenttax.serving": {
            "app",
            "tracer",
            "features",
            "snapshot_dir",
            "feature_health",
            "drift",
        },
    }.get(kind, set())
    assert set(state.params) <= keywords, "a saved setting the constructor does not take"
    assert keywords - local <= set(state.params) | own_fields, "a keyword is not saved"
