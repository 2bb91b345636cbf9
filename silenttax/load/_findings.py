"""Findings of the load tools (codes ``load.*``, category ``stability``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from silenttax.report import Report, Severity
from silenttax.report._codes import make_finding

if TYPE_CHECKING:
    from silenttax.load._capacity import CapacityResult
    from silenttax.load._compare import CapacityComparison
    from silenttax.load._generator import LoadRun
    from silenttax.load._soak import SoakResult

DETECTOR = "load"
TAIL_LIMIT = 3.0  # p99 at capacity / at light load: WARNING at or above


def _ms(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    return f"{seconds * 1e3:.3g} ms"


def _generator(run: LoadRun) -> list[Any]:
    """``load.generator_bound`` when the run is invalid; ``load.machine_busy`` if contended."""
    out = []
    f = run.figures()
    if not run.valid:
        null = f["null_lag_p99"]
        out.append(make_finding(
            "load.generator_bound", severity=Severity.WARNING, subject=run.target,
            message=(
                f"the generator ran late: lag p99 {_ms(run.lag_p99)} is over "
                f"{_ms(run.max_lag)} at {run.rate:g}/s"
                + (f" (alone on this machine it lags {_ms(null)})" if null is not None else "")
                + ": the run is invalid, not a verdict on the target"
            ),
            metric="lag_p99", value=run.lag_p99, threshold=run.max_lag, unit="s",
            evidence={k: f[k] for k in ("lag_p50", "lag_p99", "null_lag_p99", "rate",
                                        "generator_cpu_per_request", "machine")},
            recommendation=(
                "The target holds the GIL the generator needs (its own lag alone is "
                f"{_ms(null)}): drive it in worker processes "
                "(silenttax.load.worker_process(fn, processes=N)) or through a server."
                if run.kind == "callable" and null is not None and null <= run.max_lag
                and not (run.load is not None and run.load.contended)
                else "Lower the rate, stop what competes for the CPU, drive a GIL-holding "
                "callable in worker processes (silenttax.load.worker_process) or through a "
                "server, or run the generator from another machine."
            ),
            detector=DETECTOR,
        ))  # fmt: skip
    if run.load is not None and run.load.contended:
        out.append(make_finding(
            "load.machine_busy", severity=Severity.WARNING, subject=run.target,
            message=(
                f"other processes used {run.load.other_cores or 0:.2g} cores during the run "
                f"(stall {run.load.stall or 0:.0%} of the time): timings include them"
            ),
            evidence=run.load.as_dict(), detector=DETECTOR,
        ))  # fmt: skip
    return out


def _errors(subject: str, counts: dict[str, int], requests: int, rate: float) -> list[Any]:
    failed = {k: v for k, v in counts.items() if k != "ok" and v}
    if not failed:
        return []
    total = sum(failed.values())
    share = total / max(1, requests)
    return [make_finding(
        "load.errors", severity=Severity.WARNING, subject=subject,
        message=(
            f"{total:,} of {requests:,} requests failed at {rate:g}/s ({share:.2%}): "
            + ", ".join(f"{v:,} {k}" for k, v in sorted(failed.items()))
        ),
        metric="failure_share", value=share,
        evidence={"outcomes": counts, "rate": rate, "requests": requests}, detector=DETECTOR,
    )]  # fmt: skip


def run_findings(run: LoadRun, *, slo_p99: float | None = None) -> Report:
    """One run: its p99 (against ``slo_p99`` when given), errors, validity, the machine."""
    f = run.figures()
    findings = _generator(run) + _errors(run.target, f["outcomes"], run.requests, run.rate)
    if slo_p99 is not None and run.valid:
        e = run.exceedance(slo_p99)
        over = e.low > 0.01
        within = e.high <= 0.01
        severity = Severity.WARNING if over else Severity.OK if within else Severity.INFO
        findings.append(make_finding(
            "load.capacity", severity=severity, subject=run.target,
            message=(
                f"at {run.rate:g}/s p99 is {_ms(run.p99)} against a {_ms(slo_p99)} SLO: "
                f"{e.share:.2%} over it (95% bounds {e.low:.2%}-{e.high:.2%}, "
                f"{e.clusters} clusters)"
                + ("" if over or within else ": inconclusive, a longer run would decide")
            ),
            metric="p99", value=run.p99 if math.isfinite(run.p99) else None, threshold=slo_p99,
            unit="s", evidence=f, detector=DETECTOR,
        ))  # fmt: skip
    return Report(findings=findings, context={"load_run": f})


def capacity_findings(result: CapacityResult, *, required_rate: float | None = None) -> Report:
    """``load.capacity`` and the shape of the curve (knee, tail amplification)."""
    figures = result.figures()
    subject = result.target
    findings = []
    if result.verdict == "pass" and result.ci is not None and result.capacity is not None:
        low, high = result.ci
        below = required_rate is not None and low < required_rate
        findings.append(make_finding(
            "load.capacity", severity=Severity.WARNING if below else Severity.OK,
            subject=subject,
            message=(
                f"capacity {result.capacity:.4g}/s at p{result.quantile * 100:g} <= "
                f"{_ms(result.slo_p99)} (safe {low:.4g}/s confirmed, "
                + (f"over it from {high:.4g}/s" if math.isfinite(high) else "upper end open")
                + ")"
                + (f": below the required {required_rate:g}/s" if below else "")
            ),
            metric="capacity", value=result.capacity, threshold=required_rate,
            evidence=figures, detector=DETECTOR,
        ))  # fmt: skip
    elif result.verdict == "fail":
        findings.append(make_finding(
            "load.capacity", severity=Severity.CRITICAL, subject=subject,
            message=f"no rate met the SLO of {_ms(result.slo_p99)}: {result.reason}",
            metric="capacity", value=0.0, threshold=required_rate, evidence=figures,
            detector=DETECTOR,
        ))  # fmt: skip
    else:
        code = "load.generator_bound" if result.verdict == "invalid" else "load.inconclusive"
        findings.append(make_finding(
            code, severity=Severity.WARNING if result.verdict == "invalid" else Severity.INFO,
            subject=subject,
            message=f"capacity not established: {result.reason}",
            evidence=figures, detector=DETECTOR,
        ))  # fmt: skip
    if result.knee is not None and result.light_p99 is not None:
        findings.append(make_finding(
            "load.knee", severity=Severity.INFO, subject=subject,
            message=(
                f"p99 more than doubles from {result.knee:.4g}/s "
                f"(light load {_ms(result.light_p99)})"
            ),
            metric="knee", value=result.knee, evidence={"curve": figures["curve"]},
            detector=DETECTOR,
        ))  # fmt: skip
    if result.tail_amplification is not None:
        amp = result.tail_amplification
        findings.append(make_finding(
            "load.tail_amplification",
            severity=Severity.WARNING if amp >= TAIL_LIMIT else Severity.OK, subject=subject,
            message=f"p99 at the safe capacity is {amp:.2f}x the light-load p99",
            metric="tail_amplification", value=amp, threshold=TAIL_LIMIT,
            detector=DETECTOR,
        ))  # fmt: skip
    bound = [p for p in result.curve if p.verdict == "invalid"]
    if bound and result.verdict != "invalid":
        findings.append(make_finding(
            "load.generator_bound", severity=Severity.INFO, subject=subject,
            message=(
                f"the generator could not drive {min(p.rate for p in bound):.4g}/s here: "
                "rates above it were not judged"
            ),
            evidence={"rates": [p.rate for p in bound]}, detector=DETECTOR,
        ))  # fmt: skip
    failing = [p for p in result.curve if p.errors.exceeding]
    if failing:
        worst = max(failing, key=lambda p: p.errors.share)
        findings.append(make_finding(
            "load.errors", severity=Severity.WARNING, subject=subject,
            message=(
                f"requests failed under load from {min(p.rate for p in failing):.4g}/s "
                f"(worst {worst.errors.share:.2%} at {worst.rate:.4g}/s)"
            ),
            metric="failure_share", value=worst.errors.share,
            evidence={"rates": [p.rate for p in failing]}, detector=DETECTOR,
        ))  # fmt: skip
    return Report(findings=findings, context={"capacity": figures})


def comparison_findings(result: CapacityComparison) -> Report:
    """``load.regression``: pass (OK), regression (WARNING), inconclusive (INFO)."""
    figures = result.figures()
    severity = {"pass": Severity.OK, "regression": Severity.WARNING}.get(
        result.verdict, Severity.INFO
    )
    if result.ratio is not None and result.ci is not None:
        text = (
            f"capacity ratio candidate / baseline {result.ratio:.3f} "
            f"[{result.ci[0]:.3f}, {result.ci[1]:.3f}] (tolerance -{result.tolerance:.0%}): "
            f"{result.verdict}"
        )
    else:
        text = f"capacities not compared: {result.reason}"
    if result.reason and result.ratio is not None:
        text += f" — {result.reason}"
    findings = [make_finding(
        "load.regression", severity=severity, subject=f"{result.candidate} vs {result.baseline}",
        message=text, metric="capacity_ratio", value=result.ratio,
        threshold=1 - result.tolerance, evidence=figures, detector=DETECTOR,
    )]  # fmt: skip
    return Report(findings=findings, context={"comparison": figures, "verdict": result.verdict})


def soak_findings(result: SoakResult) -> Report:
    """``load.memory_growth`` (WARNING when the interval is above 0 and the slope above
    ``min_growth`` MB per 1000 requests) and ``load.p99_drift``."""
    findings = _generator(result.run) + _errors(
        result.run.target, result.run.counts(), result.run.requests, result.run.rate
    )
    m = result.memory
    if m is None:
        findings.append(make_finding(
            "load.inconclusive", severity=Severity.INFO, subject=result.run.target,
            message="too few memory readings for a slope: soak longer", detector=DETECTOR,
        ))  # fmt: skip
    else:
        grows = m.low > 0 and m.value > result.min_growth
        findings.append(make_finding(
            "load.memory_growth", severity=Severity.WARNING if grows else Severity.OK,
            subject=result.run.target,
            message=(
                f"resident memory {'grows' if grows else 'changes'} {m.value:+.3g} MB per 1000 "
                f"requests [{m.low:+.3g}, {m.high:+.3g}] at {result.run.rate:g}/s"
            ),
            metric="mb_per_1k_requests", value=m.value, threshold=result.min_growth,
            evidence=result.figures(), detector=DETECTOR,
        ))  # fmt: skip
    p = result.p99
    if p is not None:
        drifts = p.low > 0
        findings.append(make_finding(
            "load.p99_drift", severity=Severity.WARNING if drifts else Severity.OK,
            subject=result.run.target,
            message=(
                f"window p99 {'drifts' if drifts else 'changes'} {p.value * 1e3:+.3g} ms per "
                f"1000 requests [{p.low * 1e3:+.3g}, {p.high * 1e3:+.3g}]"
            ),
            metric="p99_s_per_1k_requests", value=p.value, unit="s", detector=DETECTOR,
        ))  # fmt: skip
    return Report(findings=findings, context={"soak": result.figures()})
