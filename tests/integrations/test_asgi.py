"""The ASGI middleware behind a real uvicorn server on 127.0.0.1, driven by httpx."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
import httpx
from prometheus_client.parser import text_string_to_metric_families

from silenttax import Report, Severity
from silenttax.integrations.asgi import OTHER, UNMATCHED, SilentTaxMiddleware, stage
from silenttax.integrations.fastapi import instrument

from .servers import free_port, running

APP = """
import asyncio, hashlib, json, time
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from silenttax.integrations.asgi import stage
from silenttax.integrations.fastapi import instrument

rng = np.random.default_rng(0)
w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w")
graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], initializer=[w])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 9
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

app = FastAPI()

@app.post("/predict/{item_id}")
def predict(item_id: int, body: dict) -> dict:  # sync: runs in the thread pool
    with stage("preprocess"):
        x = np.asarray([body["features"]], dtype=np.float32)
    with stage("audit_log"):  # the step added "just to be safe"
        hashlib.sha256(json.dumps(body, indent=2).encode()).hexdigest()
        time.sleep(0.002)
    with stage("model"):
        y = session.run(None, {"x": x})[0]
    return {"item": item_id, "scores": y[0].tolist()}

@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks():
        for i in range(3):
            await asyncio.sleep(0.1)
            yield f"chunk {i}\\n"
    return StreamingResponse(chunks(), media_type="text/plain")

@app.get("/background")
async def background(tasks: BackgroundTasks) -> dict:
    tasks.add_task(time.sleep, 0.2)
    return {"queued": True}

@app.get("/boom")
async def boom() -> dict:
    raise RuntimeError("model exploded")

instrument(app)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("server")
    (folder / "served.py").write_text(APP)
    port = free_port()
    args = ["uvicorn", "served:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    with running(folder, args, port=port) as url:
        yield url


def _families(url: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


def test_a_real_server_scraped(server: str) -> None:
    sent: Counter[tuple[str, str]] = Counter()
    with httpx.Client(base_url=server, timeout=30) as client:
        for i in range(60):
            r = client.post(f"/predict/{i}", json={"features": [float(i)] * 8})
            assert r.status_code == 200
            sent["/predict/{item_id}", "2xx"] += 1
        for _ in range(3):
            assert client.get("/stream").text.count("chunk") == 3
            sent["/stream", "2xx"] += 1
            assert client.get("/background").status_code == 200
            sent["/background", "2xx"] += 1
            assert client.get(f"/nowhere/{time.time_ns()}").status_code == 404
            sent[UNMATCHED, "4xx"] += 1
            # uvicorn closes a connection whose app raised: a fresh one for each
            assert httpx.get(server + "/boom", timeout=30).status_code == 500
            sent["/boom", "error"] += 1

    async def concurrent() -> None:
        async with httpx.AsyncClient(base_url=server, timeout=30) as client:
            replies = await asyncio.gather(
                *(client.post(f"/predict/{i}", json={"features": [1.0] * 8}) for i in range(40))
            )
        assert all(r.status_code == 200 for r in replies)

    asyncio.run(concurrent())
    sent["/predict/{item_id}", "2xx"] += 40

    metrics = _families(server)
    counted = {
        (s[1]["route"], s[1]["status"]): s[2]
        for s in metrics["silenttax_http_requests"]
        if s[0].endswith("_total")
    }
    assert counted == dict(sent)  # exact, and /metrics itself is not counted

    def buckets(route: str) -> dict[str, float]:
        return {
            s[1]["le"]: s[2]
            for s in metrics["silenttax_http_request_seconds"]
            if s[0].endswith("_bucket") and s[1]["route"] == route
        }

    stream = buckets("/stream")
    assert stream["+Inf"] == 3 and stream["0.25"] == 0  # streamed 3 x 0.1 s: measured as such
    ttfb = {
        s[1]["le"]: s[2]
        for s in metrics["silenttax_http_time_to_first_byte_seconds"]
        if s[0].endswith("_bucket") and s[1]["route"] == "/stream"
    }
    assert ttfb["0.25"] == 3  # the first chunk came after ~0.1 s
    background = buckets("/background")
    assert background["0.176777"] == 3  # the 0.2 s background task is not the response time
    stages = {s[1]["stage"] for s in metrics["silenttax_stage_seconds"] if s[0].endswith("_count")}
    assert {"preprocess", "audit_log", "model", "framework"} <= stages

    report = Report.from_json(httpx.get(server + "/silenttax/check", timeout=30).text)
    shadow = next(f for f in report if f.code == "pipeline.shadow_overhead")
    assert "audit_log" in shadow.message
    assert any(f.code == "pipeline.span_errors" or f.code == "latency.quantile" for f in report)


def test_stage_sums_never_exceed_the_request() -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/work")
    async def work() -> dict[str, int]:
        with stage("preprocess"):
            await asyncio.sleep(0.002)
        with stage("model"):
            await asyncio.sleep(0.003)
        return {"ok": 1}

    middleware = instrument(app)

    async def drive() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(20):
                assert (await client.get("/work")).status_code == 200

    asyncio.run(drive())
    b = middleware.tracer.breakdown()
    staged = sum(s.total for name, s in b.stages.items() if name != "framework")
    assert b.requests == 20 and staged <= b.request_total
    route = middleware.latency()["/work"]
    assert route.sketch.count == 20 and route.sketch.min >= 0.005


def test_labels_stay_capped_after_10k_distinct_urls() -> None:
    from fastapi import FastAPI

    app = FastAPI()
    for i in range(150):
        app.add_api_route(f"/r{i}/{{x}}", lambda x: {"x": x}, methods=["GET"])
    middleware = instrument(app, max_routes=100)

    async def drive() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for i in range(10_000):
                path = f"/missing/{i}" if i % 4 == 0 else f"/r{i % 150}/{i}"
                await client.get(path)

    asyncio.run(drive())
    routes = set(middleware.latency())
    assert len(routes) == 101 and OTHER in routes and UNMATCHED in routes  # 100 + overflow
    assert sum(middleware.requests().values()) == 10_000


def test_silenttax_errors_never_reach_the_request() -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = SilentTaxMiddleware(app)
    middleware._route = None  # type: ignore[assignment,method-assign]  # break the recorder

    async def drive() -> int:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.get("/x")).status_code

    assert asyncio.run(drive()) == 200
    assert middleware.internal_errors == 1
    (error,) = middleware.check().filter(code="stability.internal_error")
    assert error.severity is Severity.WARNING and error.value == 1
    strict = SilentTaxMiddleware(app, strict=True)
    strict._route = None  # type: ignore[assignment,method-assign]
    with pytest.raises(TypeError):
        asyncio.run(strict({"type": "http", "path": "/x"}, _receive, _noop))


async def _receive() -> dict[str, object]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _noop(message: object) -> None:
    return None


def test_bad_arguments_are_named() -> None:
    from silenttax.errors import InputError

    with pytest.raises(InputError, match="cost must be a CostMonitor"):
        SilentTaxMiddleware(_noop_app, cost=3)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="max_routes"):
        SilentTaxMiddleware(_noop_app, max_routes=0)
    assert json.loads(Report().to_json())["kind"] == "silenttax.report"
    _ = Path


async def _noop_app(scope: object, receive: object, send: object) -> None:
    return None


def test_silenttax_stage_and_observe_at_the_top_level() -> None:
    """``silenttax.stage`` / ``silenttax.observe`` (no ``integrations`` import in the
    handler) record into the request's middleware, in async and thread-pool handlers,
    and into a user's tracer under ``tracer.activate()``."""
    from fastapi import FastAPI

    import silenttax
    from silenttax.integrations.fastapi import instrument
    from silenttax.trace import Tracer

    app = FastAPI()

    @app.get("/sync")
    def sync_handler() -> dict[str, int]:
        with silenttax.stage("preprocess"):
            silenttax.observe("queue", 0.001)
        return {"ok": 1}

    @app.get("/async")
    async def async_handler() -> dict[str, int]:
        with silenttax.stage("model"):
            pass
        return {"ok": 1}

    middleware = instrument(app)

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in ("/sync", "/async", "/sync"):
                assert (await client.get(path)).status_code == 200

    asyncio.run(main())
    stages = middleware.tracer.breakdown().stages
    assert stages["preprocess"].spans == 2 and stages["model"].spans == 1
    assert middleware.observed()["queue"].sketch.count == 2
    with silenttax.stage("outside"):  # no request, no tracer: a no-op
        pass
    tracer = Tracer()
    with tracer.activate(), tracer.span("job"), silenttax.stage("load"):
        pass
    assert sorted(tracer.breakdown().stages) == ["job", "load"]
    assert "outside" not in middleware.tracer.breakdown().stages
