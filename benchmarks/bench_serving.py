"""Added µs per request: silenttax's middleware vs prometheus-fastapi-instrumentator and
OpenTelemetry's FastAPI instrumentation, on the same trivial FastAPI endpoint.

Anchors (shared/research/serving_ecosystem.md §1.2, driven in-process on a 15.8 µs
endpoint): the instrumentator +17.5 µs/request, OpenTelemetry +120.1 µs/request.
Goal (issue "Serving"): below the instrumentator and <= 1/5 of OpenTelemetry.

Each variant is its own FastAPI app with the same ``GET /items/{item_id}`` route,
driven in-process through ASGI (no sockets: the fixed cost of a client would hide
microseconds) with a minimal receive/send. Blocks of ``--calls`` requests run in
rotating order, ``--blocks`` times; the added cost of a variant is the per-block
difference to the bare app's block in the same round, with a t interval over the
rounds. silenttax runs with one ``stage("model")`` in the handler and a cost
monitor (what the issue prices); the others as their docs set them up.

Run: pip install prometheus-fastapi-instrumentator opentelemetry-instrumentation-fastapi
     python benchmarks/bench_serving.py [--blocks 30] [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from silenttax.cost import CostModel, CostMonitor
from silenttax.integrations.asgi import stage


def make_app(kind: str) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        with stage("model"):
            return {"item": item_id}

    if kind == "silenttax":
        from silenttax.integrations.fastapi import instrument

        instrument(app, cost=CostMonitor(CostModel(price_per_hour=1.0)))
    elif kind == "instrumentator":
        from prometheus_client import CollectorRegistry
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator(registry=CollectorRegistry()).instrument(app)
    elif kind == "opentelemetry":
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider, meter_provider=MeterProvider()
        )
        app.state.exporter = exporter  # cleared between blocks so memory stays flat
    return app


async def drive(app: Any, calls: int) -> float:
    scope_base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "server": ("bench", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": "",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    start = time.perf_counter()
    for i in range(calls):
        path = f"/items/{i}"
        await app({**scope_base, "path": path, "raw_path": path.encode()}, receive, send)
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    kinds = ["bare", "silenttax", "instrumentator", "opentelemetry"]
    apps = {k: make_app(k) for k in kinds}
    loop = asyncio.new_event_loop()
    for app in apps.values():  # warm-up: builds middleware stacks, JITs nothing
        loop.run_until_complete(drive(app, 500))
    per: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(args.blocks):
        order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
        for kind in order:
            per[kind].append(loop.run_until_complete(drive(apps[kind], args.calls)))
            exporter = getattr(apps[kind].state, "exporter", None)
            if exporter is not None:
                exporter.clear()
    bare = per["bare"]
    print(f"bare FastAPI endpoint: {statistics.median(bare) * 1e6:.1f} µs/request (median block)")
    print(f"{'variant':<16} {'added µs/req':>12} {'95% CI':>18}")
    for kind in kinds[1:]:
        diffs = [(a - b) * 1e6 for a, b in zip(per[kind], bare, strict=True)]
        mean = statistics.fmean(diffs)
        half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
        print(f"{kind:<16} {mean:>12.1f} [{mean - half:7.1f}, {mean + half:7.1f}]")


if __name__ == "__main__":
    main()
