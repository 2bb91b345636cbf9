"""Runtime hints: GC pauses matched to spans, CPU time, threads and oversubscription."""

from __future__ import annotations

import gc
import json
import os
import time

import numpy as np
import psutil
import pytest

from silenttax.report import Severity
from silenttax.trace import Breakdown, Tracer, check_breakdown
from silenttax.trace._runtime import gc_pauses, overlap_ns


class Cyclic:
    """Garbage only the cycle collector can free."""

    def __init__(self) -> None:
        self.me = self


def churn(n: int = 3000) -> None:
    junk = [Cyclic() for _ in range(n)]
    del junk


def serve(tracer: Tracer, requests: int, *, garbage: bool) -> None:
    for _ in range(requests):
        with tracer.span("request"):
            with tracer.span("forward", stage="model"):
                if garbage:
                    churn()
                else:
                    sum(range(3000))
            with tracer.span("parse", stage="preprocess"):
                pass


def test_overlap_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    edges = np.sort(rng.choice(100_000, size=400, replace=False))
    p_start, p_end = edges[0::2], edges[1::2]  # disjoint, sorted pauses
    starts = rng.integers(0, 100_000, 500)
    ends = starts + rng.integers(0, 20_000, 500)
    got = overlap_ns(starts, ends, p_start, p_end)
    paused = np.zeros(130_000, dtype=bool)
    for a, b in zip(p_start, p_end, strict=True):
        paused[a:b] = True
    expected = [int(paused[s:e].sum()) for s, e in zip(starts, ends, strict=True)]
    assert got.tolist() == expected


def test_gc_pauses_inside_the_model_stage_are_found() -> None:
    tracer = Tracer()
    serve(tracer, 200, garbage=True)
    b = tracer.breakdown()
    model, pre = b.stages["model"], b.stages["preprocess"]
    assert model.gc_total > 0.05 * model.total
    assert pre.gc_total <= model.gc_total / 10
    assert b.gc_total == pytest.approx(sum(s.gc_total for s in b.stages.values()))
    assert all(s.gc_total <= s.total + 1e-9 for s in b.stages.values())
    finding = tracer.check().filter(code="pipeline.gc_pauses")[0]
    assert finding.severity is Severity.WARNING and finding.subject == "model"
    assert "gc.freeze" in (finding.recommendation or "")
    # the retained traces say which spans a collection paused
    forwards = [t.children[0] for t in tracer.traces()]
    assert {f.name for f in forwards} == {"forward"}
    assert sum(f.gc_time for f in forwards) > 0
    assert all(0 <= f.gc_time <= f.self_time for f in forwards)


def test_no_collection_no_gc_finding() -> None:
    tracer = Tracer()
    gc.collect()
    gc.disable()
    try:
        serve(tracer, 200, garbage=True)  # the same garbage, never collected inside
        report = tracer.check()
    finally:
        gc.enable()
        gc.collect()
    assert tracer.breakdown().gc_total == 0
    (finding,) = report.filter(code="pipeline.gc_pauses")
    assert finding.severity is Severity.OK and finding.subject == "request"


def test_the_gc_hook_is_shared_and_removed_with_the_last_tracer() -> None:
    gc.collect()
    users = [cb for cb in gc.callbacks if getattr(cb, "__self__", None) is gc_pauses]
    first, second = Tracer(), Tracer()
    mine = [cb for cb in gc.callbacks if getattr(cb, "__self__", None) is gc_pauses]
    assert len(mine) == 1
    del first, second
    gc.collect()
    left = [cb for cb in gc.callbacks if getattr(cb, "__self__", None) is gc_pauses]
    assert len(left) == len(users)  # back to what other live tracers hold
    quiet = Tracer(runtime_hints=False)
    serve(quiet, 50, garbage=True)
    b = quiet.breakdown()
    assert not b.runtime_hints and b.wall_time == 0 and b.cores == 0 and b.gc_total == 0
    codes = {f.code for f in quiet.check()}
    assert "pipeline.stage_time" in codes
    assert not codes & {"pipeline.gc_pauses", "pipeline.threads"}


def test_cpu_wall_threads_are_measured() -> None:
    process = psutil.Process()
    tracer = Tracer()
    cpu0, wall0 = process.cpu_times(), time.perf_counter()
    end = wall0 + 0.3
    while time.perf_counter() < end:
        with tracer.span("request"), tracer.span("forward", stage="model"):
            sum(range(2000))
    b = tracer.breakdown()
    cpu1, wall1 = process.cpu_times(), time.perf_counter()
    used = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    assert b.cpu_time == pytest.approx(used, rel=0.25, abs=0.03)
    assert b.wall_time == pytest.approx(wall1 - wall0, rel=0.25, abs=0.03)
    assert b.cores == len(os.sched_getaffinity(0))
    assert b.max_threads >= 1
    # one thread spinning: busy cores is its CPU time over the wall time (below 1 when the
    # machine is shared, never much above it)
    assert b.busy_cores == pytest.approx(used / (wall1 - wall0), rel=0.3, abs=0.05)
    assert 0 < b.busy_cores < 1.5
    assert 0.7 < b.concurrency <= 1.05  # back-to-back requests: about one in flight
    (finding,) = tracer.check().filter(code="pipeline.threads")
    assert finding.value == pytest.approx(b.busy_cores, rel=0.05)  # a moment later


def verdict(b: Breakdown, **fields: object) -> Severity:
    (finding,) = check_breakdown(b.model_copy(update=fields)).filter(code="pipeline.threads")
    return finding.severity


def test_thread_oversubscription_verdicts() -> None:
    tracer = Tracer()
    serve(tracer, 20, garbage=False)
    b = tracer.breakdown().model_copy(update={"cores": 2, "wall_time": 10.0})
    busy = {"cpu_time": 19.5}  # 1.95 of 2 cores
    idle = {"cpu_time": 5.0}
    in_flight_3 = {"request_total": 30.0}
    assert verdict(b, **idle, intra_op_threads=1) is Severity.OK
    assert verdict(b, **idle, intra_op_threads=8) is Severity.WARNING  # more than the cores
    assert verdict(b, **busy, **in_flight_3, intra_op_threads=2) is Severity.WARNING
    assert verdict(b, **busy, request_total=5.0, intra_op_threads=2) is Severity.INFO  # busy, fits
    assert verdict(b, **busy, intra_op_threads=None) is Severity.INFO


def test_torch_threads_above_the_cores_are_flagged() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(cores * 4)
    try:
        tracer = Tracer()
        serve(tracer, 5, garbage=False)
        b = tracer.breakdown()
        finding = tracer.check().filter(code="pipeline.threads")[0]
    finally:
        torch.set_num_threads(before)
    assert b.intra_op_threads == cores * 4
    assert finding.severity is Severity.WARNING
    assert f"{cores * 4} intra-op threads" in finding.message


def test_hint_fields_round_trip_merge_and_old_files_load() -> None:
    tracer = Tracer()
    serve(tracer, 50, garbage=True)
    a = tracer.breakdown()
    assert Breakdown.from_json(a.to_json()) == a
    merged = a.merge(a)
    assert merged.cpu_time == pytest.approx(2 * a.cpu_time)
    assert merged.stages["model"].gc_total == pytest.approx(2 * a.stages["model"].gc_total)
    assert merged.busy_cores == pytest.approx(a.busy_cores)
    doc = json.loads(a.to_json())
    for key in ("runtime_hints", "wall_time", "cpu_time", "cores", "max_threads"):
        doc.pop(key)
    for stage in doc["stages"].values():
        stage.pop("gc_total")
    old = Breakdown.from_json(json.dumps(doc))  # written before the hints existed
    assert not old.runtime_hints and old.gc_total == 0
    codes = {f.code for f in check_breakdown(old)}
    assert "pipeline.threads" not in codes and "pipeline.gc_pauses" not in codes


def test_pause_record_is_bounded_and_read_from_the_tail() -> None:
    from silenttax.trace._runtime import GcPauses

    record = GcPauses(capacity=1000)
    stamps = []
    for _ in range(5000):  # what the gc hook sees: a start, then a stop
        record._callback("start", {})
        record._callback("stop", {})
        stamps.append(time.perf_counter_ns())
    starts, _ = record.between(0, stamps[-1])
    assert 1000 <= len(starts) <= 2000  # the oldest were dropped: between 1x and 2x capacity
    starts, ends = record.between(stamps[-900], stamps[-1])  # read from the tail (> 512)
    assert len(starts) == 899 and (ends >= starts).all() and (np.diff(starts) > 0).all()
