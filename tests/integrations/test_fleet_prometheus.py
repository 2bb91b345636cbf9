"""The field trial, automated: a gunicorn fleet whose workers recycle, loaded by Debian's
``wrk``, scraped every 2 seconds by a real Prometheus server (Debian's ``prometheus``), a
feature that starts arriving as a padded string mid-traffic, and a restart on the same
snapshot directory. Loopback only, bounded in requests and time (about a minute).

What it checks, as Prometheus sees it: ``increase()`` over the run equals the requests
``wrk`` completed (within 1%), no scrape ever shows a smaller total than the one before
(within a server generation), every scrape answered (``up`` 1, ``silenttax_scrape_up``
1), the padded string named as findings within one window, utilisation at most 100%,
and after the restart only the new generation's requests, with Prometheus counting the
reset once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from silenttax._sketch import lower_rank

from .servers import free_port, running

APP = """
import asyncio
import os
import time
import numpy as np
from fastapi import FastAPI, Request
from silenttax.cost import CostModel, CostMonitor
from silenttax.features import FeatureHealth
from silenttax.integrations.asgi import stage
from silenttax.integrations.fastapi import instrument

app = FastAPI()
reference = {"x": np.random.default_rng(0).normal(20, 5, 2000)}

@app.post("/predict")
async def predict(request: Request) -> dict:
    body = await request.json()
    with stage("preprocess"):
        x = float(body["x"])  # tolerates the padding: the model still answers
    with stage("model"):  # a model that releases the GIL, as ONNX Runtime does
        await asyncio.sleep(0.003)
        score = x / 40.0
    return {"score": score}

class Timer:
    # an independent server-side timer around everything (silenttax included)

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/predict":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            OUT.write(f"{time.perf_counter() - start!r}\\n")  # a line a request: never lost


OUT = open(os.path.join(os.environ["TIMINGS"], f"{os.getpid()}.txt"), "a", buffering=1)


instrument(
    app,
    findings=True,
    feature_health=FeatureHealth().fit(reference),
    features=lambda body: body,
    sample_rate=0.2,
    feature_window=8,
    check_interval=0.5,
    snapshot_dir=os.environ["SILENTTAX_SNAPSHOTS"],
    snapshot_interval=0.5,
    cost=CostMonitor(CostModel(price_per_hour=1.0), window=2, min_inferences=1),
)
app.add_middleware(Timer)  # added last: the outermost
"""

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'
"""


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"Debian's {tool} is not installed (.ci/run installs it)")


@contextlib.contextmanager
def _prometheus(folder: Path, target: str) -> Iterator[str]:
    """A real Prometheus server scraping ``target`` every 2 s, timeout 2 s (its own storage;
    1 s left a 2-core CI runner under wrk with no margin, and the issue asks for 1-2 s)."""
    home = folder / "prometheus"
    home.mkdir()
    (home / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  evaluation_interval: 2s\n"
        "scrape_configs:\n  - job_name: silenttax\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    port = free_port()
    args = ["--config.file=prometheus.yml", "--storage.tsdb.path=tsdb",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=debug"]  # fmt: skip
    with running(home, args, port=port, ready="/-/ready", program=["prometheus"]) as url:
        yield url


def _query(prometheus: str, expr: str, at: float) -> list[dict[str, Any]]:
    import httpx

    answer = httpx.get(prometheus + "/api/v1/query", params={"query": expr, "time": at},
                       timeout=30).json()  # fmt: skip
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _d(seconds: float) -> str:
    """A PromQL duration (integer milliseconds: 2.42 takes no fractions)."""
    return f"{max(1, round(seconds * 1000))}ms"


def _samples(prometheus: str, selector: str, since: float, at: float) -> list[tuple[float, float]]:
    """Raw samples of the one series ``selector`` names, in (since, at]."""
    found = _query(prometheus, f"{selector}[{_d(at - since)}]", at)
    assert len(found) == 1, found
    return [(float(t), float(v)) for t, v in found[0]["values"]]


def _wrk(folder: Path, url: str, body: str, seconds: int, connections: int = 4) -> int:
    script = folder / f"post-{abs(hash(body))}.lua"
    script.write_text(LUA.format(body=body))
    done = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script),
         url + "/predict"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    # "N requests in Ds" counts completed responses; "Non-2xx" would be a failure here
    assert "Non-2xx" not in done.stdout, done.stdout
    line = next(x for x in done.stdout.splitlines() if "requests in" in x)
    return int(line.split()[0])


def _call(method: str, url: str, **options: Any) -> Any:
    """One request, sent again when a worker reaching --max-requests reset it unread."""
    import httpx

    for attempt in range(5):
        try:
            return httpx.request(method, url, timeout=30, **options)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.3)


def test_a_recycling_fleet_under_wrk_scraped_by_prometheus(tmp_path: Path) -> None:
    _need("prometheus", "wrk")
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn_worker")

    (tmp_path / "fleet_app.py").write_text(APP)
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    port = free_port()
    args = ["gunicorn", "fleet_app:app", "-w", "3", "-k", "uvicorn_worker.UvicornWorker",
            "-b", f"127.0.0.1:{port}", "--max-requests", "1000", "--max-requests-jitter", "200",
            "--graceful-timeout", "10", "--log-level", "warning"]  # fmt: skip
    timings = tmp_path / "timings"
    timings.mkdir()
    env = {"SILENTTAX_SNAPSHOTS": str(snapshots), "TIMINGS": str(timings)}
    series = 'silenttax_http_requests_total{route="/predict",status="2xx"}'
    clean, padded = '{"x": 17.99}', '{"x": "  17.99 "}'
    with _prometheus(tmp_path, f"127.0.0.1:{port}") as prom:
        with running(tmp_path, args, port=port, env=env, timeout=90) as url:
            warm = sum(_call("post", url + "/predict", json={"x": 20.0}).status_code == 200
                       for _ in range(20))  # fmt: skip
            assert warm == 20
            _wait_for(lambda: _query(prom, series, time.time()) != [])
            time.sleep(2)
            pids: set[str] = set()
            stop = threading.Event()

            def watch() -> None:  # the worker processes that wrote a snapshot
                while not stop.wait(0.1):
                    pids.update(p.name.split("-")[1] for p in snapshots.glob("worker-*.json"))

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            t0 = time.time()
            sent = _wrk(tmp_path, url, clean, 6)
            sent += _wrk(tmp_path, url, padded, 6)
            time.sleep(4.5)  # the last snapshot writes (0.5 s) and scrapes (2 s)
            t1 = time.time()
            stop.set()
            watcher.join()
            check = json.loads(_call("get", url + "/silenttax/check").text)
        samples = _samples(prom, series, t0 - 2.5, t1)
        values = [v for _, v in samples]
        assert all(b >= a for a, b in itertools.pairwise(values)), values
        # increase() with the range on the first and last samples: no extrapolation
        first, last = samples[0][0], samples[-1][0]
        got = _query(prom, f"increase({series}[{_d(last - first + 0.001)}])", last)
        increase = float(got[0]["value"][1])
        assert increase == pytest.approx(sent, rel=0.01), (increase, sent)
        # from the raw samples: wrk does not count the requests still in flight when its
        # time is up (at most one per connection per run), the server does
        assert sent <= values[-1] - values[0] <= sent + 2 * 4
        window = f"[{_d(t1 - t0)}]"
        up = _query(prom, f'min_over_time(up{{job="silenttax"}}{window})', t1)
        durations = _query(prom, f'scrape_duration_seconds{{job="silenttax"}}{window}', t1)
        downs = _query(prom, f'up{{job="silenttax"}}{window}', t1)
        failed = [(d[0], round(float(d[1]), 3)) for d, u in
                  zip(durations[0]["values"], downs[0]["values"], strict=False)
                  if u[1] != "1"]  # fmt: skip
        why = [x for x in (tmp_path / "prometheus" / "server.log").read_text().splitlines()
               if "crape" in x and ("fail" in x or "err" in x)]  # fmt: skip
        assert float(up[0]["value"][1]) == 1.0, (failed, why[-5:])  # every scrape answered
        scraped = _query(prom, f"min_over_time(silenttax_scrape_up{window})", t1)
        assert float(scraped[0]["value"][1]) == 1.0
        assert len(pids) > 3, pids  # gunicorn recycled workers during the run
        # the padded string, named as findings (at /silenttax/check and in Prometheus)
        named = {(f["code"], f["subject"]) for f in check["findings"]}
        assert {("feature.whitespace", "x"), ("feature.type_change", "x")} <= named, named
        assert not [f for f in check["findings"] if f["code"] == "stability.internal_error"]
        active = _query(
            prom, 'max_over_time(silenttax_findings{code="feature.whitespace"}[10s])', t1
        )
        assert active and float(active[0]["value"][1]) >= 1
        cost = [f for f in check["findings"] if f["code"] == "cost.per_1k"]
        assert cost and cost[0]["evidence"]["occupied_seconds"] is not None
        window_seconds = cost[0]["evidence"]["seconds"] * cost[0]["evidence"]["instances"]
        assert cost[0]["evidence"]["occupied_seconds"] <= window_seconds + 1e-2
        # histogram_quantile from the sqrt(2) buckets lands in the bucket of the exact p99
        # of an independent server-side timer (every worker wrote its timings at exit)
        durations = np.array(
            [float(x) for p in timings.glob("*.txt") for x in p.read_text().split()]
        )
        assert durations.size >= sent
        exact = float(np.sort(durations)[lower_rank(durations.size, 0.99)])
        buckets = 'silenttax_http_request_seconds_bucket{route="/predict"}'
        quantile = _query(prom, f"histogram_quantile(0.99, sum by (le) "
                                f"(increase({buckets}[{_d(t1 - t0 + 2.5)}])))", t1)  # fmt: skip
        estimate = float(quantile[0]["value"][1])
        assert exact / 2**0.5 / 1.02 <= estimate <= exact * 2**0.5 * 1.02, (estimate, exact)
        # a restart on the same directory: a new generation, counted from zero
        env["TIMINGS"] = str(tmp_path)
        with running(tmp_path, args, port=port, env=env, timeout=90) as url:
            for _ in range(7):
                assert _call("post", url + "/predict", json={"x": 20.0}).status_code == 200
            _wait_for(lambda: [float(r["value"][1]) for r in _query(prom, series, time.time())]
                      == [7.0])  # fmt: skip
            t2 = time.time()
        resets = _query(prom, f"resets({series}[{_d(t2 - t0 + 2)}])", t2)
        assert float(resets[0]["value"][1]) == 1.0  # the restart, and only it
        assert (snapshots / "generations").is_dir()
    assert os.path.exists(snapshots / "generation.json")
