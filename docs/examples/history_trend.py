"""Three months of daily LatencyMonitor snapshots in a history store; the trend names the
creep and when it would cross the SLO (run by tests/test_docs.py)."""

import math
import tempfile
from pathlib import Path

import numpy as np

from silenttax import history
from silenttax.monitor import LatencyMonitor

DAY = 86400.0
start = 1_767_225_600.0  # 2026-01-01
rng = np.random.default_rng(7)

store = history.open(Path(tempfile.mkdtemp()) / "ranker.history")
store.mark("deploy", at=start, labels={"model": "ranker"}, version="2.2")
wobble = 0.0
for day in range(91):
    # a p50 of ~20 ms that creeps up 15% a quarter, and wanders 3% from day to day
    wobble = 0.5 * wobble + rng.normal(0, 0.026)
    median = 0.020 * math.exp(0.15 / 90 * day + wobble)
    monitor = LatencyMonitor()
    for seconds in rng.lognormal(math.log(median), 0.3, 2000):
        monitor.record(float(seconds))
    store.append(monitor, at=start + day * DAY + 3600, labels={"model": "ranker"})

p99 = store.series("latency.p99", resolution="1d", model="ranker")
print(f"{len(p99)} daily p99s, the last {p99.values[-1] * 1e3:.1f} ms")
report = store.trend("latency.p99", since=None, limits={"latency.p99": 0.060}, model="ranker")
print(report)
store.close()
