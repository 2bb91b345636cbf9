"""Latency creep: LatencyMonitor runs a change detector over what it records."""

from __future__ import annotations

import math

import numpy as np
import pytest

import silenttax
from silenttax.errors import InputError
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


def test_a_creeping_p50_is_found_with_where_how_much_and_an_interval() -> None:
    monitor = LatencyMonitor(name="ranker", creep_seconds=0)  # replayed: no arrival times
    feed(monitor, lognormal(0, 0.010, 20_000))
    feed(monitor, lognormal(1, 0.013, 10_000))  # +30% from request 20,001
    found = {f.metric: f for f in creep(monitor.check()) if f.severity is Severity.WARNING}
    p50 = found["p50_ratio"]
    assert p50.subject == "ranker"
    assert p50.value == pytest.approx(1.3, abs=0.05)
    assert p50.evidence["low"] <= 1.3 <= p50.evidence["high"]  # type: ignore[operator]
    assert abs(p50.evidence["started"] - 20_001) <= 256  # type: ignore[operator]
    # confirmed once it held 30 blocks of 64 (1,920 requests) after the change
    assert 21_700 <= p50.evidence["detected"] <= 23_000  # type: ignore[operator]
    assert "crept up +" in p50.message and "holds" in p50.message
    assert p50.recommendation


def test_no_change_stays_quiet_seeded() -> None:
    """Calibration on plain noise, small version (the slow test runs 150 streams of 100k;
    benchmarks/bench_creep.py runs server-weeks with hiccups)."""
    alarms = 0
    for seed in range(30):
        watch = CreepWatch(min_seconds=0)
        sigma = (0.25, 0.5, 1.0)[seed % 3]
        watch.buffer.extend(lognormal(100 + seed, 0.01, 60_000, sigma).tolist())
        watch.fold()
        alarms += bool(watch.events)
    assert alarms == 0


@pytest.mark.slow
def test_no_change_stays_quiet_full() -> None:
    alarms = 0
    for seed in range(150):
        watch = CreepWatch(min_seconds=0)
        watch.buffer.extend(lognormal(seed, 0.01, 100_000, (0.25, 0.5, 1.0)[seed % 3]).tolist())
        watch.fold()
        alarms += bool(watch.events)
    assert alarms <= 1


def test_a_server_with_hiccups_raises_no_creep_and_a_step_is_confirmed_within_minutes() -> None:
    """The benchmark's simulated server (100 requests/s; GC pauses, neighbour bursts, a
    3 s slowdown every 3-5 minutes, a diurnal swing), seeded and short."""
    from benchmarks.bench_creep import server

    quiet = server(4 * 3600, seed=1)
    assert quiet.events == []
    assert quiet.hiccups  # the 3 s slowdowns were seen, as hiccups
    assert all(h.seconds < 60 for h in quiet.hiccups)
    for seed in (2, 3):
        watch = server(3000, seed=seed, change_at=1500)
        (event,) = [e for e in watch.events if e.quantile == "p50"]
        assert event.detected_at is not None and 60 <= event.detected_at - 1500 <= 120
        truth = 1.25 * (1 + 0.05 * math.sin(2 * math.pi * 1530 / 86_400))
        assert event.low <= truth <= event.high
    tail = server(3000, seed=4, change_at=1500, change="p95")
    assert [e.quantile for e in tail.events] == ["p95"]  # the median did not move


def test_a_creep_ends_when_the_level_is_back_and_a_second_rise_is_a_second_event() -> None:
    monitor = LatencyMonitor(name="ranker", creep_seconds=0)
    feed(monitor, lognormal(10, 0.010, 10_000))
    feed(monitor, lognormal(11, 0.014, 10_000))  # +40%
    feed(monitor, lognormal(12, 0.010, 10_000))  # back
    findings = creep(monitor.check())
    assert {f.severity for f in findings} == {Severity.INFO}
    assert all("ended at request" in f.message for f in findings)
    assert {f.evidence["ended"] for f in findings} <= set(range(20_001, 22_500))
    # a rise, then a second one on top of it while the first holds: two events
    twice = LatencyMonitor(name="ranker", creep_seconds=0)
    feed(twice, lognormal(13, 0.010, 10_000))
    feed(twice, lognormal(14, 0.0125, 10_000))  # +25%
    feed(twice, lognormal(15, 0.016, 10_000))  # +28% more
    warnings = [f for f in creep(twice.check()) if f.metric == "p50_ratio"]
    assert [f.severity for f in warnings] == [Severity.WARNING, Severity.WARNING]
    assert warnings[0].value == pytest.approx(1.25, abs=0.05)
    assert warnings[1].value == pytest.approx(1.28, abs=0.05)  # over the level before it


def test_a_hiccup_is_info_and_names_itself() -> None:
    watch_monitor = LatencyMonitor(name="ranker", creep_seconds=0)
    values = lognormal(20, 0.010, 30_000)
    values[15_000:15_600] *= 1.8  # about 9 blocks, then back
    feed(watch_monitor, values)
    report = watch_monitor.check()
    assert [f.severity for f in creep(report)] == [Severity.OK]
    hiccups = list(report.filter(code="latency.hiccup"))
    assert hiccups and all(f.severity is Severity.INFO for f in hiccups)
    assert "a hiccup, not creep" in hiccups[0].message


def test_nothing_is_judged_while_learning_and_creep_can_be_switched_off() -> None:
    monitor = LatencyMonitor()
    feed(monitor, lognormal(2, 0.01, 500))
    assert creep(monitor.check()) == []  # the level is learnt over the first 3,200
    quiet = LatencyMonitor()
    feed(quiet, lognormal(3, 0.01, 5_000))
    (ok,) = creep(quiet.check())
    assert ok.severity is Severity.OK and ok.value == 0
    off = LatencyMonitor(creep=False)
    feed(off, lognormal(2, 0.01, 500))
    off.record("not a number")  # type: ignore[arg-type]  # never raises into the request
    assert creep(off.check()) == [] and off.sketch.invalid == 1
    with pytest.raises(InputError, match="creep_seconds"):
        LatencyMonitor(creep_seconds=-1)


def test_state_round_trip_mid_stream_continues_the_same() -> None:
    values = np.concatenate([lognormal(4, 0.01, 20_000), lognormal(5, 0.014, 6_000)])
    straight = LatencyMonitor(creep_seconds=0)
    feed(straight, values)
    first = LatencyMonitor(creep_seconds=0)
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


def test_folds_of_any_size_give_the_same_verdicts() -> None:
    values = np.concatenate(
        [lognormal(6, 0.01, 20_000), lognormal(7, 0.015, 8_000), lognormal(8, 0.01, 8_000)]
    )
    values[5_000:5_500] *= 2.0  # a hiccup too
    whole = CreepWatch(min_seconds=0)
    whole.buffer.extend(values.tolist())
    whole.fold()
    pieces = CreepWatch(min_seconds=0)
    for chunk in np.array_split(values, 7):  # folds of uneven sizes
        pieces.consume(chunk)
    pieces.fold()
    assert whole.events and whole.hiccups
    strip = {"started_at", "detected_at", "ended_at"}
    assert [e.model_dump(exclude=strip) for e in whole.events] == [
        e.model_dump(exclude=strip) for e in pieces.events
    ]
    assert [(h.started, h.ended) for h in whole.hiccups] == [
        (h.started, h.ended) for h in pieces.hiccups
    ]


def test_a_watch_saved_by_the_previous_release_loads_and_relearns() -> None:
    from silenttax.monitor._creep import CreepState

    old = {"block": 64, "warmup": 200, "h": 16.0, "seen": 128_000, "pending": [],
           "detectors": {}, "reference": {}, "since_zero": {}, "events": []}  # fmt: skip
    watch = CreepWatch.from_state(CreepState.model_validate(old))
    assert watch.events == [] and watch.seen == 128_000
