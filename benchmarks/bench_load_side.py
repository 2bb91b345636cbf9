"""One target, three load generators, side by side (issue "Stability under load").

A real uvicorn server on 127.0.0.1 whose handler takes 2 ms (``asyncio.sleep``) and
stalls the whole event loop for 0.5 s every 5 s (a blocking call: a GC pause, a lock, a
synchronous log flush). At an offered 100 requests/s, one request in ten arrives during
a stall and waits for its end: the open-loop truth is p50 ~2-3 ms and p99 ~0.45 s
(uniform waits over the 10%: 0.5 s x (1 - 0.01 / 0.1)).

- **silenttax** (``silenttax.load.run``): open loop, timed from the intended send.
- **wrk** (Debian's, closed loop: 4 connections, each sending its next request when the
  last returns): a stall holds 4 requests, not the ~50 real clients would have sent —
  but wrk 4 back-fills the histogram afterwards (``stats_correct``: HdrHistogram's
  correction at its own mean interval per connection), at its own saturating rate.
- **hey** (Debian's, closed loop, 4 connections, no correction).
- **mlcommons-loadgen** (Server scenario, Poisson at the same rate; its SUT callback sends
  each query on a thread pool with a keep-alive connection per thread) where it
  installs (``pip install mlcommons-loadgen``).

Run: python benchmarks/bench_load_side.py [--rate 100] [--duration 30]
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from silenttax.load import run

APP = """
import asyncio, time
_start = time.monotonic()
_next = [5.0]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while True:
        message = await receive()
        if not message.get("more_body"):
            break
    now = time.monotonic() - _start
    if now >= _next[0]:
        _next[0] += 5.0
        time.sleep(0.5)  # blocks the event loop: every request waits
    await asyncio.sleep(0.002)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})
"""


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _wrk(url: str, duration: float) -> tuple[float, float] | None:
    if shutil.which("wrk") is None:
        return None
    out = subprocess.run(["wrk", "-t2", "-c4", f"-d{int(duration)}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0}

    def pct(p: str) -> float:
        found = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert found, out
        return float(found.group(1)) * units[found.group(2)]

    return pct("50"), pct("99")


def _hey(url: str, duration: float) -> tuple[float, float] | None:
    if shutil.which("hey") is None:
        return None
    out = subprocess.run(["hey", "-z", f"{int(duration)}s", "-c", "4", url],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip

    def pct(p: str) -> float:
        found = re.search(rf"^\s*{p}%+ in ([\d.]+) secs", out, re.M)
        assert found, out
        return float(found.group(1))

    return pct("50"), pct("99")


def _loadgen(port: int, rate: float, duration: float) -> tuple[float, float] | None:
    try:
        import mlperf_loadgen as lg
    except ImportError:
        return None
    local = threading.local()

    def one(sample_id: int) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", "/", body=b"{}")
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            local.conn = None
        lg.QuerySamplesComplete([lg.QuerySampleResponse(sample_id, 0, 0)])

    pool = ThreadPoolExecutor(max_workers=64)

    def issue(samples: list) -> None:
        for s in samples:
            pool.submit(one, s.id)

    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Server
    settings.mode = lg.TestMode.PerformanceOnly
    settings.server_target_qps = rate
    settings.server_target_latency_ns = int(1e9)
    settings.min_duration_ms = int(duration * 1000)
    settings.max_duration_ms = int(duration * 1000 * 2)
    settings.min_query_count = int(rate * duration * 0.9)
    settings.max_query_count = int(rate * duration)
    out = Path(tempfile.mkdtemp())
    log = lg.LogSettings()
    log.log_output.outdir = str(out)
    log.log_output.copy_summary_to_stdout = False
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(1024, 1024, lambda s: None, lambda s: None)
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, log)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
        pool.shutdown(wait=True)
    summary = (out / "mlperf_log_summary.txt").read_text()

    def pct(p: str) -> float:
        found = re.search(rf"{p} percentile latency \(ns\)\s*:\s*(\d+)", summary)
        assert found, summary
        return int(found.group(1)) * 1e-9

    return pct("50.00"), pct("99.00")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--port", type=int, default=8793)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    (folder / "stallapp.py").write_text(APP)
    url = f"http://127.0.0.1:{args.port}/"
    rows = []
    for name in ("silenttax", "wrk", "hey", "mlcommons-loadgen"):
        # a fresh server per generator: each sees its stalls on the same clock
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "stallapp:app", "--port",
                                   str(args.port), "--log-level", "critical", "--no-access-log"],
                                  cwd=folder)  # fmt: skip
        time.sleep(3)
        try:
            if name == "silenttax":
                done = run(url, rate=args.rate, duration=args.duration, payloads=[{}])
                got: tuple[float, float] | None = (done.p50, done.p99)
                how = f"open loop, {done.requests} requests, valid {done.valid}"
            elif name == "wrk":
                got = _wrk(url, args.duration)
                how = "closed loop, 4 connections, its back-fill correction (stats_correct)"
            elif name == "hey":
                got = _hey(url, args.duration)
                how = "closed loop, 4 connections, no correction"
            else:
                got = _loadgen(args.port, args.rate, args.duration)
                how = "Server scenario (Poisson), thread-pool SUT"
        finally:
            server.terminate()
            server.wait()
        rows.append((name, got, how))
    truth = 0.5 * (1 - 0.01 / 0.1)
    print(f"stall 0.5 s every 5 s at {args.rate:g}/s for {args.duration:g} s: truth p99 "
          f"~{_ms(truth)}")  # fmt: skip
    for name, got, how in rows:
        if got is None:
            print(f"{name:>18}: not installed")
        else:
            print(f"{name:>18}: p50 {_ms(got[0]):>9}  p99 {_ms(got[1]):>9}  "
                  f"({got[1] / truth - 1:+.0%} vs truth)  {how}")  # fmt: skip


if __name__ == "__main__":
    main()
