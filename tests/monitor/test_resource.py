from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from silenttax.errors import InputError
from silenttax.monitor import ResourceMonitor, gpu_snapshot
from silenttax.report import Severity


def test_gpu_snapshot_without_driver_is_empty() -> None:
    assert gpu_snapshot() == []
    assert gpu_snapshot() == []  # cached failure, still no exception


def test_a_steady_process_stays_quiet() -> None:
    monitor = ResourceMonitor(name="steady")
    for i in range(30):
        assert monitor.sample(inferences=i * 10) is not None
        time.sleep(0.02)
    report = monitor.check()
    assert report.worst is Severity.OK, str(report)
    assert {f.code for f in report} == {"resource.memory", "resource.memory_growth", "resource.cpu"}
    memory = report.filter(code="resource.memory")[0]
    assert memory.value == monitor.samples[-1].rss and memory.unit == "B"


def test_a_real_leak_is_reported() -> None:
    monitor = ResourceMonitor(name="leaky")
    held = []
    for i in range(20):
        held.append(np.ones(1_000_000) * i)  # 8 MB kept alive per step
        monitor.sample(inferences=i * 100)
    finding = monitor.check().filter(code="resource.memory_growth")[0]
    assert finding.severity >= Severity.WARNING
    actual = monitor.samples[-1].rss - monitor.samples[0].rss
    assert actual == pytest.approx(19 * 8e6, rel=0.25)
    # growth between the medians of the first and last quarter of the samples
    assert finding.value == pytest.approx(actual * 15 / 19, rel=0.25)
    assert finding.p_value is not None and finding.p_value < 0.01
    per_inference = finding.evidence["bytes_per_inference"]
    assert per_inference == pytest.approx(80_000, rel=0.25)
    assert "grows steadily" in finding.message and finding.recommendation
    del held


def test_small_growth_is_not_material() -> None:
    monitor = ResourceMonitor(min_bytes=64 * 2**20)
    held = []
    for _ in range(20):
        held.append(np.ones(100_000))  # 0.8 MB per step: 16 MB in all
        monitor.sample()
    assert monitor.check().filter(code="resource.memory_growth")[0].severity is Severity.OK


def test_cpu_saturation_and_idle() -> None:
    monitor = ResourceMonitor(saturation=0.05)
    process = psutil.Process()
    monitor.sample()
    before, began = process.cpu_times(), time.perf_counter()
    end = began + 0.7
    while time.perf_counter() < end:
        pass  # one busy thread: a core's worth, less whatever else shares it
    monitor.sample()
    after, wall = process.cpu_times(), time.perf_counter() - began
    cpu = monitor.check().filter(code="resource.cpu")[0]
    cores = cpu.evidence["cores"]
    used = (after.user + after.system) - (before.user + before.system)
    # the monitor's share is the process's CPU time over the cores' wall time
    assert cpu.value == pytest.approx(used / wall / cores, rel=0.25, abs=0.02)  # type: ignore[operator]
    assert 0 < cpu.value <= 1.05  # type: ignore[operator]
    assert cpu.severity is Severity.WARNING and "saturated" in cpu.message
    short = ResourceMonitor(saturation=0.01)
    short.sample()
    short.sample()
    assert short.check().filter(code="resource.cpu")[0].severity is Severity.OK
    idle = ResourceMonitor()
    idle.sample()
    time.sleep(0.6)
    idle.sample()
    assert idle.check().filter(code="resource.cpu")[0].severity is Severity.OK


def test_background_thread() -> None:
    with ResourceMonitor(interval=0.02) as monitor:
        time.sleep(0.3)
    assert len(monitor.samples) >= 5
    times = [s.t for s in monitor.samples]
    assert times == sorted(times)
    assert monitor.samples[1].cpu_utilization is not None


def test_history_is_thinned_not_truncated() -> None:
    monitor = ResourceMonitor(max_samples=16)
    for i in range(100):
        monitor.sample(inferences=i)
    kept = [s.inferences for s in monitor.samples]
    assert len(kept) <= 16
    assert kept[0] == 0 and kept[-1] >= 80  # whole history still covered
    assert len({b - a for a, b in itertools.pairwise(kept)}) == 1  # type: ignore[operator]


def test_save_and_load(tmp_path: Path) -> None:
    monitor = ResourceMonitor(name="x")
    for _ in range(3):
        monitor.sample()
    monitor.save(tmp_path / "r.json")
    back = ResourceMonitor.load(tmp_path / "r.json")
    assert back.samples == monitor.samples and back.name == "x"


def test_too_few_samples() -> None:
    report = ResourceMonitor().check()
    assert [f.code for f in report] == ["resource.no_data"]


def test_dead_process_is_counted_not_raised() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    monitor = ResourceMonitor(pid=child.pid)
    assert monitor.sample() is not None
    child.kill()
    child.wait()
    assert monitor.sample() is None
    assert monitor.errors == 1
    assert monitor.check().filter(code="stability.internal_error")[0].severity is Severity.WARNING
    with pytest.raises(InputError, match="pid"):
        ResourceMonitor(pid=child.pid)
    strict = ResourceMonitor(pid=None, strict=True)
    assert strict.sample() is not None
