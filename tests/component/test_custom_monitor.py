"""A custom monitor written only against public names, in a package outside silenttax
(``pkgs/acme_monitors``, with an entry point), used the three ways silenttax is used:
saved, loaded and merged (Python and ``silenttax merge``), judged by ``silenttax report
--check`` and ``silenttax audit --check`` (tests/audit), and served by a real gunicorn
fleet whose ``/metrics`` and ``/silenttax/check`` carry it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import silenttax
from silenttax.component import SUM, State, Stateful, register
from silenttax.errors import InputError, StateError
from silenttax.testing import Examples, check_component
from tests.integrations.servers import free_port, running

PKGS = Path(__file__).resolve().parent / "pkgs"


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(PKGS))
    import acme_monitors

    return acme_monitors


def _queue(acme: Any, depths: Any, **kw: Any) -> Any:
    queue = acme.QueueDepth(**kw)
    for depth in depths:
        queue.record(depth)
    return queue


def _cli(*args: str, cwd: Path, pythonpath: Path | None = PKGS) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath) if pythonpath else ""}
    return subprocess.run([sys.executable, "-m", "silenttax", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)  # fmt: skip


def test_a_user_component_passes_the_contract_the_builtins_pass(acme: Any) -> None:
    depths = np.random.default_rng(0).poisson(4, 3000)

    def halves() -> tuple[Any, Any, Any]:
        return _queue(acme, depths[::2]), _queue(acme, depths[1::2]), _queue(acme, depths)

    examples = Examples(
        make=lambda: _queue(acme, depths),
        halves=halves,
        mismatched=lambda: (_queue(acme, depths), _queue(acme, depths, limit=3), "limit"),
        bad_input=lambda: acme.QueueDepth(budget=2.0),
        hot_path=lambda q: [q.record(x) for x in (None, "deep", float("nan"), -1, [3], 1e300)],
    )
    assert check_component(acme.QueueDepth, examples=examples) == []
    assert silenttax.component.registered()["acme.queue_depth"] is acme.QueueDepth


class LossyState(State):
    KIND: ClassVar[str] = "tests.lossy"
    params: dict[str, int]
    seen: Annotated[int, SUM] = 0


@register("tests.lossy")
class Lossy(Stateful[LossyState]):
    """A component with three bugs check_component must name."""

    STATE = LossyState

    def __init__(self, window: int = 10, forgotten: int = 0) -> None:
        self.window, self.seen = window, 0

    def record(self, x: Any) -> None:
        self.seen += int(x)  # raises on bad input: a hot-path bug

    def state(self) -> LossyState:
        return LossyState(params={"window": self.window}, seen=self.seen)

    @classmethod
    def from_state(cls, state: LossyState) -> Self:
        made = cls(**state.params)
        made.seen = state.seen
        return made

    def merge(self, other: Lossy) -> Self:
        return self  # drops the other side's counts


def test_check_component_names_every_broken_rule() -> None:
    def make(n: int = 4) -> Lossy:
        lossy = Lossy()
        for _ in range(n):
            lossy.record(1)
        return lossy

    examples = Examples(
        make=make,
        halves=lambda: (make(2), make(2), make(4)),
        mismatched=lambda: (make(), Lossy(window=3), "window"),
        hot_path=lambda lossy: lossy.record(None),
    )
    broken = check_component(Lossy, examples=examples, raise_on_failure=False)
    assert {b.rule for b in broken} == {
        "merge_equals_one_pass",  # .seen: 2, one pass 4
        "merge_refuses_mismatched_settings",
        "hot_path_never_raises",
        "settings_saved",  # 'forgotten' is not saved
    }
    assert ".seen: 2 (one pass 4)" in str(next(b for b in broken if b.rule.startswith("merge_eq")))
    with pytest.raises(AssertionError, match="breaks 4 rule"):
        check_component(Lossy, examples=examples)


def test_register_refuses_reserved_malformed_and_taken_kinds(acme: Any) -> None:
    with pytest.raises(InputError, match="reserved"):
        register("silenttax.mine", acme.QueueDepth)
    with pytest.raises(InputError, match="namespaced"):
        register("queue", acme.QueueDepth)
    with pytest.raises(InputError, match="not QueueDepth's own kind"):
        register("acme.other", acme.QueueDepth)
    with pytest.raises(InputError, match="already registered"):
        register("acme.queue_depth", type("QueueDepth2", (acme.QueueDepth,), {}))
    assert register("acme.queue_depth", acme.QueueDepth) is acme.QueueDepth  # again: no-op
    finding = acme.QueueDepth().check()[0]
    assert finding.category == "acme.capacity" and finding.recommendation.startswith("Add a")


def test_replica_files_load_and_merge_through_the_cli(acme: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    parts = [rng.poisson(6, 700) for _ in range(3)]
    for i, depths in enumerate(parts):
        _queue(acme, depths).save(tmp_path / f"replica-{i}.json")
    deep = int(sum((p > 8).sum() for p in parts))
    merged = silenttax.merge(tmp_path)
    assert (merged.requests, merged.deep) == (2100, deep)

    # another process finds the class through the package's entry point: no import needed
    done = _cli("merge", ".", "--out", "merged.json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # 15% of requests were deep: over budget
    assert "merged 3 QueueDepth snapshot(s)" in done.stdout and "acme.queue_depth" in done.stdout
    state = json.loads((tmp_path / "merged.json").read_text())
    assert (state["kind"], state["requests"], state["deep"]) == ("acme.queue_depth", 2100, deep)

    # without the entry point: --import names the module; without either: a clear error
    bare = tmp_path / "bare"
    shutil.copytree(PKGS / "acme_monitors", bare / "acme_monitors")
    files = [str(tmp_path / f"replica-{i}.json") for i in range(3)]
    done = _cli("--import", "acme_monitors", "merge", *files, cwd=bare, pythonpath=None)
    assert done.returncode == 1 and "merged 3 QueueDepth" in done.stdout, done.stderr
    done = _cli("merge", *files, cwd=bare, pythonpath=None)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "unknown state kind 'acme.queue_depth'" in done.stderr and "--import" in done.stderr
    with pytest.raises(StateError, match=r"unknown state kind 'acme\.nothing'"):
        silenttax.load('{"kind": "acme.nothing", "schema_version": 1}')


def test_report_runs_checks_of_ones_own_on_a_directory_of_snapshots(
    acme: Any, tmp_path: Path
) -> None:
    _queue(acme, [1, 2, 30, 40] * 50).save(tmp_path / "queue.json")
    done = _cli("report", ".", "--check", "acme_monitors:snapshot_count", "--json", "out.json",
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr  # the queue's own check: half were deep
    findings = json.loads((tmp_path / "out.json").read_text())["findings"]
    codes = {(f["code"], f["subject"], f["severity"]) for f in findings}
    assert ("acme.queue_depth", "queue", "warning") in codes
    assert ("acme.slow_route", "audit", "ok") in codes
    done = _cli(
        "report", ".", "--check", "acme_monitors:broken", "--json", "out.json", cwd=tmp_path
    )
    assert "Traceback" not in done.stderr
    failed = [f for f in json.loads((tmp_path / "out.json").read_text())["findings"]
              if f["code"] == "stability.check_failed"]  # fmt: skip
    assert failed and "acme's bug" in failed[0]["message"]
    done = _cli("report", ".", "--check", "acme_monitors:missing", cwd=tmp_path)
    assert done.returncode == 2 and "no callable 'missing'" in done.stderr


FLEET_APP = """
import os
from fastapi import FastAPI
import silenttax
from silenttax.integrations.fastapi import instrument
from silenttax.monitor import PredictionMonitor
from acme_monitors import QueueDepth, slow_routes

queue = QueueDepth(limit=8, budget=0.05)
reference = silenttax.load(os.environ["REFERENCE"])
app = FastAPI()

@app.get("/predict/{depth}/{positive}")
async def predict(depth: int, positive: int) -> dict:
    queue.record(depth)
    silenttax.observe_prediction(positive)
    return {"pid": os.getpid()}

instrument(app, snapshot_dir=os.environ["SNAPSHOTS"], snapshot_interval=0.2, check_interval=0.3,
           findings=True, checks=[queue, PredictionMonitor(output="class", positive=1,
           reference=reference), slow_routes])
"""


def test_a_gunicorn_fleet_carries_judges_and_exports_the_component(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn_worker")
    import httpx

    from silenttax.monitor import PredictionMonitor

    rng = np.random.default_rng(3)
    reference = PredictionMonitor(output="class", positive=1)
    reference.record_many((rng.random(3000) < 0.2).astype(int).tolist())
    reference.save(tmp_path / "reference.json")
    (tmp_path / "fleet_app.py").write_text(FLEET_APP)
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    port = free_port()
    args = ["gunicorn", "fleet_app:app", "-w", "2", "-k", "uvicorn_worker.UvicornWorker",
            "-b", f"127.0.0.1:{port}", "--log-level", "warning"]  # fmt: skip
    env = {"SNAPSHOTS": str(snapshots), "REFERENCE": str(tmp_path / "reference.json"),
           "PYTHONPATH": os.pathsep.join([str(PKGS), str(Path.cwd())])}  # fmt: skip
    depths = rng.poisson(5, 1500)
    positives = (rng.random(1500) < 0.5).astype(int)  # the model now says yes half the time
    fresh = httpx.Limits(max_keepalive_connections=0)  # a connection per request: both workers
    with (
        running(tmp_path, args, port=port, env=env, timeout=90) as url,
        httpx.Client(base_url=url, timeout=30, limits=fresh) as client,
    ):
        pids = set()
        for depth, positive in zip(depths, positives, strict=True):
            pids.add(client.get(f"/predict/{depth}/{positive}").json()["pid"])
        deadline = time.monotonic() + 30
        while True:  # every worker's file written, the fleet judged
            text = client.get("/metrics").text
            families = {f.name: f.samples for f in text_string_to_metric_families(text)}
            values = {
                s.labels["name"]: s.value
                for s in families.get("silenttax_component_value", [])
                if s.labels["component"] == "acme.queue_depth"
            }
            findings = {
                (s.labels["code"], s.labels["severity"]): s.value
                for s in families.get("silenttax_findings", [])
            }
            done = values.get("requests") == 1500 and ("acme.queue_depth", "warning") in findings
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        report = client.get("/silenttax/check").json()
    assert len(pids) == 2, "both workers served"
    assert values == {"requests": 1500.0, "deep": float((depths > 8).sum())}  # fleet-wide
    assert findings.get(("acme.queue_depth", "warning")) == 1, findings
    assert (
        findings.get(("prediction.class_rate", "critical"), 0)
        + findings.get(("prediction.class_rate", "warning"), 0)
        >= 1
    ), findings
    by_code = {(f["code"], f["severity"]) for f in report["findings"]}
    assert ("acme.queue_depth", "warning") in by_code
    assert any(code == "acme.slow_route" for code, _ in by_code)  # the check function ran
    assert any(code == "prediction.class_rate" and sev in ("warning", "critical")
               for code, sev in by_code)  # fmt: skip
    assert not any(code == "stability.check_failed" for code, _ in by_code)


def test_the_collector_exports_a_component_given_to_it(acme: Any) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from silenttax.integrations.prometheus import SilentTaxCollector

    queue = _queue(acme, [1, 20, 2, 30, 40, 50], limit=8)
    registry = CollectorRegistry()
    collector = SilentTaxCollector({"api": queue}, findings=True)
    registry.register(collector)
    families = {
        f.name: f.samples
        for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    values = {s.labels["name"]: s.value for s in families["silenttax_component_value"]}
    assert values == {"requests": 6.0, "deep": 4.0}
    findings = {(s.labels["code"], s.labels["severity"]) for s in families["silenttax_findings"]}
    assert findings == {("acme.queue_depth", "warning")}  # 4 of 6 deep, budget 5%
    assert collector.errors == {}
