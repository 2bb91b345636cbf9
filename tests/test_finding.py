from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from pydantic import ValidationError

from silenttax import Category, Finding, Severity
from tests.strategies import findings

BASE = {
    "code": "latency.p99",
    "category": "latency",
    "severity": "warning",
    "subject": "ranker",
    "message": "p99 48 ms",
}


def test_strings_validate_into_enums() -> None:
    f = Finding(**BASE)
    assert f.severity is Severity.WARNING
    assert f.category is Category.LATENCY
    assert f.severity == "warning"
    assert Finding(**{**BASE, "severity": "CRITICAL", "category": "Data_Drift"}).severity == (
        Severity.CRITICAL
    )


def test_only_five_fields_required_and_defaults_are_none() -> None:
    f = Finding(**BASE)
    for name in ("metric", "value", "baseline", "threshold", "unit", "p_value", "effect_size"):
        assert getattr(f, name) is None
    assert f.evidence == {}
    assert f.created_at.tzinfo is not None
    for missing in BASE:
        with pytest.raises(ValidationError, match=missing):
            Finding(**{k: v for k, v in BASE.items() if k != missing})


def test_severity_order_and_string_comparison() -> None:
    order = [Severity.OK, Severity.INFO, Severity.WARNING, Severity.CRITICAL]
    assert sorted([Severity.CRITICAL, Severity.OK, Severity.WARNING, Severity.INFO]) == order
    assert [s.rank for s in order] == [0, 1, 2, 3]
    assert Severity.WARNING > "info"
    assert Severity.OK <= "ok"
    assert not Severity.CRITICAL < Severity.OK
    with pytest.raises(TypeError):
        _ = Severity.OK < 3
    with pytest.raises(TypeError):
        _ = Severity.OK < "bogus"
    assert Severity("  Warning ") is Severity.WARNING


def test_category_values_are_exactly_the_documented_ones() -> None:
    assert [c.value for c in Category] == [
        "data_drift",
        "feature_health",
        "latency",
        "resource",
        "cost",
        "model_bloat",
        "dependency",
        "pipeline",
        "stability",
        "history",
    ]
    assert all(c.name == c.value.upper() for c in Category)


def test_frozen_and_extra_forbidden() -> None:
    f = Finding(**BASE)
    with pytest.raises(ValidationError):
        f.value = 3.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="colour"):
        Finding(**BASE, colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize("code", ["Latency.p99", "latency", "latency.", ".p99", "lat ency.p99"])
def test_bad_codes_are_rejected(code: str) -> None:
    with pytest.raises(ValidationError, match=r"area\.what"):
        Finding(**{**BASE, "code": code})


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan])
def test_p_value_outside_unit_interval_is_rejected(p: float) -> None:
    with pytest.raises(ValidationError, match="p_value"):
        Finding(**BASE, p_value=p)


def test_bad_severity_names_the_choices() -> None:
    with pytest.raises(ValidationError, match="critical"):
        Finding(**{**BASE, "severity": "fatal"})


def test_naive_created_at_becomes_utc() -> None:
    f = Finding(**BASE, created_at=datetime(2026, 1, 1, 12))
    assert f.created_at == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_every_field_has_a_docstring() -> None:
    for name, field in Finding.model_fields.items():
        assert field.description, name


def test_nan_and_inf_round_trip_losslessly() -> None:
    f = Finding(
        **BASE,
        value=math.nan,
        baseline=math.inf,
        threshold=-math.inf,
        evidence={"ci": [math.nan, math.inf], "n": 3},
    )
    text = f.model_dump_json()
    # Python's json module reads the same literals back.
    assert json.loads(text)["baseline"] == math.inf
    back = Finding.model_validate_json(text)
    assert math.isnan(back.value)  # type: ignore[arg-type]
    assert back.baseline == math.inf and back.threshold == -math.inf
    assert math.isnan(back.evidence["ci"][0])  # type: ignore[index, arg-type]
    assert back.model_dump_json() == text


@given(findings)
def test_json_round_trip_of_arbitrary_findings(f: Finding) -> None:
    text = f.model_dump_json()
    back = Finding.model_validate_json(text)
    assert back.model_dump_json() == text
    assert back.created_at == f.created_at
    assert back.severity is f.severity
