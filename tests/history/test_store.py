"""The history store on real SQLite files: snapshots of the real monitors appended and
read back as series; rollups by merging (a fleet's daily p99 against the exact p99 of
all its requests); compaction and retention; many writer processes; markers; bad input;
schema versions; and trends judged on simulated months of real snapshots."""

from __future__ import annotations

import json
import math
import multiprocessing
import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pytest

from silenttax import history
from silenttax.cost import CostModel, CostMonitor
from silenttax.errors import InputError, StateError
from silenttax.features import FeatureHealth
from silenttax.history._pack import unpack
from silenttax.history._store import DAY, HOUR
from silenttax.monitor import LatencyMonitor

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def _day_of_latencies(rng: np.random.Generator, median: float, n: int = 2000) -> np.ndarray:
    return rng.lognormal(math.log(median), 0.4, n)


def test_snapshots_of_the_real_monitors_come_back_as_series(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store = history.open(tmp_path / "h.db")
    exact = []
    for day in range(5):
        monitor = LatencyMonitor()
        values = _day_of_latencies(rng, 0.020 * (1 + 0.05 * day))
        for v in values:
            monitor.record(float(v))
        exact.append(float(np.quantile(values, 0.99)))
        store.append(monitor, at=T0 + day * DAY, labels={"model": "ranker"})
    s = store.series("latency.p99", model="ranker")
    assert len(s) == 5 and s.unit == "s" and s.labels == {"model": "ranker"}
    assert s.times == [T0 + d * DAY for d in range(5)]
    for got, truth, lo, hi in zip(s.values, exact, s.lo, s.hi, strict=True):
        assert got == pytest.approx(truth, rel=0.02)
        assert lo is not None and hi is not None and lo <= got <= hi
    assert set(s.n) == {2000}
    assert {"latency.p50", "latency.p95", "latency.p99", "latency.count"} <= set(store.metrics())
    # cost, feature health and a report, beside it
    cost = CostMonitor(CostModel(price_per_hour=3.6), window=60)
    cost.record(1000, busy_seconds=30.0, now=T0)
    cost.record(1, busy_seconds=0.01, now=T0 + 61)  # closes the first window
    store.append(cost, at=T0, labels={"model": "ranker"})
    per_1k = store.series("cost.per_1k", model="ranker").values
    assert per_1k == [pytest.approx(cost.windows[0].cost_per_1k)]
    health = FeatureHealth().fit({"age": [1.0, None, 3.0, None], "city": ["a", "b", "c", "d"]})
    store.append(health, at=T0, labels={"model": "ranker"})
    nulls = store.series("feature.null_rate", model="ranker", column="age")
    assert nulls.values == [0.5] and nulls.lo[0] is not None and nulls.lo[0] < 0.5 < nulls.hi[0]  # type: ignore[operator]
    report = monitor.check()
    store.append(report, at=T0 + 5 * DAY, labels={"model": "ranker"})
    assert [f.code for f in store.findings(model="ranker")] == [f.code for f in report]
    assert store.findings(model="other") == []
    store.close()


def test_a_fleets_daily_p99_is_the_p99_of_all_its_requests(tmp_path: Path) -> None:
    """Two replicas, a snapshot an hour each over two days, busier and slower at peak:
    the daily rollup merges the sketches (within 1% of the exact p99 of every request);
    the mean of the hourly p99s is off by far more."""
    rng = np.random.default_rng(1)
    store = history.open(tmp_path / "fleet.db")
    everything: dict[int, list[np.ndarray]] = {0: [], 1: []}
    hourly_p99: dict[int, list[float]] = {0: [], 1: []}
    for hour in range(48):
        peak = 1 + math.sin(math.pi * (hour % 24) / 24)  # 1 .. 2
        for replica in ("a", "b"):
            values = _day_of_latencies(rng, 0.010 * peak, int(200 * peak))
            monitor = LatencyMonitor()
            for v in values:
                monitor.record(float(v))
            everything[hour // 24].append(values)
            hourly_p99[hour // 24].append(float(np.quantile(values, 0.99)))
            store.append(monitor, at=T0 + hour * HOUR + 60,
                         labels={"model": "m", "replica": replica})  # fmt: skip
    with pytest.raises(InputError, match="2 streams"):
        store.series("latency.p99", model="m")
    assert store.series("latency.p99", model="m", resolution="1d").times == [T0]  # ended days
    daily = store.series("latency.p99", model="m", resolution="1d", partial=True)
    assert daily.times == [T0, T0 + DAY] and daily.resolution == "1d"
    for day in (0, 1):
        truth = float(np.quantile(np.concatenate(everything[day]), 0.99))
        assert daily.values[day] == pytest.approx(truth, rel=0.01)
        assert abs(np.mean(hourly_p99[day]) / truth - 1) > 0.02  # averaging is not merging
    one = store.series("latency.p99", model="m", replica="a", resolution="1h", partial=True)
    assert len(one) == 48
    # compaction: the rollups stored, raw snapshots past retention dropped, same series
    # (appends already compacted the closed hours and days as the data moved on)
    done = store.compact(now=T0 + 20 * DAY)
    # every raw snapshot rolled up, its day packed: the row goes (past a day), and its
    # packed figures too (past 7 days); a compaction the appends started may have done
    # part of it: the end state counts
    assert done["dropped"] == 0
    chunks = dict(sqlite3.connect(tmp_path / "fleet.db").execute(
        "SELECT res, COUNT(*) FROM chunk GROUP BY res").fetchall())  # fmt: skip
    assert chunks == {HOUR: 20}  # the hours packed per series and day (10 x 2), kept 90 days
    by_res = dict(sqlite3.connect(tmp_path / "fleet.db").execute(
        "SELECT res, COUNT(*) FROM snapshot GROUP BY res").fetchall())  # fmt: skip
    assert by_res == {HOUR: 96, DAY: 4}
    again = store.series("latency.p99", model="m", resolution="1d", partial=True)
    assert again.values == daily.values
    hourly = store.series("latency.p99", model="m", replica="a", resolution="1h", partial=True)
    assert hourly.values == one.values
    store.close()


def test_late_snapshots_redo_their_rollup(tmp_path: Path) -> None:
    store = history.open(tmp_path / "late.db")
    monitor = LatencyMonitor()
    monitor.record(0.010)
    store.append(monitor, at=T0 + 10)
    store.compact(now=T0 + 2 * DAY)
    monitor.record(0.030)
    store.append(monitor, at=T0 + 20)  # a late writer, after the day was rolled up
    store.compact(now=T0 + 2 * DAY)
    (count,) = store.series("latency.count", resolution="1d", partial=True).values
    assert count == 3  # 1 + 2 recorded: the rollup was built again
    store.close()


def _writer(path: str, worker: int, appends: int) -> int:
    store = history.open(path, timeout=60)
    monitor = LatencyMonitor()
    for i in range(appends):
        monitor.record(0.001 * (i + 1))
        store.append(monitor, at=T0 + i, labels={"replica": worker})
    store.close()
    return appends


def test_many_writer_processes_lose_no_append(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")  # created by whichever writer opens it first
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        done = pool.starmap(_writer, [(path, w, 45) for w in range(8)])
    store = history.open(path)
    assert sum(done) == 360 and store.stats()["snapshot"] == 360
    for w in range(8):
        assert len(store.series("latency.count", replica=w)) == 45
    store.close()


def test_markers_by_hand_and_by_themselves(tmp_path: Path) -> None:
    from silenttax.benchmark import environment

    store = history.open(tmp_path / "m.db")
    store.mark("deploy", at=T0, labels={"model": "m"}, version="2.3")
    monitor = LatencyMonitor()
    monitor.record(0.01)
    for day, version in enumerate(["1", "1", "2"]):
        store.append(monitor, at=T0 + day * DAY, labels={"model": "m", "version": version})
    env = environment()
    store.append(env, at=T0)
    store.append(env, at=T0 + DAY)  # unchanged: no marker
    changed = env.model_copy(update={"packages": {**env.packages, "numpy": "0.0.1"}})
    store.append(changed, at=T0 + 2 * DAY)
    kinds = [(m.kind, m.when) for m in store.markers(model="m")]
    assert kinds == [
        ("deploy", "2026-01-01"),
        ("version", "2026-01-03"),
        ("environment", "2026-01-03"),
    ]
    (version,) = [m for m in store.markers() if m.kind == "version"]
    assert version.meta == {"version": "2", "previous": "1"}
    with pytest.raises(InputError, match="meta"):
        store.mark("deploy", bad=object())
    store.close()


def test_bad_input_is_named(tmp_path: Path) -> None:
    store = history.open(tmp_path / "bad.db")
    with pytest.raises(InputError, match="snapshot"):
        store.append(42)
    with pytest.raises(InputError, match="labels"):
        store.append(LatencyMonitor(), labels={"not a name": "x"})
    with pytest.raises(InputError, match="at must be"):
        store.append(LatencyMonitor(), at=float("nan"))
    store.append(LatencyMonitor(), at=T0)
    with pytest.raises(InputError, match=r"tracked: latency\.count"):
        store.series("latency.p42")
    with pytest.raises(InputError, match="resolution"):
        store.series("latency.count", resolution="1y")
    with pytest.raises(InputError, match="since"):
        store.series("latency.count", since="last tuesday")
    store.close()


def test_a_newer_store_or_another_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    history.open(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={history.SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(
        StateError,
        match=f"version {history.SCHEMA_VERSION + 1}.*up to version {history.SCHEMA_VERSION}",
    ):
        history.open(path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateError, match="not a history store"):
        history.open(junk)


def test_the_snapshots_are_kept_whole(tmp_path: Path) -> None:
    store = history.open(tmp_path / "blob.db")
    monitor = LatencyMonitor()
    for v in (0.01, 0.02, 0.03):
        monitor.record(v)
    first = store.append(monitor, at=T0)
    monitor.record(0.04)
    second = store.append(monitor, at=T0 + 60)
    assert LatencyMonitor.from_state(store.snapshot(second)).state() == monitor.state()
    assert store.snapshot(first).sketch.count == 3
    # compressed with the kind's dictionary: the first snapshot of the kind
    db = sqlite3.connect(tmp_path / "blob.db")
    (kind, d), = db.execute("SELECT kind, d FROM zdict").fetchall()  # fmt: skip
    assert kind == "silenttax.latency_monitor" and json.loads(d) == json.loads(
        store.snapshot(first).to_json())  # fmt: skip
    blob = db.execute("SELECT z FROM snapshot WHERE id = ?", (second,)).fetchone()[0]
    assert blob[:1] == b"\x01" and len(blob) < len(
        zlib.compress(monitor.state().to_json().encode())
    )
    # a blob written before dictionaries (plain zlib) still reads
    db.execute("UPDATE snapshot SET z = ? WHERE id = ?",
               (zlib.compress(monitor.state().to_json().encode()), first))  # fmt: skip
    db.commit()
    assert store.snapshot(first).sketch.count == 4
    with pytest.raises(InputError, match="no snapshot 999"):
        store.snapshot(999)
    store.close()


def _months(store: history.History, days: int, *, creep: float = 0.0, step: float = 0.0,
            step_day: int = 60, seed: int = 0) -> None:  # fmt: skip
    """A daily LatencyMonitor snapshot per day: lognormal requests whose median wanders
    (AR(1), 3% a day), creeps by ``creep`` per 90 days and steps by ``step``."""
    rng = np.random.default_rng(seed)
    level = 0.0
    for day in range(days):
        level = 0.5 * level + rng.normal(0, 0.03 * math.sqrt(1 - 0.25))
        median = 0.020 * math.exp(level + creep / 90 * day + step * (day >= step_day))
        monitor = LatencyMonitor()
        for v in rng.lognormal(math.log(median), 0.3, 500):
            monitor.record(float(v))
        store.append(monitor, at=T0 + day * DAY + 3600, labels={"model": "m"})


def test_trend_names_creep_with_a_breach_date_and_a_step_with_its_deploy(tmp_path: Path) -> None:
    creeping = history.open(tmp_path / "creep.db")
    _months(creeping, 90, creep=0.20, seed=1)
    report = creeping.trend("latency.p50", since=None, limits={"latency.p50": 0.030}, model="m")
    (found,) = report.filter(code="history.creep")
    assert found.severity.value in ("warning", "critical")
    assert found.evidence["slope_ci"][0] < 0.20 / 3 < found.evidence["slope_ci"][1] + 0.01
    assert "projected to cross 30 ms on" in found.message or "already past" in found.message
    steady = history.open(tmp_path / "steady.db")
    _months(steady, 90, seed=2)
    quiet = steady.trend(since=None, model="m")
    assert [f.code for f in quiet] == ["history.trend"]
    assert quiet.findings[0].severity.value == "ok"
    stepped = history.open(tmp_path / "step.db")
    stepped.mark("deploy", at=T0 + 45 * DAY, labels={"model": "m"}, version="2.3")
    _months(stepped, 90, step=0.15, step_day=45, seed=3)
    found_step = stepped.trend("latency.p50", since=None, model="m")
    (cp,) = found_step.filter(code="history.change_point")
    assert "at deploy 2.3" in cp.message and abs(cp.evidence["at"] - (T0 + 45 * DAY)) <= 3 * DAY
    short = history.open(tmp_path / "short.db")
    _months(short, 10)
    assert [f.code for f in short.trend(since=None)] == ["history.no_data"]
    for store in (creeping, steady, stepped, short):
        store.close()


def test_a_window_merged_back_into_a_component_and_figures_extracted_again(tmp_path: Path) -> None:
    """``state()`` counts each period once (its daily rollup, else its hours, else raw),
    before and after compaction; ``reextract()`` rebuilds the figures from the blobs."""
    rng = np.random.default_rng(5)
    store = history.open(tmp_path / "s.db")
    everything = []
    for hour in range(72):
        monitor = LatencyMonitor()
        values = _day_of_latencies(rng, 0.01, 100)
        for v in values:
            monitor.record(float(v))
        everything.append(values)
        store.append(monitor, at=T0 + hour * HOUR + 5, labels={"model": "m"})
    merged = store.state("silenttax.latency_monitor", model="m")
    assert merged.sketch.count == 7200
    store.compact(now=T0 + 3 * DAY + 10)
    after = store.state("silenttax.latency_monitor", model="m")
    assert after.sketch.count == 7200  # days rolled up: still each request once
    truth = float(np.quantile(np.concatenate(everything), 0.99))
    assert after.sketch.quantile(0.99) == pytest.approx(truth, rel=0.02)
    first_day = store.state("silenttax.latency_monitor", until=T0 + DAY, model="m")
    assert first_day.sketch.count == 2400
    with pytest.raises(InputError, match=r"no 'silenttax\.latency_monitor'"):
        store.state("silenttax.latency_monitor", model="other")
    # the figures, lost, come back from the kept snapshots
    before = store.series("latency.p99", resolution="1d", model="m").values
    sqlite3.connect(tmp_path / "s.db").execute("DELETE FROM point").connection.commit()
    assert store.reextract() > 0
    assert store.series("latency.p99", resolution="1d", model="m").values == before
    store.close()


def _raw(store: history.History, metric: str = "latency.p99") -> list[tuple[object, ...]]:
    s = store.series(metric, model="m")
    return list(zip(s.times, s.values, s.lo, s.hi, s.n, strict=True))


def _hourly(store: history.History, metric: str = "latency.p99") -> list[tuple[object, ...]]:
    s = store.series(metric, resolution="1h", model="m")
    return list(zip(s.times, s.values, s.lo, s.hi, s.n, strict=True))


def _chunks(path: Path) -> dict[float, int]:
    return dict(sqlite3.connect(path).execute(
        "SELECT res, COUNT(*) FROM chunk GROUP BY res").fetchall())  # fmt: skip


def test_raw_figures_packed_per_day_come_back_bit_for_bit(tmp_path: Path) -> None:
    """Compaction moves a closed day's raw and hourly figures into one chunk per series
    (far fewer bytes); the raw and hourly series, a late snapshot into a packed day (its
    hour rebuilt), ``reextract()`` and the Parquet export all give the same figures, bit
    for bit."""
    rng = np.random.default_rng(11)
    path = tmp_path / "packed.db"
    store = history.open(path)
    for i in range(3 * 144):  # every 10 minutes for 3 days
        monitor = LatencyMonitor()
        for v in _day_of_latencies(rng, 0.01 * (1 + i / 500), 50):
            monitor.record(float(v))
        store.append(monitor, at=T0 + i * 600 + rng.uniform(0, 1), labels={"model": "m"})
    before = _raw(store)
    hours = _hourly(store)
    assert len(hours) == 3 * 24 - 1  # the hours ended, as of the newest snapshot
    raw_rows = "SELECT COUNT(*), MIN(at) FROM point WHERE res = 0"
    store.compact()  # as of the newest snapshot: days 0 and 1 are closed (appends may
    figures = len(store.metrics(model="m"))  # have packed day 0 in the background)
    assert figures == 5 and _chunks(path) == {0.0: 2 * figures, HOUR: 2 * figures}
    left = sqlite3.connect(path).execute(raw_rows).fetchone()
    assert left == (144 * figures, pytest.approx(T0 + 2 * DAY, abs=1))  # today's rows only
    assert _raw(store) == before and _hourly(store) == hours  # bit for bit, in order
    # the raw snapshots of a packed day older than a day go; their figures stay
    assert history.RETENTION["raw_snapshots"] == DAY
    store.compact(now=T0 + 3 * DAY + 1)
    raw_snapshots = "SELECT COUNT(*), MIN(at) FROM snapshot WHERE res = 0"
    kept = sqlite3.connect(path).execute(raw_snapshots).fetchone()
    assert kept == (144 - 1, pytest.approx(T0 + 2 * DAY + 600, abs=1)) and _raw(store) == before
    # a late snapshot into a packed day: a row until the next compaction, then merged in
    counts = store.series("latency.count", resolution="1h", model="m").values
    late = LatencyMonitor()
    late.record(0.5)
    store.append(late, at=T0 + 3600 + 30, labels={"model": "m"})
    with_late = sorted([*before, *_raw_point(store, T0 + 3600 + 30)])
    assert _raw(store) == with_late
    store.compact()
    assert _chunks(path) == {0.0: 3 * figures, HOUR: 3 * figures}
    got = _raw(store)
    assert [r for r in got if r not in with_late] == [] and len(got) == len(with_late)
    assert got == with_late
    # its hour (day 0, packed) rebuilt: one request more there, every other hour as it was
    again = store.series("latency.count", resolution="1h", model="m").values
    assert again[1] == counts[1] + 1 and again[:1] + again[2:] == counts[:1] + counts[2:]
    hours = _hourly(store)
    # figures extracted again: the packed entries of those snapshots are replaced
    store.reextract()
    assert _raw(store) == with_late and _hourly(store) == hours
    store.compact()
    assert _raw(store) == with_late and _hourly(store) == hours
    # the export reads the packed days too
    duckdb = pytest.importorskip("duckdb")
    store.export(tmp_path / "out")
    got = duckdb.sql(
        f"SELECT epoch_seconds, value FROM read_parquet('{tmp_path / 'out'}/points/*/*.parquet',"
        " hive_partitioning = true) WHERE name = 'latency.p99' AND res = 0 ORDER BY 1"
    ).fetchall()
    assert got == [(t, v) for t, v, *_ in with_late]
    got = duckdb.sql(
        f"SELECT epoch_seconds, value FROM read_parquet('{tmp_path / 'out'}/points/*/*.parquet',"
        " hive_partitioning = true) WHERE name = 'latency.p99' AND res = 3600 ORDER BY 1"
    ).fetchall()
    every_hour = store.series("latency.p99", resolution="1h", partial=True, model="m")
    assert got == list(zip(every_hour.times, every_hour.values, strict=True))  # the last too
    assert got[:-1] == [(t, v) for t, v, *_ in hours]  # (compacted as of day 3: rolled up)
    store.close()


def _raw_point(store: history.History, at: float) -> list[tuple[object, ...]]:
    return [row for row in _raw(store) if row[0] == at]


def test_a_store_of_schema_1_is_brought_up_to_date(tmp_path: Path) -> None:
    """A file written by the first release (no ``chunk`` table, raw figures as rows,
    emptied raw snapshots kept) opens, reads, and packs at its next compaction."""
    path = tmp_path / "v1.db"
    store = history.open(path)
    for i in range(96):
        monitor = LatencyMonitor()
        monitor.record(0.01 + i * 1e-4)
        store.append(monitor, at=T0 + i * 1800 + 7, labels={"model": "m"})
    before = _raw(store)
    store.close()
    db = sqlite3.connect(path)  # what schema 1 had: the figures that appends packed as rows
    for sid, res, z in db.execute("SELECT series, res, z FROM chunk").fetchall():
        db.executemany(
            "INSERT INTO point VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(sid, p[0], res, *p[1:]) for p in unpack(z)],
        )
    db.execute("DROP TABLE chunk")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with history.open(path) as store:
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
        assert _raw(store) == before
        done = store.compact()
        assert done["packed"] > 0 and _raw(store) == before


def test_rollups_store_a_slimmer_snapshot_and_the_full_merges_figures(tmp_path: Path) -> None:
    """A day's rollup keeps FeatureHealth summaries at ROLLUP_BUDGET buckets (exact at
    their edges, the largest bucket under 0.5% of the rows) and no creep running state;
    its figures are those of the full snapshot."""
    from silenttax._summary import count_at, to_t
    from silenttax.history._slim import ROLLUP_BUDGET

    rng = np.random.default_rng(3)
    data = {"x": rng.normal(0, 1, 50_000), "y": rng.lognormal(0, 1, 50_000)}
    health = FeatureHealth().fit(data)
    monitor = LatencyMonitor()
    for v in _day_of_latencies(rng, 0.01, 3500):
        monitor.record(float(v))
    assert monitor.state().creep is not None and monitor.state().creep.pending
    store = history.open(tmp_path / "slim.db")
    store.append(health, at=T0 + 60, labels={"model": "m"})
    store.append(monitor, at=T0 + 60, labels={"model": "m"})
    store.compact(now=T0 + 2 * DAY)
    assert sqlite3.connect(tmp_path / "slim.db").execute(
        "SELECT COUNT(*) FROM snapshot WHERE res = 0").fetchone()[0] == 0  # fmt: skip
    rolled = store.state("silenttax.feature_health", model="m")
    for column, values in data.items():
        full = health.state().profiles[column].numbers
        slim = rolled.profiles[column].numbers
        assert full is not None and slim is not None and full.budget > ROLLUP_BUDGET
        assert slim.budget == ROLLUP_BUDGET and len(slim.runs) <= ROLLUP_BUDGET
        assert (slim.count, slim.total, slim.min, slim.max) == (
            full.count, full.total, full.min, full.max)  # fmt: skip
        index, counts = slim.buckets()
        assert counts.max() / slim.count < 0.005  # normal 0.25%, lognormal 0.45% here
        exact_index, exact_counts = count_at(to_t(values), slim.scale)  # the exact buckets
        assert exact_index.tolist() == index.tolist() and exact_counts.tolist() == counts.tolist()
        daily = store.series(
            "feature.mean", column=column, resolution="1d", partial=True, model="m"
        )
        assert daily.values == [full.mean]  # from the full snapshot (here: the same)
    latency = store.state("silenttax.latency_monitor", model="m")
    creep = latency.state().creep
    assert latency.sketch.count == 3500 and creep is not None and creep.pending == []
    assert store.series("latency.p99", resolution="1d", partial=True, model="m").values == [
        monitor.sketch.quantile(0.99)
    ]
    store.close()


def test_an_append_rolled_back_leaves_no_id_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first append of a kind fails inside its transaction (here its figures fail to
    extract): the dictionary and series it made are rolled back, and the next append
    neither names them nor loses anything."""
    from silenttax.history import _store

    store = history.open(tmp_path / "r.db")
    monitor = LatencyMonitor()
    monitor.record(0.01)

    def broken(state: object) -> list[object]:
        raise RuntimeError("a figure failed")

    real = _store.extract
    monkeypatch.setattr(_store, "extract", broken)
    with pytest.raises(RuntimeError):
        store.append(monitor, at=T0)
    monkeypatch.setattr(_store, "extract", real)
    other = history.open(tmp_path / "r.db")  # another writer makes the kind's dictionary
    other.append(LatencyMonitor(), at=T0 + 1)
    first = store.append(monitor, at=T0 + 2)
    assert store.snapshot(first).sketch.count == 1
    assert other.snapshot(first).sketch.count == 1
    assert store.series("latency.count", labels={}).values[-1] == 1.0
    other.close()
    store.close()
