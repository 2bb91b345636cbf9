"""The HTML report: one self-contained page (or notebook fragment) from findings alone.

Sections appear when the report holds findings of their kind: summary,
problems first, data drift (sorted by effect, overlaid histograms), feature
health, latency and the pipeline's stages, the model's profiles and
quantization trade-off, cost, the gate, the environment, and every check.
Charts are inline SVG (:mod:`silenttax.report._svg`), the only script sorts
tables, nothing is fetched from the network and no data row is embedded, so
the size depends on the number of findings, not on the data.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from silenttax.report import _svg
from silenttax.report._enums import Category, Severity
from silenttax.report._render import (
    _HTML_COLOURS,
    format_bytes,
    format_duration,
    format_number,
)

if TYPE_CHECKING:
    from silenttax.report._finding import Finding
    from silenttax.report._report import Report

__all__ = ["to_html"]

_ids = itertools.count()
_esc = html.escape
_ORDER = (Severity.CRITICAL, Severity.WARNING, Severity.INFO, Severity.OK)

_CSS = """
.stx{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;max-width:1100px}
.stx h1{font-size:22px;margin:8px 0 2px}.stx h2{font-size:17px;margin:22px 0 6px;
border-bottom:1px solid #d0d7de;padding-bottom:3px}.stx .sub{color:#57606a;margin:2px 0}
.stx table{border-collapse:collapse;margin:4px 0 8px}.stx th,.stx td{text-align:left;
padding:3px 8px;vertical-align:top;border-bottom:1px solid #eaeef2}.stx th{background:#f6f8fa;
cursor:pointer;white-space:nowrap}.stx td.n{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}.stx .sev{padding:1px 6px;border-radius:4px;font-weight:600;font-size:12px}
.stx code{font-size:12px}.stx .rec{color:#57606a;font-style:italic}.stx .plot{margin:4px 0}
.stx details>summary{cursor:pointer;color:#0969da}.stx .key{display:inline-block;width:10px;
height:10px;margin:0 3px 0 10px}.stx footer{color:#57606a;font-size:12px;margin-top:18px}
"""

# Sorts a table by the clicked column (numbers by data-v when given); works without it too.
_JS = """
(function(root){root.querySelectorAll("table.sort th").forEach(function(th,i){
th.addEventListener("click",function(){var tb=th.closest("table").tBodies[0];
var asc=th.dataset.asc!=="1";th.dataset.asc=asc?"1":"0";
var rows=Array.prototype.slice.call(tb.rows);rows.sort(function(a,b){
var x=a.cells[i],y=b.cells[i];var p=parseFloat(x.dataset.v),q=parseFloat(y.dataset.v);
var c=(!isNaN(p)&&!isNaN(q))?p-q:x.textContent.localeCompare(y.textContent);
return asc?c:-c;});rows.forEach(function(r){tb.appendChild(r);});});});
})(document.getElementById("%s"));
"""

_RANK = {s: i for i, s in enumerate(_ORDER)}


def _badge(severity: Severity) -> str:
    fg, bg = _HTML_COLOURS[severity]
    return f'<span class="sev" style="color:{fg};background:{bg}">{severity.value}</span>'


def _sev_cell(severity: Severity) -> str:
    return f'<td data-v="{3 - _RANK[severity]}">{_badge(severity)}</td>'


def _num_cell(value: float | None, text: str | None = None) -> str:
    if value is None:
        return '<td class="n"></td>'
    shown = text if text is not None else format_number(value)
    return f'<td class="n" data-v="{value:.6g}">{_esc(shown)}</td>'


def _table(head: Sequence[str], rows: Iterable[str], *, sortable: bool = True) -> str:
    cls = ' class="sort"' if sortable else ""
    header = "".join(f"<th>{_esc(h)}</th>" for h in head)
    return f"<table{cls}><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _ev(f: Finding) -> dict[str, Any]:
    """The evidence, typed loosely: renderers check each value's type where they use it."""
    return f.evidence


def _shares(value: Any) -> list[tuple[str, float]]:
    """The finite, non-negative numeric entries of an evidence mapping (others dropped)."""
    if not isinstance(value, dict):
        return []
    return [
        (str(k), float(v))
        for k, v in value.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    ]


def _pair(value: Any) -> tuple[float, float] | None:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
    ):
        return float(value[0]), float(value[1])
    return None


def _effect(f: Finding) -> str:
    """The effect size with its interval when the evidence has one (else the value)."""
    ev = _ev(f)
    if f.effect_size is not None:
        ci = (
            _pair(ev.get("ratio_ci"))
            or _pair((ev.get("ratio_lower"), ev.get("ratio_upper")))
            or _pair(ev.get("speedup_ci"))
        )
        text = format_number(f.effect_size)
    elif f.value is not None:
        ci = _pair(ev.get("ci"))
        text = format_number(f.value, f.unit)
    else:
        return ""
    return text + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")


def _p(f: Finding) -> str:
    if f.p_value is None:
        return ""
    how = _ev(f).get("p_value_adjustment")
    return f"{f.p_value:.2g}" + (f" ({how})" if isinstance(how, str) and how != "none" else "")


def _message(f: Finding) -> str:
    rec = f'<div class="rec">{_esc(f.recommendation)}</div>' if f.recommendation else ""
    return f"<td>{_esc(f.message)}{rec}</td>"


def _findings_table(findings: Sequence[Finding]) -> str:
    rows = [
        f"<tr>{_sev_cell(f.severity)}<td><code>{_esc(f.code)}</code></td><td>{_esc(f.subject)}</td>"
        f"{_num_cell(f.effect_size if f.effect_size is not None else f.value, _effect(f))}"
        f"{_num_cell(f.p_value, _p(f))}{_message(f)}</tr>"
        for f in sorted(findings, key=lambda f: _RANK[f.severity])
    ]
    return _table(("severity", "code", "subject", "effect [95% CI]", "p", "message"), rows)


def _section(title: str, body: str, note: str = "") -> str:
    if not body:
        return ""
    sub = f'<p class="sub">{_esc(note)}</p>' if note else ""
    return f"<section><h2>{_esc(title)}</h2>{sub}{body}</section>"


# ------------------------------------------------------------------ sections
def _summary(report: Report) -> str:
    counts: dict[str, list[int]] = {}
    for f in report.findings:
        counts.setdefault(str(f.category), [0, 0, 0, 0])[_RANK[f.severity]] += 1
    if not counts:
        return ""
    colours = [_HTML_COLOURS[s][0] for s in _ORDER]
    rows = [
        f"<tr><td>{_esc(c)}</td>" + "".join(_num_cell(float(n), str(n)) for n in v) + "</tr>"
        for c, v in counts.items()
    ]
    chart = _svg.hbar(
        [(c, [float(n) for n in v]) for c, v in counts.items()],
        colours,
        "checks per category by severity",
    )
    legend = "".join(
        f'<span class="key" style="background:{col}"></span>{s.value}'
        for s, col in zip(_ORDER, colours, strict=True)
    )
    table = _table(("category", *(s.value for s in _ORDER)), rows)
    return f'{table}<div class="plot">{chart}</div><div class="sub">{legend}</div>'


def _drift(findings: Sequence[Finding]) -> str:
    tested = [
        f for f in findings if f.code in ("drift.numeric", "drift.categorical", "drift.boolean")
    ]
    if not tested:
        return ""
    tested.sort(key=lambda f: (-(f.effect_size or 0.0), f.subject))
    rows = []
    for f in tested:
        ev = _ev(f)
        plot = ""
        hist = ev.get("histogram")
        if isinstance(hist, dict):
            plot = _svg.histogram(
                hist, f"{f.subject}: reference (grey bars) vs current (blue line)"
            )
        rows.append(
            f"<tr>{_sev_cell(f.severity)}<td>{_esc(f.subject)}</td>"
            f"<td>{_esc(str(ev.get('test', '')))}</td>"
            f"{_num_cell(f.effect_size)}<td>{_esc(str(ev.get('effect', '')))}</td>"
            f"{_num_cell(f.p_value, _p(f))}<td>{plot}</td></tr>"
        )
    others = [f for f in findings if f.code.startswith("drift.") and f not in tested]
    extra = _findings_table(others) if others else ""
    legend = (
        f'<span class="key" style="background:{_svg.REFERENCE}"></span>reference'
        f'<span class="key" style="background:{_svg.CURRENT}"></span>current'
    )
    head = ("severity", "column", "test", "effect", "effect measure", "p", "distribution")
    return _table(head, rows) + f'<div class="sub">{legend}</div>' + extra


def _health(findings: Sequence[Finding]) -> str:
    by_column: dict[str, list[Finding]] = {}
    for f in findings:
        if f.code.startswith("feature."):
            by_column.setdefault(f.subject, []).append(f)
    if not by_column:
        return ""
    rows = []
    order = sorted(by_column.items(), key=lambda kv: min(_RANK[f.severity] for f in kv[1]))
    for column, items in order:
        worst = min((f.severity for f in items), key=lambda s: _RANK[s])
        issues = [f for f in items if f.code != "feature.ok"] or items
        what = "; ".join(
            f.code.removeprefix("feature.")
            + (f" {f.value:.1%}" if f.metric == "share" and f.value is not None else "")
            for f in issues
        )
        example = next((_ev(f).get("example") for f in items if _ev(f).get("example")), "")
        rows.append(
            f"<tr>{_sev_cell(worst)}<td>{_esc(column)}</td><td>{_esc(what)}</td>"
            f"<td><code>{_esc(repr(example)[:40]) if example else ''}</code></td></tr>"
        )
    return _table(("severity", "column", "checks", "example value"), rows)


def _latency(findings: Sequence[Finding]) -> str:
    parts = []
    quantiles = [f for f in findings if f.code in ("latency.quantile", "latency.regression")]
    if quantiles:
        points: list[tuple[str, float, float | None, float | None, str]] = []
        for f in quantiles:
            ci = _pair(_ev(f).get("ci"))
            base_ci = _pair(_ev(f).get("baseline_ci"))
            label = f"{f.subject} {f.metric}"
            if base_ci is not None and f.baseline is not None:
                points.append(
                    (f"baseline {f.metric}", f.baseline, base_ci[0], base_ci[1], _svg.REFERENCE)
                )
            if f.value is not None:
                lo, hi = ci if ci is not None else (None, None)
                points.append((label, f.value, lo, hi, _svg.CURRENT))
        parts.append(
            '<div class="plot">'
            + _svg.intervals(points, "latency quantiles with 95% confidence intervals")
            + "</div>"
        )
    stages = next((f for f in findings if f.code == "pipeline.shadow_overhead"), None)
    shares = sorted(_shares(_ev(stages).get("shares")) if stages else [], key=lambda kv: -kv[1])
    if shares:
        model_first = sorted(shares, key=lambda kv: kv[0] != "model")
        parts.append(
            '<div class="sub">request time by stage (the model vs the pipeline around it)</div>'
            '<div class="plot">' + _svg.stacked(model_first, "request time by stage") + "</div>"
        )
    related = [
        f
        for f in findings
        if f.category == Category.LATENCY or f.category == Category.PIPELINE
        if not f.code.startswith("gate.")
    ]
    if related:
        parts.append(_findings_table(related))
    return "".join(parts)


def _model(findings: Sequence[Finding]) -> str:
    parts = []
    for f in findings:
        if f.code == "model_bloat.profile" and _shares(_ev(f).get("shares")):
            step = _ev(f).get("step_time")
            title = f"{f.subject}: {f.message.split(' step ')[0]} step"
            if isinstance(step, int | float):
                title += f" {format_duration(float(step))}"
            parts.append(
                f'<div class="sub">{_esc(title)}</div><div class="plot">'
                + _svg.stacked(
                    _shares(_ev(f)["shares"]),
                    f"{title}: where the step time goes",
                )
                + "</div>"
            )
    candidates = [f for f in findings if f.code in ("quantize.candidate",)]
    chosen = next((f for f in findings if f.code == "quantize.recommendation"), None)
    best = _ev(chosen).get("method") if chosen is not None else None
    if candidates:
        rows = []
        points = []
        for f in candidates:
            ev = _ev(f)
            speed, err = ev.get("speedup"), ev.get("rel_error")
            size = ev.get("size_bytes")
            ci = _pair(ev.get("speedup_ci"))
            speed_text = ""
            if isinstance(speed, int | float):
                speed_text = f"{speed:.2f}x" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
                if isinstance(err, int | float):
                    points.append(
                        (
                            str(ev.get("method")),
                            float(speed),
                            max(float(err), 1e-9),
                            ev.get("method") == best,
                        )
                    )
            rows.append(
                f"<tr>{_sev_cell(f.severity)}<td>{_esc(str(ev.get('method')))}"
                f"{' (recommended)' if ev.get('method') == best else ''}</td>"
                f"{_num_cell(speed if isinstance(speed, int | float) else None, speed_text)}"
                f"{_num_cell(err if isinstance(err, int | float) else None)}"
                + (
                    _num_cell(float(size), format_bytes(size))
                    if isinstance(size, int)
                    else "<td></td>"
                )
                + "</tr>"
            )
        if points:
            parts.append(
                '<div class="sub">quantization trade-off: speedup vs fp32 (right is faster) and '
                'relative output error (lower is better)</div><div class="plot">'
                + _svg.scatter(
                    points,
                    "quantization trade-off",
                    x_label="speedup vs fp32",
                    y_label="rel. error",
                )
                + "</div>"
            )
        parts.append(_table(("severity", "method", "speedup [95% CI]", "rel. error", "size"), rows))
    rest = [
        f
        for f in findings
        if (f.category == Category.MODEL_BLOAT or f.code.startswith("quantize."))
        and f.code not in ("model_bloat.profile", "quantize.candidate")
    ]
    if rest:
        parts.append(_findings_table(rest))
    return "".join(parts)


def _cost(findings: Sequence[Finding]) -> str:
    costs = [
        f
        for f in findings
        if f.code.startswith("cost.") or f.code in ("quantize.cost", "gate.cost")
    ]
    if not costs:
        return ""
    parts = []
    for f in costs:
        factors = _ev(f).get("factors")
        if isinstance(factors, dict):
            rows = [
                f"<tr><td>{_esc(str(k))}</td>{_num_cell(float(v), f'x{float(v):.3g}')}</tr>"
                for k, v in factors.items()
                if isinstance(v, int | float)
            ]
            parts.append(
                f'<div class="sub">{_esc(f.subject)}: cost ratio = price x (throughput0 / '
                "throughput) x (utilization0 / utilization)</div>"
                + _table(("factor", "cost x"), rows, sortable=False)
            )
    return _findings_table(costs) + "".join(parts)


def _history(findings: Sequence[Finding]) -> str:
    """One chart per tracked series (creep first): the values, the fitted line, markers."""
    order = {"history.creep": 0, "history.trend": 1, "history.no_data": 2}
    charted = sorted(
        (f for f in findings if f.code in order and isinstance(_ev(f).get("series"), dict)),
        key=lambda f: (order[f.code], f.subject),
    )
    parts = []
    for f in charted:
        ev = _ev(f)
        series, fit, limit = ev["series"], ev.get("fit"), ev.get("limit")
        line = None
        if isinstance(fit, list) and len(fit) == 4:
            line = (float(fit[0]), float(fit[1]), float(fit[2]), float(fit[3]))
        chart = _svg.trend(
            [float(t) for t in series.get("t", [])],
            [float(v) for v in series.get("v", [])],
            f"{f.subject} ({series.get('unit', '')})",
            fit=line,
            limit=float(limit) if isinstance(limit, int | float) else None,
            marks=[(float(at), str(name)) for at, name in ev.get("markers", [])],
        )
        if chart:
            parts.append(
                f'<div class="sub">{_badge(f.severity)} {_esc(f.message)}</div>'
                f'<div class="plot">{chart}</div>'
            )
    return "".join(parts)


def _load(findings: Sequence[Finding]) -> str:
    """The latency-throughput curve of each capacity search (p50 and p99 per offered
    rate, by verdict; the SLO dashed; the capacity's interval marked) and the load
    findings."""
    found = [f for f in findings if f.code.startswith("load.")]
    parts = []
    for f in found:
        ev = _ev(f)
        points = ev.get("curve")
        if f.code == "load.knee" or not isinstance(points, list):
            continue
        usable = [p for p in points if isinstance(p, dict) and p.get("verdict") != "invalid"]
        lines = [
            (name, [(float(p["rate"]), float(p[key]) * 1e3, str(p.get("verdict")))
                    for p in usable if isinstance(p.get(key), int | float)])
            for name, key in (("p99", "p99"), ("p50", "p50"))
        ]  # fmt: skip
        ci = ev.get("ci")
        ci = ci if isinstance(ci, list) else []
        marks = [(float(ev["capacity"]), "capacity")] if ev.get("capacity") else []
        marks += [
            (float(v), name)
            for v, name in zip(ci, ("safe (confirmed)", "over the SLO from"), strict=False)
            if isinstance(v, int | float) and math.isfinite(v)
        ]
        slo = ev.get("slo_p99")
        chart = _svg.curve(
            lines, f"{f.subject}: latency against offered rate",
            x_label="offered requests/s", y_label="ms (log)",
            limit=float(slo) * 1e3 if isinstance(slo, int | float) else None, marks=marks,
        )  # fmt: skip
        if chart:
            parts.append(
                f'<div class="sub">{_badge(f.severity)} {_esc(f.message)}</div>'
                f'<div class="plot">{chart}</div>'
            )
    if found:
        parts.append(_findings_table(found))
    return "".join(parts)


def _gate(findings: Sequence[Finding]) -> str:
    gated = [f for f in findings if f.code.startswith(("gate.", "canary."))]
    return _findings_table(gated) if gated else ""


def _environment(report: Report) -> str:
    env = report.environment
    if not env:
        return ""
    rows = []
    for key in (
        "python",
        "platform",
        "cpu_model",
        "cpu_flags",
        "cpu_count",
        "affinity",
        "threads",
        "packages",
    ):
        value = env.get(key)
        if value in (None, "", [], {}):
            continue
        if isinstance(value, dict):
            text = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        rows.append(f"<tr><td>{_esc(key)}</td><td>{_esc(text)}</td></tr>")
    return _table(("", ""), rows, sortable=False)


def to_html(report: Report, *, full_page: bool = True, title: str | None = None) -> str:
    """The report as HTML: a whole page, or the fragment notebooks show (the same markup)."""
    uid = f"stx-{next(_ids)}"
    findings = report.findings
    name = title or str(report.context.get("title") or "silenttax report")
    note = report.context.get("note")
    head = (
        f"<header><h1>{_esc(name)}</h1>"
        f'<p class="sub">{_esc(report.summary())} — worst: {_badge(report.worst)} — '
        f"{_esc(report.created_at.strftime('%Y-%m-%d %H:%M UTC'))}"
        + (f" — {_esc(report.source)}" if report.source else "")
        + "</p>"
        + (f'<p class="sub">{_esc(str(note))}</p>' if note else "")
        + "</header>"
    )
    problems = [f for f in findings if f.severity >= Severity.WARNING]
    inputs = report.context.get("inputs")
    sections: list[tuple[str, Callable[[], str], str]] = [
        ("Summary", lambda: _summary(report), ""),
        (
            "Problems",
            lambda: _findings_table(problems) if problems else "",
            "warning and critical findings, worst first",
        ),
        (
            "Data drift",
            lambda: _drift(findings),
            "sorted by effect size; p-values corrected across the tests",
        ),
        (
            "Feature health",
            lambda: _health(findings),
            "types, numbers as strings, padding, nulls, cardinality",
        ),
        ("Latency and pipeline", lambda: _latency(findings), ""),
        (
            "Model: profile and quantization",
            lambda: _model(findings),
            f"model inputs: {inputs}" if inputs else "",
        ),
        ("Cost", lambda: _cost(findings), ""),
        (
            "Load and capacity",
            lambda: _load(findings),
            "open loop, intended send to end; points filled: SLO met, red: missed, hollow: "
            "not settled",
        ),
        ("Gate", lambda: _gate(findings), ""),
        (
            "History",
            lambda: _history(findings),
            "daily rollups; the fitted trend in amber, markers dashed",
        ),
        ("Environment", lambda: _environment(report), ""),
    ]
    body = [head, *(_section(t, fn(), n) for t, fn, n in sections)]
    if findings:
        body.append(
            f"<section><h2>All checks</h2><details><summary>{len(findings)} checks, OK included"
            f"</summary>{_findings_table(findings)}</details></section>"
        )
    body.append(
        "<footer>Rendered by silenttax from findings and snapshots only: no data rows, no "
        "network resources. Click a column header to sort.</footer>"
    )
    fragment = (
        f'<div class="stx" id="{uid}"><style>{_CSS}</style>{"".join(body)}'
        f"<script>{_JS % uid}</script></div>"
    )
    if not full_page:
        return fragment
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_esc(name)}</title></head><body>{fragment}</body></html>"
    )
