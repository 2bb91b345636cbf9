"""Request-path safety: every recorder takes hostile values without raising into the
caller (unless ``strict=True``), counts them, and its check reports them as
``stability.invalid_input``; what was recorded before is kept."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from silenttax.cost import CostModel, CostMonitor
from silenttax.errors import InputError
from silenttax.gate import Canary
from silenttax.monitor import LatencyMonitor, LatencySketch, ResourceMonitor
from silenttax.report import Report, Severity
from silenttax.trace import Tracer

#: Values no duration, count or resource reading may be.
HOSTILE: list[Any] = [
    math.nan,
    -1.0,
    math.inf,
    -math.inf,
    None,
    "0.1",
    b"1",
    [1],
    {},
    object(),
    np.float32("nan"),
    10**400,
    -(10**400),
    complex(1, 1),
    np.array([1.0, 2.0]),
]


@pytest.fixture(autouse=True)
def _no_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _invalid(report: Report) -> int:
    (finding,) = report.filter(code="stability.invalid_input")
    assert finding.severity is Severity.WARNING and finding.category.value == "stability"
    assert finding.value == finding.evidence["invalid"]
    return int(finding.evidence["invalid"])


def test_latency_sketch_and_monitor_count_every_hostile_duration() -> None:
    sketch, monitor = LatencySketch(), LatencyMonitor(name="m")
    for record in (sketch.add, monitor.record):
        record(0.25)
        for value in HOSTILE:
            record(value)
        record(0.5)
    sketch.add_many([0.1, *HOSTILE[:4], 10**400])  # ragged and overflowing batches too
    sketch.add_many([[0.1], [0.2, 0.3]])
    assert sketch.invalid == len(HOSTILE) + 5 + 2 and sketch.count == 3
    assert monitor.sketch.count == 2 and _invalid(monitor.check()) == len(HOSTILE)
    for value in HOSTILE:
        with pytest.raises(InputError, match="seconds"):
            LatencyMonitor(name="m", strict=True).record(value)


def test_canary_counts_hostile_latencies_and_resources() -> None:
    canary = Canary(burn_in=10, resources=("memory",))
    for _ in range(20):
        canary.record_control(0.1, memory=1.0)
    for value in HOSTILE:
        canary.record_control(value)
        canary.record_canary(value)
        canary.record_canary(0.1, memory=value)
    canary.record_canary(0.1, unknown=1.0)
    assert canary.control == 20 and canary.canary == len(HOSTILE) + 1
    assert canary.invalid == _invalid(canary.check()) == 3 * len(HOSTILE) + 1
    strict = Canary(burn_in=10, strict=True)
    for value in HOSTILE:
        with pytest.raises(InputError, match="seconds"):
            strict.record_control(value)


def test_cost_monitor_counts_hostile_counts_times_and_clocks() -> None:
    monitor = CostMonitor(CostModel(price_per_hour=1.0), window=10)
    monitor.record(100, busy_seconds=1.0, now=0.0)
    for value in [*HOSTILE, True, 2.0, -3, 2**60]:
        monitor.record(value, busy_seconds=0.0, now=1.0)  # not a count
    bad = [v for v in HOSTILE if v is not None]  # None: "unknown" and "the clock"
    for value in bad:
        monitor.record(1, busy_seconds=value, now=2.0)  # the count stays, the time does not
        monitor.record(1, busy_seconds=0.0, now=value)  # no time to file it under: dropped
    monitor.close_window(now=10.0)
    (window,) = monitor.windows
    assert window.inferences == 100 + len(bad) and window.busy_seconds == 1.0
    assert monitor.invalid == _invalid(monitor.check()) == len(HOSTILE) + 4 + 2 * len(bad)
    with pytest.raises(InputError, match="record"):
        CostMonitor(CostModel(price_per_hour=1.0), strict=True).record(-1)
    with pytest.raises(InputError, match="now"):
        monitor.close_window(now=math.nan)
    with pytest.raises(InputError, match="price_per_hour"):
        monitor.set_price(10**400)
    assert monitor.pricing.price_per_hour == 1.0


def test_a_free_price_is_judged_not_a_crash() -> None:
    monitor = CostMonitor(CostModel(price_per_hour=1.0), window=10)
    monitor.record(100, busy_seconds=5.0, now=0.0)
    monitor.set_price(0.0, now=10.0)
    monitor.record(100, busy_seconds=5.0, now=10.0)
    monitor.close_window(now=20.0)
    (change,) = monitor.check().filter(code="cost.per_1k_increase")
    assert change.value == 0.0 and change.evidence["driver"] == "price"
    assert change.evidence["log_shares"]["price"] is None  # log(0) has no share
    change.model_dump_json()  # JSON-safe: no inf or NaN among the figures


def test_resource_monitor_counts_a_hostile_inference_count() -> None:
    monitor = ResourceMonitor(name="r", gpu=False)
    for value in [*HOSTILE, -1, True]:  # None (not known) is not counted
        assert monitor.sample(inferences=value) is not None  # the sample is still taken
    assert all(s.inferences is None for s in monitor.samples)
    assert monitor.invalid == _invalid(monitor.check()) == len(HOSTILE) + 1
    with pytest.raises(InputError, match="inferences"):
        ResourceMonitor(name="r", gpu=False, strict=True).sample(inferences=-1)


def test_tracer_records_non_string_names_and_counts_them() -> None:
    tracer = Tracer()
    for name in ([1], 7, None, object()):
        with tracer.span("request"), tracer.span(name, stage=3):
            pass
    assert tracer.breakdown().requests == 4
    assert _invalid(tracer.check()) == tracer.invalid == 4


def test_hostile_span_attributes_are_bounded_in_traces() -> None:
    """An attribute whose str() raises crashed Tracer.traces(); megabyte strings and long
    lists were copied whole into every trace."""

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no str")

    tracer = Tracer()
    for value in (Unprintable(), "x" * 10_000_000, list(range(10_000)), object(), None):
        with tracer.span("request", a=value), tracer.span("s", stage="s", a=value):
            pass
    traces = tracer.traces()
    assert len(traces) == 5
    shown = [t.attributes["a"] for t in traces]
    assert shown[0] == "<Unprintable: unprintable>"
    assert len(shown[1]) <= 1000 and shown[1].endswith("(10000000 characters)")
    assert len(shown[2]) == 100 and shown[4] is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: LatencyMonitor(name="m").record,
        lambda: Canary(burn_in=10).record_control,
        lambda: CostMonitor(CostModel(price_per_hour=1.0)).record,
    ],
)
def test_hostile_values_lose_nothing_recorded_before(make: Callable[[], Any]) -> None:
    record = make()
    owner = record.__self__
    record(1)
    before = owner.state().to_json()
    for value in HOSTILE:
        record(value)
    after = owner.state()
    kept = type(after).from_json(before)
    assert kept.model_dump().keys() == after.model_dump().keys()
