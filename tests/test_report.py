from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from silenttax import Category, Finding, Report, Severity
from silenttax.errors import StateError
from tests.strategies import findings


def make(code: str, severity: str, subject: str = "x", **kw: object) -> Finding:
    category = {"drift": "data_drift", "latency": "latency", "cost": "cost"}[code.split(".")[0]]
    return Finding(
        code=code,
        category=category,
        severity=severity,
        subject=subject,
        message=f"{code} on {subject}",
        **kw,
    )


@pytest.fixture
def report() -> Report:
    return Report(
        findings=[
            make("drift.numeric", "ok", "age", metric="ks", value=0.012, p_value=0.73),
            make("drift.numeric", "critical", "income", metric="ks", value=0.31, p_value=1e-14),
            make(
                "latency.p99",
                "warning",
                "ranker",
                metric="p99",
                value=0.0481,
                threshold=0.04,
                unit="s",
            ),
            make("cost.per_1k", "info", "ranker", value=0.021, unit="USD"),
        ],
        source="test",
        context={"rows": 1000},
    )


def test_worst_and_empty_report() -> None:
    assert Report().worst is Severity.OK
    assert Report().exit_code() == 0
    assert len(Report()) == 0


def test_queries(report: Report) -> None:
    assert report.worst is Severity.CRITICAL
    assert [f.subject for f in report.problems()] == ["income", "ranker"]
    assert [f.subject for f in report.problems("critical")] == ["income"]
    assert len(report.problems(Severity.INFO)) == 3
    assert [f.code for f in report.filter(category="latency")] == ["latency.p99"]
    assert len(report.filter(category=[Category.COST, "latency"])) == 2
    assert len(report.filter(subject="ranker")) == 2
    assert len(report.filter(subject=["age", "income"])) == 2
    assert len(report.filter(code="drift")) == 2
    assert len(report.filter(code="drift.", min_severity="warning")) == 1
    assert report.counts() == {
        Severity.OK: 1,
        Severity.INFO: 1,
        Severity.WARNING: 1,
        Severity.CRITICAL: 1,
    }
    assert report.summary() == "4 checks: 1 critical, 1 warning, 1 info, 1 ok"
    assert report[1].subject == "income"
    assert isinstance(report[:2], Report) and len(report[:2]) == 2


def test_filter_keeps_metadata(report: Report) -> None:
    filtered = report.problems()
    assert filtered.source == "test" and filtered.context == {"rows": 1000}
    assert report.filter(category="stability").worst is Severity.OK


def test_exit_codes(report: Report) -> None:
    assert report.exit_code() == 1
    assert report.exit_code(fail_on="critical") == 1
    assert report.filter(category="latency").exit_code(fail_on=Severity.CRITICAL) == 0
    assert report.filter(category="cost").exit_code() == 0
    assert report.filter(category="cost").exit_code(fail_on="info") == 1


def test_union_concatenates_in_order(report: Report) -> None:
    other = Report(findings=[make("latency.p99", "ok", "b")], source="other", context={"n": 2})
    both = report | other
    assert [f.subject for f in both] == [f.subject for f in report] + ["b"]
    assert both.source == "test | other"
    # each source keeps its own context: one module never overwrites another's figures
    assert both.context == {"by_source": {"test": {"rows": 1000}, "other": {"n": 2}}}
    again = both | Report(findings=[], source="test", context={"rows": 5})
    assert again.context == {
        "by_source": {"test": {"rows": 1000}, "other": {"n": 2}, "test#2": {"rows": 5}}
    }
    assert (Report() | Report()).findings == ()
    with pytest.raises(TypeError):
        _ = report | 3  # type: ignore[operator]


def test_json_round_trip(report: Report) -> None:
    text = report.to_json()
    back = Report.model_validate_json(text)
    assert back == report
    assert Report.from_json(text) == report
    assert '"kind":"silenttax.report"' in text


@given(st.lists(findings, max_size=5))
def test_json_round_trip_arbitrary(items: list[Finding]) -> None:
    report = Report(findings=items, context={"x": math.inf})
    text = report.to_json()
    assert Report.from_json(text).to_json() == text


def test_text_rendering_has_the_numbers(report: Report) -> None:
    text = str(report)
    assert (
        text.splitlines()[0] == "silenttax report — 4 checks: 1 critical, 1 warning, 1 info, 1 ok"
    )
    assert "CRITICAL" in text and "income" in text
    assert "p99=0.0481 s" in text
    assert "\x1b[" not in text
    assert "\x1b[1;31m" in report.to_text(color=True)
    assert str(Report()) == "silenttax report — 0 checks"


def test_markdown_rendering(report: Report) -> None:
    md = report.to_markdown()
    lines = md.splitlines()
    assert lines[0].startswith("**silenttax report** — 4 checks") and "`critical`" in lines[0]
    assert lines[2].startswith("| severity |")
    assert len(lines) == 4 + len(report)
    assert "| **warning** | `latency.p99` | ranker | p99=0.0481 s |  | 0.04 s |" in md
    assert "1e-14" in md
    pipe = Report(findings=[make("drift.numeric", "ok", "a|b")])
    assert "a\\|b" in pipe.to_markdown()


def test_html_rendering_escapes_and_colours(report: Report) -> None:
    fragment, page = report._repr_html_(), report.to_html()
    assert page.startswith("<!DOCTYPE html>") and not fragment.startswith("<!DOCTYPE")
    # the notebook shows the same markup as the page (only the element id differs)
    assert re.sub(r"stx-\d+", "ID", fragment) in re.sub(r"stx-\d+", "ID", page)
    assert "#cf222e" in page  # critical colour
    assert "0.0481 s" in page
    assert "src=" not in page and "http" not in page  # nothing from the network
    nasty = Report(findings=[make("drift.numeric", "ok", "<script>alert(1)</script>")])
    assert "<script>alert" not in nasty.to_html()
    assert "&lt;script&gt;alert(1)" in nasty.to_html()


def test_to_dataframe(report: Report) -> None:
    frame = report.to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(Finding.model_fields)
    assert frame["subject"].tolist() == ["age", "income", "ranker", "ranker"]
    assert frame["severity"].max() == "critical"  # ordered categorical
    assert frame.loc[2, "value"] == pytest.approx(0.0481)
    assert len(Report().to_dataframe()) == 0


def test_save_and_load(report: Report, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = report.save(tmp_path / "r.json")
    assert Report.load(path) == report
    path.write_text(path.read_text()[:50])
    with pytest.raises(StateError, match="cannot read"):
        Report.load(path)
