"""A stage that got slower, named in a real server: a uvicorn app with ``preprocess`` /
``model`` / ``audit_log`` stages under 1 and 8 concurrent clients; after its baseline,
``audit_log`` gets 5x slower and ``pipeline.stage_time`` names it within a few windows —
though its cumulative figures since start barely move. Windows of 1 s and a 2 s baseline
keep the test short (bounded, about 20 s, loopback only)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .servers import serving

APP = """
import time
from fastapi import FastAPI
import silenttax
from silenttax.integrations.fastapi import instrument

app = FastAPI()
state = {"audit_log": 0.0004}

@app.post("/control")
async def control(body: dict) -> dict:
    state["audit_log"] = float(body["audit_log"])
    return state

@app.get("/predict")
def predict() -> dict:
    with silenttax.stage("preprocess"):
        time.sleep(0.0004)
    with silenttax.stage("model"):
        time.sleep(0.001)
    with silenttax.stage("audit_log"):
        time.sleep(state["audit_log"])
    return {"ok": True}

instrument(app, window=1.0, baseline_window=2.0, exclude_paths=("/health", "/control"))
"""


def _audit_log(url: str) -> dict[str, Any] | None:
    findings = httpx.get(url + "/silenttax/check", timeout=30).json()["findings"]
    named = [
        f for f in findings if f["code"] == "pipeline.stage_time" and f["subject"] == "audit_log"
    ]
    return named[0] if named else None


@pytest.mark.parametrize("clients", [1, 8])
def test_a_stage_five_times_slower_is_named_within_a_few_windows(
    tmp_path: Path, clients: int
) -> None:
    with serving(tmp_path, APP, clients) as (url, _):
        # the baseline (2 s), then steady windows: audit_log judged, not grown
        deadline = time.monotonic() + 20
        steady = None
        while time.monotonic() < deadline:
            steady = _audit_log(url)
            if steady is not None and "window_seconds" in steady["evidence"]:
                break
            time.sleep(0.5)
        assert steady is not None and steady["severity"] == "ok", steady
        httpx.post(url + "/control", json={"audit_log": 0.002}, timeout=10)  # 5x slower
        slowed_at, named = time.monotonic(), None
        while time.monotonic() < slowed_at + 8:
            time.sleep(0.5)
            found = _audit_log(url)
            if found is not None and found["severity"] in ("warning", "critical"):
                named = found
                break
        assert named is not None, "audit_log's slowdown was not named within 8 windows"
        assert named["evidence"]["window_seconds"] == 1.0
        assert "audit_log added" in named["message"]


def test_a_fleet_merges_its_workers_windows(tmp_path: Path) -> None:
    """Each worker keeps its own baseline and latest window; a fleet view merges them and
    judges the merged window against the merged baseline."""
    import asyncio

    from silenttax.integrations.asgi import SilentTaxMiddleware, stage
    from silenttax.integrations.fleet import read_directory

    delay = {"audit_log": 0.0003}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        with stage("model"):
            time.sleep(0.0005)
        with stage("audit_log"):
            time.sleep(delay["audit_log"])
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    workers = [SilentTaxMiddleware(app, snapshot_dir=tmp_path, window=0.5, baseline_window=0.5)
               for _ in range(2)]  # fmt: skip

    async def serve(n: int) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            pass

        for i in range(n):
            await workers[i % 2]({"type": "http", "path": "/p"}, receive, send)

    def phase(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            asyncio.run(serve(40))
            for worker in workers:
                worker.writer.write()  # a snapshot marks the window, as the writer thread does

    phase(0.7)  # the baselines
    delay["audit_log"] = 0.003
    phase(0.8)  # a full window after them, slower
    states = [w.state() for w in workers]
    assert all(s.stage_recent is not None and s.stage_baseline is not None for s in states)
    fleet = read_directory(tmp_path)
    recent, baseline = fleet.stage_windows()
    assert recent is not None and baseline is not None
    assert recent.requests >= sum(s.stage_recent.requests for s in states) * 0.5
    (named,) = [f for f in fleet.check() if f.code == "pipeline.stage_time"
                and f.subject == "audit_log"]  # fmt: skip
    assert named.severity >= "warning", named.message


QUEUE_APP = """
from fastapi import FastAPI
import silenttax
from silenttax.integrations.fastapi import instrument

app = FastAPI()

@app.get("/predict")
def predict() -> dict:
    with silenttax.stage("model"):  # 2 ms of pure Python: holds the GIL
        total = 0
        for i in range(40_000):
            total += i * i
    return {"ok": total > 0}

instrument(app)
"""


def _queueing(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    findings = httpx.get(url + "/silenttax/check", timeout=30).json()["findings"]
    (found,) = [f for f in findings if f["code"] == "pipeline.queueing"]
    (shadow,) = [f for f in findings if f["code"] == "pipeline.shadow_overhead"]
    return found, shadow


@pytest.mark.parametrize("clients", [1, 16])
def test_queueing_is_named_as_queueing_under_concurrency(tmp_path: Path, clients: int) -> None:
    """A sync endpoint holding the GIL, one uvicorn worker: at 16 connections most of the
    request is waiting (for a thread, the loop, the GIL) and ``pipeline.queueing`` says
    so; at 1 connection nothing waits."""
    with serving(tmp_path, QUEUE_APP, clients) as (url, _):
        time.sleep(4)
        found, shadow = _queueing(url)
    assert found["evidence"]["requests"] >= 50
    if clients == 1:
        assert found["severity"] == "ok" and found["value"] < 0.2, found["message"]
    else:
        assert found["severity"] == "warning" and found["value"] >= 0.2, found["message"]
        assert "queueing" in found["message"] and found["recommendation"]
        # the time outside the model says how much of it was queueing
        assert shadow["evidence"]["queue_share"] == found["value"]
        assert "queueing before the handler" in shadow["message"]
