"""silenttax.load against its targets (issue "Stability under load"), on this machine.

Parts (``--part``, default all):

- ``stall``: a server that stalls 1 s every 10 s, driven at 200 requests/s for 30 s:
  silenttax's p99 (intended send -> end) vs the open-loop truth computed from the
  schedule, vs a closed-loop client (one request after the other, as wrk/hey/locust per
  connection) over the same 30 s. Target: within 10% of the truth.
- ``lag``: the generator alone (a target that does nothing) at 1,000-5,000 requests/s,
  in process and over loopback HTTP (uvicorn): lag p50 / p99 and the dispatcher's CPU per
  request. Targets: median <= 50 µs, p99 <= 2 ms at the highest rate claimed.
- ``hog``: runs at 400/s of a 1 ms target, quiet and with two busy processes on the
  generator's core (Linux affinity): how many are declared generator-bound. Target:
  every hog run, no quiet run.
- ``capacity``: ``--runs`` capacity searches of a simulated M/M/1 server (mu = 400/s,
  sleeps; p99 <= 40 ms: truth mu - ln(100)/0.04 = 284.9/s, a little lower for the sleeps'
  overshoot): coverage of the interval, safe capacity above the truth, spread, time.
  Targets: covers >= 90%, safe above the truth <= 5%, repeats within +-5%, <= 3 min.

Run: python benchmarks/bench_load.py [--part stall,lag,hog,capacity] [--runs 4]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from silenttax.load import capacity, run


class Server:
    """A simulated server: ``slots`` requests served at once, exponential service times of
    mean ``1 / mu`` (sleeps: the GIL stays free), FIFO enough (shared with the tests)."""

    def __init__(self, mu: float, slots: int = 1, seed: int = 0) -> None:
        self.slots = threading.Semaphore(slots)
        self.mu = mu
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            service = float(self.rng.exponential(1 / self.mu))
        with self.slots:
            time.sleep(service)


def stall() -> None:
    began: list[float] = []

    def served() -> None:
        now = time.perf_counter()
        if not began:
            began.append(now)
        at = (now - began[0]) % 10.0
        if 5.0 <= at < 6.0:
            time.sleep(6.0 - at)
        time.sleep(0.001)

    done = run(served, rate=200, duration=30, seed=1, timeout=5, calibrate=False)
    phase = done.intended % 10.0
    truth = np.where((phase >= 5.0) & (phase < 6.0), 6.0 - phase, 0.0) + 0.001
    p99_truth = float(np.quantile(truth, 0.99))
    # closed loop: one request after the other for 30 s, timed from its own start
    began.clear()
    lat = []
    end = time.perf_counter() + 30
    while time.perf_counter() < end:
        s = time.perf_counter()
        served()
        lat.append(time.perf_counter() - s)
    closed = float(np.quantile(lat, 0.99))
    print(
        f"stall: open-loop truth p99 {p99_truth * 1e3:.0f} ms; silenttax {done.p99 * 1e3:.0f} ms "
        f"({100 * (done.p99 / p99_truth - 1):+.1f}%); closed loop {closed * 1e3:.1f} ms "
        f"({len(lat)} requests); silenttax sent {done.requests}, lag p99 "
        f"{done.lag_p99 * 1e3:.2f} ms"
    )


def lag() -> None:
    for rate in (1000, 2000, 5000):
        done = run(lambda: None, rate=rate, duration=5, calibrate=False)
        f = done.figures()
        print(
            f"lag in process {rate}/s: p50 {f['lag_p50'] * 1e6:.0f} µs, p99 "
            f"{f['lag_p99'] * 1e3:.2f} ms, dispatcher CPU {f['generator_cpu_per_request'] * 1e6:.0f}"
            f" µs/request, achieved {done.achieved:.0f}/s, valid {done.valid}"
        )
    folder = Path(tempfile.mkdtemp())
    (folder / "nullapp.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'{}'})\n"
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "nullapp:app",
            "--port",
            "8791",
            "--log-level",
            "critical",
            "--no-access-log",
        ],
        cwd=folder,
    )
    time.sleep(3)
    try:
        for rate in (1000, 2000, 3000):
            done = run("http://127.0.0.1:8791/", rate=rate, duration=5, calibrate=False)
            f = done.figures()
            print(
                f"lag over HTTP {rate}/s: p50 {f['lag_p50'] * 1e6:.0f} µs, p99 "
                f"{f['lag_p99'] * 1e3:.2f} ms, p99 latency {f['p99'] and f['p99'] * 1e3:.2f} ms, "
                f"achieved {done.achieved:.0f}/s, failures {done.failures}, valid {done.valid}"
            )
    finally:
        server.terminate()
        server.wait()


def hog(runs: int) -> None:
    if not hasattr(os, "sched_setaffinity"):
        print("hog: needs Linux affinity")
        return
    before = os.sched_getaffinity(0)
    core = min(before)
    code = (
        f"import os, time\nos.sched_setaffinity(0, {{{core}}})\n"
        "end = time.time() + 30\nwhile time.time() < end: pass"
    )
    quiet = busy = 0
    os.sched_setaffinity(0, {core})
    try:
        for _ in range(runs):
            quiet += not run(lambda: time.sleep(0.001), rate=400, duration=3, calibrate=False).valid
            hogs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
            time.sleep(0.3)
            busy += not run(lambda: time.sleep(0.001), rate=400, duration=3, calibrate=False).valid
            for p in hogs:
                p.kill()
                p.wait()
    finally:
        os.sched_setaffinity(0, before)
    print(
        f"hog: generator-bound in {busy}/{runs} runs with two busy processes on its core, "
        f"{quiet}/{runs} quiet runs"
    )


def capacity_runs(runs: int) -> None:
    truth = 400 - math.log(100) / 0.04
    rows = []
    for r in range(runs):
        start = time.perf_counter()
        found = capacity(Server(400, seed=r), slo_p99=0.04, seed=100 * r, start_rate=100)
        took = time.perf_counter() - start
        rows.append((found, took))
        ci = found.ci
        print(
            f"capacity run {r + 1}: {found.verdict}, estimate {found.capacity and round(found.capacity, 1)}"
            f", ci {ci and tuple(round(x, 1) for x in ci)}, {took:.0f} s, "
            f"{len(found.curve)} runs",
            flush=True,
        )
    passed = [f for f, _ in rows if f.verdict == "pass" and f.ci]
    covers = sum(f.ci[0] <= truth <= f.ci[1] for f in passed)  # type: ignore[index]
    above = sum(f.ci[0] > truth for f in passed)  # type: ignore[index]
    caps = [f.capacity for f in passed if f.capacity]
    spread = (max(caps) / min(caps) - 1) if len(caps) > 1 else float("nan")
    print(
        f"capacity: truth {truth:.1f}/s; {len(passed)}/{runs} claimed; interval covers the truth "
        f"{covers}/{len(passed)}; safe above the truth {above}/{len(passed)}; estimates "
        f"{', '.join(f'{c:.0f}' for c in caps)} (spread {spread:.1%}); median time "
        f"{statistics.median(t for _, t in rows):.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", default="stall,lag,hog,capacity")
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    parts = args.part.split(",")
    if "stall" in parts:
        stall()
    if "lag" in parts:
        lag()
    if "hog" in parts:
        hog(args.runs)
    if "capacity" in parts:
        capacity_runs(args.runs)


if __name__ == "__main__":
    main()
