from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from scipy import stats

from silenttax.drift import DriftDetector, adjust
from silenttax.errors import InputError, NotFittedError, StateError
from silenttax.report import Severity


def frame(seed: int, n: int, *, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "normal": rng.normal(0, 1, n) + shift,
        "skewed": rng.lognormal(0, 0.8, n),
        "uniform": rng.uniform(0, 10, n),
        "count": rng.poisson(3, n).astype(float),  # few values: tested as discrete
        "city": rng.choice(["oslo", "rome", "lima", "pune"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "premium": rng.random(n) < 0.2,
    }


def test_families_and_default_tests() -> None:
    report = DriftDetector().fit(frame(0, 2000)).check(frame(1, 2000))
    by = {f.subject: f for f in report if f.code != "drift.dataset"}
    test = {name: f.evidence["test"] for name, f in by.items()}
    assert test["normal"] == "ks" and by["normal"].code == "drift.numeric"
    assert test["count"] == "chi2" and by["count"].code == "drift.numeric"
    assert test["city"] == "chi2" and by["city"].code == "drift.categorical"
    assert test["premium"] == "proportion_z" and by["premium"].code == "drift.boolean"
    # value and threshold are like for like: the effect and its materiality floor
    assert by["normal"].metric == "wasserstein_sd" and by["premium"].metric == "cohens_h"
    for f in by.values():
        assert f.value == f.effect_size and f.threshold is not None
    assert report[0].code == "drift.dataset"


def false_alarm_rate(seeds: range, n: int) -> float:
    alarms = 0
    for seed in seeds:
        report = DriftDetector(alpha=0.05).fit(frame(2 * seed, n)).check(frame(2 * seed + 1, n))
        alarms += any(f.severity >= Severity.WARNING for f in report)
    return alarms / len(seeds)


def test_calibration_under_no_drift() -> None:
    """Seeded small version: 120 A/A checks of 6 columns; the full run is marked slow."""
    rate = false_alarm_rate(range(120), 1000)
    # Holm keeps the family-wise rate at or below alpha; allow binomial noise (99% bound).
    assert rate <= stats.binom.ppf(0.99, 120, 0.05) / 120


@pytest.mark.slow
def test_calibration_under_no_drift_full() -> None:
    rate = false_alarm_rate(range(1000), 2000)
    assert rate <= stats.binom.ppf(0.99, 1000, 0.05) / 1000


def test_holm_is_not_dead_weight() -> None:
    """Without materiality, p-values alone alarm at about alpha: the correction is what holds it."""
    alarms = 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        ref = {f"c{i}": rng.normal(0, 1, 300) for i in range(10)}
        cur = {f"c{i}": rng.normal(0, 1, 300) for i in range(10)}
        report = DriftDetector(min_effect=0.0, correction="none").fit(ref).check(cur)
        alarms += any(f.severity >= Severity.WARNING for f in report)
    assert alarms / 150 > 0.2  # ~1 - 0.95**10 = 0.40 uncorrected


def test_small_shift_at_large_n_is_a_warning() -> None:
    rng = np.random.default_rng(3)
    ref = {"x": rng.normal(0, 1, 100_000)}
    cur = {"x": rng.normal(0.1, 1, 100_000)}
    finding = DriftDetector().fit(ref).check(cur).filter(subject="x")[0]
    assert finding.severity is Severity.WARNING
    assert finding.effect_size == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("change", ["shift", "scale"])
def test_immaterial_changes_at_1m_rows_are_not_warnings(change: str) -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(5, 1, 1_000_000)
    new = rng.normal(5, 1, 1_000_000)
    new = new + 0.01 if change == "shift" else 5 + (new - 5) * 1.01
    finding = DriftDetector().fit({"x": base}).check({"x": new}).filter(subject="x")[0]
    assert finding.severity < Severity.WARNING
    assert finding.effect_size < 0.05


def test_large_effect_is_critical() -> None:
    report = DriftDetector().fit(frame(0, 3000)).check(frame(1, 3000, shift=1.0))
    assert report.filter(subject="normal")[0].severity is Severity.CRITICAL
    assert report.worst is Severity.CRITICAL


def test_categorical_with_unseen_and_vanished_levels() -> None:
    ref = {"plan": ["free"] * 600 + ["pro"] * 300 + ["legacy"] * 100}
    cur = {"plan": ["free"] * 500 + ["pro"] * 300 + ["team"] * 200}
    finding = DriftDetector().fit(ref).check(cur).filter(subject="plan")[0]
    assert finding.severity >= Severity.WARNING
    expected = stats.chi2_contingency(
        np.array([[600, 100, 300, 0], [500, 0, 300, 200]]), correction=False
    )
    assert finding.evidence["statistic"] == pytest.approx(expected.statistic)
    assert finding.value == finding.effect_size == pytest.approx(0.2)  # total variation


def test_null_rate_change_is_reported_not_dropped() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(0, 1, 20_000)
    cur = rng.normal(0, 1, 20_000)
    cur[:4000] = np.nan
    report = DriftDetector().fit({"x": ref}).check({"x": cur})
    nulls = report.filter(code="drift.null_rate")[0]
    assert nulls.severity >= Severity.WARNING
    assert "0.00% -> 20.00%" in nulls.message
    assert report.filter(code="drift.numeric")[0].severity is Severity.OK  # values themselves fine


def test_all_null_column_is_a_finding_never_a_nan() -> None:
    ref = {"x": np.arange(100.0), "y": np.arange(100.0)}
    cur = {"x": np.full(50, np.nan), "y": np.arange(50.0)}
    report = DriftDetector().fit(ref).check(cur)
    finding = report.filter(subject="x")[0]
    assert finding.code == "drift.all_null" and finding.severity is Severity.CRITICAL
    assert all(f.p_value is None or 0 <= f.p_value <= 1 for f in report)


def test_infinities_are_reported() -> None:
    rng = np.random.default_rng(6)
    cur = rng.normal(0, 1, 5000)
    cur[:500] = np.inf
    report = DriftDetector().fit({"x": rng.normal(0, 1, 5000)}).check({"x": cur})
    assert report.filter(code="drift.non_finite")[0].severity >= Severity.WARNING


def test_missing_extra_and_retyped_columns() -> None:
    rng = np.random.default_rng(7)
    ref = {"a": rng.normal(0, 1, 1000), "b": rng.normal(0, 1, 1000)}
    cur = {"b": [f" {v:.6f}" for v in rng.normal(0, 1, 1000)], "extra": rng.normal(0, 1, 1000)}
    report = DriftDetector().fit(ref).check(cur)
    assert report.filter(subject="a")[0].code == "drift.missing_column"
    assert report.filter(subject="a")[0].severity is Severity.CRITICAL
    retyped = report.filter(code="drift.type_change")[0]
    assert retyped.subject == "b" and retyped.value == 1.0 and "' " in retyped.message
    tested = report.filter(code="drift.numeric", subject="b")[0]
    assert tested.severity is Severity.OK  # the numbers themselves did not drift
    assert not report.filter(subject="extra")


def test_bad_input() -> None:
    with pytest.raises(NotFittedError):
        DriftDetector().check({"x": [1.0]})
    detector = DriftDetector().fit({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(InputError, match="no rows"):
        detector.check({"x": np.array([])})
    with pytest.raises(InputError, match="nothing to check"):
        detector.check()
    with pytest.raises(InputError, match="alpha"):
        DriftDetector(alpha=2)
    with pytest.raises(InputError, match="unknown test"):
        DriftDetector(tests={"x": "t_test"})
    with pytest.raises(InputError, match="no rows"):
        DriftDetector().fit({"x": np.array([])})


def test_same_answer_for_every_input_type() -> None:
    ref, cur = frame(10, 3000), frame(11, 3000, shift=0.3)
    pdf_ref, pdf_cur = pd.DataFrame(ref), pd.DataFrame(cur)
    inputs = [
        (ref, cur),
        (pdf_ref, pdf_cur),
        (pl.from_pandas(pdf_ref), pl.from_pandas(pdf_cur)),
        (pa.Table.from_pandas(pdf_ref), pa.Table.from_pandas(pdf_cur)),
    ]
    results = []
    for r, c in inputs:
        report = DriftDetector().fit(r).check(c)
        results.append([(f.subject, f.severity, f.value, f.p_value) for f in report])
    assert all(res == results[0] for res in results[1:])


def test_merge_of_partition_detectors_equals_one_fit() -> None:
    data = frame(12, 6000)
    whole = DriftDetector().fit(data)
    parts = [{k: v[i::3] for k, v in data.items()} for i in range(3)]
    merged = DriftDetector().fit(parts[0])
    for part in parts[1:]:
        merged.merge(DriftDetector().fit(part))
    for name, summary in whole.reference.items():
        other = merged.reference[name]
        if hasattr(summary, "runs"):
            assert other.runs == summary.runs and other.scale == summary.scale  # type: ignore[union-attr]
        else:
            assert other.levels == summary.levels  # type: ignore[union-attr]
    cur = frame(13, 6000, shift=0.2)
    a = [(f.subject, f.severity, round(f.value or 0, 9)) for f in whole.check(cur)]
    b = [(f.subject, f.severity, round(f.value or 0, 9)) for f in merged.check(cur)]
    assert a == b


def test_streaming_window_equals_one_batch() -> None:
    detector = DriftDetector().fit(frame(14, 4000))
    cur = frame(15, 4000, shift=0.15)
    for i in range(4):
        detector.update({k: v[i * 1000 : (i + 1) * 1000] for k, v in cur.items()})
    windowed = detector.check()
    direct = DriftDetector().fit(frame(14, 4000)).check(cur)
    assert [(f.subject, f.severity) for f in windowed] == [(f.subject, f.severity) for f in direct]
    detector.reset_window()
    with pytest.raises(InputError):
        detector.check()


def test_save_load_round_trip(tmp_path: Path) -> None:
    detector = DriftDetector(tests={"skewed": "psi"}).fit(frame(16, 2000))
    detector.save(tmp_path / "d.json")
    loaded = DriftDetector.load(tmp_path / "d.json")
    cur = frame(17, 2000)
    a = [(f.subject, f.severity, f.value) for f in detector.check(cur)]
    b = [(f.subject, f.severity, f.value) for f in loaded.check(cur)]
    assert a == b
    assert (tmp_path / "d.json").stat().st_size < 6 * 64 * 1024
    (tmp_path / "bad.json").write_text('{"kind": "silenttax.report", "schema_version": 1}')
    with pytest.raises(StateError):
        DriftDetector.load(tmp_path / "bad.json")


def test_per_column_test_override_and_distances() -> None:
    report = (
        DriftDetector(tests={"skewed": "psi", "normal": "wasserstein", "city": "hellinger"})
        .fit(frame(18, 3000))
        .check(frame(19, 3000))
    )
    by = {f.subject: f for f in report}
    assert by["skewed"].metric == "psi" and by["skewed"].p_value is None
    assert by["normal"].evidence["test"] == "wasserstein"
    assert by["city"].evidence["test"] == "hellinger" and by["city"].metric == "hellinger_distance"
    assert report.worst is Severity.OK


def test_exact_mode_matches_scipy() -> None:
    rng = np.random.default_rng(20)
    a, b = rng.normal(0, 1, 400), rng.normal(0.3, 1, 300)
    finding = DriftDetector(exact=True).fit({"x": a}).check({"x": b}).filter(subject="x")[0]
    exact = stats.ks_2samp(a, b)
    assert finding.evidence["statistic"] == pytest.approx(exact.statistic, abs=1e-12)
    assert finding.evidence["p_value_raw"] == pytest.approx(exact.pvalue)
    assert finding.p_value == pytest.approx(exact.pvalue)  # one test: Holm leaves it as is


def test_fdr_correction() -> None:
    report = DriftDetector(correction="fdr").fit(frame(21, 2000)).check(frame(22, 2000, shift=0.5))
    assert report.filter(subject="normal")[0].severity >= Severity.WARNING
    assert adjust([0.01, 0.02, 0.5], "fdr") == pytest.approx([0.03, 0.03, 0.5])


def test_benchmark_workload_verdicts_small() -> None:
    """The benchmark's workload at 20k rows: all 6 drifted columns found, at most 1 false alarm."""
    from benchmarks.workload import make_workload

    ref, cur, drifted = make_workload(20_000, seed=0)
    report = DriftDetector().fit(ref).check(cur)
    flagged = {f.subject for f in report.problems() if f.code != "drift.dataset"}
    assert set(drifted) <= flagged
    assert len(flagged - set(drifted)) <= 1


def test_dask_frames_are_fitted_partition_by_partition_on_a_local_cluster() -> None:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    data = pd.DataFrame(frame(30, 8000))
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        big = dd.from_pandas(data, npartitions=4)
        distributed = DriftDetector().fit(big)
        from silenttax.features import FeatureHealth

        health = FeatureHealth().fit(big)
    local = DriftDetector().fit(data)
    for name, summary in local.reference.items():
        other = distributed.reference[name]
        assert other.model_dump(exclude={"total", "total_sq"}) == summary.model_dump(
            exclude={"total", "total_sq"}
        )
    assert health.profiles["city"].levels == FeatureHealth().fit(data).profiles["city"].levels
    cur = frame(31, 8000, shift=0.3)
    assert [f.severity for f in distributed.check(cur)] == [f.severity for f in local.check(cur)]


@pytest.mark.parametrize("rows", [1, 5, 19])
def test_a_tiny_reference_says_so_instead_of_crying_wolf(rows: int) -> None:
    """A 1- to 19-row reference: every column is `drift.skipped` INFO naming the size
    and the minimum, never a CRITICAL or a 'chi2 ... no drift' from treating a handful
    of measurements as discrete codes."""
    rng = np.random.default_rng(rows)
    ref = {"ldl": rng.normal(100, 30, rows), "label": rng.choice(["a", "b"], rows)}
    cur = {"ldl": rng.normal(160, 30, 300), "label": rng.choice(["a", "b"], 300)}
    report = DriftDetector().fit(ref).check(cur)
    skipped = report.filter(code="drift.skipped")
    assert sorted(f.subject for f in skipped) == ["label", "ldl"]
    assert all(f"{rows} reference values" in f.message and "20" in f.message for f in skipped)
    assert not report.problems()
    assert "2 not tested" in report.filter(code="drift.dataset")[0].message


def test_a_small_sample_of_measurements_is_not_codes() -> None:
    """20 distinct measurements (no more than low_cardinality) are continuous (KS), not
    'discrete' codes because they are few: codes repeat."""
    rng = np.random.default_rng(3)
    detector = DriftDetector().fit({"x": rng.normal(0, 1, 20)})
    report = detector.check({"x": rng.normal(0, 1, 20)})
    assert report.filter(code="drift.numeric")[0].evidence["test"] == "ks"
