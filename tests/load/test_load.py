"""silenttax.load: the open-loop generator, the cluster-aware bound, capacity, the paired
comparison and soaks — on simulated servers with known truth, an ONNX Runtime session
and a real uvicorn app on 127.0.0.1 (bounded in requests and time)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import silenttax
from benchmarks.bench_load import Server
from silenttax.errors import InputError
from silenttax.load import (
    capacity,
    compare_capacity,
    exceedance_bound,
    judge_blocks,
    run,
    schedule,
    soak,
    warmup_end,
    worker_process,
)
from tests.load import _gil


# ---------------------------------------------------------------------------- schedule
def test_schedule_is_seeded_poisson_or_constant() -> None:
    a, b = schedule(500, 4, seed=3), schedule(500, 4, seed=3)
    assert np.array_equal(a, b) and a[0] == 0 and np.all(np.diff(a) > 0)
    assert abs(len(a) - 2000) < 4 * math.sqrt(2000)  # a Poisson count of mean 2000
    gaps = np.diff(a)
    from scipy import stats

    assert stats.kstest(gaps, "expon", args=(0, 1 / 500)).pvalue > 0.001
    c = schedule(100, 1, arrival="constant")
    assert len(c) == 100 and np.allclose(np.diff(c), 0.01)
    for bad in ({"rate": 0, "duration": 1}, {"rate": 1, "duration": -1},
                {"rate": 1, "duration": 1, "arrival": "bursty"}):  # fmt: skip
        with pytest.raises(InputError):
            schedule(**bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ bound
def _mm1(lam: float, mu: float, n: int, rng: np.random.Generator) -> tuple[Any, Any]:
    """FIFO M/M/1 by Lindley's recursion: response times and 'arrived to an empty system'."""
    gaps = rng.exponential(1 / lam, n)
    service = rng.exponential(1 / mu, n)
    wait = np.zeros(n)
    for i in range(1, n):
        wait[i] = max(0.0, wait[i - 1] + service[i - 1] - gaps[i])
    return wait + service, wait == 0


@pytest.mark.parametrize("utilisation", [0.3, 0.5])
def test_the_cluster_aware_bound_covers_the_truth_on_mm1(utilisation: float) -> None:
    """One-sided 95% upper bounds on P(T > s) cover exp(-(mu - lambda) s) in >= 93% of
    simulated M/M/1 runs (slow requests come in clumps: the i.i.d. binomial bound covers
    less, which is why it is not used)."""
    from scipy import stats

    rng = np.random.default_rng(7)
    mu, runs, n = 1000.0, 150, 5000
    lam = utilisation * mu
    s = -math.log(0.02) / (mu - lam)  # P(T > s) = 2%
    covered = naive = 0
    for _ in range(runs):
        t, empty = _mm1(lam, mu, n, rng)
        over = t > s
        bound = exceedance_bound(over, empty)
        covered += bound.high >= 0.02
        naive += stats.binomtest(int(over.sum()), n).proportion_ci(0.90).high >= 0.02
        assert bound.low <= bound.share <= bound.high
    assert covered / runs >= 0.93, covered
    assert naive <= covered


def test_the_bound_counts_clusters_and_is_exact_poisson_when_requests_are_independent() -> None:
    from scipy.special import gammaincinv

    over = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0] * 100, bool)
    bound = exceedance_bound(over, np.ones(over.size, bool))  # every request its own cycle
    assert bound.clusters == 200 and bound.share == pytest.approx(0.2)
    # clusters of one: the exact Poisson bound on their number (at alpha / 2)
    assert bound.high == pytest.approx(gammaincinv(201, 0.975) / 1000, rel=1e-9)
    assert bound.low == pytest.approx(gammaincinv(200, 0.025) / 1000, rel=1e-9)
    none = exceedance_bound(np.zeros(300, bool), np.ones(300, bool))
    assert none.high == pytest.approx(-math.log(0.05) / 300, rel=1e-6)  # the rule of three


# -------------------------------------------------------------------------------- run
def test_a_stall_is_seen_as_clients_see_it_no_coordinated_omission() -> None:
    """A 1 s stall at 100 requests/s: every request due during it waits. The reported p99
    is within 10% of the open-loop truth computed from the schedule itself (a closed
    loop would have sent one request during the stall and reported ~1 ms)."""
    stall = (1.0, 2.0)  # seconds from the first send
    began: list[float] = []

    def served() -> None:
        now = time.perf_counter()
        if not began:
            began.append(now)
        at = now - began[0]
        if stall[0] <= at < stall[1]:
            time.sleep(stall[1] - at)
        time.sleep(0.001)

    done = run(served, rate=100, duration=4, seed=5, calibrate=False, timeout=5)
    truth = np.maximum(stall[1] - done.intended, 0)
    truth[(done.intended < stall[0])] = 0
    truth = np.quantile(truth + 0.001, 0.99)
    assert done.failures == 0 and done.requests > 300
    assert abs(done.p99 - truth) <= 0.1 * truth, (done.p99, truth)
    # the service time alone (start -> end) hides nothing either: the stall is in it
    assert np.quantile(done.service, 0.99) > 0.5


def test_the_warm_up_ends_where_latencies_settle() -> None:
    """MSER-5: a slow start is cut (to within one batch of five), a stationary series
    mostly is not; ``warmup="auto"`` leaves the slow first requests out of the run."""
    rng = np.random.default_rng(7)
    cuts = np.array([warmup_end(rng.lognormal(0, 0.5, 2000)) for _ in range(200)])
    assert np.mean(cuts <= 100) >= 0.9 and cuts.max() <= 1000  # at most half
    for start in (50, 300):
        x = np.r_[rng.lognormal(2, 0.5, start), rng.lognormal(0, 0.5, 2000)]
        assert start <= warmup_end(x) <= start + 5
    assert warmup_end(np.ones(30)) == 0  # too short to judge

    calls = [0]

    def cold() -> None:
        calls[0] += 1
        time.sleep(0.03 if calls[0] <= 40 else 0.001)

    done = run(cold, rate=100, duration=3, warmup="auto", calibrate=False)
    assert done.warmup >= 0.3  # the 40 slow requests took the first ~0.4 s
    assert (done.service < 0.02).mean() >= 0.97
    assert done.figures()["warmup"] == done.warmup


def test_errors_timeouts_and_overflow_are_counted_and_stay_in_the_percentiles() -> None:
    def flaky(item: int) -> None:
        if item % 10 == 0:
            raise ValueError("bad row")

    done = run(flaky, rate=200, duration=1, payloads=list(range(20)), calibrate=False)
    counts = done.counts()
    assert counts["error"] == pytest.approx(0.1 * done.requests, abs=2)
    assert counts["ok"] + counts["error"] == done.requests
    slow = run(lambda: time.sleep(0.3), rate=50, duration=1, timeout=0.1, calibrate=False)
    assert slow.counts()["timeout"] == slow.requests and math.isinf(slow.p99)
    capped = run(lambda: time.sleep(0.2), rate=100, duration=0.5, max_in_flight=2,
                 calibrate=False)  # fmt: skip
    assert capped.counts()["overflow"] > 0 and math.isinf(capped.p99)
    codes = {f.code for f in capped.report().findings}
    assert "load.errors" in codes


def test_bad_targets_and_options_are_silenttax_errors() -> None:
    for target, kwargs in (
        ("ftp://x", {}), ("https://example.org", {}), (42, {}),
        (lambda x: x, {"payloads": "abc"}), (lambda x: x, {"payloads": []}),
        (lambda: None, {"timeout": 0}), (lambda: None, {"max_in_flight": 0}),
        (lambda: None, {"warmup": 5}), (lambda: None, {"arrival": "burst"}),
    ):  # fmt: skip
        with pytest.raises(InputError):
            run(target, rate=10, duration=1, calibrate=False, **kwargs)
    with pytest.raises(InputError, match="slo_p99"):
        capacity(lambda: None, slo_p99=0)


def test_a_gil_holding_callable_runs_in_worker_processes() -> None:
    """Each payload reaches a worker; a raised exception fails that request only; a
    worker that crashes fails its request and is replaced; the processes end with the
    target. The generator's own thread is left the GIL (its lag is measured)."""
    items = [1, 2, -1, 3, -99, 4, 5, 6, 7, 8]
    with worker_process(_gil.checked, processes=2) as target:
        pids = [p.pid for _, p in target.close.__self__._all]  # type: ignore[union-attr]
        done = run(target, rate=100, duration=1, payloads=items, calibrate=False)
        again = run(target, rate=100, duration=0.5, payloads=[1], calibrate=False)
    counts = done.counts()
    failing = sum(1 for i in range(done.requests) if items[i % len(items)] < 0)
    assert counts["error"] == failing and counts["ok"] == done.requests - failing
    assert again.failures == 0  # the crashed worker was replaced
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with worker_process(_gil.spin) as target:
        spun = run(target, rate=50, duration=0.5, payloads=[20], calibrate=False)
    assert spun.failures == 0 and spun.lag.size == spun.requests


def test_worker_process_refuses_what_a_fresh_interpreter_cannot_load() -> None:
    with pytest.raises(InputError, match="pickle"):
        worker_process(lambda: None)
    with pytest.raises(InputError, match="processes"):
        worker_process(_gil.spin, processes=0)
    with worker_process(_gil.spin) as target, pytest.raises(InputError, match="payloads"):
        run(target, rate=10, duration=1, payloads=[], calibrate=False)
    with pytest.raises(InputError, match="could not load"):
        worker_process(_gil.spin, start_timeout=0.001)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_a_cpu_hog_on_the_generators_core_makes_the_run_invalid() -> None:
    """Two busy processes on the generator's one core, started mid-measurement: the
    generator falls behind its schedule and says so (generator-bound) instead of charging
    its lateness to the target; the figures show the lag."""
    before = os.sched_getaffinity(0)
    core = min(before)
    hog = (
        f"import os, time\nos.sched_setaffinity(0, {{{core}}})\n"
        "end = time.time() + 20\nwhile time.time() < end: pass"
    )
    os.sched_setaffinity(0, {core})
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        quiet = run(lambda: time.sleep(0.001), rate=400, duration=1.5, calibrate=False)
        hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2)]
        time.sleep(0.3)
        busy = run(lambda: time.sleep(0.001), rate=400, duration=1.5, calibrate=False)
    finally:
        for p in hogs:
            p.kill()
            p.wait()
        os.sched_setaffinity(0, before)
    assert not busy.valid, busy.figures()
    assert busy.lag_p99 > quiet.lag_p99
    codes = {f.code for f in busy.report().findings}
    assert "load.generator_bound" in codes


def test_an_onnx_runtime_session_as_a_model_spec() -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from silenttax.benchmark import ModelSpec

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor("w", TensorProto.FLOAT, [64, 64], np.ones(64 * 64).tolist())],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = ModelSpec.onnx(onnx._serialize(model) if hasattr(onnx, "_serialize") else model,
                          inputs={"x": np.ones((1, 64), np.float32)}, threads=1)  # fmt: skip
    done = run(spec, rate=200, duration=0.6, calibrate=False)
    assert done.failures == 0 and done.requests > 60 and done.kind == "model"
    assert 0 < done.p50 <= done.p99 < 1


def test_a_real_uvicorn_app_over_http(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    from tests.integrations.servers import free_port, running

    (tmp_path / "loadapp.py").write_text(
        "import asyncio\nfrom fastapi import FastAPI\napp = FastAPI()\n"
        "@app.post('/predict')\nasync def predict(body: dict) -> dict:\n"
        "    await asyncio.sleep(0.002)\n    return {'ok': body['x']}\n"
        "@app.get('/missing-field')\nasync def missing(x: int) -> dict:\n    return {}\n"
        "@app.get('/health')\nasync def health() -> dict:\n    return {}\n"
    )  # fmt: skip
    port = free_port()
    args = ["uvicorn", "loadapp:app", "--port", str(port), "--log-level", "critical",
            "--timeout-keep-alive", "1"]  # fmt: skip
    with running(tmp_path, args, port=port, ready="/health") as url:
        done = run(url + "/predict", rate=150, duration=1.5, payloads=[{"x": 1}, {"x": 2}])
        assert done.counts()["ok"] == done.requests > 150
        assert done.p99 >= 0.002 and done.kind == "http"
        assert done.figures()["null_lag_p99"] is not None
        client = run(url + "/missing-field", rate=50, duration=0.5, calibrate=False)
        assert client.counts()["client_error"] == client.requests  # 422: a 4xx, counted
        # 1.6 s between requests: the server closed each idle connection; the client
        # opens a new one instead of counting an error
        idle = run(url + "/predict", rate=0.6, duration=3.5, arrival="constant",
                   payloads=[{"x": 1}], calibrate=False)  # fmt: skip
        assert idle.requests == 2 and idle.counts()["ok"] == 2, idle.counts()
        report = done.report(slo_p99=0.5)
        if done.valid:
            (judged,) = report.filter(code="load.capacity")
            assert judged.severity.value in ("ok", "info") and judged.evidence["requests"]
        else:  # a busy machine: the generator says so and issues no verdict
            assert report.filter(code="load.generator_bound")
            assert not report.filter(code="load.capacity")


# -------------------------------------------------------------------------- capacity
def test_capacity_of_a_simulated_server_contract() -> None:
    """M/M/1, mu = 400/s, p99 <= 40 ms: truth mu - ln(100)/s = 284.9/s (sleeps add a
    little to each service, so the truth is a bit lower). The result's parts agree:
    the confirmed rate is the interval's low end, the estimate inside it, the plan's
    replicas and Little's-law concurrency follow from it."""
    truth = 400 - math.log(100) / 0.04
    found = capacity(Server(400, seed=1), slo_p99=0.04, probe=1.0, confirm=3.0,
                     start_rate=100, seed=3, max_probes=6, warmup=0.2,
                     max_in_flight=64)  # fmt: skip
    assert found.curve and any(p.confirmation for p in found.curve)
    if found.verdict == "pass":
        assert found.ci is not None and found.capacity is not None
        assert found.ci[0] <= found.capacity <= found.ci[1]
        assert found.safe is not None and found.safe < truth * 1.15
        plan = found.plan(1000, headroom=0.3)
        assert plan["replicas"] == math.ceil(1300 / found.safe)
        assert plan["concurrency_target"] > 0
        (cap,) = found.report(required_rate=10 * truth).filter(code="load.capacity")
        assert cap.severity.value == "warning"  # below the required rate
    else:
        assert found.verdict == "inconclusive" and found.reason
    with pytest.raises(InputError):
        found.plan(-1)


def _mm1_exceeding(arrivals: Any, mu: float, slo: float, rng: np.random.Generator) -> int:
    service = rng.exponential(1 / mu, arrivals.size)
    end, over = 0.0, 0
    for t, s in zip(arrivals.tolist(), service.tolist(), strict=True):
        end = max(end, t) + s
        over += end - t > slo
    return over


def test_the_paired_comparison_holds_its_false_alarm_rate() -> None:
    """judge_blocks on simulated M/M/1 pairs (capacity 284.9/s at p99 <= 40 ms), the
    same Poisson arrivals for both arms: with no change a regression is called about
    alpha = 5% of the time (seeded, 100 comparisons of 6 blocks; the benchmark runs
    400 of 6-12 blocks); with 30% less capacity, nearly always."""
    rng = np.random.default_rng(11)
    truth = 400 - math.log(100) / 0.04

    def verdict(mu_b: float, blocks: int = 6, block: float = 2.0) -> str:
        ladder = [truth * float(np.exp(rng.normal(0, 0.07))) * f for f in (0.8, 0.9, 1, 1.1, 1.2)]
        over = np.zeros((2, blocks, 5))
        count = np.zeros((2, blocks, 5))
        for r in range(blocks):
            for k, rate in enumerate(ladder):
                arrivals = schedule(rate, block, seed=int(rng.integers(1 << 31)))
                for arm, mu in enumerate((400.0, mu_b)):
                    over[arm, r, k] = _mm1_exceeding(arrivals, mu, 0.04, rng)
                    count[arm, r, k] = arrivals.size
        return judge_blocks(over, count, ladder, draws=200, seed=r).verdict

    null = [verdict(400.0) for _ in range(100)]
    assert null.count("regression") <= 12, null.count("regression")  # P(>12 | 5%) < 0.5%
    slower = 0.85 * truth + math.log(100) / 0.04
    found = [verdict(slower, 8, 3.0) for _ in range(40)]
    assert found.count("regression") >= 16
    with pytest.raises(InputError, match="6 blocks"):
        judge_blocks(np.zeros((2, 4, 3)), np.ones((2, 4, 3)), [1.0, 2.0, 3.0])


@pytest.mark.slow  # ~22 s; the command line's compare test runs the same path by default
def test_compare_capacity_names_a_server_twice_as_slow() -> None:
    """Paired blocks on a fixed ladder: a server with half the service rate has far less
    capacity (M/M/1 truths 284.9/s vs 84.9/s at p99 <= 40 ms): a regression."""
    rates = [60.0, 120.0, 250.0, 400.0]  # over capacity, requests beyond 32 fail (overflow)
    slow = compare_capacity(Server(400, seed=1), Server(200, seed=2), slo_p99=0.04,
                            rates=rates, blocks=6, block=0.5, warmup=0.1, draws=300,
                            max_in_flight=32)  # fmt: skip
    assert slow.verdict == "regression", slow.figures()
    assert slow.ratio is not None and slow.ratio < 0.8
    assert slow.ci is not None and slow.ci[0] <= slow.ratio <= slow.ci[1]
    (found,) = slow.report().filter(code="load.regression")
    assert found.severity.value == "warning"


# ------------------------------------------------------------------------------ soak
def test_soak_names_memory_growth_per_1000_requests() -> None:
    kept: list[bytes] = []

    def leaky() -> None:
        kept.append(bytes(20_000))  # 20 MB per 1000 requests

    grown = soak(leaky, rate=200, duration=6, blocks=3)
    # named, with its interval above the threshold; the size is not pinned: in a large
    # process (the whole test suite) the leak first refills freed heap, and RSS grew by
    # a third of what was kept in one such run
    assert grown.memory is not None and grown.memory.low > grown.min_growth, grown.figures()
    (found,) = grown.report().filter(code="load.memory_growth")
    assert found.severity.value == "warning"
    kept.clear()
    with pytest.raises(InputError):
        soak(leaky, rate=10, duration=4, blocks=3)


def test_silenttax_load_still_reads_saved_states(tmp_path: Path) -> None:
    """``silenttax.load`` is both this package and the function reading saved states."""
    import silenttax.load as package
    from silenttax.monitor import LatencyMonitor

    monitor = LatencyMonitor()
    monitor.record(0.01)
    path = tmp_path / "m.json"
    path.write_text(monitor.state().model_dump_json())
    assert silenttax.load is package
    again = silenttax.load(path)
    assert isinstance(again, LatencyMonitor) and again.sketch.count == 1
