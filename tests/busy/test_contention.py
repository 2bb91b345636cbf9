"""The machine sensor and the CPU hog: a neighbour that takes the cores is seen as such."""

from __future__ import annotations

import time

import psutil
import pytest

from silenttax._contention import Sensor, summarize
from silenttax._system import usable_cores
from silenttax.errors import InputError
from silenttax.testing import CpuHog


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_hog_on_every_core_is_contention_and_its_cores_are_counted() -> None:
    cores = usable_cores()
    sensor = Sensor(needed=1)
    with CpuHog(processes=cores) as hog:
        assert len(hog.pids) == cores
        time.sleep(0.2)  # the processes are running
        mark = sensor.mark()
        spin(0.5)  # this process wants its core too
        busy = sensor.since(mark)
    assert busy.contended
    assert busy.other_cores is not None and busy.other_cores > 0.5
    assert busy.free_cores is not None and busy.free_cores < cores
    figures = summarize([busy])
    assert figures["contended_blocks"] == 1 and figures["other_cores_median"] > 0.5


def test_stop_kills_every_hog_process_by_pid() -> None:
    hog = CpuHog(processes=2).start()
    pids = hog.pids
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    hog.stop()
    assert hog.pids == []
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def test_a_delayed_hog_arrives_mid_measurement_and_is_cancelled_when_stopped_early() -> None:
    with CpuHog(processes=1, delay=0.3) as hog:
        assert hog.pids == [] and hog.started_at is None
        time.sleep(0.6)
        assert len(hog.pids) == 1
    never = CpuHog(processes=1, delay=30).start()
    never.stop()
    assert never.pids == [] and never.started_at is None


@pytest.mark.parametrize(("processes", "delay"), [(0, 0.0), (True, 0.0), (1, -1.0)])
def test_bad_hog_arguments_are_named(processes: int, delay: float) -> None:
    with pytest.raises(InputError, match=r"processes|delay"):
        CpuHog(processes, delay=delay)


def test_a_block_too_short_for_the_counters_is_never_called_contended() -> None:
    import dataclasses

    sensor = Sensor(needed=10_000)  # more cores than any machine: never free
    mark = sensor.mark()
    short = sensor.since(dataclasses.replace(mark, wall=time.perf_counter() - 0.02))
    assert short.seconds < 0.05 and not short.contended  # 20 ms: two counter ticks
    long = sensor.since(dataclasses.replace(mark, wall=time.perf_counter() - 0.2))
    assert long.contended  # the same counters over 200 ms: too few cores free
