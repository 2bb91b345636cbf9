"""Live feature health in the middleware: sampling before conversion, folding off the
request path, findings and gauges (in process, and behind a real uvicorn server)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel
from scipy import stats

from silenttax.drift import DriftDetector
from silenttax.errors import InputError
from silenttax.features import FeatureHealth
from silenttax.integrations.asgi import SilentTaxMiddleware

from .servers import free_port, running

RNG = np.random.default_rng(0)
REFERENCE = {"age": RNG.normal(40, 10, 3000), "country": RNG.choice(["DE", "FR"], 3000).tolist()}


async def _app(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"{}"})


def _serve(middleware: SilentTaxMiddleware, bodies: list[bytes], chunk: int = 0) -> None:
    async def main() -> None:
        for body in bodies:
            parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
            queue = list(parts)

            async def receive(queue: list[bytes] = queue) -> dict[str, Any]:
                part = queue.pop(0)
                return {"type": "http.request", "body": part, "more_body": bool(queue)}

            async def send(message: Any) -> None:
                pass

            await middleware({"type": "http", "path": "/score"}, receive, send)

    asyncio.run(main())


def _bodies(n: int, null_share: float = 0.0, shift: float = 0.0) -> list[bytes]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        age = None if rng.random() < null_share else float(rng.normal(40 + shift, 10))
        out.append(json.dumps({"age": age, "country": str(rng.choice(["DE", "FR"]))}).encode())
    return out


def _middleware(**options: Any) -> SilentTaxMiddleware:
    return SilentTaxMiddleware(
        _app,
        feature_health=FeatureHealth().fit(REFERENCE),
        drift=DriftDetector().fit(REFERENCE),
        features=options.pop("features", lambda body: body),
        check_interval=options.pop("check_interval", 3600),  # folded by hand here
        **options,
    )


def test_requests_are_sampled_independently_at_the_rate() -> None:
    middleware = _middleware(sample_rate=0.05, max_samples=5000)  # no reservoir cap here
    n = 20_000
    _serve(middleware, [b'{"age": 1.0, "country": "DE"}'] * n)
    assert middleware.live is not None
    middleware.live.fold()
    sampled = middleware.live.state().candidates
    # two-sided binomial test at 1e-4: the sampled count is what Bernoulli(0.05) gives
    assert stats.binomtest(sampled, n, 0.05).pvalue > 1e-4
    assert middleware.live.state().rows == sampled


def test_null_and_drift_findings_and_bounded_work() -> None:
    middleware = _middleware(sample_rate=1.0, max_samples=300)
    _serve(middleware, _bodies(1000, null_share=0.3, shift=15))
    live = middleware.live
    assert live is not None
    live.fold()
    state = live.state()
    # the reservoir bounds the work: 300 parsed of 1000 sampled
    assert (state.candidates, state.rows, state.dropped) == (1000, 300, 700)
    codes = {(f.code, f.subject) for f in middleware.check().problems()}
    assert ("feature.null_rate", "age") in codes
    assert ("drift.numeric", "age") in codes
    assert live.null_rates()["age"] == pytest.approx(0.3, abs=0.1)
    assert live.drift_scores()["age"][1] > 1.0


def test_a_clean_sample_stays_quiet() -> None:
    middleware = _middleware(sample_rate=1.0)
    _serve(middleware, _bodies(500))
    assert middleware.live is not None
    middleware.live.fold()
    assert not middleware.check().problems()


class Request(BaseModel):
    age: float | None
    country: str


def test_pydantic_model_chunked_bodies_and_bad_ones() -> None:
    middleware = _middleware(sample_rate=1.0, features=Request)
    live = middleware.live
    assert live is not None
    live.max_body = 200
    good = _bodies(50)
    _serve(middleware, good, chunk=7)  # a body arriving in many chunks is joined
    _serve(middleware, [b"not json", b'{"age": "x", "country": 3}'])
    _serve(middleware, [b'{"age": 1.0, "country": "' + b"x" * 500 + b'"}'])
    live.fold()
    state = live.state()
    assert state.rows == 50 and state.failed == 2 and state.truncated == 1
    assert state.errors == {"ValidationError": 2}


def test_windows_roll_and_merge_across_workers() -> None:
    a, b = _middleware(sample_rate=1.0), _middleware(sample_rate=1.0)
    assert a.live is not None and b.live is not None
    t0 = 1_700_000_100.0 - 1_700_000_100.0 % 300
    _serve(a, _bodies(100))
    a.live.fold(now=t0)
    _serve(a, _bodies(40))
    a.live.fold(now=t0 + 300)  # next window: the first becomes the previous
    _serve(b, _bodies(60))
    b.live.fold(now=t0 + 310)
    a.merge(b)
    state = a.live.state()
    assert state.rows == 200
    assert state.health_previous is not None and state.health is not None
    assert state.health.profiles["age"].rows == 100  # a's 40 and b's 60, same slot
    assert state.health_previous.profiles["age"].rows == 100
    a.live.fold(now=t0 + 900)  # two windows on: nothing left to judge
    assert a.live.null_rates() == {}


def test_settings_are_checked() -> None:
    with pytest.raises(InputError, match="features"):
        SilentTaxMiddleware(_app, feature_health=FeatureHealth().fit(REFERENCE))
    with pytest.raises(InputError, match="sample_rate"):
        _middleware(sample_rate=0)
    with pytest.raises(InputError, match="features"):
        _middleware(features=42)


# ------------------------------------------------------------------ real server
APP = """
import numpy as np
from fastapi import FastAPI
from silenttax.features import FeatureHealth
from silenttax.integrations.fastapi import instrument

rng = np.random.default_rng(0)
reference = {"age": rng.normal(40, 10, 3000), "country": rng.choice(["DE", "FR"], 3000).tolist()}
app = FastAPI()

@app.post("/score")
async def score(body: dict) -> dict:
    return {"score": 0.5}

instrument(app, feature_health=FeatureHealth().fit(reference), features=lambda body: body,
           sample_rate=1.0, check_interval=0.2)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    (tmp_path / "live_app.py").write_text(APP)
    port = free_port()
    args = ["uvicorn", "live_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    with running(tmp_path, args, port=port) as url:
        yield url


JSON = {"content-type": "application/json"}


def test_a_real_server_names_the_null_feature(server: str) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    with httpx.Client(base_url=server, timeout=30) as client:
        for body in _bodies(300, null_share=0.4):
            assert client.post("/score", content=body, headers=JSON).status_code == 200
        deadline = time.monotonic() + 20
        while True:  # the background thread folds, then checks, every 0.2 s
            text = client.get("/metrics").text
            families = {f.name: f.samples for f in text_string_to_metric_families(text)}
            samples = {s.labels["outcome"]: s.value for s in families["silenttax_feature_samples"]}
            report = json.loads(client.get("/silenttax/check").text)
            checked = any(f["code"] == "feature.null_rate" for f in report["findings"])
            if (samples["rows"] == 300 and checked) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    found = [f["subject"] for f in report["findings"] if f["code"] == "feature.null_rate"]
    assert found == ["age"]
    rates = {s.labels["feature"]: s.value for s in families["silenttax_feature_null_rate"]}
    assert rates["age"] == pytest.approx(0.4, abs=0.1) and rates["country"] == 0.0
    rows = [samples["rows"]]
    assert rows == [300.0]


def test_a_middleware_dropped_without_close_takes_its_fold_thread_with_it() -> None:
    import gc

    middleware = _middleware(sample_rate=1.0)  # checks every 3600 s: no tick ends it
    _serve(middleware, _bodies(3))
    assert middleware.live is not None
    thread = middleware.live._thread
    assert thread is not None and thread.is_alive()
    middleware.live.fold()
    assert middleware.live.state().rows == 3
    del middleware
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def _padded_bodies(n: int) -> list[bytes]:
    """Rows whose float feature arrives as a padded string (the seed's first culprit)."""
    rng = np.random.default_rng(2)
    return [
        json.dumps({"age": f"  {rng.normal(40, 10):.2f} ", "country": "DE"}).encode()
        for _ in range(n)
    ]


def test_a_padded_string_mid_traffic_is_a_finding_not_a_dead_thread() -> None:
    """Clean rows, then the float arriving as '  17.99 ': the windows merge (the column
    widens to object), the check names the type change, the padding and the numeric
    strings, and the scrape still answers."""
    from prometheus_client import CollectorRegistry, generate_latest

    from silenttax.integrations.prometheus import SilentTaxCollector

    middleware = _middleware(sample_rate=1.0, feature_window=3600)
    assert middleware.live is not None
    _serve(middleware, _bodies(200))
    middleware.live.fold(now=10.0)
    _serve(middleware, _padded_bodies(100))
    middleware.live.fold(now=20.0)  # same window: merges float and padded strings
    codes = {(f.code, f.subject) for f in middleware.check().problems()}
    assert ("feature.type_change", "age") in codes
    assert ("feature.whitespace", "age") in codes
    assert ("feature.numeric_string", "age") in codes
    assert middleware.live.internal_errors == 0
    state = middleware.live.state()
    assert state.rows == 300 and state.failed == 0  # nothing recorded is lost
    registry = CollectorRegistry()
    registry.register(SilentTaxCollector({"app": middleware}))
    text = generate_latest(registry).decode()
    assert 'silenttax_scrape_up{monitor="app"} 1.0' in text
    assert 'silenttax_feature_null_rate{feature="age",monitor="app"}' in text
    # the next window: previous (mixed) and current (padded only) merge too
    _serve(middleware, _padded_bodies(50))
    middleware.live.fold(now=3700.0)
    assert ("feature.whitespace", "age") in {(f.code, f.subject) for f in middleware.check()}


def test_the_fold_thread_survives_an_exception_and_reports_it() -> None:
    def broken(self: Any, state: Any) -> Any:
        raise RuntimeError("judge broke")

    middleware = _middleware(sample_rate=1.0, check_interval=0.05)
    live = middleware.live
    assert live is not None
    live.judge = broken.__get__(live)  # type: ignore[method-assign]
    _serve(middleware, _bodies(20))
    deadline = time.monotonic() + 10
    while live.internal_errors < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert live.internal_errors >= 2  # failed twice: the thread kept going
    assert live._thread is not None and live._thread.is_alive()
    found = [f for f in middleware.check() if f.code == "stability.internal_error"]
    assert found and "judge broke" in found[0].message
    assert middleware.state().internal_errors >= 2
    middleware.live.judge = type(live).judge.__get__(live)  # type: ignore[method-assign]
    middleware.close()


def test_a_collector_that_fails_leaves_the_rest_of_the_scrape() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from silenttax.integrations.prometheus import SilentTaxCollector
    from silenttax.monitor import LatencySketch

    middleware = _middleware()
    _serve(middleware, _bodies(5))
    sketch = LatencySketch()
    sketch.add(0.01)
    collector = SilentTaxCollector({"app": middleware, "ranker": sketch})
    middleware.live = None  # wrong on purpose: reading it raises
    middleware.latency = None  # type: ignore[assignment,method-assign]
    registry = CollectorRegistry()
    registry.register(collector)
    for _ in range(2):
        text = generate_latest(registry).decode()
    assert 'silenttax_scrape_up{monitor="app"} 0.0' in text
    assert 'silenttax_scrape_errors_total{monitor="app"} 2.0' in text
    assert 'silenttax_latency_seconds_count{monitor="ranker"} 1.0' in text
    assert 'silenttax_scrape_up{monitor="ranker"} 1.0' in text
    assert collector.last_error is not None and collector.last_error.startswith("app: ")


def _gauges(registry: Any, name: str) -> dict[str, float]:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    text = generate_latest(registry).decode()
    return {
        s.labels.get("feature", s.labels.get("route", "")) + s.labels.get("status", ""): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    }


def test_a_fleet_scrape_counts_fresh_and_reads_the_judgement_written_off_the_request_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import CollectorRegistry

    from silenttax.integrations import fleet
    from silenttax.integrations.prometheus import SilentTaxCollector

    monkeypatch.setenv("SILENTTAX_GENERATION", "one")
    a = _middleware(sample_rate=1.0, snapshot_dir=tmp_path, check_interval=30)
    b = _middleware(sample_rate=1.0, snapshot_dir=tmp_path, check_interval=30)
    assert a.live is not None and b.live is not None and a.writer is not None
    _serve(a, _bodies(200))
    _serve(b, _bodies(200, null_share=0.5))
    a.live.fold()
    b.live.fold()
    assert b.writer is not None
    b.writer.write()
    registry = CollectorRegistry()
    registry.register(SilentTaxCollector.from_directory(tmp_path, own=a, findings=True))
    assert a.writer.judge_every == 30.0  # this worker's writer thread judges the fleet

    # the first scrape finds no judgement: it judges the whole fleet inline, once
    nulls = _gauges(registry, "silenttax_feature_null_rate")
    judged = fleet.FleetJudgement.model_validate_json((tmp_path / fleet.JUDGEMENT).read_text())
    whole = fleet.read_directory(tmp_path)  # every window merged: what a scrape used to judge
    assert whole.live is not None
    assert nulls == pytest.approx(whole.live.null_rates()) and nulls["age"] > 0.2
    assert _gauges(registry, "silenttax_feature_drift") == pytest.approx(
        {k: v for k, (_, v) in whole.live.drift_scores().items()}
    )
    assert {f.code for f in whole.check()} == {f.code for f in judged.report}

    # more traffic: counts are fresh at the next scrape, the judgement (30 s) is kept
    _serve(b, _bodies(300))
    b.live.fold()
    b.writer.write()
    counts = _gauges(registry, "silenttax_http_requests_total")
    assert counts == {"__unmatched__2xx": 700.0}  # no router here: no route template
    again = fleet.FleetJudgement.model_validate_json((tmp_path / fleet.JUDGEMENT).read_text())
    assert again.at == judged.at
    assert _gauges(registry, "silenttax_feature_null_rate") == pytest.approx(nulls)

    # a writer's tick judges when the judgement is due; the scrape then shows it
    a.writer.judge_every = 0.0
    a.writer._tick()
    later = fleet.FleetJudgement.model_validate_json((tmp_path / fleet.JUDGEMENT).read_text())
    assert later.at > judged.at
    assert _gauges(registry, "silenttax_feature_null_rate")["age"] < nulls["age"]  # diluted

    # a judgement of another generation is never served: the scrape judges again
    other = later.model_copy(update={"generation": "old"})
    (tmp_path / fleet.JUDGEMENT).write_text(other.model_dump_json())
    _gauges(registry, "silenttax_feature_null_rate")
    fresh = fleet.FleetJudgement.model_validate_json((tmp_path / fleet.JUDGEMENT).read_text())
    assert fresh.generation == "one" and fresh.at > later.at
    a.close()
    b.close()


def test_a_fleet_worker_keeps_its_live_windows_in_a_file_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from silenttax.integrations import fleet
    from silenttax.integrations.asgi import ServingState

    monkeypatch.setenv("SILENTTAX_GENERATION", "one")
    worker = _middleware(sample_rate=1.0, snapshot_dir=tmp_path)
    assert worker.writer is not None and worker.live is not None
    _serve(worker, _bodies(300, null_share=0.3))
    worker.live.fold()
    path = worker.writer.write()
    windows = worker.writer.windows_path
    assert windows.exists() and windows.stat().st_size > path.stat().st_size
    # read whole by default (silenttax.load, merge, the judgement), counters only on request
    whole, counters = ServingState.load(path), ServingState.load(path, windows=False)
    assert whole.live == worker.live.state()
    assert counters.live is not None and counters.live.health is None and counters.live.rows == 300
    # a scrape-time write leaves the windows file as it was
    before = windows.stat().st_mtime_ns
    _serve(worker, _bodies(10))
    worker.writer.write(windows=False)
    assert windows.stat().st_mtime_ns == before
    assert ServingState.load(path, windows=False).requests["__unmatched__"]["2xx"] == 310
    # the fold takes both files into the archive, which keeps its windows beside it too
    worker.live.fold()
    worker.close()
    assert not path.exists() and not windows.exists()
    archive = ServingState.load(tmp_path / fleet.ARCHIVE)
    assert archive.references["live"] == "windows-archive.json"
    assert archive.live == worker.live.state()
    assert ServingState.load(tmp_path / fleet.ARCHIVE, windows=False).live.health is None  # type: ignore[union-attr]
    # retired (the next generation's first write does it): one standalone file
    with fleet._locked(tmp_path):
        fleet._retire(tmp_path, "one")
    assert not (tmp_path / fleet.ARCHIVE).exists()
    assert not (tmp_path / "windows-archive.json").exists()
    retired = ServingState.load(tmp_path / fleet.GENERATIONS / "one.json")
    assert retired.references == {} and retired.live == worker.live.state()
    # a windows file whose worker is gone and whose worker file never came: removed
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    orphan = tmp_path / f"windows-{int(done.stdout)}-abcd1234-one.json"
    orphan.write_text("{}")
    fleet.fold_dead(tmp_path)
    assert not orphan.exists()


def test_the_middleware_reports_its_own_time_and_a_slow_extractor_is_named() -> None:
    """The background threads' ticks (live features, the tracer's folds) are timed:
    a cheap extractor is OK with the figures; one burning ~15 ms of CPU per row is a
    ``stability.self_time`` WARNING (its slices held the interpreter from the requests)."""
    import time

    def burn(body: Any) -> Any:
        end = time.thread_time() + 0.015
        while time.thread_time() < end:
            pass
        return json.loads(body)

    for features, severity in ((lambda body: json.loads(body), "ok"), (burn, "warning")):
        middleware = _middleware(features=features, sample_rate=0.2, check_interval=0.05)
        _serve(middleware, _bodies(300))
        deadline = time.monotonic() + 20
        while middleware.self_time.figures()["slices"] < 2 and time.monotonic() < deadline:
            _serve(middleware, _bodies(20))
            time.sleep(0.05)
        (found,) = middleware.check().filter(code="stability.self_time")
        parts = found.evidence["parts"]
        assert parts["background"]["slices"] >= 2
        for part in parts.values():
            assert 0 <= part["longest_seconds"] <= part["cpu_seconds"]
            assert part["cpu_seconds"] <= part["wall_seconds"] * 1.05 + 0.005
        assert found.severity.value == severity, found.message
        if severity == "warning":
            assert found.evidence["longest_seconds"] >= 0.010 and found.recommendation
        # the snapshot keeps the figures and a merge adds them up
        again = SilentTaxMiddleware.from_state(middleware.state())
        twice = again.merge(middleware.state()).self_time_figures()
        assert twice["background"]["slices"] >= 2 * parts["background"]["slices"]
        middleware.close()
    # the tracer's buffer (4096 spans) is folded by its own thread, off the request path,
    # and timed with the background work; none is folded inside a request
    plain = SilentTaxMiddleware(_app)
    _serve(plain, _bodies(4200))
    deadline = time.monotonic() + 20
    while plain.self_time.figures()["slices"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    (found,) = plain.check().filter(code="stability.self_time")
    folds = found.evidence["parts"]
    assert folds["background"]["slices"] >= 1 and folds["request_folds"]["slices"] == 0
    assert 0 < folds["background"]["longest_seconds"] <= folds["background"]["cpu_seconds"]
    # without that thread (a tracer of one's own), the request that fills the buffer folds
    # it: timed too. Served one at a time, nothing else was in flight: no request waited
    from silenttax.trace import Tracer

    tracer = Tracer()
    for _ in range(4200):
        with tracer.span("request"):
            pass
    inline = tracer.request_folds.figures()
    assert inline["slices"] >= 1 and inline["requests_waiting"] == 0
    assert 0 < inline["longest_seconds"] <= inline["cpu_seconds"]  # the longest is CPU time
