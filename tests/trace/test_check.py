from __future__ import annotations

import time

import numpy as np
import pytest

from silenttax.report import Severity
from silenttax.trace import Tracer


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def request(tracer: Tracer, truth: dict[str, list[float]], audit: float, validate: float) -> None:
    """One request of the pipeline; ``truth`` collects each stage's body time (same clock)."""
    pc = time.perf_counter

    def timed(stage: str, seconds: float) -> None:
        t0 = pc()
        busy(seconds)
        truth.setdefault(stage, []).append(pc() - t0)

    start = pc()
    with tracer.span("predict"):
        with tracer.span("parse", stage="preprocess"):
            timed("preprocess", 0.0003)
        if validate:
            with tracer.span("validate", stage="validate"):
                timed("validate", validate)
        with tracer.span("forward", stage="model"):
            timed("model", 0.0012)
        if audit:
            with tracer.span("audit_log", stage="logging"):
                timed("logging", audit)
    truth.setdefault("request", []).append(pc() - start)


def pipeline(n: int = 200, *, audit: float = 0.0, validate: float = 0.0) -> Tracer:
    tracer = Tracer()
    for _ in range(n):
        request(tracer, {}, audit, validate)
    return tracer


def pipelines(
    n: int = 200, truth: dict[str, list[float]] | None = None, **current: float
) -> tuple[Tracer, Tracer]:
    """A baseline and a current pipeline served request by request, interleaved: a busy
    machine slows both alike, as a real A/B comparison is run. ``truth``: the current's."""
    base, cur = Tracer(), Tracer()
    truth = {} if truth is None else truth
    for _ in range(n):
        request(base, {}, 0.0, 0.0)
        request(cur, truth, current.get("audit", 0.0), current.get("validate", 0.0))
    return base, cur


def test_same_pipeline_twice_is_quiet() -> None:
    base, current = pipelines()
    report = current.check(base)
    # nothing changed: every comparison is OK. The threads and warm-up findings describe this
    # machine (a spinning loop saturates a 1-core machine; a preempted first call looks like
    # warm-up): INFO at most, never a warning.
    assert report.worst <= Severity.INFO, str(report)
    compared = ("pipeline.shadow_overhead", "pipeline.request_time", "pipeline.stage_time")
    assert all(f.severity is Severity.OK for f in report if f.code in compared), str(report)
    codes = {f.code for f in report} - {"pipeline.warmup"}
    assert codes == {
        "pipeline.shadow_overhead",
        "pipeline.request_time",
        "pipeline.stage_time",
        "pipeline.gc_pauses",
        "pipeline.threads",
    }


def test_new_logging_stage_is_found_and_named() -> None:
    truth: dict[str, list[float]] = {}
    base, current = pipelines(audit=0.0008, truth=truth)
    report = current.check(base)
    new = report.filter(code="pipeline.new_stage")[0]
    assert new.subject == "logging" and new.severity is Severity.WARNING
    # the new stage's time, as the test's own clock saw it (0.8 ms of work; more on a busy CPU)
    assert new.value == pytest.approx(float(np.mean(truth["logging"])), rel=0.1)
    assert new.evidence["p50"] == pytest.approx(float(np.median(truth["logging"])), rel=0.1)
    assert "audit_log" not in new.message or "logging" in new.message
    assert "adds " in new.message and " at p50" in new.message  # "adds 800 µs at p50"
    assert new.message.startswith("new stage 'logging' (audit_log) adds")


def test_grown_stage_reports_added_time_with_confidence() -> None:
    base, current = Tracer(), Tracer()
    was: dict[str, list[float]] = {}
    now: dict[str, list[float]] = {}
    for _ in range(200):
        request(base, was, 0.0002, 0.0)
        request(current, now, 0.001, 0.0)
    report = current.check(base)
    grown = next(f for f in report.filter(code="pipeline.stage_time") if f.subject == "logging")
    assert grown.severity >= Severity.WARNING
    # 0.8 ms more work: at least that much more wall time at p50 (more on a busy CPU, where
    # the spins are preempted), never more than the slowest minus the fastest, give or take
    # the span's own timing around the test's clock (microseconds; the spins themselves are
    # so exact on a quiet CPU that this jitter decides the bound)
    slack = 20e-6
    assert 0.0008 * 0.9 <= grown.effect_size <= max(now["logging"]) - min(was["logging"]) + slack
    assert grown.message.startswith("logging (audit_log) added ")  # the stage and its span
    lo, hi = grown.evidence["added_ci"]  # type: ignore[misc]
    assert 0 < lo <= grown.effect_size <= hi
    assert "± " in grown.message
    assert "at p50" in grown.message


def test_shadow_share() -> None:
    lean = pipeline(50).check()
    assert lean.filter(code="pipeline.shadow_overhead")[0].severity is Severity.OK
    tracer, truth = Tracer(), {}  # type: ignore[var-annotated]
    for _ in range(50):
        request(tracer, truth, 0.0, 0.002)
    heavy = tracer.check()
    shadow = heavy.filter(code="pipeline.shadow_overhead")[0]
    # the share outside the model, as the test's own clock saw it (a busy machine included)
    outside = 1 - sum(truth["model"]) / sum(truth["request"])
    assert shadow.value == pytest.approx(outside, abs=0.03)
    assert shadow.severity is (Severity.CRITICAL if shadow.value >= 0.8 else Severity.WARNING)
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
