"""Overload and error rises judged against the baseline window, in a real server: one
uvicorn worker with a GIL-bound sync endpoint, its load raised from 1 to 24 clients
after the baseline (overload named) or held at 8 (not named); a route whose failures
rise from 0 to 0.8% — under the 1% budget — is named by ``stability.error_rise``. Short
windows (1-3 s) keep each test to about 15 s, loopback only. The rules' arithmetic is
checked on breakdowns built by hand, the test's calibration by simulation."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from silenttax.errors import InputError
from silenttax.gate import log_e_above
from silenttax.integrations._errors import _interval, check_error_rise
from silenttax.integrations._overload import check_overload
from silenttax.trace import Breakdown

from .servers import serving


def _window(requests: int, seconds: float, per_request: float, framework: float) -> Breakdown:
    stages = {"framework": {"total": requests * framework},
              "model": {"total": requests * (per_request - framework)}}  # fmt: skip
    total = requests * per_request
    return Breakdown.model_validate(
        {"requests": requests, "wall_time": seconds, "request_total": total, "stages": stages}
    )


def test_overload_is_littles_law_on_the_two_windows() -> None:
    baseline = _window(8000, 10.0, 0.004, 0.001)  # 3.2 in flight
    (busy,) = check_overload(_window(8200, 10.0, 0.016, 0.013), baseline)
    assert busy.severity.value == "warning"
    ev = busy.evidence
    assert ev["in_flight"] == pytest.approx(8200 * 0.016 / 10)
    assert ev["requests_per_second"] == pytest.approx(820)
    assert busy.value == pytest.approx(4.0)
    assert ev["added_share_outside_stages"] == pytest.approx(1.0)
    assert "100% was outside the stages" in busy.message
    # the same added time inside a stage: still overload, said to be contention
    (inside,) = check_overload(_window(8200, 10.0, 0.016, 0.001), baseline)
    assert inside.severity.value == "warning" and inside.evidence["added_share_outside_stages"] == 0
    # more traffic served as fast: not overload; slower with the clients waiting: neither
    assert (
        check_overload(_window(16000, 10.0, 0.004, 0.001), baseline).findings[0].severity.value
        == "ok"
    )
    assert (
        check_overload(_window(4000, 10.0, 0.008, 0.001), baseline).findings[0].severity.value
        == "ok"
    )
    # one request at a time cannot queue, however slow
    light = _window(1000, 10.0, 0.002, 0.001)
    assert (
        check_overload(_window(1000, 10.0, 0.012, 0.011), light).findings[0].severity.value == "ok"
    )
    assert check_overload(_window(50, 10.0, 0.016, 0.013), baseline).findings == ()
    with pytest.raises(InputError, match="factor"):
        check_overload(baseline, baseline, factor=1.0)


def test_the_rise_test_is_the_union_of_two_bounds() -> None:
    recent, base = {"/p": {"2xx": 3960, "5xx": 40}}, {"/p": {"2xx": 9990, "5xx": 10}}
    (named,) = check_error_rise(recent, base)
    level = 0.05 / 2
    upper = _interval(10, 10000, 2 * level)[1]
    assert named.evidence["baseline_upper"] == pytest.approx(upper)
    from scipy import stats

    assert upper == pytest.approx(stats.beta.ppf(1 - level, 11, 9990))  # one-sided CP
    assert float(log_e_above(40, 4000, upper)) >= math.log(1 / level)
    assert named.value == pytest.approx(10.0) and named.severity.value == "warning"
    # a rise under the factor is not a finding, however many requests show it
    assert check_error_rise({"/p": {"2xx": 10**7, "5xx": 1500}}, base).findings == ()
    with pytest.raises(InputError, match="factor"):
        check_error_rise(recent, base, factor=0.5)


def _named(k0: int, n0: int, k: np.ndarray, n: np.ndarray, alpha: float, factor: float) -> Any:
    """The rise rule on one route, vectorised over reads: union of two bounds at alpha/2."""
    upper = _interval(k0, n0, alpha)[1]
    e = np.asarray(log_e_above(k, n, upper)) >= math.log(2 / alpha)
    return e & (k / n >= factor * (k0 / n0)) & (k > 0)


def test_the_simulated_rule_is_check_error_rise() -> None:
    rng = np.random.default_rng(5)
    for _ in range(150):
        n0, n = int(rng.integers(100, 20_000)), int(rng.integers(50, 5_000))
        k0, k = int(rng.binomial(n0, 0.003)), int(rng.binomial(n, float(rng.choice([0.003, 0.01]))))
        got = check_error_rise(
            {"/p": {"2xx": n - k, "5xx": k}}, {"/p": {"2xx": n0 - k0, "5xx": k0}}
        )
        expected = bool(_named(k0, n0, np.array([k]), np.array([n]), 0.05, 2.0)[0])
        assert bool(got.filter(code="stability.error_rise").findings) == expected, (k0, n0, k, n)


def _alarms(rate0: float, rate: float, factor: float, runs: int = 400) -> float:
    """Share of runs named, the recent window read after every 50 of its 4,000 requests."""
    rng = np.random.default_rng(11)
    n0, n, reads = 20_000, 4_000, np.arange(50, 4_001, 50)
    named = 0
    for _ in range(runs):
        k0 = int(rng.binomial(n0, rate0))
        k = np.cumsum(rng.random(n) < rate)[reads - 1]
        named += bool(_named(k0, n0, k, reads, 0.05, factor).any())
    return named / runs


def test_no_rise_is_named_in_at_most_alpha_of_windows_read_after_every_request() -> None:
    """A/A, read 80 times a window: under alpha even with no materiality factor (the
    union bound is conservative: 0 of 400 here), a threefold rise is caught in over half
    the windows of 4,000 requests and a fivefold one in nearly all."""
    alpha, runs = 0.05, 400
    se = math.sqrt(alpha * (1 - alpha) / runs)
    assert _alarms(0.002, 0.002, 1.0) <= alpha + 3 * se
    assert _alarms(0.002, 0.002, 2.0) <= alpha + 3 * se
    assert _alarms(0.002, 0.006, 2.0) >= 0.5
    assert _alarms(0.002, 0.01, 2.0) >= 0.9


GIL_APP = """
from fastapi import FastAPI
import silenttax
from silenttax.integrations.fastapi import instrument

app = FastAPI()

@app.get("/predict")
def predict() -> dict:
    with silenttax.stage("model"):  # ~2 ms of pure Python: holds the GIL
        total = 0
        for i in range(40_000):
            total += i * i
    return {"ok": total > 0}

instrument(app, window=2.0, baseline_window=3.0)
"""


def _finding(url: str, code: str, subject: str | None = None) -> dict[str, Any] | None:
    findings = httpx.get(url + "/silenttax/check", timeout=30).json()["findings"]
    named = [f for f in findings if f["code"] == code and subject in (None, f["subject"])]
    return named[0] if named else None


def _first_judged(url: str, code: str, seconds: float = 20) -> dict[str, Any]:
    """Poll the check (it freezes the baseline and marks windows) until ``code`` is judged."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = _finding(url, code)
        if found is not None:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{code} was never judged")


@pytest.mark.parametrize(("clients", "added"), [(1, 23), (8, 0)])
def test_a_real_server_past_its_capacity_is_overloaded(
    tmp_path: Path, clients: int, added: int
) -> None:
    with serving(tmp_path, GIL_APP, clients) as (url, load):
        steady = _first_judged(url, "stability.overload")
        assert steady["severity"] == "ok", steady["message"]
        load.add(added)
        seen = []
        until = time.monotonic() + 8
        while time.monotonic() < until:
            time.sleep(0.5)
            found = _finding(url, "stability.overload")
            assert found is not None
            seen.append(found)
            if found["severity"] != "ok":
                break
    if added:
        assert seen[-1]["severity"] == "warning", seen[-1]["message"]
        assert seen[-1]["evidence"]["in_flight"] >= 2 * seen[-1]["evidence"]["baseline_in_flight"]
        assert "overloaded" in seen[-1]["message"] and seen[-1]["recommendation"]
    else:
        assert all(f["severity"] == "ok" for f in seen), [f["message"] for f in seen]


FLAKY_APP = """
from fastapi import FastAPI, HTTPException
from silenttax.integrations.fastapi import instrument

app = FastAPI()
state = {"n": 0, "every": 0}

@app.post("/control")
async def control(body: dict) -> dict:
    state["every"] = int(body["every"])
    return state

@app.get("/predict")
async def predict() -> dict:
    state["n"] += 1
    if state["every"] and state["n"] % state["every"] == 0:
        raise HTTPException(status_code=503, detail="model unavailable")
    return {"ok": True}

instrument(app, window=3.0, baseline_window=4.0, exclude_paths=("/health", "/control"))
"""


def test_a_real_server_names_a_rise_under_the_budget(tmp_path: Path) -> None:
    with serving(tmp_path, FLAKY_APP, 8) as (url, _):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the clean baseline
            assert _finding(url, "stability.error_rise") is None
            time.sleep(0.5)
        httpx.post(url + "/control", json={"every": 125}, timeout=10)  # 0.8% fail
        named = None
        until = time.monotonic() + 10
        while named is None and time.monotonic() < until:
            time.sleep(0.5)
            named = _finding(url, "stability.error_rise", "/predict")
        budget = _finding(url, "stability.error_rate")
    assert named is not None, "the rise was not named"
    assert named["severity"] == "warning" and named["evidence"]["baseline_failed"] == 0
    assert named["evidence"]["baseline_requests"] >= 500
    assert budget is not None and budget["severity"] == "ok"  # under the 1% budget
