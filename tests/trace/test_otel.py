from __future__ import annotations

import subprocess
import sys
import time

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from silenttax.trace import Tracer
from silenttax.trace.otel import replay


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p, exporter


def test_replay_tree_names_durations_attributes_and_errors() -> None:
    tracer = Tracer()
    with tracer.span("request", route="/score", batch=8):
        with tracer.span("parse", stage="preprocess"):
            time.sleep(0.002)
        with tracer.span("forward", stage="model"):
            time.sleep(0.004)
    try:
        with tracer.span("request"), tracer.span("forward", stage="model"):
            raise RuntimeError("CUDA out of memory")
    except RuntimeError:
        pass
    p, exporter = provider()
    assert replay(tracer, tracer_provider=p) == 5
    assert len(exporter.get_finished_spans()) == 5
    records = tracer.traces()
    first = records[0]
    root = next(s for s in exporter.get_finished_spans() if s.attributes.get("route") == "/score")
    children = [
        s
        for s in exporter.get_finished_spans()
        if s.parent and s.parent.span_id == root.context.span_id
    ]
    assert sorted(c.name for c in children) == ["forward", "parse"]
    assert root.attributes["batch"] == 8 and root.attributes["silenttax.stage"] == "request"
    assert root.start_time == first.start_ns
    assert abs((root.end_time - root.start_time) / 1e9 - first.duration) < 1e-6
    forward = next(c for c in children if c.name == "forward")
    assert forward.attributes["silenttax.stage"] == "model"
    assert 0.003 < (forward.end_time - forward.start_time) / 1e9 < 0.05
    failed = [s for s in exporter.get_finished_spans() if s.status.status_code is StatusCode.ERROR]
    assert {s.name for s in failed} == {"request", "forward"}
    assert all(s.attributes["error.type"] == "RuntimeError" for s in failed)


def test_replay_selected_traces_under_a_current_span() -> None:
    tracer = Tracer()
    for i in range(5):
        with tracer.span("request", i=i):
            pass
    p, exporter = provider()
    slow = [t for t in tracer.traces() if t.attributes["i"] >= 3]
    outer = p.get_tracer("app").start_span("batch-job")
    with otel_trace.use_span(outer, end_on_exit=True):
        assert replay(tracer, tracer_provider=p, traces=slow) == 2
    replayed = [s for s in exporter.get_finished_spans() if s.name == "request"]
    assert len(replayed) == 2
    assert all(s.parent.span_id == outer.context.span_id for s in replayed)


def test_importing_trace_does_not_import_opentelemetry() -> None:
    code = "import sys, silenttax.trace; print('opentelemetry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_replay_marks_spans_paused_by_garbage_collection() -> None:
    import gc

    class Cyclic:
        def __init__(self) -> None:
            self.me = self

    tracer = Tracer()
    for _ in range(50):
        with tracer.span("request"), tracer.span("forward", stage="model"):
            junk = [Cyclic() for _ in range(3000)]
            del junk
    gc.collect()
    p, exporter = provider()
    replay(tracer, tracer_provider=p)
    paused = [s for s in exporter.get_finished_spans() if "silenttax.gc_time" in s.attributes]
    assert paused and {s.name for s in paused} <= {"forward", "request"}
    expected = sum(t.children[0].gc_time + t.gc_time for t in tracer.traces())
    assert sum(s.attributes["silenttax.gc_time"] for s in paused) == pytest.approx(expected)
