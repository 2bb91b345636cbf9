"""Renderers for reports: terminal text, Markdown and HTML.

Kept outside the models so that ``Finding``/``Report`` hold data only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from silenttax.report._enums import Severity

if TYPE_CHECKING:
    from silenttax.report._finding import Finding
    from silenttax.report._report import Report

__all__ = ["format_bytes", "format_duration", "format_number", "to_markdown", "to_text"]

_ANSI = {
    Severity.OK: "\x1b[32m",
    Severity.INFO: "\x1b[36m",
    Severity.WARNING: "\x1b[33m",
    Severity.CRITICAL: "\x1b[1;31m",
}
_ANSI_RESET = "\x1b[0m"
_HTML_COLOURS = {
    Severity.OK: ("#1a7f37", "#dafbe1"),
    Severity.INFO: ("#0969da", "#ddf4ff"),
    Severity.WARNING: ("#9a6700", "#fff8c5"),
    Severity.CRITICAL: ("#cf222e", "#ffebe9"),
}


def format_number(x: float | None, unit: str | None = None) -> str:
    """Four significant digits, NaN/inf spelled out, the unit appended.

    Examples:
        >>> format_number(0.0123456, "s"), format_number(float("nan")), format_number(None)
        ('0.01235 s', 'NaN', '')
        >>> format_number(2.5e-13), format_number(float("-inf")), format_number(1234567.0)
        ('2.5e-13', '-inf', '1.235e+06')
    """
    if x is None:
        return ""
    if math.isnan(x):
        text = "NaN"
    elif math.isinf(x):
        text = "inf" if x > 0 else "-inf"
    else:
        text = f"{x:.4g}"
    return f"{text} {unit}" if unit else text


def format_duration(seconds: float) -> str:
    """A duration with a readable unit, three significant digits.

    Examples:
        >>> format_duration(0.000850), format_duration(0.0123), format_duration(4.2)
        ('850 µs', '12.3 ms', '4.2 s')
        >>> format_duration(210), format_duration(7560), format_duration(3e-8)
        ('3.5 min', '2.1 h', '30 ns')
    """
    if not math.isfinite(seconds):
        return format_number(seconds, "s")
    size = abs(seconds)
    for limit, scale, unit in (
        (1e-6, 1e9, "ns"),
        (1e-3, 1e6, "µs"),
        (1.0, 1e3, "ms"),
        (120.0, 1.0, "s"),
        (7200.0, 1 / 60, "min"),
    ):
        if size < limit:
            return f"{seconds * scale:.3g} {unit}"
    return f"{seconds / 3600:.3g} h"


def format_bytes(n: float) -> str:
    """A byte count in B, KiB, MiB or GiB, three significant digits.

    Examples:
        >>> format_bytes(512), format_bytes(81_920), format_bytes(2.5 * 2**30)
        ('512 B', '80 KiB', '2.5 GiB')
    """
    size = abs(n)
    for power, unit in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if size >= 1024**power:
            return f"{n / 1024**power:.3g} {unit}"
    return f"{n:.3g} B"


def _value_cell(f: Finding) -> str:
    if f.value is None:
        return ""
    cell = format_number(f.value, f.unit)
    return f"{f.metric}={cell}" if f.metric else cell


def _p_cell(f: Finding) -> str:
    return "" if f.p_value is None else f"{f.p_value:.3g}"


def to_text(report: Report, *, color: bool = False) -> str:
    """A compact aligned table: severity, code, subject, value, message."""
    lines = [f"silenttax report — {report.summary()}"]
    if not report.findings:
        return lines[0]
    rows = [(f.severity, f.code, f.subject, _value_cell(f), f.message) for f in report.findings]
    w_code = max(len(r[1]) for r in rows)
    w_subj = min(max(len(r[2]) for r in rows), 40)
    w_value = max(len(r[3]) for r in rows)
    for severity, code, subject, value, message in rows:
        label = f"{severity.value.upper():<8}"
        if color:
            label = f"{_ANSI[severity]}{label}{_ANSI_RESET}"
        value_col = f"{value:<{w_value}}  " if w_value else ""
        lines.append(f"  {label} {code:<{w_code}}  {subject:<{w_subj}}  {value_col}{message}")
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    """A summary line and a GitHub-flavoured Markdown table of every finding."""
    out = [f"**silenttax report** — {report.summary()} (worst: `{report.worst.value}`)", ""]
    if not report.findings:
        return out[0]
    out.append("| severity | code | subject | value | baseline | threshold | p | message |")
    out.append("|---|---|---|---|---|---|---|---|")
    for f in report.findings:
        cells = [
            f"**{f.severity.value}**" if f.is_problem else f.severity.value,
            f"`{f.code}`",
            f.subject,
            _value_cell(f),
            format_number(f.baseline, f.unit),
            format_number(f.threshold, f.unit),
            _p_cell(f),
            f.message,
        ]
        out.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    return "\n".join(out)
