"""Findings from series of rollups: ``history.creep``, ``history.change_point``,
``history.trend`` (OK), ``history.gap`` and ``history.no_data``.

The statistics are :mod:`silenttax.history._trend`'s. Across the series of one report the
family p-values (each already holding its weekly looks) are adjusted by Holm, so a report
over 40 figures still raises a false creep on at most ``alpha`` of quiet quarters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from silenttax._stats import adjust
from silenttax.errors import InputError
from silenttax.history._store import DAY, Marker, Series, _iso
from silenttax.history._trend import change_point, trend_test
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding

__all__ = ["check_series", "check_trend", "default_metrics", "direction_of"]

DEFAULT_METRICS = (
    "latency.p99",
    "cost.per_1k",
    "feature.null_rate",
    "serving.error_rate",
    "pipeline.non_model_share",
)
"""What :meth:`History.trend` judges when no figure is named."""
_DOWN = ("throughput", "utilization", "capacity", "accuracy")


def default_metrics(tracked: Sequence[str]) -> list[str]:
    """The default figures among ``tracked``."""
    return [name for name in DEFAULT_METRICS if name in tracked]


def direction_of(name: str) -> str:
    """Which way is worse for a figure: ``"down"`` for throughput, utilisation,
    capacity and accuracy, ``"up"`` otherwise."""
    return "down" if any(word in name for word in _DOWN) else "up"


def _describe(series: Series) -> str:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(series.labels.items()))
    return f"{series.name}" + (f" ({labels})" if labels else "")


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
    if unit == "share":
        return f"{value:.2%}"
    return f"{value:.4g}" + (f" {unit}" if unit else "")


def _nearest(markers: Sequence[Marker], at: float, within: float) -> Marker | None:
    close = [m for m in markers if abs(m.at - at) <= within]
    return min(close, key=lambda m: abs(m.at - at)) if close else None


def _marker_text(marker: Marker | None) -> str:
    if marker is None:
        return ""
    what = marker.meta.get("version") or marker.meta.get("fingerprint") or ""
    return f", at {marker.kind}" + (f" {what}" if what else "") + f" ({marker.when})"


def check_trend(
    series: Series,
    *,
    alpha: float = 0.05,
    looks: int = 13,
    margin: float = 0.01,
    limit: float | None = None,
    direction: str | None = None,
    markers: Sequence[Marker] = (),
    min_points: int = 28,
) -> Report:
    """Findings for one series (see :func:`check_series`)."""
    return check_series(
        [series], alpha=alpha, looks=looks, margin=margin, markers=markers,
        limits={} if limit is None else {series.name: limit},
        directions={} if direction is None else {series.name: direction},
        min_points=min_points,
    )  # fmt: skip


def check_series(
    series: Sequence[Series],
    *,
    alpha: float = 0.05,
    looks: int = 13,
    margin: float = 0.01,
    markers: Sequence[Marker] = (),
    limits: Mapping[str, float] | None = None,
    directions: Mapping[str, str] | None = None,
    min_points: int = 28,
) -> Report:
    """Creep and change points of several series of rollups, as one Report.

    Per series: ``history.creep`` (WARNING; CRITICAL when its limit is already crossed
    or projected to be within 30 days) when the sieve-bootstrap rank trend holds at the
    family level after Holm over the series **and** the Theil-Sen slope is over
    ``margin`` per 30 days, with the slope's interval, the change over the window and
    the date the fitted line crosses ``limits[name]``; then ``history.change_point`` when
    one split explains it (E-divisive p <= ``alpha`` and two flat levels fit better than
    the line): the first day of the new level, its size with an interval, the nearest
    marker. Otherwise one ``history.trend`` OK with
    the slope. ``history.gap`` (INFO) when over 10% of the window's periods are missing;
    ``history.no_data`` (INFO) under ``min_points`` points.

    Raises:
        InputError: a bad ``alpha``, ``looks``, ``margin`` or direction.
    """
    if not 0 < alpha < 1 or looks < 1 or not (margin >= 0 and math.isfinite(margin)):
        raise InputError(
            f"need 0 < alpha < 1, looks >= 1, margin >= 0; got {alpha!r}, {looks!r}, {margin!r}"
        )
    limits, directions = dict(limits or {}), dict(directions or {})
    findings: list[Finding] = []
    tested: list[tuple[Series, Any]] = []
    for s in series:
        finite = [v for v in s.values if v is not None and math.isfinite(v)]
        if len(finite) < min_points:
            findings.append(_short(s, min_points))
            continue
        direction = directions.get(s.name) or direction_of(s.name)
        result = trend_test(s.times, s.values, direction=direction, alpha=alpha, looks=looks,
                            margin=margin, min_points=min_points)  # fmt: skip
        tested.append((s, result))
        findings += _gaps(s)
    adjusted = adjust([r.p_family for _, r in tested], "holm")
    for (s, result), p in zip(tested, adjusted, strict=True):
        sign = 1.0 if result.direction == "up" else -1.0
        worse = sign * result.slope_per_30d > margin
        if p <= alpha and worse:
            findings += _creep(s, result, p, alpha, limits.get(s.name), markers)
        else:
            findings.append(_steady(s, result, p))
    return Report(findings=findings, source="history.trend")


def _short(s: Series, min_points: int) -> Finding:
    """``history.no_data``: too few points for a trend — with the path so far (the latest
    against the previous and the first: a quarterly audit's comparison)."""
    points = [(t, v) for t, v in zip(s.times, s.values, strict=True) if math.isfinite(v)]
    text = f"{_describe(s)}: {len(points)} {s.resolution} points, a trend needs {min_points}"
    evidence: dict[str, Any] = {"points": len(points), "series": chart_series(s)}
    if len(points) >= 2:
        first, previous, latest = points[0][1], points[-2][1], points[-1][1]
        path = " -> ".join(f"{_fmt(v, s.unit)} ({_iso(t)})" for t, v in points[-4:])
        text += f"; so far {path}"
        for name, v in (("previous", previous), ("first", first)):
            if v:
                evidence[f"change_since_{name}"] = latest / v - 1
                text += f", {latest / v - 1:+.1%} since the {name}"
            if name == "previous" and len(points) == 2:
                break
    return make_finding(
        "history.no_data", severity=Severity.INFO, subject=_describe(s), message=text,
        metric="points", value=float(len(points)), threshold=float(min_points),
        evidence=evidence, detector="history.check_series",
    )  # fmt: skip


def _gaps(s: Series) -> list[Finding]:
    step = {"1d": DAY, "1h": 3600.0}.get(s.resolution)
    if step is None or len(s.times) < 2:
        return []
    expected = round((s.times[-1] - s.times[0]) / step) + 1
    missing = expected - len(s.times)
    if missing <= 0.1 * expected:
        return []
    return [make_finding(
        "history.gap", severity=Severity.INFO, subject=_describe(s),
        message=f"{_describe(s)}: {missing} of {expected} {s.resolution} periods have no "
                "snapshot (judged on the rest)",
        metric="missing_periods", value=float(missing), threshold=0.1 * expected,
        detector="history.check_series",
    )]  # fmt: skip


def _slope_text(result: Any) -> str:
    lo, hi = result.slope_ci
    if result.log_scale:
        return f"{result.slope_per_30d:+.1%} per 30 days [{lo:+.1%}, {hi:+.1%}]"
    return f"{result.slope_per_30d:+.4g} per 30 days [{lo:+.4g}, {hi:+.4g}]"


def _steady(s: Series, result: Any, p: float) -> Finding:
    return make_finding(
        "history.trend", severity=Severity.OK, subject=_describe(s),
        message=f"{_describe(s)}: {_slope_text(result)} over {result.n} {s.resolution} "
                f"points, p {p:.2g} (Holm): no creep",
        metric="slope_per_30d", value=result.slope_per_30d, threshold=result.margin,
        evidence={**_evidence(result, p), "series": chart_series(s),
                  "fit": [s.times[0], result.start_level, s.times[-1], result.end_level]},
        detector="history.check_series",
    )  # fmt: skip


CHART_POINTS = 200
"""Most points of a series kept in a finding's evidence for its chart (min and max of
each of 100 buckets: the chart's size does not grow with the history)."""


def chart_series(s: Series) -> dict[str, Any]:
    """``s`` reduced to at most ``CHART_POINTS`` points (each bucket's min and max)."""
    pts = [(t, v) for t, v in zip(s.times, s.values, strict=True) if math.isfinite(v)]
    if len(pts) > CHART_POINTS:
        size = len(pts) / (CHART_POINTS // 2)
        kept: list[tuple[float, float]] = []
        for b in range(CHART_POINTS // 2):
            bucket = pts[int(b * size) : int((b + 1) * size)]
            if bucket:
                low, high = min(bucket, key=lambda p: p[1]), max(bucket, key=lambda p: p[1])
                kept += sorted({low, high})
        pts = kept
    return {"t": [t for t, _ in pts], "v": [v for _, v in pts], "unit": s.unit}


def _evidence(result: Any, p: float) -> dict[str, Any]:
    return {
        "points": result.n,
        "slope_per_30d": result.slope_per_30d,
        "slope_ci": list(result.slope_ci),
        "log_scale": result.log_scale,
        "direction": result.direction,
        "rho": result.rho,
        "p_value": result.p_value,
        "p_family": result.p_family,
        "p_adjusted": p,
        "phi": result.phi,
        "start": result.start_level,
        "end": result.end_level,
    }


def _creep(
    s: Series, result: Any, p: float, alpha: float, limit: float | None, markers: Sequence[Marker]
) -> list[Finding]:
    evidence = _evidence(result, p)
    evidence["series"] = chart_series(s)
    evidence["fit"] = [s.times[0], result.start_level, s.times[-1], result.end_level]
    evidence["markers"] = [
        [m.at, f"{m.kind} {m.meta.get('version', '')}".strip()]
        for m in markers
        if s.times[0] <= m.at <= s.times[-1]
    ]
    change = (
        result.end_level / result.start_level - 1
        if result.log_scale and result.start_level
        else None
    )
    text = (
        f"{_describe(s)} crept {_slope_text(result)}: {_fmt(result.start_level, s.unit)} -> "
        f"{_fmt(result.end_level, s.unit)} over {result.n} {s.resolution} points"
        + (f" ({change:+.1%})" if change is not None else "")
        + f", p {p:.2g} (sieve bootstrap, {result.phi:.2f} day-to-day correlation, weekly looks)"
    )
    severity = Severity.WARNING
    now = s.times[-1]
    if limit is not None:
        at = result.crossing(limit)
        lo, hi = result.slope_ci
        ends = sorted(
            x
            for x in (result.crossing(limit, b / (30 * DAY)) for b in (lo, hi))
            if x is not None and x > now
        )
        over = (
            (result.end_level >= limit) if result.direction == "up" else (result.end_level <= limit)
        )
        evidence["limit"] = limit
        if over:
            text += f"; already past its limit {_fmt(limit, s.unit)}"
            severity = Severity.CRITICAL
        elif at is not None and at > now:
            evidence["breach_at"] = at
            text += f"; projected to cross {_fmt(limit, s.unit)} on {_iso(at)}"
            if ends:
                text += (
                    f" (between {_iso(ends[0])} and {_iso(ends[-1])})"
                    if len(ends) == 2
                    else f" (not before {_iso(ends[0])})"
                )
            if at - now <= 30 * DAY:
                severity = Severity.CRITICAL
    out = [make_finding(
        "history.creep", severity=severity, subject=_describe(s), message=text,
        metric="slope_per_30d", value=result.slope_per_30d, threshold=result.margin,
        evidence=evidence,
        recommendation="Read the change points and markers for where it began; compare the "
                       "snapshots before and after (silenttax history show).",
        detector="history.check_series",
    )]  # fmt: skip
    cp = change_point(s.times, s.values)
    if cp is not None and cp.p_value <= alpha and cp.step_fits_better:
        marker = _nearest(markers, cp.at, 3 * DAY)
        size = (
            f"{cp.ratio - 1:+.1%} [{cp.ratio_ci[0] - 1:+.1%}, {cp.ratio_ci[1] - 1:+.1%}]"
            if result.log_scale
            else f"{cp.ratio:+.4g}"
        )
        out.append(make_finding(
            "history.change_point", severity=Severity.WARNING, subject=_describe(s),
            message=f"{_describe(s)} {size} from {_iso(cp.at)}: {_fmt(cp.before, s.unit)} -> "
                    f"{_fmt(cp.after, s.unit)}{_marker_text(marker)} "
                    f"(E-divisive, p {cp.p_value:.2g})",
            metric="ratio" if result.log_scale else "difference", value=cp.ratio,
            evidence={"at": cp.at, "date": _iso(cp.at), "ratio_ci": list(cp.ratio_ci),
                      "before": cp.before, "after": cp.after, "p_value": cp.p_value,
                      "marker": None if marker is None
                      else {"kind": marker.kind, "at": marker.at, "meta": marker.meta}},
            detector="history.check_series",
        ))  # fmt: skip
    return out
