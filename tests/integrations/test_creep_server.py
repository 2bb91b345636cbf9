"""Creep in a real server: a uvicorn app under 8 concurrent clients, a hiccup that passes
(no standing creep), then a sustained slowdown (creep, named for the route). The app's
monitor holds a rise for 3 s instead of 60 s so the test stays short (bounded, about
30 s, loopback only)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from .servers import free_port, running

APP = """
import asyncio
from fastapi import FastAPI
from silenttax.integrations.fastapi import instrument
from silenttax.monitor import LatencyMonitor

app = FastAPI()
state = {"delay": 0.002}

@app.post("/control")
async def control(body: dict) -> dict:
    state["delay"] = float(body["delay"])
    return state

@app.get("/predict")
async def predict() -> dict:
    await asyncio.sleep(state["delay"])
    return {"ok": True}

instrument(app, monitor=LatencyMonitor(creep_seconds=3), exclude_paths=("/health", "/control"))
"""


def _load(url: str, stop: threading.Event, sent: list[int]) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            client.get(url + "/predict")
            sent.append(1)


def _creep(url: str) -> list[dict[str, Any]]:
    findings = httpx.get(url + "/silenttax/check", timeout=30).json()["findings"]
    return [f for f in findings if f["code"] in ("latency.creep", "latency.hiccup")]


def test_a_hiccup_is_no_creep_and_a_sustained_slowdown_is(tmp_path: Path) -> None:
    (tmp_path / "served.py").write_text(APP)
    port = free_port()
    args = ["uvicorn", "served:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    with running(tmp_path, args, port=port) as url:
        stop, sent = threading.Event(), []
        clients = [threading.Thread(target=_load, args=(url, stop, sent)) for _ in range(8)]
        for client in clients:
            client.start()
        try:
            deadline = time.monotonic() + 30
            while len(sent) < 6000 and time.monotonic() < deadline:  # the level is learnt
                time.sleep(0.2)
            httpx.post(url + "/control", json={"delay": 0.012}, timeout=10)  # a hiccup
            time.sleep(1.0)
            httpx.post(url + "/control", json={"delay": 0.002}, timeout=10)
            time.sleep(6.0)
            after_hiccup = _creep(url)
            httpx.post(url + "/control", json={"delay": 0.005}, timeout=10)  # for good
            time.sleep(8.0)
            after_slowdown = _creep(url)
        finally:
            stop.set()
            for client in clients:
                client.join()
    standing = [f for f in after_hiccup if f["severity"] in ("warning", "critical")]
    assert standing == [], standing
    assert any(f["code"] == "latency.creep" and f["severity"] == "ok" for f in after_hiccup)
    creep = [f for f in after_slowdown if f["code"] == "latency.creep"
             and f["severity"] == "warning" and f["metric"] == "p50_ratio"]  # fmt: skip
    assert creep and creep[0]["subject"] == "/predict", after_slowdown
    assert creep[0]["value"] >= 1.2 and "holds" in creep[0]["message"]
