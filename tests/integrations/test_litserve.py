"""LitServe: a real LitServer (2 API processes, a spawned inference worker) on 127.0.0.1,
and the callback's hooks driven in process in the orders LitServe's loops call them."""

from __future__ import annotations

import pickle
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("litserve")
httpx = pytest.importorskip("httpx")
parser = pytest.importorskip("prometheus_client.parser")

import litserve as ls  # noqa: E402

from silenttax.errors import InputError  # noqa: E402
from silenttax.integrations.asgi import SilentTaxMiddleware, observe, stage  # noqa: E402
from silenttax.integrations.fleet import read_directory  # noqa: E402
from silenttax.integrations.litserve import SilentTaxCallback, instrument  # noqa: E402
from silenttax.report import Report  # noqa: E402

from .servers import free_port, running  # noqa: E402

APP = textwrap.dedent(
    """
    import sys
    import time

    import litserve as ls
    import torch

    from silenttax.integrations.asgi import stage
    from silenttax.integrations.litserve import instrument


    class Model(ls.LitAPI):
        def setup(self, device):
            torch.manual_seed(0)
            self.net = torch.nn.Linear(4, 2)

        def decode_request(self, request):
            return torch.tensor(request["x"], dtype=torch.float32)

        def predict(self, x):
            with stage("audit_log"):
                time.sleep(0.002)
            with torch.no_grad():
                return self.net(x)

        def encode_response(self, y):
            return {"y": y.tolist()}


    if __name__ == "__main__":
        server = ls.LitServer(Model(), accelerator="cpu", workers_per_device=1)
        instrument(server, snapshot_dir=sys.argv[2], snapshot_interval=0.2)
        server.run(host="127.0.0.1", port=int(sys.argv[1]), generate_client_file=False,
                   num_api_servers=2)
    """
)


def _families(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels.get("le") and "quantile" not in sample.labels:
                key = sample.name + "".join(
                    f",{k}={v}" for k, v in sorted(sample.labels.items()) if k != "monitor"
                )
                out[key] = sample.value
    return out


def test_litserver_fleet_view(tmp_path: Path) -> None:
    (tmp_path / "lit_app.py").write_text(APP)
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    port = free_port()
    good, sent = 30, 0
    with (
        running(tmp_path, ["lit_app", str(port), str(snaps)], port=port, timeout=120),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        for _ in range(good):
            assert client.post("/predict", json={"x": [1, 2, 3, 4]}).status_code == 200
        # a shape the model rejects: LitServe skips the after hooks, the next
        # iteration closes it as an error
        assert client.post("/predict", json={"x": [1, 2]}).status_code == 500
        for _ in range(5):
            assert client.post("/predict", json={"x": [1, 2, 3, 4]}).status_code == 200
        sent = good + 6
        deadline = time.monotonic() + 30
        while True:
            fleet = read_directory(snaps)
            if fleet.breakdown().requests >= sent or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        scrape = _families(client.get("/metrics").text)
        report = Report.model_validate_json(client.get("/silenttax/check").text)

    # the HTTP side: every request counted once, by status class, across both API servers
    assert fleet.requests() == {("/predict", "2xx"): good + 5, ("/predict", "5xx"): 1}
    assert scrape["silenttax_http_requests_total,route=/predict,status=2xx"] == good + 5
    # the worker side: every iteration traced; the failed one is closed by the next
    breakdown = fleet.breakdown()
    assert breakdown.requests == sent
    assert {"decode", "model", "encode", "audit_log", "worker"} <= set(breakdown.stages)
    assert breakdown.spans["/predict"].errors == 1
    assert breakdown.spans["decode"].count == sent
    assert breakdown.spans["encode"].count == sent - 1
    # the model is in the workers' spans, the request time on the HTTP side holds it
    assert (
        scrape["silenttax_request_seconds_sum"]
        <= scrape["silenttax_http_request_seconds_sum,route=/predict"]
    )
    assert 0 < breakdown.model_share < 1
    # the injected stage is named, and its time is at least what it slept
    stages = [f for f in report if f.code == "pipeline.stage_time" and "audit_log" in f.message]
    assert stages, [f.message for f in report]
    assert breakdown.stages["audit_log"].total >= 0.002 * sent
    # one file per process that served: 2 API servers and the inference worker
    assert len(list(snaps.glob("worker-*.json"))) + (snaps / "archive.json").exists() >= 2


# ---------------------------------------------------------------------- in process


class _Echo(ls.LitAPI):  # type: ignore[misc]
    def setup(self, device: str) -> None: ...

    def predict(self, x: object) -> object:
        return x


def _callback(tmp_path: Path) -> tuple[SilentTaxCallback, SilentTaxMiddleware]:
    server = ls.LitServer(_Echo(), accelerator="cpu")
    middleware = instrument(server, snapshot_dir=tmp_path)
    callbacks = [c for c in server._callback_runner._callbacks if isinstance(c, SilentTaxCallback)]
    assert len(callbacks) == 1
    assert middleware.trace is False  # the HTTP side opens no spans: the workers do
    return callbacks[0], middleware


def _hooks(callback: SilentTaxCallback, api: object, *names: str) -> None:
    """Call ``on_<name>`` for each name, in order, as LitServe's loops do."""
    for name in names:
        getattr(callback, f"on_{name}")(lit_api=api)


DECODE = ("before_decode_request", "after_decode_request")
ENCODE = ("before_encode_response", "after_encode_response")


def test_hooks_in_loop_orders(tmp_path: Path) -> None:
    callback, _ = _callback(tmp_path)
    api = _Echo()
    api.api_path = "/predict"
    # the regular loop, twice, with a stage and an observed duration inside predict
    for _ in range(2):
        _hooks(callback, api, *DECODE, "before_predict")
        with stage("tokenize"):
            observe("gpu", 0.001)
        _hooks(callback, api, "after_predict", *ENCODE)
    # the streaming loop: no decode hooks, after_predict again after encoding
    _hooks(callback, api, "before_predict", "after_predict", "before_encode_response",
           "after_predict", "after_encode_response")  # fmt: skip
    # outside an iteration, stage() is a no-op again
    with stage("outside"):
        pass
    recorder = callback.recorder
    breakdown = recorder.breakdown()
    assert breakdown.requests == 3
    assert breakdown.spans["/predict"].count == 3
    assert breakdown.spans["predict"].count == 3
    assert breakdown.spans["decode"].count == 2
    assert breakdown.spans["tokenize"].count == 2
    assert "outside" not in breakdown.spans
    assert recorder.observed()["gpu"].sketch.count == 2
    assert recorder.internal_errors == 0


def test_a_failed_iteration_is_closed_as_an_error(tmp_path: Path) -> None:
    callback, _ = _callback(tmp_path)
    api = _Echo()
    _hooks(callback, api, *DECODE, "before_predict")  # predict raises: no after hooks
    _hooks(callback, api, *DECODE, "before_predict", "after_predict", *ENCODE)
    breakdown = callback.recorder.breakdown()
    assert breakdown.requests == 2
    assert breakdown.spans["/predict"].errors == 1
    assert breakdown.spans["predict"].errors == 1
    assert breakdown.spans["encode"].count == 1


def test_callback_pickles_into_a_worker_and_merges_with_the_http_side(tmp_path: Path) -> None:
    callback, middleware = _callback(tmp_path)
    worker = pickle.loads(pickle.dumps(callback))  # what spawn does
    assert worker._recorder is None
    api = _Echo()
    _hooks(worker, api, "before_predict", "after_predict", *ENCODE)
    path = worker.recorder.writer.write()
    assert path.parent == tmp_path
    merged = SilentTaxMiddleware.from_state(middleware.state()).merge(
        type(worker.recorder.state()).load(path)
    )
    assert merged.breakdown().requests == 1


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="LitServer"):
        instrument(object(), snapshot_dir=tmp_path)
    server = ls.LitServer(_Echo(), accelerator="cpu")
    with pytest.raises(InputError, match="trace"):
        instrument(server, snapshot_dir=tmp_path, trace=True)
    with pytest.raises(InputError, match="snapshot_dir"):
        SilentTaxCallback(SilentTaxMiddleware(_Echo()))
    with pytest.raises(InputError, match="SilentTaxMiddleware"):
        SilentTaxCallback(object())  # type: ignore[arg-type]
