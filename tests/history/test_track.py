"""Periodic appends of a live component (``History.track``): each append is the window
since the last, so a rollup counts each request once and the raw series shows a step
that the running total hides; failures lose nothing; bad input is named."""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from silenttax import history
from silenttax.errors import InputError, StateError
from silenttax.features import FeatureHealth
from silenttax.monitor import LatencyMonitor


def test_windows_count_each_request_once_and_show_the_step(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    store = history.open(tmp_path / "t.db")
    monitor = LatencyMonitor()
    tracker = store.track(monitor, every=0.05, labels={"model": "m"})
    recorded = 0
    for phase, median in enumerate((0.010, 0.020)):  # the model gets 2x slower
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            for v in rng.lognormal(math.log(median), 0.2, 50):
                monitor.record(float(v))
            recorded += 50
            time.sleep(0.005)
        if phase == 0:
            tracker.flush()  # the step falls between two windows
            cut = store.series("latency.count", model="m").times[-1]
    tracker.stop()
    assert tracker.errors == 0 and tracker.appended >= 3
    counts = store.series("latency.count", model="m").values
    assert sum(counts) == recorded == monitor.sketch.count  # each request once
    day = store.series("latency.count", model="m", resolution="1d", partial=True).values
    assert day == [recorded]  # the rollup merges windows: no request counted twice
    p50 = store.series("latency.p50", model="m")  # (an empty window has no p50)
    before = [v for t, v in zip(p50.times, p50.values, strict=True) if t <= cut]
    after = [v for t, v in zip(p50.times, p50.values, strict=True) if t > cut]
    assert before and after and max(before) < 0.015 < min(after)  # each window's own p50
    store.close()


def test_a_failed_append_goes_into_the_next_window(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = history.open(path, timeout=0.2)
    monitor = LatencyMonitor()
    tracker = store.track(monitor, every=3600, labels={"model": "m"})
    monitor.record(0.010)
    tracker.flush()
    monitor.record(0.011)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the file
    with pytest.raises(StateError, match="locked"):
        tracker.flush()
    monitor.record(0.012)
    other.execute("ROLLBACK")
    tracker.flush()
    assert store.series("latency.count", model="m").values == [1.0, 2.0]  # nothing lost
    # on the thread a failure is counted, never raised into the host
    other.execute("BEGIN IMMEDIATE")
    background = store.track(monitor, every=0.02, labels={"model": "b"})
    time.sleep(0.5)
    assert background.errors >= 1 and "locked" in (background.last_error or "")
    other.execute("ROLLBACK")
    background.stop()
    assert sum(store.series("latency.count", model="b").values) == 3.0  # all of it, once
    assert not background._thread.is_alive()
    tracker.stop()
    store.close()


def test_strict_raises_the_last_failed_append_and_bad_input_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = history.open(path, timeout=0.1)
    monitor = LatencyMonitor()
    tracker = store.track(monitor, every=3600, strict=True)
    monitor.record(0.01)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StateError, match="locked"):
        tracker.stop()
    other.execute("ROLLBACK")
    with pytest.raises(InputError, match="every"):
        store.track(monitor, every=0)
    with pytest.raises(InputError, match="component"):
        store.track("not a monitor")
    health = FeatureHealth().fit({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(InputError, match=r"feature_health.*cannot be windowed"):
        store.track(health)
    # a monitor reset between two appends: that window is refused, the next one restarts
    again = store.track(monitor, every=3600, labels={"model": "r"})
    monitor.record(0.02)
    again.flush()
    monitor.reset()
    monitor.record(0.03)
    with pytest.raises(InputError, match="since"):
        again.flush()
    again.flush()
    assert store.series("latency.count", model="r").values[-1] == 1.0
    again.stop()
    store.close()


TRACKED_APP = """
import os
from fastapi import FastAPI
from silenttax import history
from silenttax.integrations.fastapi import instrument

app = FastAPI()

@app.get("/predict/{n}")
async def predict(n: int) -> dict:
    if n % 10 == 0:
        raise RuntimeError("a failing request")
    return {"pid": os.getpid()}

store = history.open(os.environ["HISTORY"])
tracker = store.track(instrument(app), every=0.2,
                      labels={"model": "m", "replica": os.getpid()})
"""


def test_a_gunicorn_fleet_tracks_its_windows_into_one_store(tmp_path: Path) -> None:
    """Two uvicorn workers under gunicorn, recycled every ~40 requests, each tracking
    its middleware into one SQLite file: the fleet's daily rollup counts every request
    once (the last windows appended as workers exit), errors included."""
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn_worker")
    httpx = pytest.importorskip("httpx")
    from tests.integrations.servers import free_port, running

    (tmp_path / "tracked_app.py").write_text(TRACKED_APP)
    path = tmp_path / "fleet.history"
    port = free_port()
    args = ["gunicorn", "tracked_app:app", "-w", "2", "-k", "uvicorn_worker.UvicornWorker",
            "-b", f"127.0.0.1:{port}", "--max-requests", "40", "--max-requests-jitter", "10",
            "--graceful-timeout", "10", "--log-level", "warning"]  # fmt: skip
    sent = 300
    server = running(tmp_path, args, port=port, env={"HISTORY": str(path)}, timeout=90)
    with server as url, httpx.Client(base_url=url, timeout=30) as client:
        for n in range(1, sent + 1):
            for attempt in range(5):  # a worker reaching max_requests closes the line
                try:
                    client.get(f"/predict/{n}")
                    break
                except httpx.TransportError:
                    if attempt == 4:
                        raise
    store = history.open(path)
    route = {"model": "m", "route": "/predict/{n}"}
    day = store.series("latency.count", resolution="1d", partial=True, labels=route)
    assert day.values == [sent]  # every request once, fleet-wide
    errors = store.series("serving.error_rate", resolution="1d", partial=True, labels=route)
    assert errors.values[0] == pytest.approx(sent // 10 / sent)  # 5xx counted, once
    assert errors.n == [sent]
    workers = sqlite3.connect(path).execute(
        "SELECT COUNT(DISTINCT labels) FROM snapshot WHERE res = 0").fetchone()[0]  # fmt: skip
    assert workers >= 3  # a recycled worker at least: each replica its own windows
    store.close()
