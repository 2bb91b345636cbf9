"""Multi-worker serving: snapshot files per worker, merged at scrape, dead workers archived.

Worker processes here are real: subprocesses that serve requests through the middleware
and exit (cleanly, or killed with SIGKILL), and a gunicorn fleet of uvicorn workers with
``max_requests`` churn driven over loopback by httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from silenttax._sketch import lower_rank
from silenttax.integrations.asgi import ServingState, SilentTaxMiddleware, observe
from silenttax.integrations.fleet import ARCHIVE, GENERATION, fold_dead, read_directory
from silenttax.integrations.prometheus import SilentTaxCollector

from .servers import free_port, running

WORKER = """
import asyncio, os, signal, sys
from silenttax.integrations.asgi import SilentTaxMiddleware, observe

async def app(scope, receive, send):
    observe("work", 0.001 * (1 + int(scope["path"].rsplit("/", 1)[1]) % 5))
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"ok"})

async def main(n):
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        pass
    for i in range(n):
        await middleware({"type": "http", "path": f"/item/{i}"}, receive, send)

middleware = SilentTaxMiddleware(app, snapshot_dir=sys.argv[1], snapshot_interval=60)
asyncio.run(main(int(sys.argv[2])))
if sys.argv[3] == "kill":
    middleware.writer.write()  # its last periodic write, then a crash
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _serve(middleware: SilentTaxMiddleware, n: int) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        observe("work", 0.002)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware.app = app

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            pass

        for i in range(n):
            await middleware({"type": "http", "path": f"/item/{i}"}, receive, send)

    asyncio.run(main())


def _requests(middleware: SilentTaxMiddleware) -> int:
    return sum(middleware.requests().values())


def _worker(folder: Path, n: int, how: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(folder), str(n), how], capture_output=True, text=True
    )
    assert done.returncode == (-signal.SIGKILL if how == "kill" else 0), done.stderr
    return n


@pytest.fixture
def one_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's processes are the workers of one server (a deploy id names it)."""
    monkeypatch.setenv("SILENTTAX_GENERATION", "deploy_7")


@pytest.mark.usefixtures("one_generation")
def test_exited_and_killed_workers_are_folded_and_counted_once(tmp_path: Path) -> None:
    sent = _worker(tmp_path, 30, "exit") + _worker(tmp_path, 20, "exit")
    # a clean exit folds the worker itself: only the archive is left
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [ARCHIVE, GENERATION]
    sent += _worker(tmp_path, 25, "kill")
    killed = list(tmp_path.glob("worker-*.json"))
    assert len(killed) == 1  # the crashed worker's last write
    live = SilentTaxMiddleware(None, snapshot_dir=tmp_path)  # type: ignore[arg-type]
    _serve(live, 7)
    live.writer.write()
    sent += 7

    fleet = read_directory(tmp_path)
    assert _requests(fleet) == sent
    assert fleet.observed()["work"].sketch.count == sent
    # the scrape folded the dead worker; the live one's file stays
    assert not killed[0].exists()
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(
        [ARCHIVE, GENERATION, live.writer.path.name]
    )
    assert _requests(read_directory(tmp_path)) == sent  # read again: nothing counted twice
    # a scrape served by a worker writes its file first: exact for it, and a later
    # scrape served by another worker reads that file (never less than this one saw)
    _serve(live, 3)
    assert _requests(read_directory(tmp_path)) == sent
    assert _requests(read_directory(tmp_path, own=live)) == sent + 3
    assert _requests(read_directory(tmp_path)) == sent + 3


@pytest.mark.usefixtures("one_generation")
def test_a_fold_interrupted_after_the_archive_was_written_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    worker = SilentTaxMiddleware(None, snapshot_dir=tmp_path)  # type: ignore[arg-type]
    _serve(worker, 11)
    worker.writer.write()  # joins the generation
    worker.writer.path.unlink()
    name = f"worker-{int(dead.stdout)}-deadbeef-deploy_7.json"
    state = worker.state().model_copy(update={"workers": [name]})
    state.save(tmp_path / name)
    state.save(tmp_path / ARCHIVE)  # the archive already holds it; the unlink never happened
    assert _requests(read_directory(tmp_path)) == 11
    assert not (tmp_path / name).exists()
    assert fold_dead(tmp_path) == 0
    assert _requests(read_directory(tmp_path)) == 11


def test_the_directory_collector_scrapes_the_fleet(tmp_path: Path) -> None:
    workers = [SilentTaxMiddleware(None, snapshot_dir=tmp_path) for _ in range(3)]  # type: ignore[arg-type]
    for i, worker in enumerate(workers):
        _serve(worker, 10 * (i + 1))
        worker.writer.write()
    registry = CollectorRegistry()
    registry.register(SilentTaxCollector.from_directory(tmp_path, name="fleet"))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    http = families["silenttax_http_requests"].samples
    assert sum(s.value for s in http if s.name.endswith("_total")) == 60
    observed = [
        s for s in families["silenttax_observed_seconds"].samples if s.name.endswith("_count")
    ]
    assert [s.value for s in observed] == [60.0]
    # merged state is one snapshot, loadable
    merged = read_directory(tmp_path).state()
    assert ServingState.from_json(merged.to_json()) == merged


def _fleet_total(registry: CollectorRegistry) -> tuple[float | None, float | None]:
    """(requests counted, dead workers' files left) in one scrape (None: not exported)."""
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    http = families.get("silenttax_http_requests")
    backlog = families.get("silenttax_fleet_backlog_files")
    return (
        None if http is None else sum(s.value for s in http.samples if s.name.endswith("_total")),
        None if backlog is None else backlog.samples[0].value,
    )


@pytest.mark.usefixtures("one_generation")
def test_a_backlog_of_dead_workers_is_folded_in_bounded_holds_and_never_read_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from silenttax.integrations import fleet, prometheus

    live = SilentTaxMiddleware(None, snapshot_dir=tmp_path)  # type: ignore[arg-type]
    _serve(live, 5)
    registry = CollectorRegistry()
    registry.register(SilentTaxCollector.from_directory(tmp_path, own=live))
    assert _fleet_total(registry) == (5, 0)
    # a mass crash: 40 dead workers' last writes (a pid that has exited), 3 requests each
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    crashed = SilentTaxMiddleware(None)  # type: ignore[arg-type]
    _serve(crashed, 3)
    for i in range(40):
        crashed.state().save(tmp_path / f"worker-{int(dead.stdout)}-{i:08x}-deploy_7.json")
    # a scrape that cannot fold them in its budget (0 s here: any machine) leaves the
    # fleet's series out rather than export a short total, and a thread folds the rest
    monkeypatch.setattr(prometheus, "_SCRAPE_FOLD_BUDGET", 0.0)
    holds = []
    locked = fleet._locked

    @contextlib.contextmanager
    def counted(folder: Path) -> Iterator[None]:
        with locked(folder):
            holds.append(len(list(folder.glob("worker-*.json"))))
            yield

    monkeypatch.setattr(fleet, "_HOLD", 0.0)  # one file per hold of the lock
    monkeypatch.setattr(fleet, "_locked", counted)
    handed: list[Path] = []
    in_background = fleet._fold_in_background
    monkeypatch.setattr(fleet, "_fold_in_background", handed.append)  # held back a moment
    assert _fleet_total(registry) == (None, 40)
    with pytest.raises(fleet.FleetBacklog) as backlog:
        read_directory(tmp_path, fold_budget=0.0)
    assert backlog.value.files == 40 and handed == [tmp_path, tmp_path]
    in_background(tmp_path)
    deadline = time.monotonic() + 30
    while list(tmp_path.glob(f"worker-{int(dead.stdout)}-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fleet_total(registry) == (5 + 40 * 3, 0)  # complete again: exactly once
    # no hold of the lock folded more than one file (a scrape waits for one file's fold)
    assert holds[0] == 41 and all(a - b <= 1 for a, b in itertools.pairwise(holds))
    assert holds[-1] == 1


def test_workers_with_different_settings_do_not_merge(tmp_path: Path) -> None:
    a = SilentTaxMiddleware(None, snapshot_dir=tmp_path)  # type: ignore[arg-type]
    b = SilentTaxMiddleware(None, snapshot_dir=tmp_path, max_routes=5)  # type: ignore[arg-type]
    _serve(a, 2)
    _serve(b, 2)
    a.writer.write()
    b.writer.write()
    with pytest.raises(Exception, match="max_routes"):
        read_directory(tmp_path)


# --------------------------------------------------------------------- gunicorn
GUNICORN_APP = """
import os
from fastapi import FastAPI
from silenttax.integrations.asgi import observe
from silenttax.integrations.fastapi import instrument

app = FastAPI()

@app.get("/observe/{micros}")
async def record(micros: int) -> dict:
    observe("client", micros / 1e6)
    return {"pid": os.getpid()}

instrument(app, snapshot_dir=os.environ["SILENTTAX_SNAPSHOTS"], snapshot_interval=0.3)
"""


@contextlib.contextmanager
def _gunicorn(folder: Path, snapshots: Path, *, workers: int = 4,
              max_requests: int = 60) -> Iterator[str]:  # fmt: skip
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn_worker")
    pytest.importorskip("httpx")
    (folder / "fleet_app.py").write_text(GUNICORN_APP)
    port = free_port()
    args = ["gunicorn", "fleet_app:app", "-w", str(workers), "-k",
            "uvicorn_worker.UvicornWorker", "-b", f"127.0.0.1:{port}",
            "--max-requests", str(max_requests), "--max-requests-jitter", "20",
            "--graceful-timeout", "10", "--log-level", "warning"]  # fmt: skip
    env = {"SILENTTAX_SNAPSHOTS": str(snapshots)}
    with running(folder, args, port=port, env=env, timeout=90) as url:
        yield url


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[str]:
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    with _gunicorn(tmp_path, snapshots) as url:
        yield url
    shutil.rmtree(snapshots, ignore_errors=True)


def _scrape(url: str) -> dict[str, list[Any]]:
    import httpx

    for attempt in range(5):  # a worker reaching max_requests resets what it did not read
        try:
            text = httpx.get(url + "/metrics", timeout=30).text
            break
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if attempt == 4:
                raise
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_gunicorn_fleet_with_worker_churn_merges_exactly(gunicorn: str) -> None:
    import httpx

    rng = np.random.default_rng(7)
    micros: list[int] = []
    pids: set[int] = set()

    # one request at a time on a fresh connection. A worker reaching max_requests closes
    # the connections it has accepted but read no request from (uvicorn's shutdown keeps
    # only requests in progress): such a reset request was never served, so it is sent
    # again; the exact count below still catches a request recorded twice or lost.
    # uvicorn notices the limit on its next tick, so a fast client may finish 400
    # requests before any worker restarts: requests go on until one has (at most 4000).
    with httpx.Client(base_url=gunicorn, timeout=30,
                      limits=httpx.Limits(max_keepalive_connections=0)) as client:  # fmt: skip
        while len(micros) < 400 or (len(pids) <= 4 and len(micros) < 4000):
            m = max(1, int(rng.lognormal(np.log(3000), 0.8)))
            for attempt in range(5):
                try:
                    r = client.get(f"/observe/{m}")
                    break
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    if attempt == 4:
                        raise
            assert r.status_code == 200
            micros.append(m)
            pids.add(r.json()["pid"])
    assert len(pids) > 4, f"max_requests churned the workers: {len(micros)} requests, {pids}"
    seconds = np.sort(np.array(micros) / 1e6)
    deadline = time.monotonic() + 30
    while True:
        families = _scrape(gunicorn)
        counts = [s.value for s in families.get("silenttax_observed_seconds", [])
                  if s.name.endswith("_count")]  # fmt: skip
        if counts == [float(seconds.size)] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert counts == [float(seconds.size)], "every request counted exactly once, churn or not"
    route = [s for s in families["silenttax_http_requests"]
             if s.name.endswith("_total") and s.labels["route"] == "/observe/{micros}"]  # fmt: skip
    assert sum(s.value for s in route) == seconds.size
    quantiles = {s.labels["quantile"]: s.value
                 for s in families["silenttax_observed_quantile_seconds"]}  # fmt: skip
    for q in ("0.5", "0.95", "0.99"):
        exact = seconds[lower_rank(seconds.size, float(q))]
        assert quantiles[q] == pytest.approx(exact, rel=0.0101), q
    check = json.loads(httpx.get(gunicorn + "/silenttax/check", timeout=30).text)
    assert check["kind"] == "silenttax.report"


def test_a_middleware_dropped_without_close_takes_its_writer_thread_with_it(
    tmp_path: Path,
) -> None:
    import gc

    middleware = SilentTaxMiddleware(None, snapshot_dir=tmp_path, snapshot_interval=0.01)  # type: ignore[arg-type]
    _serve(middleware, 2)
    assert middleware.writer is not None
    thread, path = middleware.writer.thread, middleware.writer.path
    assert thread is not None and thread.is_alive()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # written on its own, every 10 ms
        if (
            path.exists()
            and _requests(SilentTaxMiddleware.from_state(ServingState.load(path))) == 2
        ):
            break
        time.sleep(0.01)
    assert _requests(SilentTaxMiddleware.from_state(ServingState.load(path))) == 2
    del middleware
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def _total(url: str) -> float:
    families = _scrape(url)
    return sum(
        s.value for s in families.get("silenttax_http_requests", []) if s.name.endswith("_total")
    )


def test_a_restart_on_the_same_directory_starts_a_new_generation(tmp_path: Path) -> None:
    """A deploy restarts gunicorn on the same snapshot_dir: the new server's counters
    start from zero (no resurrected requests or quantiles), the old generation is kept as
    one loadable snapshot, and requests during the run are counted monotonically."""
    import httpx

    import silenttax
    from silenttax.integrations.fleet import GENERATIONS, previous_generation

    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    with _gunicorn(tmp_path, snapshots, workers=2, max_requests=40) as url:
        seen = [_total(url)]
        with httpx.Client(base_url=url, timeout=30,
                          limits=httpx.Limits(max_keepalive_connections=0)) as client:  # fmt: skip
            sent = 0
            while sent < 150:
                try:
                    client.get("/observe/2000")
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    continue  # reset by a recycling worker before it read the request
                sent += 1
                if sent % 10 == 0:
                    seen.append(_total(url))
        deadline = time.monotonic() + 30
        while seen[-1] < sent + 0 and time.monotonic() < deadline:
            time.sleep(0.3)
            seen.append(_total(url))
    assert all(b >= a for a, b in itertools.pairwise(seen)), seen
    assert seen[-1] == sent
    assert previous_generation(snapshots) is None
    with _gunicorn(tmp_path, snapshots, workers=2) as url:
        assert _total(url) == 0  # nothing resurrected
        old = previous_generation(snapshots)
        assert old is not None and old.parent.name == GENERATIONS
        assert sum(silenttax.load(old).requests().values()) == sent
        httpx.get(url + "/observe/1000", timeout=30)
        deadline = time.monotonic() + 30
        while _total(url) < 1 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _total(url) == 1


def _child_generation(queue: Any) -> None:
    from silenttax.integrations.fleet import generation_id

    queue.put(generation_id()[0])


def test_what_a_generation_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forked worker belongs to its parent's generation (as gunicorn's do); a separate
    program started by it is a server of its own; SILENTTAX_GENERATION names one."""
    import multiprocessing

    from silenttax.integrations.fleet import _program, generation_id

    monkeypatch.delenv("SILENTTAX_GENERATION", raising=False)
    mine = generation_id()
    queue = multiprocessing.get_context("fork").SimpleQueue()
    child = multiprocessing.get_context("fork").Process(target=_child_generation, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert queue.get() == mine[0]
    separate = subprocess.run(
        [sys.executable, "-c", "from silenttax.integrations.fleet import generation_id; "
         "print(generation_id()[0])"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert separate.stdout.strip() != mine[0]
    monkeypatch.setenv("SILENTTAX_GENERATION", "deploy-2026.12/07")
    assert generation_id() == ("deploy_2026.12_07", None, None)  # no '-': file names split on it
    assert _program(["/usr/bin/python3", "/venv/bin/gunicorn", "app:app"]) == "gunicorn"
    assert _program(["python", "-u", "-m", "uvicorn", "app:app"]) == "uvicorn"
    assert _program(["gunicorn: master [app:app]"]) == "gunicorn: master [app:app]"
