"""Latency creep: LatencyMonitor runs a change detector over what it records."""

from __future__ import annotations

import numpy as np
import pytest

import silenttax
from silenttax.monitor import LatencyMonitor
from silenttax.monitor._creep import CreepWatch
from silenttax.report import Severity


def lognormal(seed: int, median: float, n: int, sigma: float = 0.4) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(median), sigma, n)


def feed(monitor: LatencyMonitor, values: np.ndarray) -> None:
    for v in values:
        monitor.record(float(v))


def creep(report: silenttax.Report) -> list[silenttax.Finding]:
    return list(report.filter(code="latency.creep"))


def test_a_creeping_p50_is_found_with_where_and_how_much() -> None:
    monitor = LatencyMonitor(name="ranker")
    feed(monitor, lognormal(0, 0.010, 20_000))
    feed(monitor, lognormal(1, 0.013, 10_000))  # +30% from request 20,001
    found = {f.metric: f for f in creep(monitor.check())}
    p50 = found["p50_ratio"]
    assert p50.severity is Severity.WARNING and p50.subject == "ranker"
    assert p50.value == pytest.approx(1.3, abs=0.08)
    assert abs(p50.evidence["started"] - 20_001) <= 500  # type: ignore[operator]
    assert 20_001 <= p50.evidence["detected"] <= 22_000  # type: ignore[operator]
    assert "crept up +" in p50.message and "from about request" in p50.message
    assert p50.recommendation


def test_no_change_stays_quiet_seeded() -> None:
    """Calibration, small version (the slow test runs 150 streams of 100k)."""
    alarms = 0
    for seed in range(30):
        watch = CreepWatch()
        sigma = (0.25, 0.5, 1.0)[seed % 3]
        watch.buffer.extend(lognormal(100 + seed, 0.01, 60_000, sigma).tolist())
        watch.fold()
        alarms += bool(watch.events)
    assert alarms <= 2


@pytest.mark.slow
def test_no_change_stays_quiet_full() -> None:
    alarms = 0
    for seed in range(150):
        watch = CreepWatch()
        watch.buffer.extend(lognormal(seed, 0.01, 100_000, (0.25, 0.5, 1.0)[seed % 3]).tolist())
        watch.fold()
        alarms += bool(watch.events)
    assert alarms <= 4  # measured 1 in 150


def test_nothing_is_judged_while_learning_and_creep_can_be_switched_off() -> None:
    monitor = LatencyMonitor()
    feed(monitor, lognormal(2, 0.01, 500))
    assert creep(monitor.check()) == []  # the level is learnt over the first 12,800
    quiet = LatencyMonitor()
    feed(quiet, lognormal(3, 0.01, 20_000))
    (ok,) = creep(quiet.check())
    assert ok.severity is Severity.OK and ok.value == 0
    off = LatencyMonitor(creep=False)
    feed(off, lognormal(2, 0.01, 500))
    off.record("not a number")  # type: ignore[arg-type]  # never raises into the request
    assert creep(off.check()) == [] and off.sketch.invalid == 1


def test_state_round_trip_mid_stream_continues_the_same() -> None:
    values = np.concatenate([lognormal(4, 0.01, 20_000), lognormal(5, 0.014, 6_000)])
    straight = LatencyMonitor()
    feed(straight, values)
    first = LatencyMonitor()
    feed(first, values[:15_123])
    resumed = silenttax.load(first.to_json())
    assert isinstance(resumed, LatencyMonitor)
    feed(resumed, values[15_123:])
    a = [(f.metric, f.evidence["started"], f.evidence["detected"]) for f in creep(straight.check())]
    b = [(f.metric, f.evidence["started"], f.evidence["detected"]) for f in creep(resumed.check())]
    assert a == b and a
    resumed.reset()
    assert creep(resumed.check()) == []  # forgotten with the recordings (no data: no verdict)
    monitor = LatencyMonitor()
    monitor.record("x")  # type: ignore[arg-type]
    monitor.record(float("nan"))
    assert monitor.sketch.invalid == 2


def test_the_vectorised_walk_equals_cusum_update_in_a_loop() -> None:
    from silenttax.monitor import CUSUM

    values = np.concatenate(
        [lognormal(6, 0.01, 20_000), lognormal(7, 0.015, 8_000), lognormal(8, 0.02, 8_000)]
    )
    watch = CreepWatch()
    for chunk in np.array_split(values, 7):  # folds of uneven sizes
        watch.consume(chunk)
    watch.fold()
    blocks = np.sort(np.log(values[: values.size // 64 * 64].reshape(-1, 64)), axis=1)
    medians = (blocks[:, 31] + blocks[:, 32]) / 2
    loop = CUSUM(k=0.5, h=16.0, warmup=200, direction="up")
    alarms = [(i + 1) * 64 for i, m in enumerate(medians) if loop.update(float(m)).drift_detected]
    assert alarms and [e.detected for e in watch.events if e.quantile == "p50"] == alarms
    state = watch.state().detectors["p50"]
    assert state.stats["pos"] == pytest.approx(loop.state().stats["pos"])
    assert state.stats["n"] == loop.state().stats["n"]
