"""Small inline SVG charts for reports: no dependency, a few hundred bytes each.

Every chart is drawn from figures already in a report (findings' values and
evidence), never from data rows, so a page's size does not grow with the data.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["PALETTE", "curve", "hbar", "histogram", "intervals", "scatter", "stacked", "trend"]

REFERENCE = "#8c959f"
CURRENT = "#0969da"
PALETTE = ("#0969da", "#bf8700", "#8250df", "#1a7f37", "#cf222e", "#57606a", "#e16f24", "#218bff")
_FONT = 'font-family="system-ui,sans-serif" font-size="10"'


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _open(width: int, height: int, label: str) -> str:
    return (
        f'<svg class="stx-plot" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(label)}">'
        f"<title>{_esc(label)}</title>"
    )


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _tick(x: float) -> str:
    return f"{x:.3g}"


def histogram(data: dict[str, object], label: str, *, width: int = 260, height: int = 70) -> str:
    """Reference shares as grey bars, current as a blue outline, on common bins."""
    ref, cur = _finite(data.get("reference")), _finite(data.get("current"))
    n = len(ref)
    if n == 0 or len(cur) != n:
        return ""
    top = max(max(ref), max(cur), 1e-12)
    plot_h = height - 14
    bar = (width - 2) / n
    parts = [_open(width, height, label)]
    path = []
    for i, share in enumerate(ref):
        h = plot_h * share / top
        path.append(f"M{_n(1 + i * bar)} {_n(plot_h)}h{_n(bar)}v{_n(-h)}h{_n(-bar)}z")
    parts.append(f'<path d="{"".join(path)}" fill="{REFERENCE}" fill-opacity="0.55"/>')
    step = [f"M1 {_n(plot_h)}"]
    for i, share in enumerate(cur):
        y = plot_h - plot_h * share / top
        step.append(f"V{_n(y)}H{_n(1 + (i + 1) * bar)}")
    step.append(f"V{_n(plot_h)}")
    parts.append(f'<path d="{"".join(step)}" fill="none" stroke="{CURRENT}" stroke-width="1.5"/>')
    parts.append(f'<line x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="#d0d7de"/>')
    kind = data.get("type")
    names: Any = data.get("edges") if kind == "bins" else data.get("values") or data.get("labels")
    left = right = ""
    if isinstance(names, list) and names:
        left, right = (
            (_tick(names[0]), _tick(names[-1]))
            if kind == "bins" and all(isinstance(v, int | float) for v in (names[0], names[-1]))
            else (str(names[0]), str(names[-1]))
        )
    parts.append(
        f'<text x="1" y="{height - 2}" {_FONT} fill="#57606a">{_esc(left[:14])}</text>'
        f'<text x="{width - 1}" y="{height - 2}" {_FONT} fill="#57606a" '
        f'text-anchor="end">{_esc(right[:14])}</text></svg>'
    )
    return "".join(parts)


def stacked(
    parts: Sequence[tuple[str, float]],
    label: str,
    *,
    width: int = 520,
    colours: Sequence[str] = PALETTE,
) -> str:
    """One horizontal bar split into shares, with a legend."""
    total = sum(max(0.0, s) for _, s in parts) or 1.0
    rows = math.ceil(len(parts) / 3)
    height = 26 + 14 * rows
    out = [_open(width, height, label)]
    x = 0.0
    for i, (name, share) in enumerate(parts):
        w = (width - 2) * max(0.0, share) / total
        colour = colours[i % len(colours)]
        out.append(
            f'<rect x="{_n(1 + x)}" y="2" width="{_n(w)}" height="18" fill="{colour}">'
            f"<title>{_esc(name)} {share:.1%}</title></rect>"
        )
        x += w
    for i, (name, share) in enumerate(parts):
        cx, cy = 1 + (i % 3) * (width / 3), 34 + 14 * (i // 3)
        colour = colours[i % len(colours)]
        out.append(
            f'<rect x="{_n(cx)}" y="{_n(cy - 8)}" width="9" height="9" fill="{colour}"/>'
            f'<text x="{_n(cx + 13)}" y="{_n(cy)}" {_FONT}>{_esc(name[:28])} {share:.0%}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def hbar(
    rows: Sequence[tuple[str, Sequence[float]]],
    colours: Sequence[str],
    label: str,
    *,
    width: int = 520,
) -> str:
    """One stacked horizontal bar per row (e.g. findings per category by severity)."""
    top = max((sum(v) for _, v in rows), default=0) or 1
    left = 120
    height = 16 * len(rows) + 4
    out = [_open(width, height, label)]
    for r, (name, values) in enumerate(rows):
        y = 2 + 16 * r
        out.append(
            f'<text x="{left - 6}" y="{y + 10}" {_FONT} text-anchor="end">{_esc(name)}</text>'
        )
        x = float(left)
        for value, colour in zip(values, colours, strict=False):
            w = (width - left - 30) * value / top
            if w > 0:
                out.append(
                    f'<rect x="{_n(x)}" y="{y}" width="{_n(w)}" height="12" fill="{colour}"/>'
                )
            x += w
        out.append(f'<text x="{_n(x + 4)}" y="{y + 10}" {_FONT}>{_n(sum(values))}</text>')
    out.append("</svg>")
    return "".join(out)


def intervals(
    rows: Sequence[tuple[str, float, float | None, float | None, str]],
    label: str,
    *,
    unit: str = "s",
    width: int = 520,
) -> str:
    """Points with interval whiskers on a log scale: ``(label, value, low, high, colour)``."""

    def ok(v: float | None) -> bool:
        return v is not None and math.isfinite(v) and v > 0

    values = [v for _, x, lo, hi, _ in rows for v in (x, lo, hi) if ok(v) and v is not None]
    if not values:
        return ""
    lo_v, hi_v = math.log10(min(values)) - 0.05, math.log10(max(values)) + 0.05
    span = hi_v - lo_v or 1.0
    left, right = 150, 70
    height = 18 * len(rows) + 18

    def x_of(v: float) -> float:
        return left + (width - left - right) * (math.log10(v) - lo_v) / span

    out = [_open(width, height, label)]
    for r, (name, value, lo, hi, colour) in enumerate(rows):
        y = 10 + 18 * r
        out.append(
            f'<text x="{left - 6}" y="{y + 4}" {_FONT} text-anchor="end">{_esc(name)}</text>'
        )
        if lo is not None and hi is not None and ok(lo) and ok(hi):
            out.append(
                f'<line x1="{_n(x_of(lo))}" y1="{y}" x2="{_n(x_of(hi))}" y2="{y}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        if ok(value):
            out.append(f'<circle cx="{_n(x_of(value))}" cy="{y}" r="3.5" fill="{colour}"/>')
            text = _esc(_fmt(value, unit))
            out.append(f'<text x="{width - right + 6}" y="{y + 4}" {_FONT}>{text}</text>')
    axis_y = height - 4
    out.append(
        f'<text x="{left}" y="{axis_y}" {_FONT} fill="#57606a">{_esc(_fmt(10**lo_v, unit))}</text>'
        f'<text x="{width - right}" y="{axis_y}" {_FONT} fill="#57606a" text-anchor="end">'
        f"{_esc(_fmt(10**hi_v, unit))} (log scale)</text></svg>"
    )
    return "".join(out)


def scatter(
    points: Sequence[tuple[str, float, float, bool]],
    label: str,
    *,
    x_label: str,
    y_label: str,
    width: int = 520,
    height: int = 220,
) -> str:
    """Labelled points, x linear, y log10 (``(label, x, y, highlight)``); a line at x = 1."""
    usable = [
        (n, x, y, h)
        for n, x, y, h in points
        if math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0
    ]
    if not usable:
        return ""
    xs = [x for _, x, _, _ in usable] + [1.0]
    ys = [math.log10(y) for _, _, y, _ in usable]
    x0, x1 = min(xs) * 0.9, max(xs) * 1.1
    y0, y1 = min(ys) - 0.3, max(ys) + 0.3
    left, bottom, top = 46, 30, 8

    def px(x: float) -> float:
        return left + (width - left - 10) * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return top + (height - top - bottom) * (1 - (y - y0) / (y1 - y0))

    out = [_open(width, height, label)]
    out.append(
        f'<line x1="{_n(px(1))}" y1="{top}" x2="{_n(px(1))}" y2="{height - bottom}" '
        'stroke="#d0d7de" stroke-dasharray="4 3"/>'
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" '
        'stroke="#57606a"/>'
    )
    dots = [(name, px(x), py(math.log10(y)), x, y, h) for name, x, y, h in usable]
    taken = [(cx - 5, cy - 5, cx + 5, cy + 5) for _, cx, cy, _, _, _ in dots]
    for name, cx, cy, x, y, highlight in dots:
        colour = CURRENT if highlight else REFERENCE
        out.append(
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{5 if highlight else 4}" fill="{colour}">'
            f"<title>{_esc(name)}: {x:.2f}x, {y:.2g}</title></circle>"
        )
    for name, cx, cy, _, _, _ in sorted(dots, key=lambda d: d[2]):
        spot = _label_spot(name, cx, cy, taken, width, height - bottom)
        if spot is not None:  # no free spot: the point's tooltip names it
            tx, ty, anchor = spot
            out.append(f'<text x="{_n(tx)}" y="{_n(ty)}" {_FONT} text-anchor="{anchor}">'
                       f"{_esc(name)}</text>")  # fmt: skip
    out.append(
        f'<text x="{width - 10}" y="{height - 8}" {_FONT} text-anchor="end">{_esc(x_label)}</text>'
        f'<text x="{left}" y="{height - 16}" {_FONT} fill="#57606a">{_tick(x0)}</text>'
        f'<text x="4" y="{top + 8}" {_FONT}>{_esc(y_label)}</text>'
        f'<text x="4" y="{top + 20}" {_FONT} fill="#57606a">{_tick(10**y1)}</text>'
        f'<text x="4" y="{height - bottom}" {_FONT} fill="#57606a">{_tick(10**y0)}</text></svg>'
    )
    return "".join(out)


_CHAR = 6.2  # px per character at font-size 10, generous (labels must never overlap)


def _label_spot(
    name: str,
    cx: float,
    cy: float,
    taken: list[tuple[float, float, float, float]],
    width: float,
    floor: float,
) -> tuple[float, float, str] | None:
    """Where a point's label fits: right of it, left of it, then above or below on
    either side, inside the plot and clear of every label and point placed so far (the
    box taken is added to ``taken``); None when no spot is free."""
    wide = _CHAR * len(name)
    for dy in (3.0, -10.0, 16.0, -23.0, 29.0):  # rows 13 px apart (a 10 px font's box)
        for anchor in ("start", "end"):
            tx = cx + 7 if anchor == "start" else cx - 7
            left = tx if anchor == "start" else tx - wide
            box = (left, cy + dy - 10, left + wide, cy + dy + 3)
            inside = box[0] >= 2 and box[2] <= width - 2 and box[1] >= 0 and box[3] <= floor
            clear = all(
                box[2] <= a or box[0] >= c or box[3] <= b or box[1] >= d for a, b, c, d in taken
            )
            if inside and clear:
                taken.append(box)
                return tx, cy + dy, anchor
    return None


def _finite(values: Any) -> list[float]:
    """Shares to draw: non-numbers and non-finite values become 0."""
    if not isinstance(values, list | tuple):
        return []
    return [
        float(v) if isinstance(v, int | float) and math.isfinite(v) and v > 0 else 0.0
        for v in values
    ]


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        from silenttax.report._render import format_duration

        return format_duration(value)
    return f"{value:.3g} {unit}".strip()


def trend(
    times: Sequence[float],
    values: Sequence[float],
    label: str,
    *,
    fit: tuple[float, float, float, float] | None = None,
    limit: float | None = None,
    marks: Sequence[tuple[float, str]] = (),
    width: int = 520,
    height: int = 140,
) -> str:
    """A series over time (at most a few hundred points: see ``history``'s findings), with
    the fitted line ``(t0, v0, t1, v1)``, a limit and dated marks (deploys, a change)."""
    pts = [
        (t, v) for t, v in zip(times, values, strict=False) if math.isfinite(t) and math.isfinite(v)
    ]
    if len(pts) < 2:
        return ""
    ys = [v for _, v in pts] + ([limit] if limit is not None and math.isfinite(limit) else [])
    if fit is not None:
        ys += [fit[1], fit[3]]
    t0, t1 = pts[0][0], pts[-1][0]
    y0, y1 = min(ys), max(ys)
    if y1 <= y0:
        y0, y1 = y0 - 1, y1 + 1
    pad = (y1 - y0) * 0.08
    y0, y1 = y0 - pad, y1 + pad
    left, bottom, top, right = 50, 18, 8, 10

    def px(t: float) -> float:
        return left + (width - left - right) * (t - t0) / ((t1 - t0) or 1)

    def py(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - y0) / (y1 - y0))

    out = [_open(width, height, label)]
    out.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#57606a"/>'
    )
    if limit is not None and y0 <= limit <= y1:
        out.append(
            f'<line x1="{left}" y1="{_n(py(limit))}" x2="{width - right}" y2="{_n(py(limit))}" '
            f'stroke="#cf222e" stroke-dasharray="4 3"><title>limit {_tick(limit)}</title></line>'
        )
    for at, name in marks:
        if t0 <= at <= t1:
            x = _n(px(at))
            out.append(
                f'<line x1="{x}" y1="{top}" x2="{x}" y2="{height - bottom}" stroke="#8250df" '
                f'stroke-dasharray="2 3"><title>{_esc(name)}</title></line>'
            )
    line = " ".join(f"{_n(px(t))},{_n(py(v))}" for t, v in pts)
    out.append(f'<polyline points="{line}" fill="none" stroke="{CURRENT}" stroke-width="1.2"/>')
    if fit is not None:
        out.append(
            f'<line x1="{_n(px(fit[0]))}" y1="{_n(py(fit[1]))}" x2="{_n(px(fit[2]))}" '
            f'y2="{_n(py(fit[3]))}" stroke="#bf8700" stroke-width="1.5"><title>trend</title></line>'
        )
    out.append(
        f'<text x="4" y="{top + 8}" {_FONT} fill="#57606a">{_tick(y1)}</text>'
        f'<text x="4" y="{height - bottom}" {_FONT} fill="#57606a">{_tick(y0)}</text></svg>'
    )
    return "".join(out)


def curve(
    lines: Sequence[tuple[str, Sequence[tuple[float, float, str]]]],
    label: str,
    *,
    x_label: str,
    y_label: str,
    limit: float | None = None,
    marks: Sequence[tuple[float, str]] = (),
    width: int = 520,
    height: int = 200,
) -> str:
    """Lines of ``(x, y, verdict)`` points, x linear, y log10 (a latency-throughput
    curve: a ``pass`` point filled, a ``fail`` one red, any other hollow); a horizontal
    ``limit`` (the SLO) and vertical marks (the capacity and its interval)."""
    usable = [
        (name, sorted((x, y, v) for x, y, v in pts if math.isfinite(x) and math.isfinite(y)
                      and x > 0 and y > 0))
        for name, pts in lines
    ]  # fmt: skip
    usable = [(name, pts) for name, pts in usable if pts]
    if not usable:
        return ""
    xs = [x for _, pts in usable for x, _, _ in pts] + [x for x, _ in marks if x > 0]
    ys = [math.log10(y) for _, pts in usable for _, y, _ in pts]
    if limit is not None and limit > 0:
        ys.append(math.log10(limit))
    x0, x1 = 0.0, max(xs) * 1.08
    y0, y1 = min(ys) - 0.15, max(ys) + 0.15
    left, bottom, top, right = 46, 30, 8, 10

    def px(x: float) -> float:
        return left + (width - left - right) * (x - x0) / ((x1 - x0) or 1)

    def py(y: float) -> float:
        return top + (height - top - bottom) * (1 - (math.log10(y) - y0) / ((y1 - y0) or 1))

    out = [_open(width, height, label)]
    out.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#57606a"/>'
    )
    if limit is not None and limit > 0:
        ly = _n(py(limit))
        out.append(
            f'<line x1="{left}" y1="{ly}" x2="{width - right}" y2="{ly}" stroke="#cf222e" '
            f'stroke-dasharray="4 3"><title>limit {_tick(limit)}</title></line>'
        )
    for at, name in marks:
        if 0 < at <= x1:
            mx = _n(px(at))
            out.append(
                f'<line x1="{mx}" y1="{top}" x2="{mx}" y2="{height - bottom}" stroke="#8250df" '
                f'stroke-dasharray="2 3"><title>{_esc(name)}</title></line>'
            )
    for i, (name, pts) in enumerate(usable):
        colour = PALETTE[i % len(PALETTE)] if i else CURRENT
        path = " ".join(f"{_n(px(x))},{_n(py(y))}" for x, y, _ in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.2">'
                   f"<title>{_esc(name)}</title></polyline>")  # fmt: skip
        for x, y, verdict in pts:
            fill = {"pass": colour, "fail": "#cf222e"}.get(verdict, "#ffffff")
            out.append(
                f'<circle cx="{_n(px(x))}" cy="{_n(py(y))}" r="3" fill="{fill}" '
                f'stroke="{colour}"><title>{_esc(name)} at {_tick(x)}: {_tick(y)} ({_esc(verdict)})'
                "</title></circle>"
            )
    keys = "".join(
        f'<text x="{width - right}" y="{top + 10 + 12 * i}" {_FONT} text-anchor="end" '
        f'fill="{PALETTE[i % len(PALETTE)] if i else CURRENT}">{_esc(name)}</text>'
        for i, (name, _) in enumerate(usable)
    )
    out.append(
        keys + f'<text x="{width - right}" y="{height - 8}" {_FONT} text-anchor="end">'
        f"{_esc(x_label)}</text>"
        f'<text x="{left}" y="{height - 16}" {_FONT} fill="#57606a">0</text>'
        f'<text x="{_n(px(x1 / 1.08))}" y="{height - 16}" {_FONT} fill="#57606a" '
        f'text-anchor="middle">{_tick(x1 / 1.08)}</text>'
        f'<text x="4" y="{top + 8}" {_FONT}>{_esc(y_label)}</text>'
        f'<text x="4" y="{top + 20}" {_FONT} fill="#57606a">{_tick(10**y1)}</text>'
        f'<text x="4" y="{height - bottom}" {_FONT} fill="#57606a">{_tick(10**y0)}</text></svg>'
    )
    return "".join(out)
