"""The text and fields of the drift findings (one function per kind of finding)."""

from __future__ import annotations

from typing import Any

from silenttax._input import NUMERIC_KINDS
from silenttax._summary import CategoricalSummary, NumericSummary
from silenttax.drift._policy import _Verdict
from silenttax.report import Finding, Severity
from silenttax.report._codes import make_finding

_METRICS = {
    "Wasserstein distance in reference sd": "wasserstein_sd",
    "total variation distance": "tv_distance",
    "|Cohen's h|": "cohens_h",
}


def _metric_name(effect_name: str) -> str:
    """The finding's ``metric``: a short name of the effect its ``value`` holds."""
    known = _METRICS.get(effect_name)
    return (
        known
        or "_".join("".join(ch if ch.isalnum() else " " for ch in effect_name).split()).lower()
    )


def test_finding(judged: _Verdict, correction: str) -> Finding:
    """The ``drift.*`` finding of one test: effect and floor like for like, the p-value
    the verdict used, the test statistic and raw p-value in the evidence."""
    c, severity, p_adj, floor = judged.candidate, judged.severity, judged.p_adjusted, judged.floor
    r = c.result
    code = c.code
    p_text = ""
    if r.p_value is not None:
        p_text = f" (p = {r.p_value:.2g}"
        if p_adj is not None and correction != "none":
            p_text += f", {correction}-adjusted {p_adj:.2g}"
        p_text += ")"
    if c.kind == "distribution":
        what = f"{r.method} {r.statistic:.4g}{p_text}; effect {c.effect:.3g} ({c.effect_name})"
    else:
        rate_r, rate_c = r.details["rate_reference"], r.details["rate_current"]
        label = "missing" if c.kind == "null_rate" else "non-finite"
        what = f"{label} rate {rate_r:.2%} -> {rate_c:.2%}{p_text}"
    verdict = {
        Severity.OK: "no drift",
        Severity.INFO: f"detectable but below the {floor:g} materiality threshold",
        Severity.WARNING: "drifted",
        Severity.CRITICAL: "drifted strongly",
    }[severity]
    recommendation = None
    if severity >= Severity.WARNING:
        recommendation = (
            f"Check the source of '{c.column}' (pipeline change, upstream schema, new "
            "traffic); retrain or recalibrate if the shift is real."
            if c.kind == "distribution"
            else f"Find why '{c.column}' is "
            f"{'missing' if c.kind == 'null_rate' else 'non-finite'} more often; imputation "
            "hides it from the model's metrics."
        )
    adjusted = p_adj is not None and correction != "none"
    evidence: dict[str, Any] = {
        "test": r.method,
        "statistic": r.statistic,
        "p_value_raw": r.p_value,
        "p_value_adjustment": correction if adjusted else "none",
        "n_reference": r.n_reference,
        "n_current": r.n_current,
        "p_value_adjusted": p_adj,
        "effect": c.effect_name,
        "test_effect": r.effect_size,
        **r.details,
    }
    if c.histogram is not None:
        evidence["histogram"] = c.histogram
    # value and threshold are like for like (the effect and its materiality floor);
    # p_value is the one the verdict used (adjusted across the check's tests)
    return make_finding(
        code,
        severity=severity,
        subject=c.column,
        message=f"'{c.column}': {what}: {verdict}",
        metric=_metric_name(c.effect_name),
        value=c.effect,
        threshold=floor,
        p_value=p_adj if adjusted else r.p_value,
        effect_size=c.effect,
        evidence=evidence,
        recommendation=recommendation,
        detector="drift.DriftDetector",
    )


def missing(name: str) -> Finding:
    return make_finding(
        "drift.missing_column",
        severity=Severity.CRITICAL,
        subject=name,
        message=f"column '{name}' is in the reference but missing from the current data",
        recommendation=(
            "Restore the column upstream; the model is receiving a default or failing."
        ),
        detector="drift.DriftDetector",
    )


def retyped(name: str, how: dict[str, Any]) -> Finding:
    share = how["parsed_share"]
    if how["from"] in NUMERIC_KINDS or share >= 0.99:
        severity = Severity.WARNING
        message = (
            f"'{name}' arrived as {how['from']} instead of {how['to']}; "
            f"{share:.0%} of values could be read as {how['to']}, tested after conversion"
        )
    else:
        severity = Severity.CRITICAL
        message = (
            f"'{name}' arrived as {how['from']} instead of {how['to']}; only {share:.0%} of "
            "values could be converted"
        )
    if how.get("example"):
        message += f" (e.g. {how['example']!r})"
    return make_finding(
        "drift.type_change",
        severity=severity,
        subject=name,
        message=message,
        metric="parsed_share",
        value=share,
        evidence={k: v for k, v in how.items() if isinstance(v, str | int | float | type(None))},
        recommendation=("Fix the type upstream: silenttax.features.FeatureHealth names the decay."),
        detector="drift.DriftDetector",
    )


def all_null(
    name: str,
    ref: NumericSummary | CategoricalSummary,
    cur: NumericSummary | CategoricalSummary,
) -> Finding:
    return make_finding(
        "drift.all_null",
        severity=Severity.CRITICAL,
        subject=name,
        message=(
            f"'{name}' has no usable value in the current data ({cur.rows} rows, all missing "
            f"or non-finite; reference null rate {ref.nulls / max(ref.rows, 1):.1%})"
        ),
        metric="usable_rows",
        value=0.0,
        baseline=float(ref.count),
        recommendation="The feature is gone: the model sees only imputed values.",
        detector="drift.DriftDetector",
    )


def dataset(
    findings: list[Finding],
    *,
    columns: int,
    rows: int,
    reference_rows: int,
    correction: str,
    alpha: float,
) -> Finding:
    """``drift.dataset``: how many columns drifted, at the worst column's severity."""
    judged = [f for f in findings if f.code != "drift.dataset"]
    drifted = sorted({f.subject for f in judged if f.severity >= Severity.WARNING})
    worst = max((f.severity for f in judged), default=Severity.OK)
    total = columns
    untested = sorted({f.subject for f in judged if f.code == "drift.skipped"})
    message = (
        f"{len(drifted)} of {total} columns drifted"
        + (f": {', '.join(drifted[:8])}{' ...' if len(drifted) > 8 else ''}" if drifted else "")
        + (f"; {len(untested)} not tested" if untested else "")
        + f" ({rows} current rows vs {reference_rows} reference rows, {correction} at "
        f"alpha {alpha:g})"
    )
    return make_finding(
        "drift.dataset",
        severity=worst,
        subject="dataset",
        message=message,
        metric="drifted_columns",
        value=float(len(drifted)),
        threshold=0.0,
        evidence={"drifted": drifted, "columns": total, "untested": untested},
        detector="drift.DriftDetector",
    )


def summarised_as(name: str, how: dict[str, Any]) -> Finding:
    """``drift.type_change`` for a column whose current *summary* is of another kind:
    summaries cannot be converted, so the column is not tested."""
    return make_finding(
        "drift.type_change",
        severity=Severity.CRITICAL,
        subject=name,
        message=(
            f"'{name}' was summarised as {how['from']} instead of {how['to']}: not tested "
            "(summaries of another kind cannot be converted; check the raw data to test it "
            "after conversion)"
        ),
        evidence=how,
        recommendation="Fix the type upstream: silenttax.features.FeatureHealth names the decay.",
        detector="drift.DriftDetector",
    )
