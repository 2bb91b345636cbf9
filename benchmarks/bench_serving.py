"""Added µs per request: silenttax's middleware vs prometheus-fastapi-instrumentator and
OpenTelemetry's FastAPI instrumentation, on the same trivial FastAPI endpoint.

Anchors (shared/research/serving_ecosystem.md §1.2, driven in-process on a 15.8 µs
endpoint): the instrumentator +17.5 µs/request, OpenTelemetry +120.1 µs/request.
Goal (issue "Serving"): below the instrumentator and <= 1/5 of OpenTelemetry.

Each variant is its own FastAPI app with the same ``POST /items/{item_id}`` route
(a small JSON body, parsed by FastAPI),
driven in-process through ASGI (no sockets: the fixed cost of a client would hide
microseconds) with a minimal receive/send. Blocks of ``--calls`` requests run in
rotating order, ``--blocks`` times; the added cost of a variant is the per-block
difference to the bare app's block in the same round, with a t interval over the
rounds. silenttax runs with one ``stage("model")`` in the handler and a cost
monitor (what the issue prices), and once more with live feature health sampling
1% of the bodies (``silenttax+features``: FeatureHealth and DriftDetector, folded by
the background thread every 5 s); the others as their docs set them up. The last
line is the cost of feature sampling itself (the difference of the two silenttax
variants): the unsampled path plus the 1% sampled bodies' copy, amortised.

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
import numpy as np

from silenttax.cost import CostModel, CostMonitor
from silenttax.drift import DriftDetector
from silenttax.features import FeatureHealth
from silenttax.integrations.asgi import stage

BODY = b'{"age": 41.5, "country": "DE"}'


def make_app(kind: str) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/items/{item_id}")
    async def item(item_id: int, body: dict[str, Any]) -> dict[str, int]:
        with stage("model"):
            return {"item": item_id}

    if kind == "silenttax":
        from silenttax.integrations.fastapi import instrument

        instrument(app, cost=CostMonitor(CostModel(price_per_hour=1.0)))
    elif kind == "silenttax+features":
        from silenttax.integrations.fastapi import instrument

        rng = np.random.default_rng(0)
        reference = {"age": rng.normal(40, 10, 5000), "country": rng.choice(["DE", "FR"], 5000)}
        instrument(
            app,
            cost=CostMonitor(CostModel(price_per_hour=1.0)),
            feature_health=FeatureHealth().fit(reference),
            drift=DriftDetector().fit(reference),
            features=lambda body: body,
            sample_rate=0.01,
        )
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
        "method": "POST",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json")],
        "server": ("bench", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": "",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

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
    kinds = ["bare", "silenttax", "silenttax+features", "instrumentator", "opentelemetry"]
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
    print(f"{'variant':<18} {'added µs/req':>12} {'95% CI':>18}")
    for kind in kinds[1:]:
        diffs = [(a - b) * 1e6 for a, b in zip(per[kind], bare, strict=True)]
        mean = statistics.fmean(diffs)
        half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
        print(f"{kind:<18} {mean:>12.1f} [{mean - half:7.1f}, {mean + half:7.1f}]")
    diffs = [
        (a - b) * 1e6 for a, b in zip(per["silenttax+features"], per["silenttax"], strict=True)
    ]
    mean = statistics.fmean(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
    print(
        f"feature sampling at 1%: {mean:+.2f} µs/request [{mean - half:+.2f}, {mean + half:+.2f}]"
    )

    sampling_cost(loop, args.blocks)


def sampling_cost(loop: asyncio.AbstractEventLoop, blocks: int, calls: int = 20_000) -> None:
    """The feature-sampling path alone: a bare ASGI app under the middleware with and
    without sampling at 1% (no framework around it, so the CI is tight)."""
    from silenttax.integrations.asgi import SilentTaxMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"{}"})

    rng = np.random.default_rng(0)
    reference = {"age": rng.normal(40, 10, 5000), "country": rng.choice(["DE", "FR"], 5000)}
    plain = SilentTaxMiddleware(app)
    sampled = SilentTaxMiddleware(
        app,
        feature_health=FeatureHealth().fit(reference),
        drift=DriftDetector().fit(reference),
        features=lambda body: body,
        sample_rate=0.01,
    )

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: Any) -> None:
        return None

    async def run(middleware: Any) -> float:
        scope = {"type": "http", "path": "/items/1", "method": "POST"}
        start = time.perf_counter()
        for _ in range(calls):
            await middleware(scope, receive, send)
        return (time.perf_counter() - start) / calls

    loop.run_until_complete(run(plain))
    loop.run_until_complete(run(sampled))
    diffs = []
    for r in range(blocks):
        pair = [plain, sampled] if r % 2 == 0 else [sampled, plain]
        got = {id(m): loop.run_until_complete(run(m)) for m in pair}
        diffs.append((got[id(sampled)] - got[id(plain)]) * 1e6)
    mean = statistics.fmean(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
    base = statistics.fmean([loop.run_until_complete(run(plain)) for _ in range(3)]) * 1e6
    assert sampled.live is not None
    sampled.live.fold()
    print(
        f"middleware alone on a bare ASGI app: {base:.1f} µs/request; sampling at 1% adds "
        f"{mean:+.2f} µs [{mean - half:+.2f}, {mean + half:+.2f}] "
        f"({sampled.live.state().rows} rows sampled of {calls * (blocks + 1)} requests)"
    )


if __name__ == "__main__":
    main()
