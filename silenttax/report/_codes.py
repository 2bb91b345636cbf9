"""The registry of finding codes: every code a silenttax module emits, in one place.

Codes are lower-case dotted ``area.what`` ids. Modules build findings through
:func:`make_finding`, which takes the category from this registry, so a code
always lands in the same category and an unregistered code fails loudly in
development instead of reaching a dashboard. Users building their own
findings may use any code matching :data:`~silenttax.report.CODE_PATTERN`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from silenttax.report._enums import Category, Severity
from silenttax.report._finding import CODE_PATTERN, Finding

__all__ = ["CodeInfo", "finding_codes", "make_finding"]


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """One registered finding code."""

    code: str
    """The dotted id, e.g. ``drift.numeric``."""
    category: Category
    """The category every finding with this code has."""
    summary: str
    """What the code means, one sentence (shown in the docs)."""


_C = Category
#: Every code silenttax emits. Add new codes here (tests check uniqueness and format).
CODES: tuple[CodeInfo, ...] = ()

_BY_CODE = MappingProxyType({info.code: info for info in CODES})


def finding_codes() -> MappingProxyType[str, CodeInfo]:
    """Every registered finding code, by code.

    Examples:
        >>> codes = finding_codes()
        >>> all(code == info.code for code, info in codes.items())
        True
    """
    return _BY_CODE


def make_finding(
    code: str, *, severity: Severity | str, subject: str, message: str, **fields: Any
) -> Finding:
    """Build a :class:`Finding` for a registered ``code``, its category filled in.

    Raises:
        KeyError: ``code`` is not registered (a bug in the calling module).
    """
    info = _BY_CODE[code]
    return Finding(
        code=code,
        category=info.category,
        severity=severity,  # type: ignore[arg-type]
        subject=subject,
        message=message,
        **fields,
    )


def _check_registry() -> None:
    seen: set[str] = set()
    for info in CODES:
        if info.code in seen:
            raise ValueError(f"finding code {info.code!r} registered twice")
        if not CODE_PATTERN.match(info.code):
            raise ValueError(f"finding code {info.code!r} is not lower-case dotted")
        seen.add(info.code)
