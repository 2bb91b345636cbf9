"""Stack checks: the decision over pairs, the worker protocol, ModelSpec into a second
environment, the environment cache, version lag, and end-to-end A/A and power runs."""

from __future__ import annotations

import math
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from scipy import stats

import silenttax
from silenttax.benchmark import (
    ModelSpec,
    StackComparison,
    compare_stacks,
    decide_pairs,
    version_lag,
)
from silenttax.benchmark._envs import Index, build_env, index_versions, resolve_pins
from silenttax.benchmark._workers import Worker
from silenttax.errors import InputError, StackError
from silenttax.report import Severity

ROOT = Path(__file__).resolve().parents[2]
MODELS = "tests.benchmark.stack_models"


def _spec(factory: str = "spin", **options: Any) -> ModelSpec:
    return ModelSpec.python(
        f"{MODELS}:{factory}", inputs=[np.arange(4.0)], options=options, paths=[ROOT], threads=1
    )


def layered_env(root: Path, files: dict[str, str] | None = None) -> Path:
    """A real second interpreter environment: a venv that sees this one's packages
    through a .pth file, plus its own modules (``files``), e.g. another "version"."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next(root.glob("lib/python*/site-packages"))
    (site / "base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    for name, text in (files or {}).items():
        (site / name).write_text(text, encoding="utf-8")
    return root / "bin" / "python"


# --- the decision over pairs ---------------------------------------------------------


def test_decide_pairs_matches_the_t_interval() -> None:
    logs = [0.21, 0.28, 0.25, 0.31, 0.22, 0.27]
    d = decide_pairs(logs, confidence=0.95)
    ci = stats.ttest_1samp(logs, 0).confidence_interval(0.95)
    assert d["ratio"] == pytest.approx(math.exp(np.mean(logs)))
    assert d["ci"] == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert d["p_value"] == pytest.approx(stats.ttest_1samp(logs, 0).pvalue)
    assert d["verdict"] == "slower" and d["pairs_needed"] is None


@pytest.mark.parametrize(
    ("logs", "verdict"),
    [
        ([-0.2, -0.25, -0.22, -0.18, -0.21, -0.24], "faster"),
        ([0.01, -0.01, 0.005, 0.0, -0.004, 0.002], "equivalent"),
        ([0.1, -0.12, 0.2, -0.05, 0.15, -0.1], "inconclusive"),
        ([0.03, 0.031, 0.029, 0.03, 0.032, 0.028], "equivalent"),
        ([0.02, 0.06, 0.01, 0.04, 0.03, 0.05], "inconclusive"),  # significant, not material
    ],
)
def test_decide_pairs_verdicts(logs: list[float], verdict: str) -> None:
    assert decide_pairs(logs, equivalence=0.05)["verdict"] == verdict


def test_inconclusive_says_how_many_pairs_would_resolve_it() -> None:
    rng = np.random.default_rng(3)
    logs = rng.normal(0.0, 0.085, 6)  # the pair-level spread measured on the 2-core class
    d = decide_pairs(logs, equivalence=0.05)
    assert d["verdict"] == "inconclusive" and d["pairs_needed"] > 6
    # With that many pairs at that spread, the CI's half-width fits the margin.
    n = d["pairs_needed"]
    half = stats.t.ppf(0.975, n - 1) * d["between_pair_sd"] / math.sqrt(n)
    mean = float(np.mean(logs))
    assert half < min(math.log(1.05) - mean, mean - math.log(0.95))
    n_less = n - 1
    half_less = stats.t.ppf(0.975, n_less - 1) * d["between_pair_sd"] / math.sqrt(n_less)
    assert half_less >= min(math.log(1.05) - mean, mean - math.log(0.95))


def test_decide_pairs_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="log_ratios"):
        decide_pairs([])
    with pytest.raises(InputError, match="log_ratios"):
        decide_pairs([0.1, math.nan])
    with pytest.raises(InputError, match="equivalence"):
        decide_pairs([0.1, 0.2], equivalence=0)
    one = decide_pairs([0.3])
    assert one["verdict"] == "inconclusive" and one["p_value"] is None


@pytest.mark.parametrize("pairs", [3, 6, 12])
def test_a_a_false_verdicts_stay_below_alpha(pairs: int) -> None:
    """Identical stacks, pair log ratios with the 8.5% spread measured between processes:
    a faster/slower verdict is a false alarm and must happen at most alpha of the time."""
    rng = np.random.default_rng(pairs)
    trials = 4000
    false = sum(
        decide_pairs(rng.normal(0, 0.085, pairs), equivalence=0.05)["verdict"]
        in ("faster", "slower")
        for _ in range(trials)
    )
    upper = stats.binomtest(false, trials).proportion_ci(0.99).low
    assert upper <= 0.05, false / trials


def test_power_and_coverage_for_a_known_slowdown() -> None:
    rng = np.random.default_rng(7)
    truth, trials, slower, covered = 1.3, 2000, 0, 0
    for _ in range(trials):
        d = decide_pairs(rng.normal(math.log(truth), 0.085, 6))
        slower += d["verdict"] == "slower"
        covered += d["ci"][0] <= truth <= d["ci"][1]
    assert slower / trials > 0.95
    assert stats.binomtest(covered, trials, 0.95).pvalue > 0.001, covered / trials


# --- the worker protocol ---------------------------------------------------------------


def _loaded(
    tmp_path: Path, factory: str, options: dict[str, Any] | None = None, **kw: Any
) -> tuple[Worker, Path]:
    spec = _spec(factory, **(options or {})).write(tmp_path / "spec")
    worker = Worker(sys.executable, label="candidate", **kw)
    worker.request("load", spec=str(spec))
    return worker, spec


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_crashing_worker_is_a_clear_error(tmp_path: Path) -> None:
    worker, _ = _loaded(tmp_path, "fail_on_call", {"how": "crash"})
    with pytest.raises(StackError, match=r"candidate worker exited with status 3 during 'block'"):
        worker.request("block", calls=5)
    assert _gone(worker.pid)
    worker.close()


def test_a_hanging_worker_is_killed_after_its_timeout(tmp_path: Path) -> None:
    worker, _ = _loaded(tmp_path, "fail_on_call", {"how": "hang"}, timeout=1.5)
    with pytest.raises(StackError, match=r"did not answer 'block' within 1.5 s; killed it"):
        worker.request("block", calls=5)
    assert _gone(worker.pid)
    worker.close()


def test_a_worker_printing_garbage_is_killed() -> None:
    script = "import sys, time; print('Segmentation: garbage'); sys.stdout.flush(); time.sleep(60)"
    with pytest.raises(StackError, match="not a protocol message: 'Segmentation"):
        Worker(sys.executable, label="baseline", command=[sys.executable, "-c", script])


def test_model_prints_do_not_corrupt_the_protocol(tmp_path: Path) -> None:
    worker, _ = _loaded(tmp_path, "chatty")
    with worker:
        assert len(worker.request("block", calls=3)["ns"]) == 3


def test_model_errors_come_back_named(tmp_path: Path) -> None:
    spec = ModelSpec.python(f"{MODELS}:no_such_factory", inputs=[np.ones(2)], paths=[ROOT])
    path = spec.write(tmp_path / "spec")
    with (
        Worker(sys.executable, label="baseline") as worker,
        pytest.raises(StackError, match=r"failed 'load': AttributeError.*no_such_factory"),
    ):
        worker.request("load", spec=str(path))


def test_cores_and_threads_travel_to_the_worker(tmp_path: Path) -> None:
    path = _spec().write(tmp_path / "spec")
    with Worker(sys.executable, label="baseline", cores=[0], threads=1) as worker:
        worker.request("load", spec=str(path))
        assert psutil.Process(worker.pid).cpu_affinity() == [0]
        assert worker.request("env")["threads"]["OMP_NUM_THREADS"] == "1"


# --- ModelSpec --------------------------------------------------------------------------


def _relu_onnx(width: int = 8) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [width])],
    )
    return helper.make_model(graph).SerializeToString()


def _outputs(python: Path | str, spec: ModelSpec, tmp: Path) -> list[np.ndarray[Any, Any]]:
    path = spec.write(tmp / "spec")
    with Worker(python, label="candidate") as worker:
        worker.request("load", spec=str(path))
        files = worker.request("outputs", dir=str(tmp / "out"))["files"]
        env = worker.request("env")
    assert env["prefix"] != sys.prefix or python == sys.executable
    return [np.load(f) for f in files]


def test_onnx_spec_round_trip_into_a_second_environment(tmp_path: Path) -> None:
    python = layered_env(tmp_path / "env")
    x = np.linspace(-1, 1, 8, dtype=np.float32)
    spec = ModelSpec.onnx(_relu_onnx(), inputs={"x": x}, threads=1)
    (out,) = _outputs(python, spec, tmp_path)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    assert spec.describe()["model_sha256"] and spec.packages() == ["onnxruntime", "numpy"]


@pytest.mark.parametrize("weights_format", ["state_dict", "file", "safetensors"])
def test_torch_spec_round_trip_with_weights(tmp_path: Path, weights_format: str) -> None:
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    state = model.state_dict()
    weights: Any = state
    if weights_format == "file":
        weights = tmp_path / "w.pt"
        torch.save(state, weights)
    elif weights_format == "safetensors":
        weights = tmp_path / "w.safetensors"
        save_file(state, str(weights))
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    spec = ModelSpec.torch(
        "torch.nn:Linear",
        options={"in_features": 4, "out_features": 3},
        weights=weights,
        inputs=[x],
        threads=1,
    )
    python = layered_env(tmp_path / "env")
    (out,) = _outputs(python, spec, tmp_path)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_model_spec_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="factory"):
        ModelSpec.python("not a path", inputs=[np.ones(2)])
    with pytest.raises(InputError, match=r"inputs\['0'\].*dtype object"):
        ModelSpec.python(f"{MODELS}:spin", inputs=[np.array([{}, 1], dtype=object)])
    with pytest.raises(InputError, match="options"):
        ModelSpec.python(f"{MODELS}:spin", inputs=[np.ones(2)], options={"f": object()})
    with pytest.raises(InputError, match="cores"):
        ModelSpec.python(f"{MODELS}:spin", inputs=[np.ones(2)], cores=[10_000])
    with pytest.raises(InputError, match="weights"):
        ModelSpec.torch(f"{MODELS}:spin", inputs=[np.ones(2)], weights=tmp_path / "missing.pt")
    with pytest.raises(InputError, match="model"):
        ModelSpec.onnx(tmp_path / "missing.onnx", inputs=[np.ones(2)])


# --- environments -----------------------------------------------------------------------


def test_resolve_pins() -> None:
    current = {"numpy": "2.4.6", "torch": "2.13.0+cpu"}
    pins = resolve_pins(
        {"numpy": "current", "torch": "2.14.0", "onnx": ">=1.16", "Safe_Tensors": "0.5"},
        current=current,
    )
    assert pins == {
        "numpy": "==2.4.6",
        "torch": "==2.14.0",
        "onnx": ">=1.16",
        "safe-tensors": "==0.5",
    }
    with pytest.raises(InputError, match="not installed"):
        resolve_pins({"jax": "current"}, current=current)
    with pytest.raises(InputError, match="newest"):
        resolve_pins({"numpy": "newest"}, current=current)


def _isolated_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the index a test names: no pip config, find-links or extra indexes."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)


def _local_index(root: Path, name: str, versions: list[str]) -> str:
    page = root / name
    page.mkdir(parents=True)
    links = "".join(
        f'<a href="{name}-{v}-py3-none-any.whl">{name}-{v}-py3-none-any.whl</a>\n' for v in versions
    )
    (page / "index.html").write_text(f"<html><body>{links}</body></html>", encoding="utf-8")
    return root.as_uri()


def test_version_lag_against_a_package_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _isolated_pip(monkeypatch)
    major, minor = (int(p) for p in np.__version__.split(".")[:2])
    newer = [f"{major}.{minor + 1}.0", f"{major}.{minor + 2}.3", f"{major + 1}.0.0"]
    url = _local_index(tmp_path, "numpy", [np.__version__, *newer, f"{major + 1}.1.0rc1"])
    report = version_lag(["numpy"], index_url=url, max_minor_behind=2)
    finding = report[0]
    assert finding.code == "dependency.version_lag" and finding.severity is Severity.WARNING
    assert finding.evidence["newest"] == f"{major + 1}.0.0"
    assert finding.evidence["releases_behind"] == 3
    assert finding.evidence["minor_releases_behind"] == 3
    assert finding.evidence["major_releases_behind"] == 1
    assert "3 minor releases behind" in finding.message
    assert version_lag(["numpy"], index_url=url, max_minor_behind=5)[0].severity is Severity.INFO
    current = _local_index(tmp_path / "b", "numpy", [np.__version__])
    assert version_lag(["numpy"], index_url=current)[0].severity is Severity.OK


def test_version_lag_without_index_access_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _isolated_pip(monkeypatch)
    report = version_lag(["numpy"], index_url="http://127.0.0.1:9/simple", timeout=10)
    finding = report[0]
    assert finding.severity is Severity.INFO and finding.evidence["reachable"] is False
    assert "could not be reached" in finding.message
    assert isinstance(index_versions("numpy", index=Index("http://127.0.0.1:9/simple")), str)
    with pytest.raises(InputError, match="not installed"):
        version_lag(["surely-not-installed-package"])


def test_environment_cache_is_reused_and_failed_builds_leave_nothing(
    tmp_path: Path,
) -> None:
    """A real build from the package index (uv when installed, pip otherwise)."""
    cache = tmp_path / "cache"
    reqs = [f"numpy=={np.__version__}"]
    first = build_env(reqs, env_cache=cache)
    assert not first.cached and first.build_seconds > 0 and Path(first.python).exists()
    out = subprocess.run(
        [first.python, "-I", "-c", "import numpy, sys; print(numpy.__version__, sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [np.__version__, first.path]
    again = build_env(reqs, env_cache=cache)
    assert again.cached and again.path == first.path and again.build_seconds == 0
    with pytest.raises(StackError, match="silenttax-surely-no-such-package"):
        build_env(["silenttax-surely-no-such-package==0.0.1"], env_cache=cache)
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == [Path(first.path).name]


# --- end to end -------------------------------------------------------------------------


def test_a_a_stack_check_end_to_end() -> None:
    steps: list[str] = []
    c = compare_stacks(
        _spec(seconds=2e-4),
        candidate="current",
        pairs=3,
        rounds=8,
        warmup=0.05,
        progress=lambda f, m: steps.append(m),
    )
    assert c.aa and len(c.pair_log_ratios) == 3 and len(c.pair_within_se) == 3
    assert c.ci[0] <= c.ratio <= c.ci[1]
    assert c.outputs is not None and c.outputs.match and c.outputs.max_abs == 0
    assert c.baseline.packages == c.candidate.packages and not c.differences()
    assert len(c.baseline.load_seconds) == 3 and all(m > 1e-4 for m in c.candidate.medians)
    assert steps[0].startswith("preparing") and steps[-1].startswith("done")
    report = c.report()
    assert report.filter(code="dependency.stack_aa")
    assert report.filter(code="dependency.cold_start")
    again = silenttax.load(c.to_json())
    assert isinstance(again, StackComparison) and again == c


def test_a_slower_stack_is_called_slower_with_the_truth_in_its_ci(tmp_path: Path) -> None:
    """The same model on two environments whose ``spinlib`` differs: 1.3x the work."""
    old = layered_env(tmp_path / "old", {"spinlib.py": "FACTOR = 1.0\n"})
    new = layered_env(tmp_path / "new", {"spinlib.py": "FACTOR = 1.3\n", "extra_pkg.py": ""})
    c = compare_stacks(
        _spec("spin_by_package", seconds=4e-4),
        baseline=old,
        candidate=new,
        pairs=4,
        rounds=10,
        warmup=0.05,
    )
    assert c.verdict == "slower" and not c.aa
    assert c.ci[0] - 0.01 <= 1.3 <= c.ci[1] + 0.01, c.ci  # 1% for the call's own overhead
    finding = c.report().filter(code="dependency.upgrade_regression")[0]
    assert finding.severity is Severity.WARNING and "do not upgrade blindly" in finding.message
    assert c.baseline.source == c.candidate.source == "existing"


def test_changed_outputs_are_flagged(tmp_path: Path) -> None:
    a = layered_env(tmp_path / "a", {"spinlib.py": "FACTOR = 1.0\n"})
    b = layered_env(tmp_path / "b", {"spinlib.py": "FACTOR = 1.001\n"})
    spec = ModelSpec.python(
        f"{MODELS}:scaled_by_package", inputs=[np.arange(1.0, 5.0)], paths=[ROOT], threads=1
    )
    c = compare_stacks(spec, baseline=a, candidate=b, pairs=2, rounds=3, warmup=0)
    assert c.outputs is not None and not c.outputs.match
    assert c.outputs.max_rel == pytest.approx(1e-3, rel=1e-3)
    finding = c.report().filter(code="dependency.output_change")[0]
    assert finding.severity is Severity.WARNING


def test_rot_is_priced_with_a_cost_model(tmp_path: Path) -> None:
    from silenttax.cost import CostModel

    old = layered_env(tmp_path / "old", {"spinlib.py": "FACTOR = 1.5\n"})
    new = layered_env(tmp_path / "new", {"spinlib.py": "FACTOR = 1.0\n"})
    c = compare_stacks(
        _spec("spin_by_package", seconds=3e-4),
        baseline=old,
        candidate=new,
        pairs=3,
        rounds=8,
        warmup=0.05,
    )
    assert c.verdict == "faster"
    finding = c.report(cost=CostModel(price_per_hour=3.6)).filter(code="dependency.rot")[0]
    before, after = finding.evidence["cost_per_1k_before"], finding.evidence["cost_per_1k_after"]
    assert before > after > 0 and "saved per 1000 inferences" in finding.message
    assert before == pytest.approx(1000 * 3.6 / 3600 * finding.evidence["baseline_latency"])


def test_compare_stacks_rejects_bad_arguments() -> None:
    spec = _spec()
    with pytest.raises(InputError, match="pairs"):
        compare_stacks(spec, candidate="current", pairs=1)
    with pytest.raises(InputError, match="spec"):
        compare_stacks("model.onnx", candidate="current")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="candidate"):
        compare_stacks(spec, candidate="/no/such/python")
    with pytest.raises(InputError, match="candidate"):
        compare_stacks(spec, candidate={})


def mlp_onnx(path: Path, width: int = 256, layers: int = 4) -> Path:
    """A real ONNX MLP (MatMul + Relu layers) saved at ``path``."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = (rng.normal(size=(width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(helper.make_tensor(f"w{i}", TensorProto.FLOAT, w.shape, w.flatten()))
        nodes += [
            helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]),
            helper.make_node("Relu", [f"h{i}"], [f"r{i}"]),
        ]
        prev = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, width])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [8, width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def previous_release(name: str, installed: str) -> str:
    """The newest release of ``name`` older than ``installed`` on the package index."""
    from silenttax.benchmark._envs import release

    versions = index_versions(name)
    assert isinstance(versions, list), versions
    older = [v for v in versions if release(v) < release(installed)]
    assert older, f"no release of {name} older than {installed} on the index"
    return older[0]


@pytest.mark.slow
def test_a_real_onnxruntime_release_end_to_end(tmp_path: Path) -> None:
    """The same ONNX model on the installed onnxruntime and on the previous release,
    pulled by name from the package index into a built environment."""
    import onnxruntime

    other = previous_release("onnxruntime", onnxruntime.__version__)
    x = np.random.default_rng(1).normal(size=(8, 256)).astype(np.float32)
    spec = ModelSpec.onnx(mlp_onnx(tmp_path / "mlp.onnx"), inputs={"x": x}, threads=1)
    c = compare_stacks(spec, candidate={"onnxruntime": other}, pairs=6, env_cache=tmp_path / "envs")
    assert c.differences()["onnxruntime"] == (onnxruntime.__version__, other)
    assert c.candidate.source in ("uv", "pip") and not c.candidate.cached
    assert c.candidate.build_seconds > 0 and len(c.pair_log_ratios) == 6
    assert c.ci[0] <= c.ratio <= c.ci[1] and c.verdict in (
        "faster",
        "slower",
        "equivalent",
        "inconclusive",
    )
    assert c.outputs is not None and c.outputs.max_abs is not None and c.outputs.max_abs < 1e-3
    assert c.report().filter(code="dependency.version_change", subject="onnxruntime")
    # The cache: a second check reuses the environment.
    again = compare_stacks(
        spec, candidate={"onnxruntime": other}, pairs=2, rounds=5, env_cache=tmp_path / "envs"
    )
    assert again.candidate.cached and again.candidate.python == c.candidate.python
