"""A real fleet under load, with and without a scraper: what a scrape every second costs
the requests, and how long scrapes take while the fleet serves.

gunicorn with ``--workers`` uvicorn workers (recycled by ``--max-requests``), the app
instrumented with live feature health (FeatureHealth + DriftDetector, 10 float features,
20% of bodies sampled), ``findings=True`` and a snapshot directory; Debian's ``wrk``
drives ``POST /predict`` (a handler that awaits 3 ms of "model", as a model that
releases the GIL does) for ``--seconds`` per round. Rounds alternate: with a scraper
that GETs ``/metrics`` every second (as Prometheus would) and without; the request
figures are wrk's, the scrape durations the scraper's.

Run: python benchmarks/bench_fleet_load.py [--rounds 3] [--seconds 10] [--workers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

APP = """
import asyncio, os
import numpy as np
from fastapi import FastAPI, Request
from silenttax.drift import DriftDetector
from silenttax.features import FeatureHealth
from silenttax.integrations.asgi import stage
from silenttax.integrations.fastapi import instrument

app = FastAPI()
rng = np.random.default_rng(0)
reference = {f"f{i}": rng.normal(20, 5, 5000) for i in range(10)}

@app.post("/predict")
async def predict(request: Request) -> dict:
    body = await request.json()
    with stage("preprocess"):
        x = [float(body[f"f{i}"]) for i in range(10)]
    with stage("model"):
        await asyncio.sleep(0.003)
    return {"score": sum(x) / 200}

instrument(app, findings=True, feature_health=FeatureHealth().fit(reference),
           drift=DriftDetector().fit(reference), features=lambda body: body,
           sample_rate=0.2, snapshot_dir=os.environ["SILENTTAX_SNAPSHOTS"])
"""

LUA = """
math.randomseed(1)
request = function()
  local parts = {}
  for i = 0, 9 do parts[#parts + 1] = string.format('"f%d": %.3f', i, 20 + 5 * (math.random() - 0.5)) end
  return wrk.format("POST", "/predict", {["Content-Type"] = "application/json"},
                    "{" .. table.concat(parts, ", ") .. "}")
end
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def fleet(folder: Path, workers: int) -> Iterator[str]:
    import httpx

    (folder / "bench_app.py").write_text(APP)
    snapshots = folder / "snapshots"
    snapshots.mkdir()
    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "bench_app:app", "-w", str(workers), "-k",
         "uvicorn_worker.UvicornWorker", "-b", f"127.0.0.1:{port}", "--max-requests", "5000",
         "--max-requests-jitter", "500", "--log-level", "warning"],
        cwd=folder, env={**os.environ, "SILENTTAX_SNAPSHOTS": str(snapshots)},
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                httpx.get(url + "/metrics", timeout=5)
                break
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         url + "/predict"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for q in ("50", "99"):
        value, unit = re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        figures[f"p{q}"] = float(value) * units[unit]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    import httpx

    with tempfile.TemporaryDirectory() as tmp, fleet(Path(tmp), args.workers) as url:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        wrk(url, script, 3, args.connections)  # warm-up: every worker booted and sampling
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        scrapes: list[float] = []
        inside: list[float] = []  # the collector's own silenttax_scrape_seconds
        for _ in range(args.rounds):
            for scraping in (False, True):
                stop = threading.Event()

                def scraper(stop: threading.Event = stop) -> None:
                    # one keep-alive client, as Prometheus scrapes (a new client and
                    # connection per scrape cost this process tens of ms of the shared
                    # CPU and queued each scrape behind the accept loop: it measured the
                    # scraper, not the scrape)
                    with httpx.Client(timeout=10) as client:
                        while not stop.wait(1.0):
                            start = time.perf_counter()
                            text = client.get(url + "/metrics").text
                            scrapes.append(time.perf_counter() - start)
                            found = re.search(r'scrape_seconds\{monitor="app"\} (\S+)', text)
                            if found:
                                inside.append(float(found.group(1)))

                thread = threading.Thread(target=scraper, daemon=True)
                if scraping:
                    thread.start()
                runs[scraping].append(wrk(url, script, args.seconds, args.connections))
                stop.set()
                if scraping:
                    thread.join()
    for scraping, label in ((False, "no scraper"), (True, "scrape every 1 s")):
        rows = runs[scraping]
        print(f"{label:18s} rps {statistics.median(r['rps'] for r in rows):8.0f} | "
              f"p50 {statistics.median(r['p50'] for r in rows) * 1e3:6.2f} ms | "
              f"p99 {[round(r['p99'] * 1e3, 2) for r in rows]} ms")  # fmt: skip
    # paired by round (the two variants of a round ran back to back): the scraper's effect
    # on p99 and throughput with a 95% t interval over the rounds
    from scipy import stats

    for key, unit, scale in (("p99", "ms", 1e3), ("rps", "req/s", 1.0)):
        diffs = [(b[key] - a[key]) * scale for a, b in zip(runs[False], runs[True], strict=True)]
        mean = statistics.fmean(diffs)
        half = (stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
                if len(diffs) > 1 else float("nan"))  # fmt: skip
        print(f"scraper effect on {key}: {mean:+.2f} {unit} [95% CI {mean - half:+.2f}, "
              f"{mean + half:+.2f}] over {len(diffs)} paired rounds")  # fmt: skip
    ordered = sorted(scrapes)
    print(f"scrapes under load: {len(ordered)}, p50 {statistics.median(ordered) * 1e3:.1f} ms, "
          f"p90 {ordered[int(0.9 * (len(ordered) - 1))] * 1e3:.1f} ms, "
          f"max {ordered[-1] * 1e3:.1f} ms; inside the collector p50 "
          f"{statistics.median(inside) * 1e3:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
