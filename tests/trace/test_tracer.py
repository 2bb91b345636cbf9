from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from silenttax.errors import InputError, InternalError, StateError
from silenttax.report import Severity
from silenttax.trace import Breakdown, SpanRecord, Tracer


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def names(record: SpanRecord) -> list[str]:
    return [s.name for s in record.walk()]


def test_span_tree_and_self_time_arithmetic() -> None:
    """Each span's duration lies between its body's time and the time around its ``with``
    (same clock), whatever the machine's load: no band around a sleep."""
    tracer = Tracer()
    pc = time.perf_counter
    t = {}
    t["outer0"] = pc()
    with tracer.span("request", route="/predict"):
        busy(0.002)
        with tracer.span("parse", stage="preprocess"):
            busy(0.003)
        t["fwd_outer0"] = pc()
        with tracer.span("forward", stage="model"):
            t["fwd0"] = pc()
            busy(0.005)
            t["dev_outer0"] = pc()
            with tracer.span("to_device", stage="io"):
                t["dev0"] = pc()
                busy(0.001)
                t["dev1"] = pc()
            t["dev_outer1"] = pc()
            t["fwd1"] = pc()
        t["fwd_outer1"] = pc()
    t["outer1"] = pc()
    (root,) = tracer.traces()
    assert names(root) == ["request", "parse", "forward", "to_device"]
    parse, forward = root.children
    (to_device,) = forward.children
    assert root.attributes == {"route": "/predict"}
    assert parse.stage == "preprocess" and root.stage == "request"
    slack = 5e-5  # the tracer takes its own overhead (about a microsecond) out

    def between(span: SpanRecord, inner: str, outer: str) -> None:
        body = t[inner + "1"] - t[inner + "0"]
        around = t[outer + "1"] - t[outer + "0"]
        assert body - slack <= span.duration <= around + slack, (span.name, body, around)

    between(forward, "fwd", "fwd_outer")
    between(to_device, "dev", "dev_outer")
    assert root.duration <= t["outer1"] - t["outer0"] + slack
    assert root.duration >= 0.011 and to_device.duration >= 0.001 - slack
    # the parent's own time is its duration less its children's
    assert forward.self_time == pytest.approx(forward.duration - to_device.duration, abs=slack)
    # self times add up to the request, with the tracer's overhead taken out
    total_self = sum(s.self_time for s in root.walk())
    assert total_self == pytest.approx(root.duration, abs=2e-5)
    assert root.start <= parse.start <= forward.start <= to_device.start
    assert abs(root.start - time.time()) < 60


def test_breakdown_shares_and_model_share() -> None:
    tracer = Tracer()
    pc = time.perf_counter
    truth: dict[str, list[float]] = {"model": [], "preprocess": [], "request": []}

    def timed(stage: str, seconds: float) -> None:
        t0 = pc()
        busy(seconds)
        truth[stage].append(pc() - t0)

    for _ in range(50):  # the test's own clock is the truth, on whatever machine and load
        t0 = pc()
        with tracer.span("request"):
            with tracer.span("parse", stage="preprocess"):
                timed("preprocess", 0.0005)
            with tracer.span("forward", stage="model"):
                timed("model", 0.0015)
        truth["request"].append(pc() - t0)
    b = tracer.breakdown()
    total = sum(truth["request"])
    assert b.requests == 50
    assert b.model_share == pytest.approx(sum(truth["model"]) / total, abs=0.02)
    assert b.share("preprocess") == pytest.approx(sum(truth["preprocess"]) / total, abs=0.02)
    assert sum(b.share(s) for s in b.stages) == pytest.approx(1.0, abs=1e-9)
    assert b.stages["model"].requests == 50 and b.stages["model"].spans == 50
    q = b.quantiles("model")
    # a quantile estimate is judged by rank: on a busy CPU the times are bimodal (preempted
    # or not) and any value between the modes is a median
    lo, hi = np.quantile(truth["model"], [0.4, 0.6])
    assert lo * 0.97 <= q["p50"] <= hi * 1.03
    assert b.spans["forward"].count == 50 and b.spans["forward"].stage == "model"
    assert b.per_request("preprocess") == pytest.approx(np.mean(truth["preprocess"]), rel=0.1)
    assert b.table()[0]["stage"] == max(("model", "preprocess"), key=lambda k: sum(truth[k]))


def test_overhead_is_measured_and_subtracted() -> None:
    tracer = Tracer()
    assert 0 < tracer.overhead_ns < 50_000
    for _ in range(200):
        with tracer.span("request"):
            for _ in range(20):
                with tracer.span("tiny", stage="logging"):
                    pass
    b = tracer.breakdown()
    # 20 empty child spans: the parent's self time would be ~20 x overhead without the
    # correction; with it, the request's own (glue) time stays a small share.
    # (the median request: a request the OS preempted on a loaded machine says nothing)
    raw_guess = 20 * tracer.overhead_ns / 1e9
    assert b.quantiles("request")["p50"] < raw_guess


def test_decorator_sync_async_and_exceptions() -> None:
    tracer = Tracer()

    @tracer.traced(stage="model")
    def forward(x: int) -> int:
        return x * 2

    @tracer.traced("fetch", stage="io")
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.001)
        return x + 1

    @tracer.traced()
    def broken() -> None:
        raise KeyError("missing feature")

    assert forward(21) == 42 and forward.__name__ == "forward"
    assert asyncio.run(fetch(1)) == 2
    with pytest.raises(KeyError, match="missing feature"):
        broken()
    traces = tracer.traces()
    assert [t.name for t in traces] == [
        "test_decorator_sync_async_and_exceptions.<locals>.forward",
        "fetch",
        "test_decorator_sync_async_and_exceptions.<locals>.broken",
    ]
    assert traces[2].error == "KeyError" and traces[0].error is None
    b = tracer.breakdown()
    assert b.spans[traces[2].name].errors == 1
    report = tracer.check()
    assert report.filter(code="pipeline.span_errors")[0].subject == traces[2].name


def test_asyncio_gather_keeps_separate_trees() -> None:
    tracer = Tracer()

    async def handle(i: int) -> None:
        with tracer.span(f"request-{i}"):
            await asyncio.sleep(0.001 * (3 - i))
            with tracer.span(f"model-{i}", stage="model"):
                await asyncio.sleep(0.001)

    async def main() -> None:
        await asyncio.gather(*(handle(i) for i in range(3)))

    asyncio.run(main())
    traces = tracer.traces()
    assert sorted(names(t)[0] for t in traces) == ["request-0", "request-1", "request-2"]
    for t in traces:
        i = t.name.split("-")[1]
        assert names(t) == [f"request-{i}", f"model-{i}"]


def test_child_tasks_attach_to_the_parent_span() -> None:
    tracer = Tracer()

    async def step(name: str) -> None:
        with tracer.span(name, stage="io"):
            await asyncio.sleep(0.001)

    async def main() -> None:
        with tracer.span("request"):
            await asyncio.gather(step("a"), step("b"))

    asyncio.run(main())
    (root,) = tracer.traces()
    assert sorted(c.name for c in root.children) == ["a", "b"]
    assert root.self_time >= 0  # overlapping children never make it negative


def test_threads_do_not_cross_talk_and_unfinished_requests_carry_over() -> None:
    tracer = Tracer()
    barrier = threading.Barrier(4)

    def worker(k: int) -> None:
        barrier.wait()
        for i in range(600):  # > the batch size: folds happen while others are mid-request
            with tracer.span(f"req-{k}"):
                with tracer.span(f"work-{k}", stage="model"):
                    pass
                if i % 100 == 0:
                    time.sleep(0.001)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    b = tracer.breakdown()
    assert b.requests == 2400
    for k in range(4):
        assert b.spans[f"req-{k}"].count == 600
        assert b.spans[f"work-{k}"].count == 600
    assert b.stages["model"].requests == 2400
    for record in tracer.traces():
        k = record.name.split("-")[1]
        assert names(record) == [f"req-{k}", f"work-{k}"]


def test_retention_is_bounded_and_keeps_the_slowest() -> None:
    tracer = Tracer(max_traces=50, max_slowest=5)
    for i in range(3000):
        with tracer.span("request", i=i):
            if i in (10, 20, 30):
                busy(0.003)
    traces = tracer.traces()
    kept = [t.attributes["i"] for t in traces]
    assert len(traces) <= 55
    assert {10, 20, 30} <= set(kept)  # slowest survive the ring
    assert kept[-1] == 2999 and 2950 in kept  # the most recent 50
    assert tracer.breakdown().requests == 3000


def test_memory_stays_bounded() -> None:
    tracer = Tracer(max_traces=100)
    for _ in range(5000):
        with tracer.span("request"), tracer.span("m", stage="model"):
            pass
    tracer.breakdown()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(20_000):
        with tracer.span("request"), tracer.span("m", stage="model"):
            pass
    tracer.breakdown()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown < 2_000_000, grown


def test_disabled_and_sampled() -> None:
    off = Tracer(enabled=False)
    with off.span("request"), off.span("x"):
        pass
    assert off.breakdown().requests == 0 and off.traces() == []
    off.enabled = True
    with off.span("request"):
        pass
    assert off.breakdown().requests == 1
    sampled = Tracer(sample=0.25, seed=1)
    for _ in range(2000):
        with sampled.span("request"), sampled.span("child", stage="model"):
            pass
    b = sampled.breakdown()
    assert 400 < b.requests < 600
    assert b.spans["child"].count == b.requests  # children follow their request's fate


def test_names_are_capped() -> None:
    tracer = Tracer(max_names=5)
    for i in range(20):
        with tracer.span(f"user-{i}"):
            pass
    b = tracer.breakdown()
    assert len(b.spans) <= 6 and "<other>" in b.spans
    assert sum(s.count for s in b.spans.values()) == 20


def test_breakdown_json_round_trip_and_merge(tmp_path: Path) -> None:
    def run(n: int) -> Tracer:
        t = Tracer()
        for _ in range(n):
            with t.span("request"), t.span("forward", stage="model"):
                busy(0.0002)
        return t

    a, b = run(30).breakdown(), run(20).breakdown()
    a.save(tmp_path / "a.json")
    loaded = Breakdown.load(tmp_path / "a.json")
    assert loaded == a
    merged = a.merge(b)
    assert merged.requests == 50
    assert merged.stages["model"].requests == 50
    assert merged.stages["model"].total == pytest.approx(
        a.stages["model"].total + b.stages["model"].total
    )
    assert merged.request_sketch.count == 50
    assert Breakdown.merged([a, b]).requests == 50
    with pytest.raises(StateError):
        Breakdown.from_json('{"kind": "silenttax.latency_sketch"}')
    with pytest.raises(InputError):
        a.merge("b")  # type: ignore[arg-type]


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="sample"):
        Tracer(sample=0)
    with pytest.raises(InputError, match="max_traces"):
        Tracer(max_traces=-1)
    with pytest.raises(InputError, match="baseline"):
        Tracer().check(baseline="yesterday")  # type: ignore[arg-type]


def test_reset() -> None:
    tracer = Tracer()
    with tracer.span("request"):
        pass
    tracer.reset()
    assert tracer.breakdown().requests == 0 and tracer.traces() == []


def test_current_span_attributes() -> None:
    tracer = Tracer()
    with tracer.span("request"):
        tracer.current_span().set_attribute("batch_size", 16)
    assert tracer.traces()[0].attributes == {"batch_size": 16}
    assert tracer.current_span() is None


def test_retained_traces_keep_attributes_as_text_not_the_objects() -> None:
    import weakref

    class Tensor:  # stands for a large array a handler sets as an attribute
        def __str__(self) -> str:
            return "tensor(shape=[4096, 4096])"

    tracer = Tracer()
    tensor = Tensor()
    alive = weakref.ref(tensor)
    with tracer.span("request", batch=tensor), tracer.span("forward", stage="model") as span:
        span.set_attribute("inputs", [tensor, 3])
    del tensor, span
    tracer.breakdown()  # folds the finished request into the retained traces
    assert alive() is None  # the trace did not keep it alive
    (trace,) = tracer.traces()
    assert trace.attributes == {"batch": "tensor(shape=[4096, 4096])"}
    assert trace.children[0].attributes == {"inputs": ["tensor(shape=[4096, 4096])", 3]}


def test_severity_import_smoke() -> None:
    assert Severity.OK < Severity.WARNING


def test_recording_leaves_nothing_for_the_garbage_collector() -> None:
    import gc

    # Counted: new objects that are still alive and were allocated with this test on
    # the stack -- threads other tests left running allocate too, and must not count.
    # With the collector off after a full collection, every object allocated since sits
    # in generation 0: no scan of the whole heap (a large one in a full test run).
    tracer = Tracer(max_traces=0, max_slowest=0)
    gc.collect()
    gc.disable()
    tracemalloc.start(64)
    try:
        for _ in range(1000):  # 3000 spans, below the batch size: all still buffered
            with tracer.span("request"):
                with tracer.span("parse", stage="preprocess"):
                    pass
                with tracer.span("forward", stage="model"):
                    pass
        new = gc.get_objects(generation=0)
        here = [
            o
            for o in new
            if (tb := tracemalloc.get_object_traceback(o)) is not None
            and any(frame.filename == __file__ for frame in tb)
        ]
    finally:
        tracemalloc.stop()
        gc.enable()
    assert len(here) < 100, here[:20]
    assert tracer.breakdown().requests == 1000


def test_attributes_only_while_the_span_is_open() -> None:
    tracer = Tracer()
    with tracer.span("request") as request, tracer.span("inner"):
        request.set_attribute("from_child", 1)  # an enclosing open span
    request.set_attribute("too_late", 2)  # ended: ignored, nothing kept
    (record,) = tracer.traces()
    assert record.attributes == {"from_child": 1}
    assert tracer._attrs == {}


def test_capped_names_show_as_other_in_traces() -> None:
    tracer = Tracer(max_names=2)
    for name in ("a", "b", "c"):
        with tracer.span(name, stage="io"):
            pass
    assert [t.name for t in tracer.traces()] == ["a", "b", "<other>"]
    assert tracer.breakdown().stages["io"].requests == 3  # the stage still counts


def test_a_request_that_never_ends_cannot_grow_the_buffer() -> None:
    from silenttax.trace._tracer import _FIELDS, _HARD_AT, _MAX_CARRY

    tracer = Tracer()
    with tracer.span("server-loop"):
        for _ in range(_HARD_AT + 10):
            with tracer.span("step"):
                pass
        assert tracer._buffered() < _HARD_AT * _FIELDS  # folded; children carried
        assert tracer.breakdown().requests == 0
    # what was carried for the unfinished request is capped: the oldest children went
    assert tracer.breakdown().spans["step"].count == _MAX_CARRY


def test_a_failing_batch_never_raises_into_the_request() -> None:
    tracer = Tracer()

    def broken(batch: object) -> None:
        raise ValueError("boom")

    tracer._aggregate = broken  # type: ignore[method-assign]  # fault injection
    for _ in range(3000):  # several batches fold on the request path
        with tracer.span("request"), tracer.span("x"):
            pass
    with pytest.raises(InternalError, match="aggregate") as info:  # a SilentTaxError too
        tracer.breakdown()
    assert isinstance(info.value.__cause__, ValueError)


def test_non_string_names_and_switching_on_mid_request() -> None:
    tracer = Tracer(enabled=False)
    with tracer.span("request"):
        tracer.enabled = True
        with tracer.span(42, stage="model"):  # type: ignore[arg-type]
            pass
    (record,) = tracer.traces()
    assert record.name == "42" and record.stage == "model"


def test_attributes_of_spans_never_entered_stay_bounded() -> None:
    from silenttax.trace._tracer import _MAX_PENDING

    tracer = Tracer()
    for i in range(_MAX_PENDING + 10):
        tracer.span("never-entered", i=i)  # created, never used: a misuse, but bounded
    with tracer.span("request", kept=True):
        pass
    tracer.breakdown()
    assert len(tracer._attrs) <= _MAX_PENDING
    assert tracer.traces()[-1].attributes == {"kept": True}


def test_a_background_folder_takes_full_buffers_off_the_request_path() -> None:
    """With ``fold_in_background`` no request folds (below the hard limit): the thread
    folds in steps within its interval, timed in the given SelfTime; nothing is lost, and
    a forked child (no thread) starts a new one at the next call."""
    import os
    import time

    from silenttax._system import SelfTime
    from silenttax.trace._spans import _FOLD_AT

    tracer, timing = Tracer(), SelfTime()
    tracer.fold_in_background(interval=0.01, timing=timing)
    first = tracer._folder
    tracer.fold_in_background(interval=0.01, timing=timing)  # idempotent
    assert tracer._folder is first
    n = _FOLD_AT + 100
    for _ in range(n):
        with tracer.span("request"), tracer.span("model"):
            pass
    deadline = time.monotonic() + 20
    while timing.figures()["slices"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert timing.figures()["slices"] >= 1
    assert tracer.request_folds.figures()["slices"] == 0
    assert tracer.breakdown().requests == n  # the rest folded by the query
    if hasattr(os, "fork"):
        import warnings

        read, write = os.pipe()
        with warnings.catch_warnings():  # 3.12+: "multi-threaded ... fork()" (we exit at once)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: the parent's thread is gone; a new call starts one
            ok = tracer._folder is None
            tracer.fold_in_background(interval=0.01)
            ok = ok and tracer._folder is not None and tracer._folder.is_alive()
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"1"
        os.close(read)
        os.close(write)
