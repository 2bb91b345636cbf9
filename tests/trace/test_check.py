from __future__ import annotations

import time

import pytest

from silenttax.report import Severity
from silenttax.trace import Tracer


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def pipeline(n: int = 200, *, audit: float = 0.0, validate: float = 0.0) -> Tracer:
    tracer = Tracer()
    for _ in range(n):
        with tracer.span("predict"):
            with tracer.span("parse", stage="preprocess"):
                busy(0.0003)
            if validate:
                with tracer.span("validate", stage="validate"):
                    busy(validate)
            with tracer.span("forward", stage="model"):
                busy(0.0012)
            if audit:
                with tracer.span("audit_log", stage="logging"):
                    busy(audit)
    return tracer


def test_same_pipeline_twice_is_quiet() -> None:
    base = pipeline()
    report = pipeline().check(base)
    # nothing changed: every comparison is OK. The threads finding describes this machine
    # (a spinning loop saturates a 1-core machine: INFO there), never a warning.
    assert report.worst <= Severity.INFO, str(report)
    assert all(f.severity is Severity.OK for f in report if f.code != "pipeline.threads")
    codes = {f.code for f in report}
    assert codes == {
        "pipeline.shadow_overhead",
        "pipeline.request_time",
        "pipeline.stage_time",
        "pipeline.gc_pauses",
        "pipeline.threads",
    }


def test_new_logging_stage_is_found_and_named() -> None:
    base = pipeline()
    report = pipeline(audit=0.0008).check(base)
    new = report.filter(code="pipeline.new_stage")[0]
    assert new.subject == "logging" and new.severity is Severity.WARNING
    assert new.value == pytest.approx(0.0008, rel=0.25)
    assert "audit_log" not in new.message or "logging" in new.message
    assert "adds 8" in new.message  # "adds 800 µs at p50"
    assert new.message.startswith("new stage 'logging' (audit_log) adds")


def test_grown_stage_reports_added_time_with_confidence() -> None:
    base = pipeline(audit=0.0002)
    report = pipeline(audit=0.001).check(base)
    grown = next(f for f in report.filter(code="pipeline.stage_time") if f.subject == "logging")
    assert grown.severity >= Severity.WARNING
    assert grown.effect_size == pytest.approx(0.0008, rel=0.2)
    assert grown.message.startswith("logging (audit_log) added ")  # the stage and its span
    lo, hi = grown.evidence["added_ci"]  # type: ignore[misc]
    assert 0 < lo <= grown.effect_size <= hi
    assert "± " in grown.message
    assert "at p50" in grown.message


def test_shadow_share() -> None:
    lean = pipeline(50).check()
    assert lean.filter(code="pipeline.shadow_overhead")[0].severity is Severity.OK
    heavy = pipeline(50, validate=0.003).check()
    shadow = heavy.filter(code="pipeline.shadow_overhead")[0]
    assert shadow.severity is Severity.WARNING
    assert shadow.value == pytest.approx(1 - 0.0012 / 0.0045, abs=0.08)
    assert "validate" in shadow.message
    assert heavy.filter(code="pipeline.stage_time")  # figures for every stage


def test_no_model_stage_and_no_data() -> None:
    tracer = Tracer()
    with tracer.span("request"):
        pass
    finding = tracer.check().filter(code="pipeline.shadow_overhead")[0]
    assert finding.severity is Severity.INFO and "stage='model'" in finding.message
    assert [f.code for f in Tracer().check()] == ["pipeline.no_data"]


def test_removed_stage_and_saved_baseline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = pipeline(audit=0.0003).breakdown()
    base.save(tmp_path / "base.json")
    from silenttax.trace import Breakdown

    report = pipeline().check(Breakdown.load(tmp_path / "base.json"))
    removed = report.filter(code="pipeline.removed_stage")
    assert [f.subject for f in removed] == ["logging"]


def test_warmup_hint() -> None:
    tracer = Tracer()
    for i in range(40):
        with tracer.span("request"), tracer.span("forward", stage="model"):
            busy(0.02 if i == 0 else 0.0002)
    hint = tracer.check().filter(code="pipeline.warmup")
    assert [f.subject for f in hint] == ["forward"]
