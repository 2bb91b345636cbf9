"""Report: an ordered, filterable, mergeable collection of findings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, overload

from pydantic import Field, JsonValue

from silenttax._deps import optional_import
from silenttax._state import State
from silenttax.report import _render
from silenttax.report._enums import Category, Severity
from silenttax.report._enums import category as open_category
from silenttax.report._finding import Finding, _utcnow

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Report"]


def _as_set(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(value)


class Report(State):
    """An ordered collection of :class:`Finding` plus what ran, when and where.

    Reports are immutable: filtering returns a new report and ``a | b``
    concatenates two. They render for terminals (``str(report)``), Markdown,
    HTML (``_repr_html_`` in notebooks), JSON, and DataFrames, and give CI an
    exit code.

    Examples:
        >>> from silenttax import Finding, Report
        >>> report = Report(findings=[
        ...     Finding(code="latency.p99", category="latency", severity="ok",
        ...             subject="model", message="p99 12.0 ms within the 40 ms SLO"),
        ...     Finding(code="drift.numeric", category="data_drift", severity="critical",
        ...             subject="age", message="KS 0.31 (p < 1e-12), mean +0.8 sd"),
        ... ])
        >>> report.worst, len(report.problems()), report.exit_code()
        (<Severity.CRITICAL: 'critical'>, 1, 1)
        >>> [f.subject for f in report.filter(category="latency")]
        ['model']
        >>> Report.from_json(report.to_json()) == report
        True
    """

    KIND: ClassVar[str] = "silenttax.report"

    findings: tuple[Finding, ...] = ()
    """The findings, in the order the checks produced them."""
    created_at: datetime = Field(default_factory=_utcnow)
    """When the report was made (UTC)."""
    source: str | None = None
    """The public check that produced it, as ``<subpackage>.<name>`` (e.g.
    ``drift.check_drift``); None for hand-built reports."""
    context: dict[str, JsonValue] = Field(default_factory=dict)
    """Free-form JSON-able detail of the run: parameters, data sizes, timings."""
    environment: dict[str, JsonValue] | None = None
    """Where it ran (python, platform, package versions), when recorded."""

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.findings)

    def __iter__(self) -> Iterator[Finding]:  # type: ignore[override]
        """Iterate over the findings (not the model's fields)."""
        return iter(self.findings)

    @overload
    def __getitem__(self, index: int) -> Finding: ...
    @overload
    def __getitem__(self, index: slice) -> Report: ...
    def __getitem__(self, index: int | slice) -> Finding | Report:
        if isinstance(index, slice):
            return self._with(self.findings[index])
        return self.findings[index]

    def __or__(self, other: Report) -> Report:
        """Concatenate: ``self``'s findings then ``other``'s.

        Each side's ``context`` is kept under its ``source`` in
        ``context["by_source"]`` (``"report"`` when unnamed; a repeated source
        gets ``#2``, ``#3``...), so merging the reports of several modules never
        lets one overwrite another's figures.
        """
        if not isinstance(other, Report):
            return NotImplemented
        sources = [s for s in (self.source, other.source) if s]
        context: dict[str, JsonValue] = {}
        for part in (self, other):
            for key, value in part._contexts().items():
                name, n = key, 1
                while name in context:
                    n += 1
                    name = f"{key}#{n}"
                context[name] = value
        return Report(
            findings=self.findings + other.findings,
            created_at=max(self.created_at, other.created_at),
            source=" | ".join(dict.fromkeys(sources)) or None,
            context={"by_source": context},
            environment=self.environment or other.environment,
        )

    def _contexts(self) -> dict[str, JsonValue]:
        """This report's context keyed by source (a merged report's already is)."""
        keyed = self.context.get("by_source")
        if set(self.context) == {"by_source"} and isinstance(keyed, dict):
            return dict(keyed)
        return {self.source or "report": self.context} if self.context else {}

    def _with(self, findings: Iterable[Finding]) -> Report:
        return self.model_copy(update={"findings": tuple(findings)})

    # ----------------------------------------------------------------- queries
    @property
    def worst(self) -> Severity:
        """The highest severity present; ``Severity.OK`` when there are no findings."""
        return max((f.severity for f in self.findings), default=Severity.OK)

    def counts(self) -> dict[Severity, int]:
        """How many findings of each severity (every severity present as a key)."""
        tally = Counter(f.severity for f in self.findings)
        return {s: tally.get(s, 0) for s in Severity}

    def summary(self) -> str:
        """One line: how many checks, and how many at each severity above ok.

        Examples:
            >>> Report().summary()
            '0 checks'
        """
        counts = self.counts()
        n = len(self.findings)
        parts = [f"{counts[s]} {s.value}" for s in reversed(Severity) if counts[s]]
        head = f"{n} check{'s' if n != 1 else ''}"
        return f"{head}: {', '.join(parts)}" if parts else head

    def problems(self, min_severity: Severity | str = Severity.WARNING) -> Report:
        """Only the findings at ``min_severity`` or above (default: warning and critical)."""
        return self.filter(min_severity=min_severity)

    def filter(
        self,
        *,
        category: Category | str | Iterable[Category | str] | None = None,
        subject: str | Iterable[str] | None = None,
        code: str | None = None,
        min_severity: Severity | str | None = None,
    ) -> Report:
        """Findings matching every given criterion (``None`` matches all).

        Args:
            category: One category or several.
            subject: One subject (column, model, span...) or several.
            code: A code prefix: ``"drift"`` matches ``drift.numeric`` and ``drift.null_rate``.
            min_severity: Keep findings at this severity or above.
        """
        categories = (
            None
            if category is None
            else frozenset(
                {open_category(category)}
                if isinstance(category, str)
                else {open_category(c) for c in category}
            )
        )
        subjects = _as_set(subject)
        floor = None if min_severity is None else Severity(min_severity)
        return self._with(
            f
            for f in self.findings
            if (categories is None or f.category in categories)
            and (subjects is None or f.subject in subjects)
            and (code is None or f.code.startswith(code))
            and (floor is None or f.severity >= floor)
        )

    def exit_code(self, fail_on: Severity | str = Severity.WARNING) -> int:
        """0 when every finding is below ``fail_on``, else 1 (for CI gates)."""
        return int(self.worst >= Severity(fail_on))

    # --------------------------------------------------------------- rendering
    def to_text(self, *, color: bool = False) -> str:
        """A compact table for terminals, one line per finding (ANSI colours optional)."""
        return _render.to_text(self, color=color)

    def __str__(self) -> str:
        return self.to_text()

    def to_markdown(self) -> str:
        """A Markdown summary line and table (for PR comments and CI summaries)."""
        return _render.to_markdown(self)

    def to_html(self, *, full_page: bool = True, title: str | None = None) -> str:
        """The report as one self-contained HTML page, drawn from the findings alone.

        Summary by category and severity, problems first (effect with its
        interval, corrected p-value), data drift sorted by effect with
        overlaid reference/current histograms, feature health per column,
        latency quantiles with CIs and request time by stage, profiles and
        the quantization trade-off, cost with its decomposition, the gate,
        the environment, and every check. Charts are inline SVG, the one
        small script only sorts tables, nothing loads from the network and
        no data row is embedded: the size depends on the number of findings,
        not on the data.

        Args:
            full_page: A whole document (default) or the ``<div>`` notebooks show
                (``_repr_html_``: the same markup).
            title: The page heading (default: ``context["title"]`` or "silenttax report").

        Examples:
            >>> from silenttax import Finding, Report
            >>> r = Report(findings=[Finding(code="latency.p99", category="latency",
            ...     severity="warning", subject="ranker", message="p99 48 ms > 40 ms SLO")])
            >>> page = r.to_html()
            >>> page.startswith("<!DOCTYPE html>"), "p99 48 ms" in page, "http://" in page
            (True, True, False)
        """
        from silenttax.report._html import to_html

        return to_html(self, full_page=full_page, title=title)

    def _repr_html_(self) -> str:
        return self.to_html(full_page=False)

    def to_dataframe(self) -> pd.DataFrame:
        """The findings as a pandas DataFrame, one row per finding (needs pandas).

        Raises:
            MissingDependencyError: pandas is not installed.
        """
        pandas: Any = optional_import("pandas", purpose="Report.to_dataframe")
        rows = [f.model_dump() for f in self.findings]
        frame: pd.DataFrame = pandas.DataFrame(rows, columns=list(Finding.model_fields))
        frame["category"] = frame["category"].map(str)
        frame["severity"] = pandas.Categorical(
            frame["severity"].map(str), categories=[s.value for s in Severity], ordered=True
        )
        return frame
