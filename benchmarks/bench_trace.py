"""Tracer overhead beside OpenTelemetry, in the same process.

Targets (tracing issue): a 3-span request (request + 2 children) costs <= 1/15
of the same with the OpenTelemetry SDK (TracerProvider + SimpleSpanProcessor +
InMemorySpanExporter) and <= 1/3 of the OTel no-op API tracer; <= 1 µs per
span; retained bytes per span reported; 1 million requests keep memory bounded.

Costs are process-CPU medians over interleaved repeats, including the tracer's
batched aggregation (amortized) and the garbage collection each variant causes
(the heap is collected before each timed run), minus an empty loop.

Run: python benchmarks/bench_trace.py [--quick]
(SILENTTAX_PURE_PYTHON=1 measures the pure-Python recorder.)
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from contextvars import ContextVar

import psutil
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider

from silenttax.trace import Tracer

_var: ContextVar[object] = ContextVar("floor", default=None)
_pc = time.perf_counter_ns


class _Floor:
    """The least a ContextVar-based span can do: no aggregation, nothing kept."""

    __slots__ = ("name", "parent", "start", "token")

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> _Floor:
        self.parent = _var.get()
        self.token = _var.set(self)
        self.start = _pc()
        return self

    def __exit__(self, *exc: object) -> None:
        _pc()
        _var.reset(self.token)


def make_variants() -> tuple[dict[str, Callable[[], None]], InMemorySpanExporter]:
    ours = Tracer()
    off = Tracer(enabled=False)
    # The same tracer with its batched aggregation switched off: the recording path alone.
    recording = Tracer()
    recording._fold_quietly = recording._discard  # type: ignore[method-assign]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sdk = provider.get_tracer("bench")
    noop = NoOpTracerProvider().get_tracer("bench")

    def silenttax_request() -> None:
        with ours.span("request"):
            with ours.span("preprocess", stage="preprocess"):
                pass
            with ours.span("forward", stage="model"):
                pass

    def recording_request() -> None:
        with recording.span("request"):
            with recording.span("preprocess", stage="preprocess"):
                pass
            with recording.span("forward", stage="model"):
                pass

    def disabled_request() -> None:
        with off.span("request"):
            with off.span("preprocess", stage="preprocess"):
                pass
            with off.span("forward", stage="model"):
                pass

    def otel_sdk_request() -> None:
        with sdk.start_as_current_span("request"):
            with sdk.start_as_current_span("preprocess"):
                pass
            with sdk.start_as_current_span("forward"):
                pass

    def otel_noop_request() -> None:
        with noop.start_as_current_span("request"):
            with noop.start_as_current_span("preprocess"):
                pass
            with noop.start_as_current_span("forward"):
                pass

    def floor_request() -> None:
        with _Floor("request"):
            with _Floor("preprocess"):
                pass
            with _Floor("forward"):
                pass

    return {
        "silenttax Tracer": silenttax_request,
        "silenttax recording path only": recording_request,
        "silenttax Tracer(enabled=False)": disabled_request,
        "OTel no-op API tracer": otel_noop_request,
        "OTel SDK + Simple + InMemory": otel_sdk_request,
        "floor: bare ContextVar span": floor_request,
    }, exporter


def per_request_ns(
    fns: dict[str, Callable[[], None]], n: int, repeats: int, exporter: InMemorySpanExporter
) -> dict[str, float]:
    def empty() -> None:
        return None

    fns = {"<empty>": empty, **fns}
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            exporter.clear()
            gc.collect()  # each variant pays for the collections it causes, not the last one's
            start = time.process_time_ns()
            for _ in range(n):
                fn()
            samples[name].append((time.process_time_ns() - start) / n)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    floor = medians.pop("<empty>")
    return {k: v - floor for k, v in medians.items()}


def retained_bytes_per_span(n: int) -> float:
    gc.collect()
    tracemalloc.start()
    tracer = Tracer(max_traces=n, max_slowest=0)
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        with tracer.span("request", route="/x"):
            with tracer.span("preprocess", stage="preprocess"):
                pass
            with tracer.span("forward", stage="model"):
                pass
    tracer.breakdown()  # fold: what stays is the retained ring + fixed aggregates
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / (3 * n)


def million(n: int) -> None:
    process = psutil.Process()
    tracer = Tracer()
    rss = []
    for i in range(n):
        with tracer.span("request"):
            with tracer.span("preprocess", stage="preprocess"):
                pass
            with tracer.span("forward", stage="model"):
                pass
        if i % (n // 10) == 0:
            rss.append(process.memory_info().rss / 2**20)
    b = tracer.breakdown()
    rss.append(process.memory_info().rss / 2**20)
    print(
        f"\n{b.requests:,} requests: RSS {rss[1]:.1f} MiB after 10% -> {rss[-1]:.1f} MiB at the "
        f"end (max {max(rss):.1f}); breakdown JSON {len(b.to_json()) / 1024:.1f} KiB; "
        f"{len(tracer.traces())} traces retained"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    fns, exporter = make_variants()
    costs = per_request_ns(fns, n=5_000 if args.quick else 20_000, repeats=7, exporter=exporter)
    recorder = "compiled" if Tracer().compiled else "pure-Python"
    print(f"silenttax recorder: {recorder} (SILENTTAX_PURE_PYTHON=1 for the pure-Python one)")
    print("3-span request (request + 2 children), process CPU ns, empty loop subtracted:")
    for name, ns in costs.items():
        print(f"  {name:34s} {ns:9.0f} ns/request  {ns / 3:8.0f} ns/span")
    ours = costs["silenttax Tracer"]
    sdk = costs["OTel SDK + Simple + InMemory"]
    noop = costs["OTel no-op API tracer"]
    print(f"  ratio vs OTel SDK                  {ours / sdk:9.3f}  (target <= {1 / 15:.3f})")
    print(f"  ratio vs OTel no-op                {ours / noop:9.3f}  (target <= {1 / 3:.3f})")
    print(f"  per span                           {ours / 3:9.0f} ns (target <= 1000)")
    rec = costs["silenttax recording path only"]
    print(f"  recording path only vs OTel no-op  {rec / noop:9.3f}  ({rec / 3:.0f} ns/span)")
    print(
        f"\nretained bytes per span: {retained_bytes_per_span(1000):.0f} B (ring of 1000 requests)"
    )
    million(100_000 if args.quick else 1_000_000)


if __name__ == "__main__":
    main()
