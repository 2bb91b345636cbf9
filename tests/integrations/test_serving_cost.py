"""Cost under concurrency, against a real uvicorn server driven by Debian's ``wrk``.

The middleware measures its own in-flight requests: the occupied time (at least one
request in flight) makes utilisation a share of paid time at any concurrency, and the
capacity the one the replica showed at its real concurrency.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from .servers import free_port, running

APP = """
import asyncio
from fastapi import FastAPI
from silenttax.cost import CostModel, CostMonitor
from silenttax.integrations.fastapi import instrument

app = FastAPI()

@app.get("/predict")
async def predict() -> dict:
    await asyncio.sleep(0.002)
    return {"score": 0.5}

cost = CostMonitor(CostModel(price_per_hour=3.6), window=0.5, min_inferences=1)
middleware = instrument(app, cost=cost)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("uvicorn")
    if shutil.which("wrk") is None:
        pytest.skip("Debian's wrk is not installed (.ci/run installs it)")
    folder = tmp_path_factory.mktemp("cost_app")
    (folder / "cost_app.py").write_text(APP)
    port = free_port()
    args = ["uvicorn", "cost_app:app", "--port", str(port), "--log-level", "warning"]
    with running(folder, args, port=port) as url:
        yield url


def _cost_window(url: str) -> dict[str, Any]:
    import httpx

    report = json.loads(httpx.get(url + "/silenttax/check", timeout=30).text)
    found = [f for f in report["findings"] if f["code"] == "cost.per_1k"]
    assert found, [f["code"] for f in report["findings"]]
    evidence: dict[str, Any] = found[0]["evidence"]
    return evidence


@pytest.mark.parametrize("connections", [1, 8, 64])
def test_utilisation_and_capacity_at_any_concurrency(server: str, connections: int) -> None:
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", "-d2s", "--timeout", "5s", server + "/predict"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "requests in" in done.stdout, done.stdout
    window = _cost_window(server)
    seconds, occupied, busy = window["seconds"], window["occupied_seconds"], window["busy_seconds"]
    assert occupied is not None and window["inferences"] > 0
    # occupied time is wall time: never more than the window, never less than one
    # request's share of the busy time
    assert 0 < occupied <= seconds + 1e-3  # (two clocks: time.time and perf_counter)
    assert busy >= occupied * (1 - 1e-9)
    in_flight = busy / occupied
    assert in_flight <= connections * (1 + 1e-6)  # never more in flight than clients
    if connections == 1:
        assert in_flight == pytest.approx(1.0, abs=1e-6)
    from silenttax.cost import CostWindow

    parsed = CostWindow.model_validate(window)
    assert parsed.utilization is not None and parsed.utilization <= 1.0
    assert parsed.throughput is not None
    # capacity x utilisation is the served rate: the realized cost is explained (to the
    # clocks' agreement: utilisation is capped at 1 where they differ by microseconds)
    assert parsed.throughput * parsed.utilization * seconds == pytest.approx(
        window["inferences"], rel=1e-3
    )
