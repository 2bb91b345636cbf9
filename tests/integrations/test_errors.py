"""Failed requests as findings: the error-budget test's calibration (read after every
request), its interval against scipy, the middleware's outcomes and windows, and a real
uvicorn server with one route failing 5% of its requests under concurrent clients."""

from __future__ import annotations

import asyncio
import contextlib
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from scipy import stats

from silenttax.errors import InputError
from silenttax.gate import log_e_above
from silenttax.integrations._errors import _interval, check_errors
from silenttax.integrations.asgi import ServingState, SilentTaxMiddleware

from .servers import free_port, running


def _thresholds(n: int, budget: float, bar: float) -> np.ndarray:
    """Per number of requests served (1..n), the fewest failures the check names (the
    e-value grows with the failures at a fixed count: one table instead of an e-value per
    request of every stream)."""
    served = np.arange(1, n + 1)[:, None]
    failures = np.arange(0, int(n * 0.1) + 30)[None, :]
    named = (log_e_above(failures, served, budget) >= bar) & (failures / served > budget)
    first = np.where(named.any(axis=1), named.argmax(axis=1), np.iinfo(np.int64).max)
    return np.asarray(first, dtype=np.int64)


def _alarm_rate(rate: float, budget: float, alpha: float, n: int, streams: int) -> float:
    """Share of streams of ``n`` requests whose test *ever* alarms, read after each one."""
    rng = np.random.default_rng(7)
    failed = np.cumsum(rng.random((streams, n)) < rate, axis=1)
    return float((failed >= _thresholds(n, budget, math.log(1 / alpha))).any(axis=1).mean())


def test_the_threshold_table_is_the_e_value() -> None:
    table = _thresholds(500, 0.01, math.log(20))
    rng = np.random.default_rng(1)
    for n, k in zip(rng.integers(1, 501, 300), rng.integers(0, 40, 300), strict=True):
        k = min(k, n)
        named = float(log_e_above(k, n, 0.01)) >= math.log(20) and k / n > 0.01
        assert named == (k >= table[n - 1]), (n, k)


def test_at_the_budget_the_false_alarm_rate_is_alpha_even_read_after_every_request() -> None:
    alpha, streams = 0.05, 2000
    at_budget = _alarm_rate(0.01, 0.01, alpha, 3000, streams)
    below = _alarm_rate(0.005, 0.01, alpha, 3000, streams)
    se = math.sqrt(alpha * (1 - alpha) / streams)
    assert at_budget <= alpha + 3 * se, at_budget
    assert below <= at_budget
    # a fixed-sample z test read after every request would not hold it (the reason for
    # the e-value): the same streams alarm far more often
    rng = np.random.default_rng(7)
    failed = np.cumsum(rng.random((streams, 3000)) < 0.01, axis=1)
    served = np.arange(1, 3001)
    z = (failed / served - 0.01) / np.sqrt(0.01 * 0.99 / served)
    naive = float((z[:, 100:] > stats.norm.ppf(1 - alpha)).any(axis=1).mean())
    assert naive > 2 * alpha


def test_five_percent_failures_are_found_and_the_check_follows_the_e_value() -> None:
    assert _alarm_rate(0.05, 0.01, 0.05, 2000, 500) > 0.99
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(20, 3000))
        k = int(rng.binomial(n, rng.choice([0.0, 0.005, 0.01, 0.02, 0.05])))
        report = check_errors({"/a": {"2xx": n - k, "5xx": k}, "/b": {"2xx": 100}})
        named = [f for f in report if f.subject == "/a" and f.severity.value != "ok"]
        expected = k / n > 0.01 and float(log_e_above(k, n, 0.01)) >= math.log(2 / 0.05)
        assert bool(named) == expected, (k, n)


def test_the_interval_is_clopper_pearson() -> None:
    for k, n in [(0, 50), (1, 20), (5, 100), (50, 1000), (100, 100)]:
        got = _interval(k, n, 0.05)
        want = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert got == pytest.approx((want.low, want.high), abs=1e-9)


def test_thin_evidence_is_no_verdict_and_severity_follows_the_size() -> None:
    quiet = check_errors({"/p": {"2xx": 19, "5xx": 1}})  # 5%, but one error
    assert [f.severity.value for f in quiet] == ["ok"]
    many = check_errors({"/p": {"2xx": 500, "5xx": 400, "error": 100}})
    (finding,) = many.findings
    assert finding.severity.value == "critical" and finding.value == pytest.approx(0.5)
    assert finding.evidence["failed"] == 500
    clients = check_errors({"/p": {"2xx": 800, "4xx": 200, "cancelled": 50}})
    codes = {(f.code, f.severity.value) for f in clients}
    assert codes == {("stability.client_errors", "info"), ("stability.error_rate", "ok")}
    assert clients.findings[0].evidence["requests"] == 1000  # cancelled ones left out
    with pytest.raises(InputError, match="budget"):
        check_errors({"/p": {"2xx": 1}}, budget=0)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/raise":
        raise RuntimeError("model exploded")
    if path == "/hang":
        raise asyncio.CancelledError  # what the server does when the client disconnects
    if path == "/slow":
        raise TimeoutError("the model took too long")
    status = 500 if path == "/fail" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _call(middleware: SilentTaxMiddleware, path: str) -> None:
    class Route:
        def __init__(self, path: str) -> None:
            self.path = path

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    async def main() -> None:
        scope = {"type": "http", "path": path, "route": Route(path)}
        with contextlib.suppress(RuntimeError, asyncio.CancelledError, TimeoutError):
            await middleware(scope, receive, send)

    asyncio.run(main())


def test_outcomes_windows_and_merge() -> None:
    a = SilentTaxMiddleware(_app, window=60)
    for path in ["/ok"] * 90 + ["/fail"] * 5 + ["/raise"] * 3 + ["/hang"] * 2 + ["/slow"] * 4:
        _call(a, path)
    assert a.requests()[("/raise", "error")] == 3
    assert a.requests()[("/hang", "cancelled")] == 2
    assert a.requests()[("/slow", "timeout")] == 4
    (timeouts,) = check_errors(a.recent_requests()).filter(subject="/slow")
    assert timeouts.severity.value != "ok" and timeouts.evidence["timeouts"] == 4
    now = a._recent_slot * 60 + 1  # type: ignore[operator]
    assert a.recent_requests(now)["/fail"] == {"5xx": 5}
    assert a.recent_requests(now + 60)["/fail"] == {"5xx": 5}  # the previous window
    assert a.recent_requests(now + 120) == {}  # two windows on: the present is clean
    # a second worker a window later: both moved to its slot, then added
    b = SilentTaxMiddleware(_app, window=60)
    _call(b, "/fail")
    state = b.state().model_copy(update={"recent_slot": a._recent_slot + 1})  # type: ignore[operator]
    a.merge(state)
    assert a.recent_requests(now + 60)["/fail"] == {"5xx": 6}
    assert a.recent_requests(now + 120)["/fail"] == {"5xx": 1}
    again = SilentTaxMiddleware.from_state(ServingState.from_json(a.state().to_json()))
    assert again.recent_requests(now + 60) == a.recent_requests(now + 60)
    with pytest.raises(InputError, match="window"):
        SilentTaxMiddleware(_app, window=0)
    with pytest.raises(InputError, match="error_budget"):
        SilentTaxMiddleware(_app, error_budget=1.5)


APP = """
from fastapi import FastAPI, HTTPException
from silenttax.integrations.fastapi import instrument

app = FastAPI()
calls = {"n": 0}

@app.get("/flaky")
async def flaky() -> dict:
    calls["n"] += 1
    if calls["n"] % 20 == 0:  # 5% of its requests
        raise HTTPException(status_code=503, detail="model unavailable")
    return {"ok": True}

@app.get("/steady")
async def steady() -> dict:
    return {"ok": True}

instrument(app)
"""


def test_a_real_server_names_the_failing_route_and_only_it(tmp_path: Path) -> None:
    (tmp_path / "served.py").write_text(APP)
    port = free_port()
    args = ["uvicorn", "served:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    with running(tmp_path, args, port=port) as url:

        def hit(path: str) -> int:
            with httpx.Client(timeout=10) as client:
                return sum(client.get(url + path).status_code >= 500 for _ in range(250))

        with ThreadPoolExecutor(8) as pool:  # 8 concurrent clients, 1000 requests a route
            steady = sum(pool.map(hit, ["/steady"] * 4))
            flaky = sum(pool.map(hit, ["/flaky"] * 4))
        findings = httpx.get(url + "/silenttax/check", timeout=10).json()["findings"]
    assert steady == 0 and flaky == 50
    errors = [f for f in findings if f["code"] == "stability.error_rate"]
    assert [(f["subject"], f["severity"]) for f in errors] == [("/flaky", "warning")]
    assert errors[0]["evidence"]["failed"] == 50 and errors[0]["evidence"]["requests"] == 1000
    low, high = errors[0]["evidence"]["interval"]
    assert low < 0.05 < high
