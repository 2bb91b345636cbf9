"""The Prometheus collector, scraped and parsed with prometheus_client's own parser."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from silenttax.cost import CostModel, CostMonitor
from silenttax.errors import InputError
from silenttax.integrations.prometheus import DEFAULT_EDGES, SilentTaxCollector, register
from silenttax.monitor import LatencyMonitor, LatencySketch, ResourceMonitor
from silenttax.trace import Tracer


def scrape(registry: CollectorRegistry) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        out[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return out


def test_histogram_counts_sum_and_quantiles_match_the_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.lognormal(math.log(0.003), 0.8, 20_000)  # a 3 ms model
    sketch = LatencySketch()
    sketch.add_many(x)
    registry = CollectorRegistry()
    register(sketch, name="ranker", registry=registry, labels={"model": "v7"})
    metrics = scrape(registry)
    samples = metrics["silenttax_latency_seconds"]
    buckets = {s[1]["le"]: s[2] for s in samples if s[0].endswith("_bucket")}
    count = next(s[2] for s in samples if s[0].endswith("_count"))
    total = next(s[2] for s in samples if s[0].endswith("_sum"))
    assert count == x.size and total == pytest.approx(x.sum(), rel=1e-12)
    assert buckets["+Inf"] == x.size and len(buckets) == len(DEFAULT_EDGES) + 1
    for edge in DEFAULT_EDGES:  # exact: the edges lie on the sketch's bucket boundaries
        assert buckets[f"{edge:.6g}"] == np.count_nonzero(x <= edge), edge
    assert all(s[1]["model"] == "v7" and s[1]["monitor"] == "ranker" for s in samples)
    gauges = {s[1]["quantile"]: s[2] for s in metrics["silenttax_latency_quantile_seconds"]}
    for q in (0.5, 0.95, 0.99):
        exact = np.quantile(x, q, method="inverted_cdf")
        assert abs(gauges[f"{q:g}"] / exact - 1) <= 0.01, q
    # dense where a fast model lives: the 3 ms median falls between edges < 45% apart
    below = max(e for e in DEFAULT_EDGES if e <= gauges["0.5"])
    above = min(e for e in DEFAULT_EDGES if e > gauges["0.5"])
    assert above / below < 1.45


def test_fleet_quantiles_from_the_merged_sketch() -> None:
    rng = np.random.default_rng(1)
    parts = [rng.lognormal(math.log(0.01), s, 5_000) for s in (0.2, 0.9)]
    sketches = []
    for p in parts:
        sk = LatencySketch()
        sk.add_many(p)
        sketches.append(sk)
    fleet = LatencySketch.merged(sketches)
    registry = CollectorRegistry()
    register(fleet, name="fleet", registry=registry)
    gauges = {
        s[1]["quantile"]: s[2] for s in scrape(registry)["silenttax_latency_quantile_seconds"]
    }
    pooled = np.concatenate(parts)
    exact = np.quantile(pooled, 0.99, method="inverted_cdf")
    assert abs(gauges["0.99"] / exact - 1) <= 0.01
    # the mean of the two replicas' p99 (what averaging Summaries gives) is far off
    naive = np.mean([np.quantile(p, 0.99) for p in parts])
    assert abs(naive / exact - 1) > 0.05


def test_tracer_stages_requests_and_label_cap() -> None:
    tracer = Tracer()
    for i in range(300):
        with tracer.span("predict"):
            with tracer.span("parse", stage="preprocess"):
                time.sleep(0)
            with tracer.span("forward", stage="model"):
                sum(range(200))
            with tracer.span(f"step{i % 150}", stage=f"custom{i % 150}"):
                pass
    registry = CollectorRegistry()
    collector = register(tracer, name="api", registry=registry, max_label_values=20)
    metrics = scrape(registry)
    assert metrics["silenttax_requests"][0][2] == 300
    stages = {s[1]["stage"] for s in metrics["silenttax_stage_seconds"]}
    assert {"model", "preprocess"} <= stages and len(stages) <= 20
    counts = {
        s[1]["stage"]: s[2] for s in metrics["silenttax_stage_seconds"] if s[0].endswith("_count")
    }
    assert counts["model"] == 300
    share = metrics["silenttax_non_model_share"][0][2]
    assert share == pytest.approx(1 - tracer.breakdown().model_share)
    assert len(list(collector.describe())) >= 10  # static, without reading the tracer
    for _ in range(3):  # the cap holds scrape after scrape
        assert len({s[1]["stage"] for s in scrape(registry)["silenttax_stage_seconds"]}) <= 20


def test_cost_resource_and_findings() -> None:
    cost = CostMonitor(CostModel(price_per_hour=3.6), window=60)
    now = 1_700_000_000.0
    cost.record(1000, busy_seconds=10, now=now)
    cost.record(1000, busy_seconds=10, now=now + 59)
    cost.close_window(now=now + 60)
    resources = ResourceMonitor(interval=0.01)
    for _ in range(3):
        resources.sample()
    monitor = LatencyMonitor(name="api", slo=0.001)
    for _ in range(500):
        monitor.record(0.005)
    registry = CollectorRegistry()
    SilentTaxCollector.__init__  # noqa: B018 - the class is public; register builds one
    collector = SilentTaxCollector({"api": monitor, "cost": cost, "proc": resources}, findings=True)
    registry.register(collector)
    metrics = scrape(registry)
    per_1k = metrics["silenttax_cost_per_1k"][0]
    assert per_1k[1]["currency"] == "USD"
    assert per_1k[2] == pytest.approx(1000 * 3.6 * 60 / 3600 / 2000)
    assert metrics["silenttax_inferences"][0][2] == 2000
    assert metrics["silenttax_rss_bytes"][0][2] > 10 * 2**20  # a real reading of this process
    findings = {
        (s[1]["monitor"], s[1]["code"], s[1]["severity"]): s[2]
        for s in metrics["silenttax_findings"]
    }
    assert findings[("api", "latency.slo", "critical")] == 1  # p99 5 ms against a 1 ms SLO
    assert all(severity != "ok" for _, _, severity in findings)  # active findings only


def test_bad_components_and_settings_are_named() -> None:
    with pytest.raises(InputError, match=r"monitors\['x'\]: cannot export a dict"):
        SilentTaxCollector({"x": {}})
    with pytest.raises(InputError, match="increasing"):
        SilentTaxCollector({}, edges=[0.2, 0.1])
    with pytest.raises(InputError, match="quantiles"):
        SilentTaxCollector({}, quantiles=[1.5])


def test_instrument_exports_findings_by_code_and_the_docs_name_every_metric() -> None:
    """``instrument(app, findings=True)`` mounts the findings gauge; every metric family the
    collector describes is in docs/serving.md, and every name there is one it exports."""
    import asyncio
    import re
    from pathlib import Path

    import httpx
    from fastapi import FastAPI

    from silenttax.integrations.fastapi import instrument

    app = FastAPI()

    @app.get("/predict")
    def predict() -> dict[str, float]:
        return {"score": 0.5}

    instrument(app, findings=True, monitor=LatencyMonitor(slo=1e-9))

    async def main() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(50):
                await client.get("/predict")
            return (await client.get("/metrics")).text

    text = asyncio.run(main())
    found = {
        (s.labels["code"], s.labels["severity"]): s.value
        for f in text_string_to_metric_families(text)
        if f.name == "silenttax_findings"
        for s in f.samples
    }
    assert [n for (code, _), n in found.items() if code == "latency.slo"] == [1.0]

    collector = SilentTaxCollector({})
    described: set[str] = set()
    for family in collector.describe():
        suffixes = {"counter": ["_total"], "histogram": ["", "_bucket", "_count", "_sum"]}
        described.update(family.name + s for s in suffixes.get(family.type, [""]))
    docs = (Path(__file__).parents[2] / "docs" / "serving.md").read_text()
    named = set(re.findall(r"`(silenttax_[a-z0-9_]+)", docs))
    assert named <= described, sorted(named - described)
    families = {f.name for f in collector.describe()}
    missing = {f for f in families if not any(n == f or n.startswith(f + "_") for n in named)}
    assert not missing, sorted(missing)
