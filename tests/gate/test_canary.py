"""Canary: anytime-valid (read after every request), fast on tail regressions, halts on
a broken split, merges across replicas, round-trips through silenttax.load."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

import silenttax
from silenttax.errors import InputError
from silenttax.gate import Canary, log_e_above, log_e_below
from silenttax.gate._canary import HALT_SHARE
from silenttax.monitor import LatencySketch
from silenttax.report import Severity

_Z97 = 1.8807936081512509


def stream(
    rng: np.random.Generator, n: int, *, tail: float = 1.0, scale: float = 1.0, share: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Arm (True: canary) and latency of ``n`` requests; the canary x tail above q97."""
    arm = rng.random(n) < share
    x = rng.lognormal(math.log(0.01), 1.0, n)
    x = np.where(arm, x * scale, x)
    x = np.where(arm & (x > 0.01 * math.exp(_Z97)), x * tail, x)
    return arm, x


def feed(canary: Canary, arm: np.ndarray, x: np.ndarray, *, every: bool = False) -> int | None:
    """Record a stream; with ``every``, read the decision after each request and return
    the request at which it first became terminal."""
    for i, (is_canary, seconds) in enumerate(zip(arm.tolist(), x.tolist(), strict=True)):
        if is_canary:
            canary.record_canary(seconds)
        else:
            canary.record_control(seconds)
        if every and canary.decision != "continue":
            return i
    return None


def first_rollback(
    arm: np.ndarray, x: np.ndarray, edges: np.ndarray, *, split: float = 0.05, tol: float = 0.05
) -> float:
    """Canary's rollback rule on a whole stream at once (the e-value only rises at canary
    events, so checking there is checking after every request)."""
    bar = math.log(len(edges) / (0.05 * (1 - HALT_SHARE)))  # the rollback share of alpha
    first = math.inf
    for edge in edges:
        above = x > edge
        c, k = np.cumsum(~arm & above), np.cumsum(arm & above)
        over = np.cumsum(arm & (x > edge * (1 + tol)))
        at = np.flatnonzero(arm & above)
        if not at.size:
            continue
        up = log_e_above(k[at], k[at] + c[at], split)
        hit = np.flatnonzero((up >= bar) & (over[at] * (1 - split) > c[at] * split))
        if hit.size:
            first = min(first, float(at[hit[0]]))
    return first


def test_watched_after_every_request_the_canary_rarely_rolls_back_under_no_change() -> None:
    """A/A: the chance of *ever* rolling back stays at alpha however often it is read."""
    rng = np.random.default_rng(11)
    base = rng.lognormal(math.log(0.01), 1.0, 5000)
    edges = np.quantile(base, [0.5, 0.99])
    reps = 300
    ever = sum(math.isfinite(first_rollback(*stream(rng, 40_000), edges)) for _ in range(reps))
    assert ever <= int(binom.ppf(0.999, reps, 0.05))


def test_the_class_decides_where_the_rule_says() -> None:
    """Reading Canary.decision after every request gives the vectorised rule's answer."""
    rng = np.random.default_rng(12)
    base = rng.lognormal(math.log(0.01), 1.0, 5000)
    arm, x = stream(rng, 60_000, tail=1.3)
    canary = Canary(baseline=base, metrics=("p50", "p99"))
    at = feed(canary, arm, x, every=True)
    expected = first_rollback(arm, x, np.quantile(base, [0.5, 0.99]))
    assert at is not None and canary.decision == "rollback"
    assert at == expected
    report = canary.check()
    assert report.findings[0].code == "canary.decision"
    assert report.findings[0].severity == Severity.CRITICAL
    verdicts = [f.evidence["verdict"] for f in report.filter(code="canary.latency")]
    assert "regression" in verdicts


def test_a_tail_regression_rolls_back_in_a_few_hundred_tail_events() -> None:
    rng = np.random.default_rng(13)
    base = rng.lognormal(math.log(0.01), 1.0, 5000)
    edges = np.quantile(base, [0.99])
    events = []
    for _ in range(40):
        arm, x = stream(rng, 100_000, tail=1.3)
        at = first_rollback(arm, x, edges)
        assert math.isfinite(at)
        events.append(int(np.count_nonzero(x[: int(at) + 1] > edges[0])))
    assert np.median(events) <= 400  # the benchmark measures ~250 with 1000 streams


def test_a_faster_canary_is_promoted_and_the_decision_stays() -> None:
    rng = np.random.default_rng(14)
    canary = Canary(baseline=rng.lognormal(math.log(0.01), 1.0, 5000), split=0.2)
    arm, x = stream(rng, 20_000, scale=0.7, share=0.2)
    assert feed(canary, arm, x, every=True) is not None
    assert canary.decision == "promote"
    arm, x = stream(rng, 5000, scale=3.0, share=0.2)  # a terminal decision stays
    feed(canary, arm, x)
    assert canary.decision == "promote"


def test_a_split_that_is_not_the_declared_one_halts_instead_of_rolling_back() -> None:
    rng = np.random.default_rng(15)
    canary = Canary(split=0.05, burn_in=500)
    arm, x = stream(rng, 30_000, share=0.03)
    feed(canary, arm, x)
    assert canary.decision == "halt"
    split = canary.check().filter(code="canary.split")[0]
    assert split.severity == Severity.WARNING and split.value == pytest.approx(0.03, abs=0.005)


def test_burn_in_fixes_the_edges_from_the_control_arm() -> None:
    canary = Canary(burn_in=100, metrics=("p50", "p99.9"), split=0.5)
    for i in range(99):
        canary.record_control(0.001 * (i + 1))
        canary.record_canary(5.0)  # not tested during the burn-in
    assert canary.edges is None and canary.decision == "continue"
    canary.record_control(0.1)
    assert canary.edges is not None
    assert canary.edges["p50"] == pytest.approx(0.0505)
    assert "burn-in" not in canary.check().findings[0].message


def test_replicas_merge_into_one_canary() -> None:
    rng = np.random.default_rng(16)
    base = rng.lognormal(math.log(0.01), 1.0, 5000)
    streams = [stream(rng, 20_000, tail=1.2) for _ in range(3)]
    replicas = [Canary(baseline=base) for _ in streams]
    whole = Canary(baseline=base)
    for replica, (arm, x) in zip(replicas, streams, strict=True):
        feed(replica, arm, x)
        feed(whole, arm, x)
    merged = replicas[0].merge(replicas[1]).merge(replicas[2])
    assert merged.state().canary_events == whole.state().canary_events
    assert merged.decision == whole.decision
    with pytest.raises(InputError, match="edges"):
        merged.merge(Canary(baseline=base * 2))
    with pytest.raises(InputError, match="edges"):
        Canary().merge(Canary())  # edges from a burn-in differ per replica


def test_state_round_trip_and_bad_input() -> None:
    rng = np.random.default_rng(17)
    sketch = LatencySketch()
    sketch.add_many(rng.lognormal(math.log(0.01), 1.0, 5000))
    canary = Canary(baseline=sketch)
    arm, x = stream(rng, 5000)
    feed(canary, arm, x)
    canary.record_canary(float("nan"))
    canary.record_control(-1.0)
    assert canary.invalid == 2
    back = silenttax.load(canary.to_json())
    assert isinstance(back, Canary) and back.to_json() == canary.to_json()
    assert back.decision == canary.decision
    back.reset()
    assert back.edges == canary.edges and back.control == 0  # edges from a baseline stay
    with pytest.raises(InputError, match="seconds"):
        Canary(strict=True).record_control(float("inf"))
    with pytest.raises(InputError, match="metrics"):
        Canary(metrics=("p100",))
    with pytest.raises(InputError, match="baseline"):
        Canary(baseline="fast")


def test_e_values_are_calibrated_and_mirror_each_other() -> None:
    """Under the null the mixture's mean is at most 1 (Ville's inequality needs that)."""
    rng = np.random.default_rng(18)
    n = 60
    k = rng.binomial(n, 0.05, 40_000)
    assert float(np.mean(np.exp(log_e_above(k, n, 0.05)))) <= 1.02
    assert float(np.mean(np.exp(log_e_below(k, n, 0.05)))) <= 1.02
    assert float(log_e_above(12, 60, 0.05)) > 0 > float(log_e_below(12, 60, 0.05))


def test_memory_per_request_is_watched_the_same_way() -> None:
    """A canary whose latency is fine but whose memory per request grew 40% rolls back
    on ``memory p99``; a bad resource value is counted, never raised."""
    rng = np.random.default_rng(20)
    canary = Canary(resources=("memory",), burn_in=1000, metrics=("p99",))
    for _ in range(120_000):
        seconds, memory = rng.lognormal(math.log(0.01), 0.5), rng.lognormal(math.log(2e6), 0.3)
        if rng.random() < 0.05:
            canary.record_canary(seconds, memory=memory * 1.4)
        else:
            canary.record_control(seconds, memory=memory)
        if canary.decision != "continue":
            break
    assert canary.decision == "rollback"
    report = canary.check()
    memory = report.filter(code="canary.resource")[0]
    assert memory.metric == "memory_p99_exceedance_ratio" and memory.severity == Severity.WARNING
    assert report.filter(code="canary.latency")[0].evidence["verdict"] != "regression"
    before = canary.invalid
    canary.record_control(0.01, memory=float("nan"), gpu=3.0)  # gpu: not a watched resource
    assert canary.invalid == before + 2
    back = silenttax.load(canary.to_json())
    assert back.to_json() == canary.to_json() and back.resources == ("memory",)
    with pytest.raises(InputError, match="resources"):
        Canary(resources=("latency",))
    with pytest.raises(InputError, match="mapping"):
        Canary(resources=("memory",), baseline=[0.01] * 100)
    fixed = Canary(resources=("memory",), baseline={"latency": [0.01] * 100, "memory": [1e6] * 100})
    assert fixed.edges == {"p50": 0.01, "p99": 0.01, "memory p50": 1e6, "memory p99": 1e6}


def test_a_healthy_canary_promotes_at_its_horizon_with_the_guarantee_stated() -> None:
    rng = np.random.default_rng(21)
    base = rng.lognormal(math.log(0.01), 1.0, 5000)
    promoted = 0
    for _ in range(10):
        canary = Canary(baseline=base, horizon=60_000)
        arm, x = stream(rng, 60_000)
        feed(canary, arm, x)
        promoted += canary.decision == "promote"
        if canary.decision != "promote":
            continue
        decision = canary.check().filter(code="canary.decision")[0]
        assert decision.evidence["promoted_by"] == "horizon"
        stated = decision.evidence["detectable_ratio_80"]
        assert set(stated) == {"p50", "p99"} and 1 < stated["p50"] < stated["p99"] < 10
        assert "80% power" in decision.message and f"{stated['p99']:.2f}x" in decision.message
    assert promoted >= 8  # no-change streams promote by the horizon (benchmark: >= 95%)


def test_a_regression_still_rolls_back_before_the_horizon() -> None:
    rng = np.random.default_rng(22)
    canary = Canary(baseline=rng.lognormal(math.log(0.01), 1.0, 5000), horizon=200_000)
    arm, x = stream(rng, 200_000, tail=1.3)
    at = feed(canary, arm, x, every=True)
    assert canary.decision == "rollback" and at is not None and at < 200_000


def test_the_stated_guarantee_is_the_binomial_power_of_the_rollback_test() -> None:
    canary = Canary(baseline=np.linspace(0.001, 0.1, 1000), horizon=10)
    rng = np.random.default_rng(23)
    arm, x = stream(rng, 40_000)
    feed(canary, arm, x)
    n = canary._control_events["p99"] + canary._canary_events["p99"]
    ratio = canary.detectable("p99")
    assert ratio is not None
    bar = math.log(2 / (0.05 * (1 - HALT_SHARE)))
    needed = next(k for k in range(n + 1) if log_e_above(k, n, 0.05) >= bar)  # brute force
    share = 0.05 * ratio / (0.05 * ratio + 0.95)
    assert binom.sf(needed - 1, n, share) == pytest.approx(0.8, abs=1e-6)
    assert binom.sf(needed - 1, n, share * 0.9) < 0.8  # the smallest such ratio
    with pytest.raises(InputError, match="not watched"):
        canary.detectable("p90")


def test_max_duration_promotes_and_the_horizon_round_trips() -> None:
    import time

    rng = np.random.default_rng(24)
    canary = Canary(baseline=rng.lognormal(math.log(0.01), 1.0, 5000), max_duration=60)
    arm, x = stream(rng, 3000)
    feed(canary, arm, x)
    assert canary.decision == "continue"
    canary._started_at = time.time() - 61  # a minute has passed
    assert canary.decision == "promote"
    again = silenttax.load(canary.state().model_dump_json())
    assert again.decision == "promote" and again.state() == canary.state()
    assert again.state().promoted_by == "horizon"


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"horizon": 0}, "horizon"), ({"horizon": 1.5}, "horizon"), ({"horizon": True}, "horizon"),
    ({"max_duration": -1}, "max_duration"), ({"max_duration": math.inf}, "max_duration"),
])  # fmt: skip
def test_bad_horizons_are_named(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        Canary(**kwargs)  # type: ignore[arg-type]
