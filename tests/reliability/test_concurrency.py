"""Concurrency: many threads and asyncio tasks recording at once while checks,
snapshots and Prometheus scrapes run beside them — counts exact, no deadlock, every
snapshot taken mid-flight loads and is self-consistent. Bounded: every join has a
deadline, and a thread still alive after it fails the test as a deadlock."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import silenttax
from silenttax.cost import CostModel, CostMonitor
from silenttax.gate import Canary
from silenttax.integrations.asgi import SilentTaxMiddleware, stage
from silenttax.integrations.prometheus import SilentTaxCollector
from silenttax.monitor import LatencyMonitor, LatencySketch
from silenttax.trace import Tracer

THREADS, PER_THREAD = 8, 5_000
DEADLINE_S = 120.0


def _run(workers: list[Callable[[], None]], reader: Callable[[], None]) -> int:
    """Run ``workers`` in threads and ``reader`` in a loop beside them until they are
    done; returns how many times the reader ran. Fails on a deadlock or an error."""
    errors: list[BaseException] = []
    done = threading.Event()

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # surfaced below, in the test's thread
                errors.append(e)

        return run

    reads = 0

    def read_loop() -> None:
        nonlocal reads
        while not done.is_set():
            reader()
            reads += 1

    threads = [threading.Thread(target=guarded(w), daemon=True) for w in workers]
    watcher = threading.Thread(target=guarded(read_loop), daemon=True)
    watcher.start()
    for t in threads:
        t.start()
    deadline = time.monotonic() + DEADLINE_S
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    done.set()
    watcher.join(max(1.0, deadline - time.monotonic()))
    alive = [t for t in [*threads, watcher] if t.is_alive()]
    assert not alive, f"deadlock: {len(alive)} threads still running after {DEADLINE_S} s"
    if errors:
        raise errors[0]
    reader()  # once more after the writers: nothing may be left unread
    return reads + 1


def test_threads_record_while_checks_snapshots_and_scrapes_run() -> None:
    sketch, monitor = LatencySketch(), LatencyMonitor(name="m")
    canary = Canary(burn_in=10, resources=("memory",))
    cost = CostMonitor(CostModel(price_per_hour=1.0), window=3600)
    tracer = Tracer()
    registry = CollectorRegistry()
    registry.register(SilentTaxCollector({"m": monitor, "t": tracer, "c": cost}))
    seen: dict[str, int] = {"snapshot_max": 0}

    def work(i: int) -> Callable[[], None]:
        def run() -> None:
            for j in range(PER_THREAD):
                x = 0.001 * (1 + (i * PER_THREAD + j) % 97)
                sketch.add(x)
                monitor.record(x)
                (canary.record_control if j % 2 else canary.record_canary)(x, memory=1.0)
                cost.record(1, busy_seconds=x)
                with tracer.span("request"), tracer.span("model", stage="model"):
                    pass

        return run

    def read() -> None:
        state = monitor.state()  # taken mid-flight: validated on the way back in
        again = silenttax.load(state.to_json())
        assert again.sketch.count == state.sketch.count
        seen["snapshot_max"] = max(seen["snapshot_max"], state.sketch.count)
        monitor.check()
        canary.check()
        cost.check()
        tracer.check()
        text = generate_latest(registry).decode()
        families = {f.name for f in text_string_to_metric_families(text)}
        assert families  # parses, whole

    reads = _run([work(i) for i in range(THREADS)], read)
    n = THREADS * PER_THREAD
    assert reads >= 2
    assert sketch.count == monitor.sketch.count == n and sketch.invalid == 0
    assert canary.control + canary.canary == n and canary.invalid == 0
    assert cost._inferences == n and cost.invalid == 0
    assert tracer.breakdown().requests == n
    assert tracer.breakdown().spans["model"].count == n
    assert seen["snapshot_max"] <= n
    assert not monitor.check().filter(code="stability.invalid_input").findings


def test_merging_snapshots_while_recording_loses_nothing() -> None:
    """Replicas record in threads; a merger folds their snapshots meanwhile. The final
    merge of final snapshots counts every value once."""
    replicas = [LatencyMonitor(name="m") for _ in range(4)]

    def work(r: LatencyMonitor) -> Callable[[], None]:
        return lambda: [r.record(0.001 * (k % 50 + 1)) for k in range(PER_THREAD * 2)] and None

    def read() -> None:
        silenttax.merge([r.state().to_json() for r in replicas])

    _run([work(r) for r in replicas], read)
    merged = silenttax.merge([r.state().to_json() for r in replicas])
    assert merged.sketch.count == 4 * PER_THREAD * 2


def test_asyncio_tasks_and_a_thread_pool_through_the_middleware() -> None:
    """Concurrent requests to a real ASGI app (asyncio tasks; half the handlers in a
    thread pool), stage spans in each, a scrape and a check running beside them."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        with stage("preprocess"):
            await asyncio.sleep(0)
        if scope["path"].endswith("1"):
            await asyncio.to_thread(_model)  # the thread sees the request's context
        else:
            with stage("model"):
                await asyncio.sleep(0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def _model() -> None:
        with stage("model"):
            pass

    middleware = SilentTaxMiddleware(app)
    requests = 2_000

    async def drive() -> list[int]:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def scrape() -> None:
                for _ in range(20):
                    middleware.check()
                    middleware.state().to_json()
                    await asyncio.sleep(0.001)

            codes = await asyncio.gather(
                *(client.get(f"/r/{i}") for i in range(requests)), scrape()
            )
            return [c.status_code for c in codes if c is not None]

    codes = asyncio.run(asyncio.wait_for(drive(), DEADLINE_S))
    assert codes == [200] * requests
    assert sum(middleware.requests().values()) == requests
    assert middleware.internal_errors == 0
    breakdown = middleware.breakdown()
    assert breakdown.requests == requests
    assert breakdown.stages["model"].spans == requests
    assert breakdown.stages["preprocess"].spans == requests


@pytest.mark.parametrize("strict", [False, True])
def test_a_failing_reader_never_blocks_the_writers(strict: bool) -> None:
    """A check that raises (a broken policy, here) leaves no lock held."""
    monitor = LatencyMonitor(name="m", strict=strict)
    box: dict[str, int] = {"failed": 0}

    def read() -> None:
        try:
            monitor.check(baseline="not a baseline")  # type: ignore[arg-type]
        except silenttax.errors.InputError:
            box["failed"] += 1

    _run([lambda: [monitor.record(0.01) for _ in range(PER_THREAD)] and None] * 4, read)
    assert monitor.sketch.count == 4 * PER_THREAD and box["failed"] >= 1
