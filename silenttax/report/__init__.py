"""The result model every silenttax module reports in: Finding, Report and their enums.

Examples:
    >>> from silenttax.report import Finding, Report, Severity
    >>> r = Report(findings=[Finding(code="cost.per_1k", category="cost", severity="info",
    ...                              subject="ranker", message="0.021 USD per 1000 inferences")])
    >>> r.worst == Severity.INFO
    True
"""

from silenttax.report._codes import CodeInfo, finding_codes, make_finding, register_code
from silenttax.report._enums import CATEGORY_PATTERN, Category, Severity
from silenttax.report._finding import CODE_PATTERN, Finding
from silenttax.report._render import format_number
from silenttax.report._report import Report

__all__ = [
    "CATEGORY_PATTERN",
    "CODE_PATTERN",
    "Category",
    "CodeInfo",
    "Finding",
    "Report",
    "Severity",
    "finding_codes",
    "format_number",
    "make_finding",
    "register_code",
]
