from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import silenttax
from silenttax.cost import SECONDS_PER_MONTH, CostModel, CostMonitor, CostWindow
from silenttax.cost._monitor import CostMonitorState
from silenttax.errors import InputError
from silenttax.report import Severity

T0 = 1_700_000_000.0


def test_capacity_cost_formula() -> None:
    model = CostModel(price_per_hour=3.0, instances=4, currency="EUR")
    # 1000 * price * instances / (3600 * throughput * utilization)
    assert model.cost_per_1k(500, 0.5) == pytest.approx(1000 * 3.0 * 4 / (3600 * 500 * 0.5))
    assert model.cost_per_hour == 12.0
    assert model.cost_per_1k(500) < model.cost_per_1k(500, 0.5)


def test_realized_cost_and_monthly() -> None:
    model = CostModel(price_per_hour=2.5, instances=2)
    assert model.realized_cost_per_1k(inferences=1_000_000, hours=10) == pytest.approx(0.05)
    monthly = model.monthly_cost(traffic=100, throughput=400, utilization=0.5)
    assert monthly == pytest.approx(100 * SECONDS_PER_MONTH / 1000 * model.cost_per_1k(400, 0.5))
    assert SECONDS_PER_MONTH == pytest.approx(30.4375 * 86400)


def test_what_if() -> None:
    comparison = CostModel(price_per_hour=1.2).what_if(200, 500, traffic=150, utilization=0.5)
    assert comparison.ratio == pytest.approx(0.4)
    assert comparison.monthly_saving == pytest.approx(
        comparison.monthly_before - comparison.monthly_after
    )
    finding = comparison.report()[0]
    assert finding.code == "cost.what_if" and finding.severity is Severity.INFO
    assert "saving" in finding.message and "USD" in finding.message
    worse = CostModel(price_per_hour=1.2).what_if(500, 200, traffic=150).report()[0]
    assert worse.severity is Severity.WARNING and "extra cost" in worse.message


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (lambda: CostModel(price_per_hour=-1), "price_per_hour"),
        (lambda: CostModel(price_per_hour=1, instances=0), "instances"),
        (lambda: CostModel(price_per_hour=1).cost_per_1k(0), "throughput"),
        (lambda: CostModel(price_per_hour=1).cost_per_1k(10, 1.5), "utilization"),
        (
            lambda: CostModel(price_per_hour=1).realized_cost_per_1k(inferences=0, hours=1),
            "inferences",
        ),
        (lambda: CostModel(price_per_hour=math.nan), "price_per_hour"),
    ],
)
def test_bad_arguments_are_named(call: object, arg: str) -> None:
    with pytest.raises(InputError, match=arg):
        call()  # type: ignore[operator]


def run(monitor: CostMonitor, hours: list[tuple[int, float | None]], start: float = T0) -> None:
    for i, (inferences, busy) in enumerate(hours):
        monitor.record(inferences, busy_seconds=busy, now=start + 3600 * i)
        monitor.close_window(now=start + 3600 * (i + 1))


def increase(monitor: CostMonitor):  # type: ignore[no-untyped-def]
    return monitor.check().filter(code="cost.per_1k_increase")[0]


def test_window_figures() -> None:
    monitor = CostMonitor(CostModel(price_per_hour=2.0, instances=2), concurrency=2)
    run(monitor, [(720_000, 3600.0)])
    w = monitor.windows[0]
    assert w.cost == pytest.approx(4.0)
    assert w.cost_per_1k == pytest.approx(4.0 / 720)
    assert w.utilization == pytest.approx(3600 / (2 * 2 * 3600))
    assert w.throughput == pytest.approx(4 * 720_000 / 3600)
    # capacity formula at the window's throughput and utilisation == realized cost
    capacity = monitor.pricing.cost_per_1k(w.throughput, w.utilization)  # type: ignore[arg-type]
    assert capacity == pytest.approx(w.cost_per_1k)


def test_slower_model_is_blamed_on_throughput() -> None:
    monitor = CostMonitor(CostModel(price_per_hour=2.0))
    run(monitor, [(360_000, 1800.0), (240_000, 2400.0)])  # 5 ms -> 10 ms per inference
    finding = increase(monitor)
    assert finding.severity is Severity.WARNING
    assert finding.effect_size == pytest.approx(1.5)
    assert finding.evidence["driver"] == "throughput"
    assert finding.evidence["factors"]["throughput"] == pytest.approx(2.0)  # type: ignore[index]
    assert "throughput -50%" in finding.message


def test_price_change_is_blamed_on_price() -> None:
    monitor = CostMonitor(CostModel(price_per_hour=2.0))
    run(monitor, [(360_000, 1800.0)])
    monitor.set_price(3.0)
    run(monitor, [(360_000, 1800.0)], start=T0 + 3600)
    finding = increase(monitor)
    assert finding.evidence["driver"] == "price" and finding.effect_size == pytest.approx(1.5)
    assert monitor.pricing.price_per_hour == 3.0


def test_idle_capacity_is_blamed_on_utilization() -> None:
    monitor = CostMonitor(CostModel(price_per_hour=2.0))
    run(monitor, [(360_000, 1800.0), (180_000, 900.0)])  # half the traffic, same speed
    finding = increase(monitor)
    assert finding.severity is Severity.CRITICAL and finding.effect_size == pytest.approx(2.0)
    assert finding.evidence["driver"] == "utilization"
    assert "idle" in (finding.recommendation or "")


def test_without_busy_time_only_served_rate() -> None:
    monitor = CostMonitor(CostModel(price_per_hour=2.0))
    run(monitor, [(360_000, None), (240_000, None)])
    finding = increase(monitor)
    assert finding.evidence["driver"] == "served rate"


def test_same_traffic_is_quiet_and_no_data() -> None:
    assert [f.code for f in CostMonitor(CostModel(price_per_hour=1)).check()] == ["cost.no_data"]
    monitor = CostMonitor(CostModel(price_per_hour=2.0))
    run(monitor, [(360_000, 1800.0), (355_000, 1790.0)])
    assert monitor.check().worst is Severity.OK


def test_windows_roll_over_by_themselves() -> None:
    monitor = CostMonitor(CostModel(price_per_hour=1.0), window=60)
    for second in range(0, 300, 1):
        monitor.record(10, busy_seconds=0.5, now=T0 + second)
    assert len(monitor.windows) == 4
    assert all(w.inferences == 600 for w in monitor.windows)


def test_record_never_raises() -> None:
    monitor = CostMonitor(CostModel(price_per_hour=1.0))
    monitor.record(-5, busy_seconds=math.nan)
    monitor.record("x", busy_seconds=-1)  # type: ignore[arg-type]
    monitor.record(3, busy_seconds=0.3)
    window = monitor.close_window()
    assert window is not None and window.inferences == 3
    assert window.busy_seconds == pytest.approx(0.3)


def test_state_json(tmp_path: Path) -> None:
    monitor = CostMonitor(CostModel(price_per_hour=2.0))
    run(monitor, [(1000, 10.0), (2000, 20.0)])
    monitor.state().save(tmp_path / "c.json")
    back = CostMonitorState.load(tmp_path / "c.json")
    assert back.windows == list(monitor.windows) and back.pricing == monitor.pricing


def test_a_version_1_file_loads(tmp_path: Path) -> None:
    """Version 1 called the price ``model`` and the materiality ``tolerance``."""
    monitor = CostMonitor(CostModel(price_per_hour=2.0), min_effect=0.2)
    run(monitor, [(1000, 10.0), (2000, 20.0)])
    data = json.loads(monitor.to_json())
    data["schema_version"] = 1
    data["model"] = data.pop("pricing")
    data["params"]["tolerance"] = data["params"].pop("min_effect")
    back = silenttax.load(data)
    assert isinstance(back, CostMonitor)
    assert back.pricing == monitor.pricing and back.min_effect == 0.2
    assert back.state() == monitor.state()


def test_cost_monitor_reset_numpy_counts_and_invalid_values() -> None:
    import numpy as np

    monitor = CostMonitor(CostModel(price_per_hour=1.0), window=60, name="m")
    t0 = 1_700_000_000.0
    monitor.record(inferences=np.int64(500), busy_seconds=np.float32(2.0), now=t0)
    monitor.record(inferences=-3, now=t0 + 1)  # invalid: counted, not raised, not added
    monitor.record(inferences="many", now=t0 + 2)  # type: ignore[arg-type]
    window = monitor.close_window(now=t0 + 60)
    assert window is not None and window.inferences == 500 and monitor.invalid == 2
    monitor.set_price(2.0, now=t0 + 60)
    assert monitor.pricing.price_per_hour == 2.0
    monitor.reset()
    assert monitor.windows == () and monitor.baseline is None and monitor.invalid == 0
    assert [f.code for f in monitor.check()] == ["cost.no_data"]


def test_cost_baseline_can_come_at_check_time() -> None:
    cheap, dear = (
        CostMonitor(CostModel(price_per_hour=1.0)),
        CostMonitor(CostModel(price_per_hour=2.0)),
    )
    t0 = 1_700_000_000.0
    for monitor in (cheap, dear):
        monitor.record(inferences=3600, now=t0)
        monitor.close_window(now=t0 + 3600)
    rise = dear.check(cheap).filter(code="cost.per_1k_increase")[0]
    assert rise.effect_size == pytest.approx(2.0) and rise.severity >= Severity.WARNING
    assert dear.baseline is not None and dear.baseline.price_per_hour == 2.0  # unchanged
    with pytest.raises(InputError, match="baseline"):
        dear.check(baseline=3.0)  # type: ignore[arg-type]


def test_merging_replicas_gives_the_fleet_cost_exactly() -> None:
    """Two replicas (different prices, offset windows) merge into the fleet: money,
    inferences and busy time add up, and cost per 1000 is the fleet's."""
    t0 = 1_700_000_000.0
    a = CostMonitor(CostModel(price_per_hour=2.0), window=3600)
    b = CostMonitor(CostModel(price_per_hour=3.0), window=3600)
    for hour in range(3):
        a.record(inferences=1000, busy_seconds=900, now=t0 + 3600 * hour)
        a.close_window(now=t0 + 3600 * (hour + 1))
        b.record(inferences=3000, busy_seconds=1800, now=t0 + 3600 * hour + 60)
        b.close_window(now=t0 + 3600 * (hour + 1) + 60)
    windows_a, windows_b = a.windows, b.windows
    a.merge(b)
    assert len(a.windows) == 3
    for fleet, wa, wb in zip(a.windows, windows_a, windows_b, strict=True):
        assert fleet.inferences == wa.inferences + wb.inferences
        assert fleet.busy_seconds == pytest.approx(wa.busy_seconds + wb.busy_seconds)
        assert fleet.cost == pytest.approx(wa.cost + wb.cost)
        assert fleet.cost_per_1k == pytest.approx(1000 * (wa.cost + wb.cost) / 4000)
    assert a.pricing.instances == 2 and a.pricing.price_per_hour == pytest.approx(2.5)
    assert a.baseline is not None and a.baseline.inferences == 4000


def test_merge_refuses_another_currency_or_window_and_changes_nothing() -> None:
    a = CostMonitor(CostModel(price_per_hour=2.0))
    run(a, [(1000, 10.0)])
    before = a.to_json()
    with pytest.raises(InputError, match="currency"):
        a.merge(CostMonitor(CostModel(price_per_hour=2.0, currency="EUR")))
    with pytest.raises(InputError, match="'window'"):
        a.merge(CostMonitor(CostModel(price_per_hour=2.0), window=60))
    with pytest.raises(InputError, match="CostMonitor"):
        a.merge(object())  # type: ignore[arg-type]
    assert a.to_json() == before


def test_the_open_window_is_in_the_snapshot_and_survives_a_reload() -> None:
    """Nothing recorded is lost: inferences of the window still open are saved too."""
    monitor = CostMonitor(CostModel(price_per_hour=2.0), window=3600)
    monitor.record(inferences=500, busy_seconds=5.0, now=T0)
    monitor.record(inferences=250, now=T0 + 10)  # no busy time: the window's is unknown
    back = silenttax.load(monitor.to_json())
    assert isinstance(back, CostMonitor)
    closed = back.close_window(now=T0 + 3600)
    assert closed is not None and closed.inferences == 750 and closed.busy_seconds is None
    other = CostMonitor(CostModel(price_per_hour=2.0), window=3600)
    other.record(inferences=100, busy_seconds=1.0, now=T0 + 5)
    fleet = CostMonitor(CostModel(price_per_hour=2.0), window=3600)
    fleet.record(inferences=40, busy_seconds=0.5, now=T0)
    fleet.merge(other)
    window = fleet.close_window(now=T0 + 3600)
    assert window is not None and window.inferences == 140
    assert window.busy_seconds == pytest.approx(1.5)


def test_an_idle_window_is_idle_not_a_cost_increase() -> None:
    """One request in an idle window after a busy one: INFO cost.idle, never 'rose 10^5 %'."""
    monitor = CostMonitor(CostModel(price_per_hour=1.0), window=60)
    t0 = 1_700_000_000.0
    for i in range(6000):
        monitor.record(1, busy_seconds=0.005, occupied_seconds=0.005, now=t0 + i * 0.01)
    monitor.close_window(now=t0 + 60)
    monitor.record(1, busy_seconds=0.005, occupied_seconds=0.005, now=t0 + 3600)
    monitor.close_window(now=t0 + 3660)
    report = monitor.check()
    assert [f.code for f in report.problems()] == []
    idle = report.filter(code="cost.idle")
    assert idle and idle[0].severity.value == "info" and idle[0].value == 1.0
    assert not report.filter(code="cost.per_1k_increase")


def test_occupied_time_makes_utilisation_a_share_of_paid_time() -> None:
    """8 requests always in flight, 10 ms each, for 10 s: 8000 requests, 80 busy seconds,
    10 occupied: utilisation 100% (not 800%), capacity 800/s, 8 in flight."""
    monitor = CostMonitor(CostModel(price_per_hour=3.6), window=10)
    t0 = 1_700_000_000.0
    for i in range(1000):
        for _ in range(8):
            monitor.record(1, busy_seconds=0.01, occupied_seconds=0.01 / 8, now=t0 + i * 0.01)
    window = monitor.close_window(now=t0 + 10)
    assert window is not None
    assert window.utilization == pytest.approx(1.0)
    assert window.throughput == pytest.approx(800.0)
    assert window.in_flight == pytest.approx(8.0)
    again = CostMonitor.from_state(CostMonitorState.from_json(monitor.state().to_json()))
    assert again.windows == monitor.windows
    declared = CostWindow.model_validate(window.model_dump() | {"occupied_seconds": None})
    assert declared.utilization == pytest.approx(8.0)  # the old reading, concurrency 1
