"""Soak: tens of millions of records and spans through every recorder, RSS sampled.

Every recorder keeps bounded state (sketch buckets, capped names, a ring of recent
traces, counters), so memory must stay flat however long a process serves. This
drives a ``LatencyMonitor``, a ``Canary``, a ``CostMonitor``, a ``Tracer`` (request
and model spans) and, through the real ASGI middleware, HTTP requests with stage
spans, and samples the process's RSS every ``1/20`` of the run.

Reported: operations, seconds, RSS after the first 20% (warm-up: buffers, first
folds, allocator arenas) and at the end, the growth between them, bytes per
operation of that growth, and the largest retained structures; the same for the
HTTP phase on its own (it imports httpx and the ASGI stack first).

Run: python benchmarks/bench_soak.py [--records 20000000] [--spans 10000000] [--requests 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from typing import Any

import numpy as np
import psutil

from silenttax.cost import CostModel, CostMonitor
from silenttax.gate import Canary
from silenttax.monitor import LatencyMonitor
from silenttax.trace import Tracer

_STEPS = 20


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def soak(records: int, spans: int, requests: int) -> dict[str, Any]:
    """Run the soak; returns the figures (see the module docs)."""
    monitor = LatencyMonitor(name="soak")
    canary = Canary(burn_in=1000)
    cost = CostMonitor(CostModel(price_per_hour=1.0), window=60.0)
    tracer = Tracer(max_traces=1000)
    rng = np.random.default_rng(0)
    values = rng.lognormal(-4.0, 0.5, 65_536).tolist()
    rss: list[int] = []
    began = time.perf_counter()
    step_records, step_spans = records // _STEPS, spans // _STEPS
    t0 = 1_700_000_000.0
    for step in range(_STEPS):
        base = step * step_records
        for k in range(step_records):
            x = values[(base + k) & 65_535]
            monitor.record(x)
            if k & 1:
                canary.record_canary(x)
            else:
                canary.record_control(x)
            cost.record(1, busy_seconds=x, now=t0 + (base + k) * 1e-3)
        span = tracer.span
        for _ in range(step_spans):
            with span("request"), span("forward", stage="model"):
                pass
        rss.append(_rss())
    served = _serve(requests)
    seconds = time.perf_counter() - began
    warm = rss[_STEPS // 5]
    operations = 5 * records + 2 * spans
    tracer_breakdown = tracer.breakdown()
    return {
        "records": records,
        "spans": 2 * spans,
        "requests": requests,
        "seconds": round(seconds, 1),
        "rss_after_warmup_mib": round(warm / 2**20, 1),
        "rss_end_mib": round(rss[-1] / 2**20, 1),
        "rss_max_mib": round(max(rss) / 2**20, 1),
        "growth_mib": round((rss[-1] - warm) / 2**20, 2),
        "growth_bytes_per_op": round(max(0, rss[-1] - warm) / operations, 4),
        "rss_mib": [round(r / 2**20, 1) for r in rss],
        "monitor_count": monitor.sketch.count,
        "monitor_state_kib": round(len(monitor.state().to_json()) / 1024, 1),
        "canary_requests": canary.control + canary.canary,
        "cost_windows": len(cost.windows),
        "tracer_requests": tracer_breakdown.requests,
        "tracer_retained": len(tracer.traces()),
        "served": served,
    }


def _serve(requests: int) -> dict[str, int]:
    """``requests`` HTTP requests with two stages through the real middleware."""
    import httpx

    from silenttax.integrations.asgi import SilentTaxMiddleware, stage

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        with stage("preprocess"):
            pass
        with stage("model"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = SilentTaxMiddleware(app)

    rss: list[int] = []

    async def drive() -> None:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for i in range(0, requests, 100):
                await asyncio.gather(*(client.get(f"/items/{j}") for j in range(i, i + 100)))
                if (i // 100) % max(1, requests // 100 // _STEPS) == 0:
                    rss.append(_rss())
        rss.append(_rss())

    asyncio.run(drive())
    warm = rss[len(rss) // 5]
    return {
        "requests": sum(middleware.requests().values()),
        "rss_after_warmup_mib": round(warm / 2**20, 1),
        "rss_end_mib": round(rss[-1] / 2**20, 1),
        "growth_mib": round((rss[-1] - warm) / 2**20, 2),
        "routes": len(middleware.latency()),
        "internal_errors": middleware.internal_errors,
        "state_kib": len(middleware.state().to_json()) // 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000_000)
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    print(json.dumps(soak(args.records, args.spans, args.requests), indent=2))


if __name__ == "__main__":
    main()
