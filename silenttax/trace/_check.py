"""The shadow-pipeline check: findings from a Breakdown, optionally against a baseline."""

from __future__ import annotations

from typing import Any, TypedDict

from silenttax._sketch import LatencySketch, quantile_interval
from silenttax.errors import InputError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_duration as _dur
from silenttax.trace._breakdown import Breakdown

__all__ = ["BreakdownPolicy", "check_breakdown"]


def _named(current: Breakdown, stage: str, *, quote: bool = False) -> str:
    """The stage, with the spans in it when they have other names: "logging (audit_log)"."""
    label = f"'{stage}'" if quote else stage
    spans = sorted(
        (name for name, s in current.spans.items() if s.stage == stage and name != stage),
        key=lambda name: -current.spans[name].self_total,
    )
    if not spans:
        return label
    more = f", +{len(spans) - 3} more" if len(spans) > 3 else ""
    return f"{label} ({', '.join(spans[:3])}{more})"


def _p50_ci(
    stats_sketch: LatencySketch, confidence: float
) -> tuple[float, tuple[float, float] | None]:
    return stats_sketch.quantile(0.5), quantile_interval(stats_sketch, 0.5, confidence)


class BreakdownPolicy(TypedDict, total=False):
    """The policy keywords of :func:`check_breakdown` (for ``Tracer.check(**policy)``)."""

    max_shadow_share: float
    critical_shadow_share: float
    min_effect: float
    critical_effect: float
    min_seconds: float
    confidence: float
    max_gc_share: float
    min_gc: float
    saturation: float


def check_breakdown(
    current: Breakdown,
    baseline: Breakdown | None = None,
    *,
    max_shadow_share: float = 0.5,
    critical_shadow_share: float = 0.8,
    min_effect: float = 0.05,
    critical_effect: float = 0.5,
    min_seconds: float = 50e-6,
    confidence: float = 0.95,
    max_gc_share: float = 0.05,
    min_gc: float = 20e-6,
    saturation: float = 0.9,
) -> Report:
    """Findings on where request time goes, and what changed against ``baseline``.

    - ``pipeline.shadow_overhead``: the share of request time outside the model
      stages; WARNING above ``max_shadow_share``, CRITICAL above
      ``critical_shadow_share``.
    - ``pipeline.stage_time`` per stage: its share and p50 per request; with a
      baseline, WARNING when the stage's p50 per request grew by a material
      amount (at least ``min_seconds`` and ``min_effect`` of the baseline
      request p50) **and** the confidence interval of the increase excludes
      zero (order-statistic intervals of both p50s, widened by the sketch
      resolution) — e.g. "audit_log added 0.80 ms ± 0.05 at p50"; CRITICAL
      when it added ``critical_effect`` of the baseline request p50 or more.
    - ``pipeline.new_stage``: a stage absent from the baseline, with the time it
      adds per request; ``pipeline.removed_stage`` for the reverse (INFO).
    - ``pipeline.request_time``: request p50 against the baseline.
    - ``pipeline.span_errors``: spans that ended with an exception.
    - ``pipeline.warmup``: a span whose first call took far longer than its p50.
    - ``pipeline.gc_pauses`` (runtime hints): WARNING per stage whose own time
      had garbage-collection pauses above ``max_gc_share`` of it and at least
      ``min_gc`` seconds per request; otherwise one OK finding with the total.
    - ``pipeline.threads`` (runtime hints): cores kept busy, OS threads and
      requests in flight (Little's law); WARNING when the CPU is saturated
      (``saturation`` of the usable cores) and requests in flight × intra-op
      threads exceed the cores, or when intra-op threads alone exceed them.

    The tracer's own cost per span is already subtracted from every figure.

    Args:
        current: The breakdown to judge.
        baseline: The breakdown to compare with (e.g. the previous release).
        max_shadow_share: Largest acceptable share of request time outside the model.
        critical_shadow_share: Share of request time outside the model that is CRITICAL.
        min_effect: Smallest material added time per request, as a share of the
            baseline request p50 (0.05 = 5%).
        critical_effect: Added time per request, as a share of the baseline
            request p50, that is CRITICAL.
        min_seconds: ... and never less than this many seconds per request.
        confidence: Confidence level of the intervals.
        max_gc_share: Largest acceptable share of a stage's time in GC pauses.
        min_gc: Smallest material GC time per request, seconds.
        saturation: Share of the usable cores above which the CPU counts as saturated.

    Raises:
        InputError: a setting is out of range.
    """
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence!r}")
    if not 0 < max_shadow_share <= critical_shadow_share <= 1:
        raise InputError(
            "need 0 < max_shadow_share <= critical_shadow_share <= 1, got "
            f"{max_shadow_share!r}, {critical_shadow_share!r}"
        )
    if not 0 <= min_effect <= critical_effect:
        raise InputError(
            f"need 0 <= min_effect <= critical_effect, got {min_effect!r}, {critical_effect!r}"
        )
    findings: list[Finding] = []
    if current.requests == 0:
        findings.append(
            make_finding(
                "pipeline.no_data",
                severity=Severity.INFO,
                subject="tracer",
                message="no request was traced, so nothing could be checked",
                detector="trace.check_breakdown",
            )
        )
        return Report(findings=findings, source="trace.check_breakdown")
    findings.append(_shadow(current, baseline, max_shadow_share, critical_shadow_share))
    if baseline is not None and baseline.requests:
        findings.append(_request_time(current, baseline, confidence))
    base_request_p50 = (
        LatencySketch.from_state(baseline.request_sketch).quantile(0.5)
        if baseline is not None and baseline.requests
        else 0.0
    )
    material = max(min_seconds, min_effect * base_request_p50)
    critical = max(min_seconds, critical_effect * base_request_p50)
    for stage in sorted(current.stages, key=lambda s: -current.stages[s].total):
        if baseline is None or not baseline.requests:
            findings.append(_stage_figures(current, stage))
        elif stage in baseline.stages:
            findings.append(_stage_vs(current, baseline, stage, material, critical, confidence))
        else:
            findings.append(_new_stage(current, stage, material))
    if baseline is not None:
        findings.extend(
            make_finding(
                "pipeline.removed_stage",
                severity=Severity.INFO,
                subject=stage,
                message=(
                    f"stage '{stage}' ({_dur(baseline.per_request(stage))} per request in the "
                    "baseline) no longer appears"
                ),
                metric="per_request",
                value=0.0,
                baseline=baseline.per_request(stage),
                unit="s",
                detector="trace.check_breakdown",
            )
            for stage in baseline.stages
            if stage not in current.stages
        )
    findings.extend(_errors(current))
    findings.extend(_warmups(current))
    if current.runtime_hints:
        findings.extend(_gc_pauses(current, max_gc_share, min_gc))
        findings.extend(_threads(current, saturation))
    return Report(
        findings=findings,
        source="trace.check_breakdown",
        context={
            "requests": current.requests,
            "baseline_requests": baseline.requests if baseline is not None else None,
            "overhead_per_span_s": current.overhead_per_span,
            "model_stages": list(current.model_stages),
        },
    )


def _shadow(
    current: Breakdown, baseline: Breakdown | None, limit: float, critical: float
) -> Finding:
    has_model = any(s in current.stages for s in current.model_stages)
    if not has_model:
        return make_finding(
            "pipeline.shadow_overhead",
            severity=Severity.INFO,
            subject="request",
            message=(
                f"no span has a model stage ({', '.join(current.model_stages)}), so the time "
                "outside the model cannot be told apart; mark the model call with "
                "stage='model'"
            ),
            detector="trace.check_breakdown",
        )
    shadow = 1.0 - current.model_share
    others = sorted(
        (s for s in current.stages if s not in current.model_stages),
        key=lambda s: -current.share(s),
    )
    top = ", ".join(f"{s} {current.share(s):.0%}" for s in others[:4])
    base_share = None
    if baseline is not None and baseline.requests:
        base_share = 1.0 - baseline.model_share
    severity = Severity.OK
    if shadow > critical:
        severity = Severity.CRITICAL
    elif shadow > limit:
        severity = Severity.WARNING
    message = f"{shadow:.0%} of request time is outside the model"
    if base_share is not None:
        message += f" (baseline {base_share:.0%})"
    if top:
        message += f": {top}"
    return make_finding(
        "pipeline.shadow_overhead",
        severity=severity,
        subject="request",
        message=message,
        metric="non_model_share",
        value=shadow,
        baseline=base_share,
        threshold=limit,
        evidence={"shares": {s: current.share(s) for s in current.stages}},
        recommendation=(
            "Most time is spent around the model: look at the largest stages above "
            "(serialization, validation, logging) before optimising the model itself."
            if severity >= Severity.WARNING
            else None
        ),
        detector="trace.check_breakdown",
    )


def _request_time(current: Breakdown, baseline: Breakdown, confidence: float) -> Finding:
    cur = LatencySketch.from_state(current.request_sketch)
    base = LatencySketch.from_state(baseline.request_sketch)
    value, ci = _p50_ci(cur, confidence)
    base_value, base_ci = _p50_ci(base, confidence)
    ratio = value / base_value if base_value > 0 else float("inf")
    slower = ci is not None and base_ci is not None and ci[0] > base_ci[1]
    return make_finding(
        "pipeline.request_time",
        severity=Severity.INFO if slower else Severity.OK,
        subject="request",
        message=(
            f"request p50 {_dur(value)} vs baseline {_dur(base_value)} ({(ratio - 1) * 100:+.0f}%)"
        ),
        metric="p50",
        value=value,
        baseline=base_value,
        unit="s",
        effect_size=ratio,
        evidence={
            "ci": list(ci) if ci else None,
            "baseline_ci": list(base_ci) if base_ci else None,
        },
        detector="trace.check_breakdown",
    )


def _stage_figures(current: Breakdown, stage: str) -> Finding:
    stats = current.stages[stage]
    p = current.quantiles(stage)
    return make_finding(
        "pipeline.stage_time",
        severity=Severity.OK,
        subject=stage,
        message=(
            f"stage '{stage}': {current.share(stage):.1%} of request time, "
            f"{_dur(current.per_request(stage))} per request on average, p50 {_dur(p['p50'])}, "
            f"p99 {_dur(p['p99'])} ({stats.requests} of {current.requests} requests)"
        ),
        metric="share",
        value=current.share(stage),
        evidence={"per_request": current.per_request(stage), **p},
        detector="trace.check_breakdown",
    )


def _stage_vs(
    current: Breakdown,
    baseline: Breakdown,
    stage: str,
    material: float,
    critical: float,
    confidence: float,
) -> Finding:
    cur = LatencySketch.from_state(current.stages[stage].sketch)
    base = LatencySketch.from_state(baseline.stages[stage].sketch)
    value, ci = _p50_ci(cur, confidence)
    base_value, base_ci = _p50_ci(base, confidence)
    added = value - base_value
    common: dict[str, Any] = {
        "subject": stage,
        "metric": "p50_per_request",
        "value": value,
        "baseline": base_value,
        "threshold": base_value + material,
        "unit": "s",
        "effect_size": added,
        "detector": "trace.check_breakdown",
    }
    if ci is None or base_ci is None:
        return make_finding(
            "pipeline.stage_time",
            severity=Severity.INFO,
            message=(
                f"stage '{stage}': p50 {_dur(value)} vs baseline {_dur(base_value)}; too few "
                "requests to judge with confidence"
            ),
            **common,
        )
    lo, hi = ci[0] - base_ci[1], ci[1] - base_ci[0]
    half = (hi - lo) / 2
    evidence = {"added_ci": [lo, hi], "ci": list(ci), "baseline_ci": list(base_ci)}
    if lo > 0 and added >= material:
        return make_finding(
            "pipeline.stage_time",
            severity=Severity.CRITICAL if added >= critical else Severity.WARNING,
            message=(
                f"{_named(current, stage)} added {_dur(added)} ± {_dur(half)} at p50 per request "
                f"({_dur(base_value)} -> {_dur(value)}); now {current.share(stage):.0%} of "
                "request time"
            ),
            evidence=evidence,
            recommendation=(
                f"Find what changed in '{stage}' (a new decorator, a second serialization, "
                "a validation 'just to be safe') and remove or batch it."
            ),
            **common,
        )
    return make_finding(
        "pipeline.stage_time",
        severity=Severity.OK,
        message=(
            f"stage '{stage}': p50 {_dur(value)} vs baseline {_dur(base_value)} "
            f"({_dur(added)} ± {_dur(half)}): no material growth"
        ),
        evidence=evidence,
        **common,
    )


def _new_stage(current: Breakdown, stage: str, material: float) -> Finding:
    stats = current.stages[stage]
    per_request = current.per_request(stage)
    p50 = LatencySketch.from_state(stats.sketch).quantile(0.5)
    presence = stats.requests / current.requests
    severity = Severity.WARNING if per_request >= material else Severity.INFO
    return make_finding(
        "pipeline.new_stage",
        severity=severity,
        subject=stage,
        message=(
            f"new stage {_named(current, stage, quote=True)} adds {_dur(p50)} at p50 where it "
            f"runs ({presence:.0%} of "
            f"requests), {_dur(per_request)} per request on average: "
            f"{current.share(stage):.0%} of request time"
        ),
        metric="per_request",
        value=per_request,
        baseline=0.0,
        threshold=material,
        unit="s",
        evidence={"p50": p50, "presence": presence},
        recommendation=(
            f"'{stage}' was not in the baseline: check it is needed on the request path."
            if severity is Severity.WARNING
            else None
        ),
        detector="trace.check_breakdown",
    )


def _errors(current: Breakdown) -> list[Finding]:
    return [
        make_finding(
            "pipeline.span_errors",
            severity=Severity.WARNING,
            subject=name,
            message=(
                f"{stats.errors} of {stats.count} '{name}' spans ended with an exception "
                f"({stats.errors / stats.count:.1%})"
            ),
            metric="error_rate",
            value=stats.errors / stats.count,
            detector="trace.check_breakdown",
        )
        for name, stats in current.spans.items()
        if stats.errors
    ]


def _warmups(current: Breakdown) -> list[Finding]:
    """Spans whose first call's *own* time (not its children's) dwarfs the rest."""
    out = []
    for name, stats in current.spans.items():
        if stats.first is None or stats.first_self is None or stats.count < 20:
            continue
        rest_self = (stats.self_total - stats.first_self) / (stats.count - 1)
        p50 = LatencySketch.from_state(stats.sketch).quantile(0.5)
        excess = stats.first_self - rest_self
        if excess > 1e-3 and stats.first_self > 10 * max(rest_self, 1e-9):
            out.append(
                make_finding(
                    "pipeline.warmup",
                    severity=Severity.INFO,
                    subject=name,
                    message=(
                        f"the first '{name}' call took {_dur(stats.first)}, "
                        f"{stats.first / p50:.0f}x its p50 of {_dur(p50)} (warm-up: lazy "
                        "initialisation, JIT or cache fill)"
                    ),
                    metric="first_call",
                    value=stats.first,
                    baseline=p50,
                    unit="s",
                    recommendation="Warm the model up before taking traffic.",
                    detector="trace.check_breakdown",
                )
            )
    return out


def _gc_pauses(current: Breakdown, max_share: float, min_per_request: float) -> list[Finding]:
    """Stages whose own time was eaten by garbage-collection pauses."""
    out = []
    for stage, stats in sorted(current.stages.items(), key=lambda kv: -kv[1].gc_total):
        share = stats.gc_total / stats.total if stats.total > 0 else 0.0
        per_request = stats.gc_total / current.requests
        if share >= max_share and per_request >= min_per_request:
            out.append(
                make_finding(
                    "pipeline.gc_pauses",
                    severity=Severity.WARNING,
                    subject=stage,
                    message=(
                        f"garbage collection took {share:.0%} of stage '{stage}' "
                        f"({_dur(per_request)} per request)"
                    ),
                    metric="gc_share",
                    value=share,
                    threshold=max_share,
                    evidence={"gc_per_request": per_request, "gc_total": stats.gc_total},
                    recommendation=(
                        "Call gc.freeze() once the model is loaded (long-lived objects leave "
                        "the collected generations), raise gc.set_threshold(), or create fewer "
                        "Python objects per request."
                    ),
                    detector="trace.check_breakdown",
                )
            )
    if out:
        return out
    total = current.gc_total
    share = total / current.attributed_total if current.attributed_total > 0 else 0.0
    return [
        make_finding(
            "pipeline.gc_pauses",
            severity=Severity.OK,
            subject="request",
            message=(
                f"garbage collection took {_dur(total / current.requests)} per request "
                f"({share:.1%} of request time)"
            ),
            metric="gc_share",
            value=share,
            threshold=max_share,
            detector="trace.check_breakdown",
        )
    ]


def _threads(current: Breakdown, saturation: float) -> list[Finding]:
    """CPU saturation with more compute threads wanted than there are cores."""
    if current.wall_time <= 0 or current.cores <= 0:
        return []
    cores, busy, in_flight = current.cores, current.busy_cores, current.concurrency
    intra = current.intra_op_threads
    saturated = busy >= saturation * cores
    figures = (
        f"{busy:.1f} of {cores} cores busy, {current.max_threads} threads, "
        f"~{in_flight:.1f} requests in flight"
    )
    evidence: dict[str, Any] = {
        "busy_cores": busy,
        "cores": cores,
        "max_threads": current.max_threads,
        "requests_in_flight": in_flight,
        "intra_op_threads": intra,
    }
    fix = (
        "Size the compute threads to the cores: torch.set_num_threads() (or OMP_NUM_THREADS) "
        "so that requests in flight x threads per call <= cores, e.g. 1 thread per call when "
        "serving requests concurrently."
    )
    severity, message, recommendation = Severity.OK, figures, None
    if intra is not None and intra > cores:
        severity = Severity.WARNING
        message = f"{intra} intra-op threads per model call on {cores} usable cores ({figures})"
        recommendation = fix
    elif saturated and intra is not None and max(in_flight, 1.0) * intra > cores:
        severity = Severity.WARNING
        message = (
            f"CPU saturated and oversubscribed: ~{max(in_flight, 1.0):.1f} requests in flight x "
            f"{intra} intra-op threads on {cores} cores ({figures})"
        )
        recommendation = fix
    elif saturated:
        severity = Severity.INFO
        message = f"CPU saturated ({figures})"
        recommendation = "Check the thread pools of the model runtime and the server."
    return [
        make_finding(
            "pipeline.threads",
            severity=severity,
            subject="process",
            message=message,
            metric="busy_cores",
            value=busy,
            threshold=saturation * cores,
            evidence=evidence,
            recommendation=recommendation,
            detector="trace.check_breakdown",
        )
    ]
