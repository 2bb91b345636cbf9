"""The result model every silenttax module reports in: Finding, Report and their enums.

Examples:
    >>> from silenttax.report import Finding, Report, Severity
    >>> r = Report(findings=[Finding(code="cost.per_1k", category="cost", severity="info",
    ...                              subject="ranker", message="0.021 USD per 1000 inferences")])
    >>> r.worst == Severity.INFO
    True
"""

from silenttax.report._codes import CodeInfo, finding_codes
from silenttax.report._enums import Category, Severity
from silenttax.report._finding import CODE_PATTERN, Finding
from silenttax.report._render import format_number
from silenttax.report._report import Report

__all__ = [
    "CODE_PATTERN",
    "Category",
    "CodeInfo",
    "Finding",
    "Report",
    "Severity",
    "finding_codes",
    "format_number",
]
