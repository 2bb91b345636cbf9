"""Added cost per request in a real server: uvicorn in a subprocess, Debian's ``wrk`` as
the client, alternating runs of the same FastAPI app bare, with silenttax's middleware
(with and without live features), with prometheus-fastapi-instrumentator and with
OpenTelemetry's FastAPI instrumentation.

The in-process benchmark (``bench_serving.py``) measures the middleware's own code; a
real server adds what it cannot see: the background thread's work sharing the GIL with
requests, the first check's imports, the tracer's fold inside a request. Issue "Serving
judgement": with live features on, at most +15 µs/request and p99 within noise, below
the instrumentator and at most 1/5 of OpenTelemetry.

Each round starts one uvicorn worker per variant in rotating order, warms it with a
short ``wrk`` run, then measures ``wrk -t1 -c{connections} -d{seconds}s --latency`` of a
``POST /items/{id}`` with a small JSON body. The added µs per request of a variant is
``1e6 * (1/rps - 1/rps_bare)`` in the same round (the server is CPU-bound: every core is
busy with the server and wrk), with a 95% t interval over the rounds; the p99 effect is
the paired difference of wrk's p99. The server and wrk share the machine's cores.

Run: pip install prometheus-fastapi-instrumentator opentelemetry-instrumentation-fastapi
     python benchmarks/bench_serving_server.py [--rounds 5] [--seconds 8] [--connections 8]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy import stats

APP = """
import os
import numpy as np
from fastapi import FastAPI
from silenttax.integrations.asgi import stage

kind = os.environ["VARIANT"]
app = FastAPI()

@app.post("/items/{item_id}")
async def item(item_id: int, body: dict) -> dict:
    with stage("model"):
        return {"item": item_id}

if kind.startswith("silenttax"):
    from silenttax.cost import CostModel, CostMonitor
    from silenttax.integrations.fastapi import instrument

    options = {"cost": CostMonitor(CostModel(price_per_hour=1.0))}
    if kind == "silenttax+features":
        from silenttax.drift import DriftDetector
        from silenttax.features import FeatureHealth

        rng = np.random.default_rng(0)
        reference = {"age": rng.normal(40, 10, 5000), "country": rng.choice(["DE", "FR"], 5000)}
        options.update(feature_health=FeatureHealth().fit(reference),
                       drift=DriftDetector().fit(reference), features=lambda body: body,
                       sample_rate=0.01)
    instrument(app, **options)
elif kind == "instrumentator":
    from prometheus_fastapi_instrumentator import Instrumentator

    Instrumentator().instrument(app).expose(app)
elif kind == "opentelemetry":
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider,
                                       meter_provider=MeterProvider())
"""

LUA = """
wrk.method = "POST"
wrk.body = '{"age": 41.5, "country": "DE"}'
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/items/" .. counter)
end
done = function(summary, latency, requests)
  io.write(string.format("P999 %d\\n", latency:percentile(99.9)))
end
"""

VARIANTS = ["bare", "silenttax", "silenttax+features", "instrumentator", "opentelemetry"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the server did not start")


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run(folder: Path, variant: str, seconds: float, connections: int) -> dict[str, float]:
    port = _port()
    env = {**os.environ, "VARIANT": variant, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "served:app", "--host", "127.0.0.1", "--port",
         str(port), "--log-level", "warning", "--no-access-log"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(port)
        url = f"http://127.0.0.1:{port}"
        wrk = ["wrk", "-t1", f"-c{connections}", "-s", str(folder / "post.lua"), "--latency"]
        subprocess.run([*wrk, "-d2s", url], capture_output=True, check=True)  # warm up
        out = subprocess.run([*wrk, f"-d{int(seconds)}s", url], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p999 = float(re.search(r"^P999 (\d+)", out, re.M).group(1)) / 1e3  # type: ignore[union-attr]
    return {"rps": rps, "p50": p50, "p99": p99, "p999": p999}


def _ci(values: list[float]) -> tuple[float, float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset (bare is always run)")  # fmt: skip
    args = parser.parse_args()
    variants = ["bare", *(v for v in args.variants.split(",") if v in VARIANTS and v != "bare")]
    if shutil.which("wrk") is None:
        sys.exit("needs Debian's wrk (apt-get install wrk)")
    folder = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    (folder / "served.py").write_text(APP)
    (folder / "post.lua").write_text(LUA)
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for r in range(args.rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for variant in order:
            results[variant].append(run(folder, variant, args.seconds, args.connections))
        print(f"round {r + 1}: " + ", ".join(f"{v} {results[v][-1]['rps']:.0f}/s"
                                             for v in variants), flush=True)  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)
    print(f"\nwrk -c{args.connections}, {args.rounds} rounds of {args.seconds:g} s, "
          "one uvicorn worker; added µs/request and p99 effect vs bare in the same round, "
          "mean [95% CI]")  # fmt: skip
    bare = results["bare"]
    for variant in variants:
        rows = results[variant]
        added = [1e6 * (1 / row["rps"] - 1 / b["rps"]) for row, b in zip(rows, bare, strict=True)]
        p99 = [row["p99"] - b["p99"] for row, b in zip(rows, bare, strict=True)]
        # a closed loop at saturation: latency = connections / throughput, so every tail
        # stretches by the throughput ratio; what is left is a tail of silenttax's own
        beyond = {
            q: [100 * ((row[q] / b[q]) / (b["rps"] / row["rps"]) - 1)
                for row, b in zip(rows, bare, strict=True)]
            for q in ("p99", "p999")
        }  # fmt: skip
        a, alo, ahi = _ci(added)
        d, dlo, dhi = _ci(p99)
        tails = "  ".join(
            "{} beyond throughput {:+.1f}% [{:+.1f}, {:+.1f}]".format(q, *_ci(v))
            for q, v in beyond.items()
        )
        print(
            f"{variant:20s} {statistics.median(r['rps'] for r in rows):7.0f} req/s  "
            f"p50 {statistics.median(r['p50'] for r in rows):6.2f} ms  "
            f"p99 {statistics.median(r['p99'] for r in rows):6.2f} ms  "
            f"p99.9 {statistics.median(r['p999'] for r in rows):6.2f} ms  "
            f"added {a:+7.1f} µs [{alo:+.1f}, {ahi:+.1f}]  p99 {d:+6.2f} ms [{dlo:+.2f}, {dhi:+.2f}]"
            + ("" if variant == "bare" else "  " + tails)
        )


if __name__ == "__main__":
    main()
