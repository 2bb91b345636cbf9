"""One example per saved kind: how to build it cheaply, split it, and feed it bad input.

A new component joins the conformance suite by adding its kind to
``silenttax._registry.KINDS`` and one :class:`Example` here; every check in
``test_conformance.py`` then runs on it. The suite fails when a kind has no
example, so no component can skip it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from silenttax.benchmark import ModelSpec, benchmark, compare, compare_stacks, environment
from silenttax.cost import CostModel, CostMonitor
from silenttax.drift import DriftDetector
from silenttax.features import FeatureHealth
from silenttax.gate import Canary
from silenttax.integrations.asgi import SilentTaxMiddleware, observe, stage
from silenttax.monitor import (
    CUSUM,
    LatencyMonitor,
    LatencySketch,
    PredictionMonitor,
    ResourceMonitor,
)
from silenttax.quantize import Baseline, Candidate, QuantizationStudy
from silenttax.report import Finding, Report
from silenttax.testing import Examples
from silenttax.trace import Tracer, check_breakdown

Example = Examples  # the public contract's examples: the built-ins pass check_component too


def _frame(seed: int, n: int = 600) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 0.5, n),
        "country": rng.choice(["DE", "FR", "US"], n).tolist(),
    }


_CURRENT = _frame(99)
_REFERENCE = DriftDetector().fit(_frame(1))


def _halves(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {k: np.asarray(v)[0::2] for k, v in data.items()},
        {k: np.asarray(v)[1::2] for k, v in data.items()},
    )


def _fit_halves(cls: Any, **kw: Any) -> tuple[Any, Any, Any]:
    data = _frame(1)
    a, b = _halves(data)
    return cls(**kw).fit(a), cls(**kw).fit(b), cls(**kw).fit(data)


_ROOT = Path(__file__).resolve().parents[2]
_SPIN_SPEC = ModelSpec.python(
    "tests.benchmark.stack_models:spin", inputs=[np.ones(4)], paths=[_ROOT], threads=1
)


def _latencies(seed: int, n: int = 3000) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(0.01), 0.4, n)


def _sketch(values: np.ndarray) -> LatencySketch:
    sketch = LatencySketch()
    sketch.add_many(values)
    return sketch


def _monitor(values: np.ndarray, **kw: Any) -> LatencyMonitor:
    monitor = LatencyMonitor(slo=0.05, **kw)
    for v in values:
        monitor.record(float(v))
    return monitor


def _split(make: Callable[[np.ndarray], Any]) -> tuple[Any, Any, Any]:
    values = _latencies(2)
    return make(values[::2]), make(values[1::2]), make(values)


def _cusum() -> CUSUM:
    detector = CUSUM(warmup=30)
    for x in np.random.default_rng(3).normal(1.0, 0.1, 200):
        detector.update(float(x))
    return detector


def _resource() -> ResourceMonitor:
    monitor = ResourceMonitor(name="svc", gpu=False, uss=False)
    for served in range(0, 500, 100):
        monitor.sample(inferences=served)
    return monitor


def _cost(share: float = 1.0, instances: float = 1.0, name: str = "ranker") -> CostMonitor:
    monitor = CostMonitor(
        CostModel(price_per_hour=2.0, instances=instances), window=3600, name=name
    )
    t0 = 1_700_000_000.0
    for hour, busy in enumerate((1800, 2700)):
        monitor.record(
            inferences=int(360_000 * share), busy_seconds=busy * share, now=t0 + 3600 * hour
        )
        monitor.close_window(now=t0 + 3600 * (hour + 1))
    return monitor


def _cost_replicas() -> tuple[CostMonitor, CostMonitor, CostMonitor]:
    """Two one-instance replicas serving half the traffic each, and the fleet as one."""
    return _cost(0.5), _cost(0.5), _cost(1.0, instances=2.0)


def _tracer_breakdown(requests: int = 40) -> Any:
    tracer = Tracer()
    for _ in range(requests):
        with tracer.span("predict"):
            with tracer.span("parse", stage="preprocess"):
                sum(range(200))
            with tracer.span("forward", stage="model"):
                sum(range(800))
    return tracer.breakdown()


def _spin() -> None:
    sum(range(300))


def _study() -> QuantizationStudy:
    base = Baseline(backend="torch", p50=0.001, p99=0.002, size_bytes=4000, batch_size=8)
    cand = Candidate(
        method="torch_dynamic_int8",
        backend="torch",
        applied=True,
        speedup=2.0,
        speedup_ci=(1.9, 2.1),
        p50=0.0005,
        size_bytes=1000,
        size_ratio=0.25,
        max_abs_diff=0.01,
        rel_error=0.01,
    )
    return QuantizationStudy(model="m", baseline=base, candidates=[cand], rounds=40)


def _profile(kind: str) -> Any:
    if kind == "torch":
        import torch

        from silenttax.profile import profile_torch

        model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU()).eval()
        return profile_torch(model, torch.randn(4, 16), steps=3)
    from onnx import TensorProto, helper, numpy_helper

    from silenttax.profile import profile_onnx

    w = numpy_helper.from_array(np.ones((16, 8), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return profile_onnx(model, np.ones((4, 16), np.float32), steps=3)


def _report() -> Report:
    finding = Finding(
        code="latency.p99",
        category="latency",
        severity="warning",
        subject="ranker",
        message="p99 48 ms is above the 40 ms SLO",
        metric="p99",
        value=0.048,
        threshold=0.04,
        unit="s",
    )
    return Report(findings=[finding], source="conformance")


_EDGES = _latencies(9)


def _feed(canary: Canary, seed: int, n: int = 4000) -> Canary:
    rng = np.random.default_rng(seed)
    for x in rng.lognormal(np.log(0.01), 0.5, n):
        if rng.random() < 0.05:
            canary.record_canary(float(x))
        else:
            canary.record_control(float(x))
    return canary


def _canary(seed: int = 4, **settings: Any) -> Canary:
    return _feed(Canary(baseline=_EDGES, **settings), seed)


def _canary_halves() -> tuple[Canary, Canary, Canary]:
    """Two replicas' canaries (same edges) and one canary fed both streams."""
    return _canary(4), _canary(5), _feed(_canary(4), 5)


_SERVING_REFERENCE = {"age": np.random.default_rng(3).normal(40, 10, 2000)}


def _served(requests: range, *, max_routes: int = 100) -> SilentTaxMiddleware:
    """A middleware that served ``requests`` (one sampled body each, folded at a fixed time)."""
    import asyncio
    import json

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = json.loads((await receive())["body"])
        with stage("model"):
            observe("queue", 0.001 * (1 + body["age"] % 7))
        await send({"type": "http.response.start", "status": 200 + 200 * (body["i"] % 3 == 0)})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = SilentTaxMiddleware(
        app,
        feature_health=FeatureHealth().fit(_SERVING_REFERENCE),
        drift=DriftDetector().fit(_SERVING_REFERENCE),
        features=lambda body: {"age": body["age"]},
        sample_rate=1.0,
        max_routes=max_routes,
    )
    rng = np.random.default_rng(requests.start)

    async def serve() -> None:
        for i in requests:
            body = json.dumps({"i": i, "age": float(rng.normal(40, 10))}).encode()

            async def receive(body: bytes = body) -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: Any) -> None:
                pass

            await middleware({"type": "http", "path": "/predict"}, receive, send)

    asyncio.run(serve())
    assert middleware.live is not None
    middleware.live.fold(now=1_700_000_000.0)
    # frozen: a live tracer's wall time grows between two snapshots of the same object
    return SilentTaxMiddleware.from_state(middleware.state())


#: Findings judged on wall-clock shares: the "one pass" is served again, so its timings
#: differ from the halves' and a share near a threshold may land either side.
_TIMED = {"latency", "pipeline", "cost", "resource"}


def _untimed(report: Report) -> Report:
    """The findings of a serving check that depend on the data served, not on timings."""
    return Report(findings=[f for f in report if f.category.value not in _TIMED])


def _serving_halves() -> tuple[Any, Any, Any]:
    a, b = _served(range(0, 40)), _served(range(40, 100))
    whole = _served(range(0, 40))
    whole.merge(_served(range(40, 100)).state())  # the one pass: same bodies, same counts
    return a, b, whole


def _merge_in_place(a: Any, b: Any) -> Any:
    return a.merge(b)


def _predictions(seed: int, n: int = 1500, **kw: Any) -> PredictionMonitor:
    monitor = PredictionMonitor(output="score", **kw)
    monitor.record_many(np.random.default_rng(seed).beta(2, 8, n).tolist())
    return monitor


def _prediction_halves() -> tuple[PredictionMonitor, PredictionMonitor, PredictionMonitor]:
    scores = np.random.default_rng(5).beta(2, 8, 3000).tolist()
    reference = _predictions(9)
    a, b, whole = (PredictionMonitor(output="score", reference=reference) for _ in range(3))
    a.record_many(scores[::2])
    b.record_many(scores[1::2])
    whole.record_many(scores)
    return a, b, whole


def _bad_outputs(monitor: PredictionMonitor) -> None:
    for bad in (None, "x", float("nan"), float("inf"), -3.0, [0.1], {"p": 1}, object()):
        monitor.record(bad)


EXAMPLES: dict[str, Example] = {
    "silenttax.prediction_monitor": Example(
        make=lambda: _predictions(1, reference=_predictions(2)),
        halves=_prediction_halves,
        mismatched=lambda: (_predictions(1), _predictions(2, threshold=0.3), "threshold"),
        bad_input=lambda: PredictionMonitor(threshold=1.5),
        hot_path=_bad_outputs,
        unsaved_settings=frozenset({"reference"}),  # saved in a field of its own
    ),
    "silenttax.drift_detector": Example(
        make=lambda: DriftDetector().fit(_frame(1)),
        halves=lambda: _fit_halves(DriftDetector),
        merge=_merge_in_place,
        mismatched=lambda: (
            DriftDetector(alpha=0.05).fit(_frame(1)),
            DriftDetector(alpha=0.01).fit(_frame(2)),
            "alpha",
        ),
        bad_input=lambda: DriftDetector().fit({"x": []}),
        judge=lambda d: d.check(_CURRENT),
    ),
    "silenttax.drift_window": Example(
        make=lambda: _REFERENCE.window(_CURRENT),
        halves=lambda: (
            _REFERENCE.window(_halves(_CURRENT)[0]),
            _REFERENCE.window(_halves(_CURRENT)[1]),
            _REFERENCE.window(_CURRENT),
        ),
        merge=lambda a, b: a.merge(b),
        mismatched=lambda: (
            DriftDetector(budget=256).fit(_frame(1)).window(_CURRENT),
            DriftDetector(budget=512).fit(_frame(1)).window(_CURRENT),
            "budget",
        ),
        bad_input=lambda: _REFERENCE.window({"age": []}).merge(None),  # type: ignore[arg-type]
        judge=lambda w: _REFERENCE.check(w),
    ),
    "silenttax.feature_health": Example(
        make=lambda: FeatureHealth().fit(_frame(1)),
        halves=lambda: _fit_halves(FeatureHealth),
        merge=_merge_in_place,
        mismatched=lambda: (
            FeatureHealth(max_levels=100).fit(_frame(1)),
            FeatureHealth(max_levels=50).fit(_frame(2)),
            "max_levels",
        ),
        bad_input=lambda: FeatureHealth().check({"x": [1]}),
        judge=lambda h: h.check(_CURRENT),
    ),
    "silenttax.latency_sketch": Example(
        make=lambda: _sketch(_latencies(1)),
        halves=lambda: _split(_sketch),
        merge=_merge_in_place,
        bad_input=lambda: LatencySketch(relative_accuracy=2.0),
    ),
    "silenttax.latency_monitor": Example(
        make=lambda: _monitor(_latencies(1)),
        halves=lambda: _split(_monitor),
        merge=_merge_in_place,
        mismatched=lambda: (
            _monitor(_latencies(1)),
            LatencyMonitor(slo=0.1),
            "slo",
        ),
        bad_input=lambda: LatencyMonitor(slo=-1.0),
        judge=lambda m: m.check(),
        per_replica=frozenset({".creep.seen"}),  # the creep watch follows one stream
    ),
    "silenttax.canary": Example(
        make=_canary,
        halves=_canary_halves,
        merge=_merge_in_place,
        mismatched=lambda: (_canary(), _canary(split=0.1), "split"),
        bad_input=lambda: Canary(split=1.5),
        judge=lambda c: c.check(),
    ),
    "silenttax.change_detector": Example(
        make=_cusum,
        bad_input=lambda: CUSUM(warmup=-1),
    ),
    "silenttax.resource_monitor": Example(
        make=_resource,
        bad_input=lambda: ResourceMonitor(interval=0),
        unsaved_settings=frozenset({"pid"}),  # another process's
        judge=lambda m: m.check(),
    ),
    "silenttax.cost_monitor": Example(
        make=_cost,
        halves=_cost_replicas,
        merge=_merge_in_place,
        mismatched=lambda: (_cost(), _cost(name="other"), "name"),
        bad_input=lambda: CostMonitor(CostModel(price_per_hour=1.0), window=0),
        judge=lambda m: m.check(),
    ),
    "silenttax.trace_breakdown": Example(
        make=_tracer_breakdown,
        halves=lambda: (_tracer_breakdown(), _tracer_breakdown(), None),  # no one-pass twin
        merge=lambda a, b: a.merge(b),
        bad_input=lambda: _tracer_breakdown().merge(object()),
        judge=lambda b: check_breakdown(b),
    ),
    "silenttax.benchmark_result": Example(
        make=lambda: benchmark(_spin, min_samples=20, min_time=0.01, max_time=0.2, memory=False),
        bad_input=lambda: benchmark(42),  # type: ignore[arg-type]
        judge=lambda r: r.report(),
    ),
    "silenttax.comparison": Example(
        make=lambda: compare(_spin, _spin, min_time=0.05, max_time=0.5),
        bad_input=lambda: compare(_spin, _spin, min_rounds=2),
        judge=lambda c: c.report(),
    ),
    "silenttax.environment": Example(make=environment, judge=lambda e: e.report()),
    "silenttax.stack_comparison": Example(
        make=lambda: compare_stacks(_SPIN_SPEC, candidate="current", pairs=2, rounds=4, warmup=0),
        bad_input=lambda: compare_stacks(_SPIN_SPEC, candidate="current", pairs=1),
        judge=lambda c: c.report(),
    ),
    "silenttax.cost_comparison": Example(
        make=lambda: CostModel(price_per_hour=0.8).what_if(
            throughput_before=100, throughput_after=80, traffic=50
        ),
        judge=lambda c: c.report(),
    ),
    "silenttax.cost_model": Example(
        make=lambda: CostModel(price_per_hour=0.8, instances=2),
        bad_input=lambda: CostModel(price_per_hour=-1),
    ),
    "silenttax.report": Example(make=_report),
    "silenttax.serving": Example(
        make=lambda: _served(range(30)),
        halves=_serving_halves,
        merge=_merge_in_place,
        mismatched=lambda: (_served(range(5)), _served(range(5), max_routes=3), "max_routes"),
        bad_input=lambda: SilentTaxMiddleware(_served, max_routes=0),
        judge=lambda m: _untimed(m.check()),
        # code, or saved in fields of their own (health_reference, drift_reference)
        unsaved_settings=frozenset(
            {"app", "tracer", "features", "snapshot_dir", "feature_health", "drift", "checks"}
        ),
    ),
    "silenttax.quantization_study": Example(make=_study, judge=lambda s: s.report()),
    "silenttax.torch_profile": Example(make=lambda: _profile("torch"), judge=lambda p: p.report()),
    "silenttax.onnx_profile": Example(make=lambda: _profile("onnx"), judge=lambda p: p.report()),
}
