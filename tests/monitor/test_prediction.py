"""PredictionMonitor: model-output drift, checked against scipy and calibrated under no change."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy import stats

import silenttax
from silenttax.errors import InputError
from silenttax.monitor import PredictionMonitor, PredictionMonitorState

ALPHA = 0.05


def _monitor(values: np.ndarray, **kw: object) -> PredictionMonitor:
    monitor = PredictionMonitor(**kw)  # type: ignore[arg-type]
    monitor.record_many(values.tolist())
    return monitor


def _alarmed(report: silenttax.Report) -> bool:
    """Any output test significant (INFO 'detectable' or above)."""
    return any(f.code.startswith("prediction.") and f.severity != "ok" for f in report)


def test_a_value_outputs_verdict_is_scipys_ks_test_at_alpha() -> None:
    """Regression outputs: the monitor's significance is scipy's two-sample KS at the
    same alpha, decision for decision, under no change and under a shift."""
    rng = np.random.default_rng(11)
    agree, runs = 0, 60
    for i in range(runs):
        shift = 0.0 if i % 2 == 0 else 0.08
        ref, cur = rng.normal(3, 1, 2000), rng.normal(3 + shift, 1, 2000)
        reference = _monitor(ref, output="value")
        got = _alarmed(_monitor(cur, output="value", reference=reference).check())
        agree += got == (stats.ks_2samp(ref, cur).pvalue < ALPHA)
    assert agree == runs


@pytest.mark.parametrize("output", ["value", "score", "class"])
def test_under_no_change_false_alarms_stay_at_alpha(output: str) -> None:
    """400 A/A pairs per kind of output (seeded): the share of runs with any significant
    output test is within the binomial bound of alpha (Holm over the score and the
    positive rate keeps it at or below)."""
    rng = np.random.default_rng(5)
    runs, alarms, warnings = 400, 0, 0
    for _ in range(runs):
        draws = {
            "value": lambda: rng.normal(3, 1, 1500),
            "score": lambda: rng.beta(2, 8, 1500),
            "class": lambda: (rng.random(1500) < 0.2).astype(int),
        }[output]
        kw = {"output": output, "positive": 1} if output == "class" else {"output": output}
        reference = _monitor(draws(), **kw)
        report = _monitor(draws(), reference=reference, **kw).check()
        alarms += _alarmed(report)
        warnings += report.worst >= "warning"
    upper = stats.binom.ppf(0.999, runs, ALPHA) / runs  # 0.1% chance of a false failure
    assert alarms / runs <= upper, f"{alarms}/{runs} A/A runs alarmed"
    assert warnings <= alarms
    if output == "value":  # one test, exact level: not far below alpha either
        assert alarms / runs >= stats.binom.ppf(0.001, runs, ALPHA) / runs


@pytest.mark.parametrize("output", ["score", "class"])
def test_a_positive_rate_from_20_to_25_percent_is_caught(output: str) -> None:
    """A classifier whose positive rate moves from 20% to 25% (Cohen's h 0.12, above the
    drift module's 0.1 material bar): a WARNING naming the positive rate in at least
    18 of 20 seeded runs of 20,000 outputs a side."""
    caught = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)

        def positives(rate: float, rng: np.random.Generator = rng) -> np.ndarray:
            return rng.random(20_000) < rate

        if output == "score":  # a positive answer scores in [0.5, 1), a negative below
            ref, cur = (
                np.where(p, rng.uniform(0.5, 1, 20_000), rng.uniform(0, 0.5, 20_000))
                for p in (positives(0.2), positives(0.25))
            )
            kw: dict[str, object] = {"output": "score", "threshold": 0.5}
        else:
            ref, cur = positives(0.2).astype(int), positives(0.25).astype(int)
            kw = {"output": "class", "positive": 1}
        reference = _monitor(ref, **kw)
        report = _monitor(cur, reference=reference, **kw).check()
        rates = report.filter(code="prediction.class_rate", subject="model: positive rate")
        assert len(rates) == 1 and rates[0].evidence["test"] == "proportion_z"
        caught += rates[0].severity >= "warning"
    assert caught >= 18, f"caught {caught} of 20"


def test_replicas_merge_to_one_pass_and_round_trip() -> None:
    rng = np.random.default_rng(2)
    scores = rng.beta(2, 8, 6000)
    reference = _monitor(rng.beta(2, 8, 6000), output="score")
    whole = _monitor(scores, output="score", reference=reference)
    replicas = [_monitor(part, output="score", reference=reference) for part in np.split(scores, 3)]
    merged = silenttax.merge([r.to_json() for r in replicas])
    assert isinstance(merged, PredictionMonitor) and merged.recorded == 6000
    assert merged.state().outputs.reference["score"].count == 6000  # type: ignore[union-attr]
    assert [(f.code, f.subject, f.severity) for f in merged.check()] == [
        (f.code, f.subject, f.severity) for f in whole.check()
    ]
    back = silenttax.load(merged.to_json())
    assert back.to_json() == merged.to_json()


def test_the_record_path_never_raises_and_counts_what_it_drops() -> None:
    monitor = PredictionMonitor(
        output="score", reference=_monitor(np.full(100, 0.2), output="score")
    )
    for bad in (None, "0.3", -0.5, 7.0, [0.1, 0.2, 0.7], {"p": 0.3}, object(), True):
        monitor.record(bad)
    monitor.record_many([0.2] * 92)
    assert (monitor.recorded, monitor.invalid) == (92, 8)
    invalid = monitor.check().filter(code="prediction.invalid")
    assert invalid[0].severity == "warning" and invalid[0].value == pytest.approx(0.08)
    monitor.record([0.4, 0.6])  # a two-class probability vector: the positive class's
    assert monitor.recorded == 93


def test_threads_recording_at_once_lose_nothing() -> None:
    monitor = PredictionMonitor(output="class")

    def work(label: int) -> None:
        for _ in range(5000):
            monitor.record(label)

    threads = [threading.Thread(target=work, args=(i % 3,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = monitor.state()
    assert state.recorded == 20_000 and state.outputs is not None
    assert state.outputs.reference["class"].rows == 20_000


def test_without_a_reference_it_says_what_would_decide() -> None:
    report = _monitor(np.full(50, 0.3), output="score").check()
    assert [(f.code, f.severity) for f in report] == [("prediction.drift", "info")]
    assert "reference" in report[0].message


def test_settings_and_kinds_are_checked() -> None:
    with pytest.raises(InputError, match="threshold"):
        PredictionMonitor(threshold=1.0)
    with pytest.raises(InputError, match="output"):
        PredictionMonitor(output="probability")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="baseline"):
        PredictionMonitor().check(baseline=3)  # type: ignore[arg-type]
    scores = _monitor(np.full(10, 0.3), output="auto")
    labels = _monitor(np.array(["yes", "no"] * 5), output="auto")
    assert (scores.state().resolved, labels.state().resolved) == ("score", "class")
    with pytest.raises(InputError, match="'output'"):
        scores.merge(labels)
    assert isinstance(silenttax.load(scores.to_json()).state(), PredictionMonitorState)


def test_gauges_give_the_positive_rate() -> None:
    monitor = _monitor((np.arange(1000) % 4 == 0).astype(int), output="class", positive=1)
    assert monitor.gauges() == {"recorded": 1000.0, "invalid": 0.0, "positive_rate": 0.25}
