"""The HTML report: drawn from findings only, size independent of the data, real in Chromium."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

from silenttax import Report
from silenttax._summary import histogram, merge_summaries, summarize_labels, summarize_numbers
from silenttax.drift import DriftDetector
from silenttax.features import FeatureHealth
from tests.chromium import find_chromium, render

PLOTS = """(() => Array.from(document.querySelectorAll('svg.stx-plot')).map(e => {
  const r = e.getBoundingClientRect(); return [r.width, r.height]; }))()"""


def _data(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for i in range(50):
        x = rng.standard_normal(n) * (1 + i % 3) + (0.2 if seed and i % 5 == 0 else 0.0)
        cols[f"f{i:02d}"] = x
    return cols


def _report(n: int) -> Report:
    reference, current = _data(n, 0), _data(n, 1)
    return DriftDetector().fit(reference).check(current) | FeatureHealth().fit(reference).check(
        current
    )


def test_histogram_shares_from_summaries() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 5000), rng.normal(0.5, 1, 4000)
    h = histogram(summarize_numbers(a), summarize_numbers(b), bins=20)
    assert h is not None and h["type"] == "bins"
    assert len(h["edges"]) == 21 and len(h["reference"]) == len(h["current"]) == 20
    assert sum(h["reference"]) == pytest.approx(1, abs=1e-3)
    assert sum(h["current"]) == pytest.approx(1, abs=1e-3)
    # the shares match numpy's histogram of the raw values on the same edges (clipped ends)
    edges = np.asarray(h["edges"])
    exact = np.histogram(np.clip(b, edges[0], edges[-1]), bins=edges)[0] / b.size
    assert np.abs(np.asarray(h["current"]) - exact).max() < 0.01
    # partitions merged give the same plot data as one pass
    merged = merge_summaries(summarize_numbers(b[:1000]), summarize_numbers(b[1000:]))
    assert histogram(summarize_numbers(a), merged, bins=20) == h
    # few distinct values: one bar per value; labels: top levels, the rest folded
    v = histogram(
        summarize_numbers(np.array([0, 1, 1, 2.0])), summarize_numbers(np.array([1, 2.0]))
    )
    assert v == {
        "type": "values",
        "values": [0.0, 1.0, 2.0],
        "reference": [0.25, 0.5, 0.25],
        "current": [0.0, 0.5, 0.5],
    }
    levels = np.array([f"l{i % 30}" for i in range(300)], dtype=object)
    lab = histogram(summarize_labels(levels), summarize_labels(levels[:150]), bins=5)
    assert lab is not None and lab["labels"][-1] == "(other)" and len(lab["current"]) == 6
    assert histogram(summarize_numbers(np.array([np.nan])), summarize_numbers(b)) is None


def test_drift_findings_carry_their_histogram() -> None:
    report = _report(500)
    tested = [f for f in report if f.code == "drift.numeric"]
    assert len(tested) == 50 and all("histogram" in f.evidence for f in tested)
    page = report.to_html()
    assert page.count('<svg class="stx-plot"') >= 51  # 50 histograms + the summary chart


def test_page_size_does_not_grow_with_the_data() -> None:
    small, large = _report(1_000).to_html(), _report(1_000_000).to_html()
    assert abs(len(large) - len(small)) / len(small) < 0.05, (len(small), len(large))
    assert len(large) < 500_000  # the budget for 50 features
    # no data row is embedded: none of the current values' digits appear
    values = _data(1_000, 1)["f00"][:20]
    assert not any(f"{v:.6f}" in large for v in values)


def test_page_is_self_contained() -> None:
    page = _report(300).to_html()
    assert not re.search(r"(src|href)\s*=|https?://|@import|url\(", page)
    script = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    assert len(script) == 1 and len(script[0]) < 3_000  # the table sorter only


@pytest.mark.skipif(
    find_chromium() is None,
    reason="Chromium is not installed (.ci/run installs Debian's chromium package)",
)
def test_page_in_headless_chromium(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "report.html"
    path.write_text(_report(2_000).to_html(), encoding="utf-8")
    page = render(path, script=PLOTS)
    assert page.errors == []
    sizes = page.evaluated
    assert len(sizes) >= 51 and all(w > 0 and h > 0 for w, h in sizes)
    image = np.asarray(Image.open(io.BytesIO(page.screenshot_png)).convert("L"), dtype=float)
    assert image.shape[0] > 1000 and image.std() > 10  # not blank: text, bars, colours


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed")
def test_chromium_driver_sees_errors(tmp_path: Path) -> None:
    """The check above can fail: a page with a script error and a network fetch is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<img src="https://example.com/x.png"><script>console.error("boom"); nope();</script>'
    )
    page = render(bad)
    assert any("boom" in e for e in page.console_errors)
    assert page.exceptions and page.failed_requests


def test_odd_hand_built_findings_still_render() -> None:
    """Users build findings by hand: odd evidence is left out of the plots, never a crash."""
    import math

    from silenttax import Finding

    nan, inf = math.nan, math.inf
    findings = [
        Finding(code="latency.quantile", category="latency", severity="warning", subject="ü<x>",
                message="m", metric="p99", value=nan, baseline=inf, unit="s",
                evidence={"ci": [nan, inf], "baseline_ci": ["a", 1]}),
        Finding(code="drift.numeric", category="data_drift", severity="ok", subject="c",
                message="m", effect_size=inf,
                evidence={"histogram": {"type": "bins", "edges": ["x"], "reference": [nan],
                                        "current": [1.0]}}),
        Finding(code="pipeline.shadow_overhead", category="pipeline", severity="ok",
                subject="r", message="m", evidence={"shares": {"model": nan, "x": "bad"}}),
        Finding(code="model_bloat.profile", category="model_bloat", severity="ok", subject="p",
                message="m", evidence={"shares": [1, 2], "step_time": "slow"}),
        Finding(code="quantize.candidate", category="model_bloat", severity="info", subject="q",
                message="m", evidence={"speedup": inf, "rel_error": None, "speedup_ci": "x",
                                       "size_bytes": "big"}),
        Finding(code="cost.per_1k_increase", category="cost", severity="ok", subject="c",
                message="m", evidence={"factors": {"price": "x"}}),
    ]  # fmt: skip
    page = Report(findings=findings).to_html()
    assert "ü&lt;x&gt;" in page
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):  # no inf/NaN coordinates
        assert not re.search(r'="[^"]*(inf|nan)', svg), svg
    assert Report().to_html().count("<section>") == 0


LABELS = """(() => Array.from(document.querySelectorAll('svg')).map(svg => {
  const edge = svg.getBoundingClientRect();
  const boxes = Array.from(svg.querySelectorAll('text'))
    .filter(t => ['start', 'end'].includes(t.getAttribute('text-anchor')))
    .filter(t => !t.closest('title')).map(t => {
      const r = t.getBoundingClientRect();
      return [t.textContent, r.left - edge.left, r.top - edge.top, r.right - edge.left,
              r.bottom - edge.top];
    });
  return [edge.width, edge.height, boxes];
}))()"""


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed")
def test_scatter_labels_neither_overlap_nor_leave_the_plot(tmp_path: Path) -> None:
    """The quantization scatter with crowded candidates and a long name at the right edge:
    measured in Chromium, every drawn label is inside the plot and clear of the others,
    and every point keeps its name (drawn, or in its tooltip when no spot is free)."""
    from silenttax.report import _svg

    points = [
        ("torch_dynamic_int8", 1.9, 0.26, False),
        ("ort_dynamic_int8", 2.0, 0.25, True),
        ("ort_static_int8_per_channel", 2.05, 0.25, False),
        ("fp16", 1.2, 0.5, False),
        ("bf16", 1.22, 0.5, False),
        ("a_very_long_candidate_name_at_the_edge", 3.5, 0.125, False),
    ]
    svg = _svg.scatter(points, "speedup vs size", x_label="speedup", y_label="size")
    path = tmp_path / "scatter.html"
    path.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{svg}</body></html>")
    page = render(path, script=LABELS)
    assert page.errors == []
    ((width, height, boxes),) = page.evaluated
    labels = [b for b in boxes if b[0] in {p[0] for p in points}]
    assert len(labels) >= 5, [b[0] for b in labels]  # crowded, yet nearly all drawn
    for name, left, top, right, bottom in labels:
        assert 0 <= left and right <= width and 0 <= top and bottom <= height, name
    for (a, *ab), (b, *bb) in ((x, y) for i, x in enumerate(labels) for y in labels[i + 1 :]):
        apart = ab[2] <= bb[0] or bb[2] <= ab[0] or ab[3] <= bb[1] or bb[3] <= ab[1]
        assert apart, f"{a!r} overlaps {b!r}"
    for name, *_ in points:
        assert f"<title>{name}:" in svg


HISTORY_PLOTS = """(() => Array.from(document.querySelectorAll('svg.stx-plot polyline')).map(e => {
  const r = e.getBoundingClientRect(); return [r.width, r.height,
  e.getAttribute('points').split(' ').length]; }))()"""


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed")
def test_history_charts_stay_small_however_long_the_history(tmp_path: Path) -> None:
    """A quarter and 400 days of daily snapshots: the trend chart keeps at most 200
    points (each bucket's min and max), stays under 10 KiB, and draws in Chromium."""
    from silenttax import history
    from tests.history.test_store import DAY, T0, _months

    sizes = []
    for days in (90, 400):
        store = history.open(tmp_path / f"{days}.db")
        store.mark("deploy", at=T0 + 45 * DAY, labels={"model": "m"}, version="2.3")
        _months(store, days, creep=0.2, seed=1)
        report = store.trend("latency.p50", since=None, limits={"latency.p50": 0.05}, model="m")
        store.close()
        (creep,) = report.filter(code="history.creep")
        assert len(creep.evidence["series"]["t"]) <= 200
        page_html = report.to_html()
        chart = re.findall(
            r'<svg class="stx-plot"[^>]*aria-label="latency.p50.*?</svg>', page_html, re.S
        )
        assert len(chart) == 1 and 'stroke-dasharray="2 3"' in chart[0]  # the deploy marker
        sizes.append(len(chart[0].encode()))
        path = tmp_path / f"{days}.html"
        path.write_text(page_html, encoding="utf-8")
        page = render(path, script=HISTORY_PLOTS)
        assert page.errors == []
        ((width, height, points),) = page.evaluated
        assert width > 100 and height > 10 and 2 <= points <= 200
    assert max(sizes) <= 10 * 1024, sizes
