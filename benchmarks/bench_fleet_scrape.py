"""Scrape time of a multi-worker fleet: silenttax's snapshot directory vs
prometheus_client's multiprocess mode, side by side, 4 live workers and 1000 dead ones.

Anchor (shared/research/serving_ecosystem.md): prometheus_client's multiprocess mode
takes 10-40 s per scrape with thousands of dead-worker files, because every file of
every worker that ever ran is read at every scrape. silenttax folds dead workers'
snapshots into one archive, so a scrape reads O(live workers) files. A backlog of dead
files (after a mass crash) is folded by the scrapes, at most 0.1 s each, and a
background thread; until it is done the scrapes leave the fleet's series out
(``silenttax_fleet_backlog_files``): this reports each scrape's time meanwhile and when
the series are complete again.

Each worker here served 5 routes with ``--requests`` requests; prometheus_client's
workers observed the same durations into a labelled Histogram (its default buckets)
and a Counter. Dead workers' files are written with process ids of processes that
have exited.

With ``--live-features`` each worker also samples request bodies into live feature
health and drift windows (10 float features, FeatureHealth + DriftDetector fitted on
5000 reference rows, 20% of 2000 requests sampled): what a worker writes then, and what
a scrape merges and judges (``findings=True``: the check runs at each scrape too). The
references are written once per directory; the scraping worker writes its own file
first (as a served scrape does).

Run: python benchmarks/bench_fleet_scrape.py [--dead 1000] [--repeat 5] [--live-features]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from silenttax.integrations.asgi import SilentTaxMiddleware
from silenttax.integrations.prometheus import SilentTaxCollector

ROUTES = [f"/v1/model{i}" for i in range(5)]


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def silenttax_worker(requests: int, seed: int, features: bool = False) -> Any:
    """A served middleware (the same snapshot for live and dead workers)."""

    class Route:
        def __init__(self, path: str) -> None:
            self.path = path

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the body (what live feature sampling copies)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"{}"})

    options: dict[str, Any] = {}
    if features:
        from silenttax.drift import DriftDetector
        from silenttax.features import FeatureHealth

        rng = np.random.default_rng(0)  # one reference for the whole fleet
        reference = {f"f{i}": rng.normal(20, 5, 5000) for i in range(10)}
        options = {
            "feature_health": FeatureHealth().fit(reference),
            "drift": DriftDetector().fit(reference),
            "features": lambda body: body,
            "sample_rate": 0.2,
            "check_interval": 3600,
        }
    middleware = SilentTaxMiddleware(app, **options)
    rows = np.random.default_rng(seed + 1).normal(20, 5, (requests, 10)).round(3)
    bodies = [json.dumps({f"f{i}": v for i, v in enumerate(row)}).encode() for row in rows]

    async def serve() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": bodies[i], "more_body": False}

        async def send(message: Any) -> None:
            return None

        for i in range(requests):
            route = ROUTES[(i + seed) % len(ROUTES)]
            await middleware({"type": "http", "path": route, "route": Route(route)}, receive, send)

    asyncio.run(serve())
    if middleware.live is not None:
        middleware.live.fold()
    return middleware


def time_scrape(collect: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        collect()
        out.append(time.perf_counter() - start)
    return out


def silenttax_fleet(folder: Path, live: int, dead: int, requests: int, repeat: int,
                    features: bool) -> None:  # fmt: skip
    from prometheus_client import CollectorRegistry, generate_latest

    from silenttax.integrations.fleet import _PARSED, SnapshotWriter

    os.environ["SILENTTAX_GENERATION"] = "bench"
    served = silenttax_worker(requests, 0, features)
    writers = []
    for _ in range(live):  # live workers: this process's pid (alive), distinct files
        writer = SnapshotWriter(served, folder, interval=3600)
        writer.write()
        writers.append(writer)
    own = silenttax_worker(requests, 1, features)  # the worker that serves the scrape
    own.writer = SnapshotWriter(own, folder, interval=3600)
    registry = CollectorRegistry()
    registry.register(SilentTaxCollector.from_directory(folder, own=own, findings=features))
    live_times = time_scrape(lambda: generate_latest(registry), repeat)

    changed_times = []  # every other worker wrote since the last scrape: parsed again
    for _ in range(repeat):
        for writer in writers:
            writer.write()
            for windows in (True, False):
                _PARSED.pop((writer.path, windows), None)
        changed_times += time_scrape(lambda: generate_latest(registry), 1)
    sizes = [p.stat().st_size for p in folder.glob("worker-*.json")]
    template = writers[0].path.read_text()
    windows = writers[0].windows_path
    pid = _dead_pid()
    for i in range(dead):
        name = f"{pid}-{i:08x}-bench.json"
        if windows.exists():  # a worker with live features keeps its windows beside its file
            shutil.copyfile(windows, folder / f"windows-{name}")
        text = template.replace(windows.name, f"windows-{name}")
        (folder / f"worker-{name}").write_text(text)
    # a scrape every 0.5 s while the backlog is folded (by the scrapes, 0.1 s each, and
    # the background thread the first one starts): each scrape's time, until complete
    crashed = time.perf_counter()
    during = []
    while True:
        start = time.perf_counter()
        text = generate_latest(registry).decode()
        during.append(time.perf_counter() - start)
        if "silenttax_http_requests_total" in text:
            break
        time.sleep(0.5)
    complete = time.perf_counter() - crashed
    after = time_scrape(lambda: generate_latest(registry), repeat)
    files = len(list(folder.glob("*.json")))
    print(
        f"silenttax          {live}+1 live: {statistics.median(live_times) * 1e3:8.1f} ms, "
        f"files changed: {statistics.median(changed_times) * 1e3:6.1f} ms "
        f"(worker file {statistics.median(sizes) / 1024:.0f} KiB) | "
        f"+{dead} dead: first scrape {during[0] * 1e3:6.1f} ms, max while folding "
        f"{max(during) * 1e3:6.1f} ms over {len(during)} scrapes, series complete after "
        f"{complete:5.1f} s | later scrapes: {statistics.median(after) * 1e3:8.1f} ms "
        f"({files} files left)"
    )


def prometheus_fleet(folder: Path, live: int, dead: int, requests: int, repeat: int) -> None:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
    from prometheus_client.multiprocess import MultiProcessCollector

    durations = np.random.default_rng(0).lognormal(np.log(0.01), 0.5, requests)

    def worker(pid: int) -> None:
        values.ValueClass = values.MultiProcessValue(process_identifier=lambda: pid)
        registry = CollectorRegistry()
        hist = Histogram("http_request_seconds", "d", ["route"], registry=registry)
        count = Counter("http_requests", "n", ["route", "status"], registry=registry)
        for i, d in enumerate(durations):
            route = ROUTES[i % len(ROUTES)]
            hist.labels(route).observe(float(d))
            count.labels(route, "2xx").inc()

    for i in range(live):
        worker(10_000_000 + i)
    scrape_registry = CollectorRegistry()
    MultiProcessCollector(scrape_registry)
    live_times = time_scrape(lambda: generate_latest(scrape_registry), repeat)
    for i in range(dead):
        worker(20_000_000 + i)
    dead_times = time_scrape(lambda: generate_latest(scrape_registry), repeat)
    files = len(list(folder.glob("*.db")))
    print(
        f"prometheus_client  {live} live: {statistics.median(live_times) * 1e3:8.1f} ms | "
        f"+{dead} dead, every scrape: {statistics.median(dead_times) * 1e3:8.1f} ms "
        f"({files} files left)"
    )
    del prometheus_client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--live", type=int, default=4)
    parser.add_argument("--dead", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--live-features", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fleet-silenttax-"))
    try:
        silenttax_fleet(folder, args.live - 1, args.dead, args.requests, args.repeat,
                        args.live_features)  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not args.live_features:
        folder = Path(tempfile.mkdtemp(prefix="fleet-prometheus-"))
        try:
            prometheus_fleet(folder, args.live, args.dead, args.requests, args.repeat)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
