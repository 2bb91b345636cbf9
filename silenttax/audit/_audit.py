"""The model audit: every module run on one model and its data, judged, saved, rendered."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from silenttax._deps import is_installed
from silenttax._state import State
from silenttax.audit._judge import MANIFEST, Check, Manifest, judge, user_checks
from silenttax.audit._model import AuditModel, load_model, model_inputs
from silenttax.errors import InputError, MissingDependencyError, SilentTaxError
from silenttax.report import Report, Severity
from silenttax.report._codes import make_finding

__all__ = ["Audit", "Progress", "audit", "demo_audit"]

#: ``progress(step, done, total)``: called before each step and once at the end.
Progress = Callable[[str, int, int], None]


class Audit:
    """What an audit measured: its report, the snapshots behind it and how to re-judge them.

    ``save(directory)`` writes ``report.json`` (a :class:`~silenttax.Report`),
    ``report.html`` (self-contained), ``audit.json`` (the manifest) and every
    snapshot under ``snapshots/``; ``silenttax report DIRECTORY`` (or
    :func:`silenttax.audit.judge_directory`) re-judges them later without the
    model.
    """

    def __init__(self, report: Report, snapshots: dict[str, State], manifest: Manifest) -> None:
        self.report = report
        """Every finding, with the audit's context and environment."""
        self.snapshots = snapshots
        """Snapshot name -> snapshot (a component's state or a measurement)."""
        self.manifest = manifest
        """The checks: which rule judges which snapshots."""

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the report, the page, the manifest and the snapshots; returns the directory."""
        out = Path(directory)
        (out / "snapshots").mkdir(parents=True, exist_ok=True)
        for stale in (out / "snapshots").glob("*.json"):  # a previous audit's
            stale.unlink()
        for name, snapshot in self.snapshots.items():
            snapshot.save(out / "snapshots" / f"{name}.json")
        (out / MANIFEST).write_text(self.manifest.model_dump_json(indent=2), encoding="utf-8")
        self.report.save(out / "report.json", indent=2)
        (out / "report.html").write_text(self.report.to_html(), encoding="utf-8")
        return out

    def __repr__(self) -> str:
        return f"Audit({self.report.summary()}, {len(self.snapshots)} snapshots)"


class _Run:
    """Collects snapshots, checks and skipped steps while the audit runs."""

    def __init__(self, title: str, progress: Progress | None, steps: int) -> None:
        self.title = title
        self.progress = progress
        self.total = steps
        self.done = 0
        self.snapshots: dict[str, State] = {}
        self.checks: list[Check] = []
        self.extra: list[Any] = []
        self.context: dict[str, Any] = {"title": title, "steps": {}}

    def step(self, label: str, fn: Callable[[], None]) -> None:
        if self.progress is not None:
            self.progress(label, self.done, self.total)
        start = time.perf_counter()
        try:
            fn()
        except MissingDependencyError as exc:  # cannot run here: say why
            self.skip(label, str(exc))
        except Exception as exc:  # a part that fails is reported, never fatal to the audit
            self.skip(label, f"failed: {type(exc).__name__}: {exc}"[:500], Severity.WARNING)
        self.context["steps"][label] = round(time.perf_counter() - start, 3)
        self.done += 1

    def keep(self, name: str, snapshot: State) -> str:
        """Store a snapshot under ``name`` (``snapshots/<name>.json``); returns the name."""
        self.snapshots[name] = snapshot
        return name

    def check(self, rule: str, subject: str | None = None, **roles: str) -> None:
        """Judge the named snapshots with ``rule`` (see :data:`~silenttax.audit.RULES`)."""
        self.checks.append(Check(rule=rule, snapshots=roles, subject=subject))

    def add(self, rule: str, name: str, snapshot: State) -> None:
        """Keep one snapshot under ``name`` and judge it alone."""
        self.check(rule, current=self.keep(name, snapshot))

    def skip(self, step: str, why: str, severity: Severity = Severity.INFO) -> None:
        self.extra.append(
            make_finding(
                "audit.skipped",
                severity=severity,
                subject=step,
                message=f"{step}: not run — {why}",
                detector="audit.audit",
            )
        )

    def finish(self, checks: Sequence[Any] = ()) -> Audit:
        if self.progress is not None:
            self.progress("done", self.total, self.total)
        self.checks += user_checks(checks, self.snapshots)
        report = judge(self.checks, self.snapshots)
        env = self.snapshots.get("environment")
        skipped = Report(findings=self.extra)
        self.add("saved", "audit_notes", skipped)
        manifest = Manifest(title=self.title, checks=self.checks, context=self.context)
        report = (report | skipped).model_copy(
            update={
                "source": "audit.audit",
                "context": self.context,
                "environment": env.model_dump(mode="json") if env is not None else None,
            }
        )
        return Audit(report, self.snapshots, manifest)


# ------------------------------------------------------------------ the steps
def _data_steps(run: _Run, reference: Any, current: Any, alpha: float) -> None:
    from silenttax.drift import DriftDetector
    from silenttax.features import FeatureHealth

    def drift() -> None:
        detector = DriftDetector(alpha=alpha).fit(reference)
        run.check(
            "drift",
            reference=run.keep("drift_reference", detector.state()),
            current=run.keep("drift_current", detector.window(current)),
        )

    def health() -> None:
        ref = FeatureHealth().fit(reference)
        cur = FeatureHealth().fit(current)
        run.check(
            "health",
            reference=run.keep("health_reference", ref.state()),
            current=run.keep("health_current", cur.state()),
        )

    run.step("data drift", drift)
    run.step("feature health", health)


#: Rows of each side the model scores for the output-drift check.
SCORED_ROWS = 2000


def _prediction_step(
    run: _Run,
    model: AuditModel,
    reference: dict[str, Any],
    current: dict[str, Any],
    *,
    input_columns: Sequence[str] | None,
    target: str | None,
) -> None:
    """The model's outputs on the reference and on the current data, judged for drift
    (:class:`~silenttax.monitor.PredictionMonitor`): the label-free early warning."""
    import copy

    from silenttax.monitor import PredictionMonitor

    outputs = []
    for data in (reference, current):
        rows = min(SCORED_ROWS, len(next(iter(data.values()))))
        scored = copy.copy(model)
        model_inputs(scored, inputs=None, current=data, batch_size=rows,
                     input_columns=list(input_columns) if input_columns is not None else None,
                     target=target)  # fmt: skip
        if scored.inputs_from.startswith("synthesized"):
            run.skip("model outputs", "the model's inputs are not in the data: not scored")
            return
        outputs.append(_output_rows(_call(scored, _NoTracer())(scored.inputs)))
    kind = _output_kind(outputs[0])
    if kind is None:
        run.skip("model outputs", "the model's first output is not one value or one "
                 "vector per row: not judged")  # fmt: skip
        return
    baseline = PredictionMonitor(output=kind, name=model.name)
    baseline.record_many(outputs[0])
    monitor = PredictionMonitor(output=kind, name=model.name, reference=baseline)
    monitor.record_many(outputs[1])
    run.add("check", "predictions", monitor.state())


class _NoTracer:
    """A tracer that records nothing (scoring the data is not a measurement)."""

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[None]:
        yield


def _output_rows(result: Any) -> list[Any]:
    """The first output of one call as one item per row (a value, a label or a vector)."""
    first = result[0] if isinstance(result, list | tuple) else result
    if hasattr(first, "detach"):
        first = first.detach().cpu().numpy()
    array = np.asarray(first)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    return list(array) if array.ndim == 2 else array.tolist() if array.ndim == 1 else []


def _output_kind(rows: list[Any]) -> Literal["score", "class", "value"] | None:
    """What the rows are: labels, probability-like scores, values, or vectors (classes)."""
    if not rows:
        return None
    first = rows[0]
    if isinstance(first, np.ndarray):
        return "class" if first.ndim == 1 and first.size >= 2 else None
    if isinstance(first, bool | str | int | np.integer | np.str_):
        return "class"
    values = np.asarray(rows, dtype=float)
    finite = values[np.isfinite(values)]
    return "score" if finite.size and finite.min() >= 0 and finite.max() <= 1 else "value"


class _Served(NamedTuple):
    """What one deployment's serving recorded."""

    trace: Any
    latency: Any
    cost: Any
    resources: Any
    samples: list[float]


class _Arm(NamedTuple):
    """One deployment to serve: its handler factory, its requests and its labels."""

    label: str
    make_handle: Callable[[Any], Callable[[Any], Any]]
    requests: Sequence[Any]
    latency_name: str
    cost_name: str


#: Seconds of calls per block when deployments alternate.
_BLOCK_SECONDS = 0.01


def _serve(
    run: _Run,
    arms: Sequence[_Arm],
    *,
    pricing: Any,
    seconds: float,
    max_requests: int = 100_000,
) -> tuple[dict[str, _Served], Any]:
    """Serve each arm's requests round-robin for about ``seconds`` in all, through a fresh
    tracer, latency and cost monitor per arm (one resource monitor: one process).

    Several arms alternate in blocks of about 10 ms (A B, B A, ...) for the whole
    serve, so a neighbour that takes a core hits every arm alike; the machine's load
    is sensed every 0.1 s. Returns the arms' records and, for two arms, the
    interleaved :class:`~silenttax.benchmark.Comparison` (second arm vs first; its
    contended rounds are left out of its verdict), else None.
    """
    from silenttax._contention import RoundLoads, Sensor, summarize
    from silenttax._system import intra_op_threads
    from silenttax.benchmark import Comparison
    from silenttax.cost import CostMonitor
    from silenttax.monitor import LatencyMonitor, ResourceMonitor
    from silenttax.trace import Tracer

    tracers = [Tracer(max_traces=0) for _ in arms]
    handles = [arm.make_handle(tracer) for arm, tracer in zip(arms, tracers, strict=True)]
    # creep is a trajectory over many thousands of requests, never judged in a short serve
    latencies = [LatencyMonitor(name=arm.latency_name, creep=False) for arm in arms]
    costs = [CostMonitor(pricing, name=arm.cost_name) for arm in arms]
    samples: list[list[float]] = [[] for _ in arms]
    served = [0] * len(arms)
    resources = ResourceMonitor(interval=0.05, name=arms[-1].latency_name)

    # Each arm's cost runs on its own clock: the seconds it held the instance (its calls
    # back to back), as if it were the only deployment; interleaving shares the wall time.
    epoch = time.time()
    clocks = [epoch] * len(arms)

    def call(i: int) -> float:
        requests = arms[i].requests
        request = requests[served[i] % len(requests)]
        t0 = time.perf_counter()
        handles[i](request)
        busy = time.perf_counter() - t0
        latencies[i].record(busy)
        clocks[i] += busy
        costs[i].record(1, busy_seconds=busy, occupied_seconds=busy, now=clocks[i])
        samples[i].append(busy)
        served[i] += 1
        return busy

    per_call = max(max(call(i) for _ in range(3)) for i in range(len(arms)))  # warm, size
    for i in range(len(arms)):  # the warm-up calls are not the deployment's figures
        latencies[i].reset()
        samples[i].clear()
        costs[i] = CostMonitor(pricing, name=arms[i].cost_name)
        served[i] = 0
        clocks[i] = epoch
    block = max(1, min(200, round(_BLOCK_SECONDS / max(per_call, 1e-7))))
    sensed = RoundLoads(Sensor(needed=intra_op_threads() or 1))
    rounds = 0
    deadline = time.perf_counter() + seconds
    resources.start()
    try:
        while sum(served) < max_requests and (min(served) < 200 or time.perf_counter() < deadline):
            order = range(len(arms)) if rounds % 2 == 0 else reversed(range(len(arms)))
            for i in order:
                for _ in range(block):
                    call(i)
            rounds += 1
            sensed.after(rounds)
    finally:
        resources.stop()
    sensed.after(rounds, close=True)
    run.context.setdefault("machine", {})[arms[-1].latency_name] = summarize(sensed.loads)
    for arm, cost, count, clock in zip(arms, costs, served, clocks, strict=True):
        cost.close_window(now=clock)
        run.context.setdefault("served", {})[arm.latency_name] = count
    comparison = None
    if len(arms) == 2 and rounds >= 4:
        comparison = Comparison.from_rounds(
            samples[0],
            samples[1],
            rounds=rounds,
            calls_per_round=block,
            round_contended=sensed.flags,
            loads=sensed.loads,
            names=(arms[0].label, arms[1].label),
            wall_time=time.perf_counter() - deadline + seconds,
            threads=intra_op_threads(),
        )
    records = {
        arm.label: _Served(tracer.breakdown(), latency.state(), cost, None, arm_samples)
        for arm, tracer, latency, cost, arm_samples in zip(
            arms, tracers, latencies, costs, samples, strict=True
        )
    }
    last = arms[-1].label
    records[last] = records[last]._replace(resources=resources.state())
    return records, comparison


def _model_steps(
    run: _Run,
    model: AuditModel,
    *,
    max_time: float,
    pricing: Any,
    methods: Sequence[str] | None,
    calibration: list[tuple[Any, ...]] | None = None,
) -> None:
    from silenttax import benchmark as bench
    from silenttax.profile import profile_onnx, profile_torch

    state: dict[str, Any] = {}

    def export() -> None:
        if model.onnx is not None:
            return
        if not (is_installed("onnx") and is_installed("onnxscript")):
            run.skip("ONNX export", "needs onnx and onnxscript: pip install 'silenttax[onnx]'")
            return
        import tempfile

        from silenttax._deps import optional_import
        from silenttax._system import captured

        torch: Any = optional_import("torch")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.onnx"
            notes: list[str] = []
            with captured(notes):
                torch.onnx.export(
                    model.torch_model,
                    model.torch_inputs(),
                    str(path),
                    input_names=model.input_names or None,
                    dynamo=True,
                    external_data=False,
                )
            model.onnx = path.read_bytes()
        # the exporter may name the inputs after forward()'s arguments: feed those names
        from silenttax._models import onnx_session

        exported = [i.name for i in onnx_session(model.onnx).get_inputs()]
        if len(exported) == len(model.inputs):
            model.input_names = exported

    def profiles() -> None:
        if model.torch_model is not None:
            profile = profile_torch(model.torch_model, model.torch_inputs(), name=model.name)
            run.add("report", "profile_torch", profile)
        if model.onnx is not None:
            run.add(
                "report", "profile_onnx", profile_onnx(model.onnx, model.feeds(), name=model.name)
            )

    def quantization() -> None:
        subject = model.torch_model if model.torch_model is not None else model.onnx
        inputs = model.torch_inputs() if model.torch_model is not None else model.inputs
        from silenttax.quantize import study

        result = study(
            subject,
            inputs,
            methods=methods,
            calibration=calibration or None,
            max_time=max_time,
            name=model.name,
        )
        state["study"] = result
        roles = {"current": run.keep("quantization", result)}
        if pricing.price_per_hour > 0:
            roles["pricing"] = run.keep("pricing", pricing)
        run.check("quantization", **roles)

    def gate() -> None:
        fp32 = (
            bench.torch_fn(model.torch_model, model.torch_inputs())
            if model.torch_model is not None
            else bench.onnx_fn(model.onnx, model.feeds())
        )
        result = state.get("study")
        choice = result.best() if result is not None and not result.busy else None
        if choice is None or choice.artifact is None:
            why = (
                "the quantization study ran on a busy machine and recommended nothing"
                if result is not None and result.busy
                else "the quantization study recommended no candidate (keep fp32): "
                "nothing to gate against the fp32 model"
            )
            run.skip("gate", why)
            return
        if choice.backend == "torch":
            candidate = bench.torch_fn(choice.artifact, model.torch_inputs())
        else:  # in input order: the study's own export may name the inputs otherwise
            candidate = bench.onnx_fn(choice.artifact, list(model.inputs))
        comparison = bench.compare(
            fp32,
            candidate,
            min_time=min(1.0, max_time),
            max_time=max_time * 2,
            names=("fp32", choice.method),
        )
        run.check(
            "gate", subject=f"fp32 -> {choice.method}", current=run.keep("gate_model", comparison)
        )

    run.step("ONNX export", export)
    run.step("profiles (torch, ONNX Runtime)", profiles)
    run.step("quantization study", quantization)
    run.step("gate: fp32 vs the recommended candidate", gate)


#: The framework's default threads are a tax worth a WARNING when they make calls at
#: least this much slower than the threads that fit the free cores (lower CI bound).
THREAD_TAX = 1.2


def _threads_step(run: _Run, model: AuditModel, machine: dict[str, Any] | None) -> None:
    """Oversubscribed default threads: measure the default against what fits the free cores.

    Free cores are the usable cores minus the median cores other processes used
    while the model was served. When the framework's default intra-op threads
    exceed them, the model runs interleaved with the default and with the
    threads that fit (``dependency.threads``: the measured ratio with its CI;
    WARNING when even its lower bound is :data:`THREAD_TAX` or more).
    """
    import math

    from silenttax._interleave import interleave
    from silenttax._system import usable_cores
    from silenttax.benchmark import onnx_fn, torch_fn

    cores = usable_cores()
    others = float((machine or {}).get("other_cores_median") or 0.0)
    free = max(0.0, cores - others)
    fit = max(1, math.floor(free + 0.25))
    if model.torch_model is not None:
        from silenttax._deps import optional_import

        torch: Any = optional_import("torch")
        framework, knob = "torch", "torch.set_num_threads({n}) or OMP_NUM_THREADS={n}"
        default = int(torch.get_num_threads())
        call = torch_fn(model.torch_model, model.torch_inputs())

        def at(n: int) -> Callable[[], Any]:
            def run_at() -> Any:
                torch.set_num_threads(n)
                return call()

            return run_at

        fns = [at(default), at(fit)]
        restore: Callable[[], None] = lambda: torch.set_num_threads(default)  # noqa: E731
    else:
        framework = "onnxruntime"
        knob = "SessionOptions.intra_op_num_threads = {n} (or OMP_NUM_THREADS={n})"
        default = cores  # ONNX Runtime's default intra-op pool: one thread per core
        fns = [onnx_fn(model.onnx, model.feeds()), onnx_fn(model.onnx, model.feeds(), threads=fit)]
        restore = lambda: None  # noqa: E731
    figures = {
        "framework": framework,
        "default_threads": default,
        "fitting_threads": fit,
        "usable_cores": cores,
        "free_cores": round(free, 2),
        "other_cores": round(others, 2),
    }
    run.context["threads"] = figures
    if default <= fit:
        finding = make_finding(
            "dependency.threads",
            severity=Severity.OK,
            subject=framework,
            message=(
                f"{framework}'s {default} intra-op threads fit the {free:.1f} free cores "
                f"({cores} usable, other processes used {others:.1f})"
            ),
            metric="threads",
            value=float(default),
            threshold=float(fit),
            evidence=figures,
            detector="audit.audit",
        )
    else:
        try:
            session = interleave(fns, [f"{default} threads", f"{fit} threads"], max_time=1.0)
        finally:
            restore()
        if session.errors or session.rounds < 3:
            raise SilentTaxError(f"threads: could not measure ({session.errors or 'no rounds'})")
        ratio, lo, hi = session.ratio(1, 0)  # default / fitting: above 1, the default is slower
        severity = Severity.WARNING if lo >= THREAD_TAX else Severity.INFO
        setting = knob.format(n=fit)
        finding = make_finding(
            "dependency.threads",
            severity=severity,
            subject=framework,
            message=(
                f"{framework}'s default {default} intra-op threads on {free:.1f} free cores "
                f"({cores} usable, other processes used {others:.1f}): each call "
                + (
                    f"{ratio:.2g}x slower than with {fit} (95% CI {lo:.2g}-{hi:.2g})"
                    if lo > 1
                    else f"{1 / ratio:.2g}x faster than with {fit} (95% CI "
                    f"{1 / hi:.2g}-{1 / lo:.2g}): the default is no tax here"
                    if hi < 1
                    else f"{ratio:.2f}x the time with {fit} (95% CI {lo:.2f}-{hi:.2f}): "
                    "no difference measured"
                )
            ),
            metric="thread_slowdown",
            value=ratio,
            baseline=1.0,
            threshold=THREAD_TAX,
            effect_size=ratio,
            evidence={**figures, "ci": [lo, hi], "rounds": session.rounds},
            recommendation=(
                f"Pin the threads the serving host can give: {setting}; the default asks "
                "for every core, and when a neighbour holds one the threads spin and wait."
                if severity >= Severity.WARNING
                else None
            ),
            detector="audit.audit",
        )
    run.add("saved", "threads", Report(findings=[finding], source="audit.threads"))


def _environment_steps(run: _Run, *, index: bool) -> None:
    from silenttax.benchmark import environment, version_lag

    def env() -> None:
        run.add("report", "environment", environment())

    def lag() -> None:
        if not index:
            run.skip("version lag", "the package index was not asked (--offline)")
            return
        packages = [p for p in ("torch", "onnxruntime", "onnx", "numpy") if is_installed(p)]
        report = version_lag(packages, timeout=5.0)
        run.add("saved", "version_lag", report)

    run.step("environment", env)
    run.step("version lag", lag)


# ------------------------------------------------------------------ entry points
def demo_audit(
    *,
    max_time: float = 1.0,
    serve_seconds: float = 1.0,
    index: bool = True,
    price_per_hour: float = 0.10,
    threads: int | None = None,
    progress: Progress | None = None,
    checks: Sequence[Any] = (),
) -> Audit:
    """The demo audit, offline: a real model on real data with decay and a shadow stage.

    The bundled diabetes study split by sex (reference vs production), the
    production side decayed (``bmi`` as padded strings, ``bp`` nulls rising);
    an MLP trained on the reference, exported to ONNX, served by a pipeline
    whose ``audit_log`` validation stage the reference deployment did not
    have; latency, cost and resources of both deployments; torch and ONNX
    Runtime profiles; a quantization study (the simpler alternative); the gate
    fp32 vs the recommended candidate; environment and version lag.

    Args:
        max_time: Seconds of measurement per quantization candidate (the gate gets twice).
        serve_seconds: Seconds each deployment serves requests.
        index: Ask the package index for newer versions (False: offline).
        price_per_hour: Assumed price of the serving instance (USD/hour).
        threads: torch intra-op threads for every measurement (default: torch's own
            setting, stated in ``report.context["threads"]``).
        progress: ``progress(step, done, total)`` callback.
        checks: Checks of your own, as for :func:`audit`.

    Example (about 30 s, so not a doctest)::

        result = demo_audit(index=False)
        assert result.report.worst >= "warning"  # it finds problems, by design
        result.save("silenttax-audit")
    """
    from silenttax.audit import _demo
    from silenttax.cost import CostModel

    run = _Run("silenttax demo audit", progress, steps=12)
    run.context["note"] = _demo.DEMO_NOTE
    reference, current = _demo.demo_tables()
    _data_steps(
        run,
        {c: reference[c] for c in _demo.FEATURES},
        {c: current[c] for c in _demo.FEATURES},
        alpha=0.05,
    )
    calibration: list[tuple[Any, ...]] = []
    model = AuditModel(name="progression-mlp")
    pricing = CostModel(price_per_hour=price_per_hour)

    def train() -> None:
        from silenttax._deps import optional_import

        torch: Any = optional_import("torch", purpose="silenttax audit --demo")
        model.torch_model = _demo.demo_model(reference)
        model.input_names = ["features"]
        rows = np.column_stack([np.asarray(reference[c], dtype=np.float32) for c in _demo.FEATURES])
        model.inputs = (np.ascontiguousarray(rows[:64]),)
        model.inputs_from = "the reference data's first 64 rows (batch of 64)"
        calibration.extend((torch.from_numpy(rows[i : i + 64]),) for i in (64, 128))

    def serve() -> None:
        fill = {c: float(np.nanmean(np.asarray(reference[c], dtype=float))) for c in _demo.FEATURES}

        def deployment(shadow: bool) -> Callable[[Any], Callable[[Any], Any]]:
            return lambda tracer: _demo.pipeline(model.torch_model, tracer, fill, audit_log=shadow)

        arms = [
            _Arm(label, deployment(shadow), _demo.requests(table), f"{label} /predict", "/predict")
            for label, table, shadow in (
                ("reference", reference, False),
                ("production", current, True),
            )
        ]
        served, comparison = _serve(run, arms, pricing=pricing, seconds=2 * serve_seconds)
        trace0, latency0, cost0, _, _ = served["reference"]
        trace1, latency1, cost1, resources1, _ = served["production"]
        cost1.baseline = cost0.windows[-1]
        machine = {"machine": run.keep("serve_comparison", comparison)} if comparison else {}
        run.check(
            "trace",
            current=run.keep("trace", trace1),
            baseline=run.keep("trace_reference", trace0),
            **machine,
        )
        run.check(
            "latency",
            current=run.keep("latency", latency1),
            baseline=run.keep("latency_reference", latency0),
            **machine,
        )
        run.check("check", current=run.keep("cost", cost1.state()), **machine)
        run.add("check", "resources", resources1)
        if comparison is not None:
            run.check(
                "gate", subject="production vs reference deployment", current="serve_comparison"
            )

    def threads_fit() -> None:
        _threads_step(run, model, run.context.get("machine", {}).get("production /predict"))

    with _pinned(run, threads):
        run.step("train the demo model", train)
        run.step("serve both deployments", serve)
        run.step("threads", threads_fit)
        _model_steps(
            run, model, max_time=max_time, pricing=pricing, methods=None, calibration=calibration
        )
        _environment_steps(run, index=index)
    run.context["inputs"] = model.inputs_from
    return run.finish(checks)


def audit(
    model: Any,
    *,
    reference: Any = None,
    current: Any = None,
    inputs: Sequence[np.ndarray] | None = None,
    batch_size: int = 1,
    price_per_hour: float | None = None,
    baseline: str | os.PathLike[str] | None = None,
    max_time: float = 1.0,
    serve_seconds: float = 1.0,
    methods: Sequence[str] | None = None,
    index: bool = True,
    name: str | None = None,
    threads: int | None = None,
    input_columns: Sequence[str] | None = None,
    target: str | None = None,
    progress: Progress | None = None,
    checks: Sequence[Any] = (),
    capacity_slo: float | None = None,
    required_rate: float | None = None,
    capacity_options: Mapping[str, Any] | None = None,
) -> Audit:
    """Audit a model (and its data): every module, judged, with snapshots to re-judge later.

    Args:
        model: An ONNX file (path or bytes), a ``torch.nn.Module``, or a
            ``pkg.module:attr`` import path of a module or a no-argument factory.
        reference: Reference data (what the model was built on): a dataframe,
            dict of arrays, or a .csv / .parquet path.
        current: Production data, same forms; drift and feature health need both.
        inputs: Model inputs for one call (arrays, positional). Default: from the
            current data by input name (one input per column, with the model's
            dtype: strings as strings); a single 2-D input takes ``input_columns``,
            or the data's usable columns by position when exactly as many remain
            (an ``audit.inputs`` WARNING names the order); inputs absent from the
            data are synthesized and named. Target columns are never fed.
        batch_size: Rows per call for data-derived inputs; size of dynamic
            dimensions for synthesized ones.
        price_per_hour: Price of one serving instance per hour; prices the cost
            findings (without it, cost is measured as throughput only).
        baseline: A previous audit's directory: the latency is gated against it
            and the trace compared with its trace.
        max_time: Seconds per quantization candidate (the gate gets twice).
        serve_seconds: Seconds the model is served call by call.
        methods: Quantization methods (default: every available one).
        index: Ask the package index for newer versions (False: offline).
        name: Label of the model in the report.
        input_columns: The data columns of the model's single 2-D input, in order.
        target: The data's target column (never fed to the model); columns named
            ``label``, ``target``, ``y``, ``class``, ``outcome`` are never fed either.
        threads: torch intra-op threads for every measurement: what the deployment
            will use (default: torch's own setting; stated in
            ``report.context["threads"]``). Whether the default oversubscribes the
            free cores is measured either way (``dependency.threads``).
        progress: ``progress(step, done, total)`` callback.
        checks: Checks of your own (:mod:`silenttax.component`): functions
            ``(snapshots by name) -> Report`` or ``"pkg.module:function"``, given every
            snapshot the audit kept (``drift``, ``serving``, ...); recorded in the
            manifest, so ``silenttax report DIR`` runs them again. One that raises is
            a ``stability.check_failed`` finding.
        capacity_slo: A p99 latency SLO (seconds): adds a capacity section — the model
            driven open-loop in this process (:func:`silenttax.load.capacity`) for the
            highest rate meeting it, with its interval, curve, knee and tail
            amplification (``load.*`` findings; the HTML page plots the curve).
        required_rate: Requests per second the model must serve within the SLO
            (``load.capacity`` WARNING below it).
        capacity_options: Keyword arguments for :func:`silenttax.load.capacity`
            (``probe``, ``confirm``, ``max_probes``, ...).

    Raises:
        InputError: a model that cannot be loaded, unreadable data, or inputs that do
            not fit the model (named), or a check that does not import.

    Example (it measures for tens of seconds, so not a doctest)::

        from silenttax.audit import audit

        result = audit("model.onnx", reference="ref.parquet", current="today.csv",
                       price_per_hour=0.34, index=False)
        result.save("audit-2026-12")  # then: silenttax report audit-2026-12
        print(result.report.problems())
    """
    from silenttax._files import read_table
    from silenttax.cost import CostModel

    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size!r}")
    if (reference is None) != (current is None):
        raise InputError("reference and current go together: give both, or neither")
    loaded = load_model(model, name=name)

    def table(data: Any, argument: str) -> Any:
        from silenttax._input import to_table

        if isinstance(data, str | os.PathLike):
            data = read_table(Path(data))
        return to_table(data, argument=argument).columns

    ref = table(reference, "reference") if reference is not None else None
    cur = table(current, "current") if current is not None else None
    model_inputs(
        loaded,
        inputs=list(inputs) if inputs else None,
        current=cur,
        batch_size=batch_size,
        input_columns=list(input_columns) if input_columns is not None else None,
        target=target,
    )
    if capacity_slo is not None and not (
        isinstance(capacity_slo, int | float) and math.isfinite(capacity_slo) and capacity_slo > 0
    ):
        raise InputError(f"capacity_slo must be positive seconds, got {capacity_slo!r}")
    if capacity_slo is None and (required_rate is not None or capacity_options):
        raise InputError("required_rate and capacity_options need capacity_slo")
    previous = _previous(baseline) if baseline is not None else None
    steps = (13 if ref is not None else 10) + (capacity_slo is not None)
    run = _Run(f"silenttax audit: {loaded.name}", progress, steps=steps)
    run.context["inputs"] = loaded.inputs_from
    run.add("saved", "inputs", _inputs_finding(loaded))
    if ref is not None:
        _data_steps(run, ref, cur, alpha=0.05)
    pricing = CostModel(price_per_hour=price_per_hour if price_per_hour is not None else 0.0)
    if price_per_hour is None:
        run.skip("cost", "no --price-per-hour: cost per 1000 inferences is priced at 0")

    def serve() -> None:
        records, _ = _serve(
            run,
            [_Arm(loaded.name, lambda tracer: _call(loaded, tracer, threads), [loaded.inputs],
                  loaded.name, loaded.name)],
            pricing=pricing,
            seconds=serve_seconds,
        )  # fmt: skip
        served = records[loaded.name]
        trace = run.keep("trace", served.trace)
        current = run.keep("latency", served.latency)
        if previous is not None and "trace" in previous:
            run.check(
                "trace", current=trace, baseline=run.keep("trace_baseline", previous["trace"])
            )
        else:
            run.check("trace", current=trace)
        run.check("latency", current=current)
        run.add("check", "cost", served.cost.state())
        run.add("check", "resources", served.resources)

    def threads_fit() -> None:
        _threads_step(run, loaded, run.context.get("machine", {}).get(loaded.name))

    calibration = None
    if not loaded.inputs_from.startswith("synthesized"):
        calibration = [loaded.torch_inputs() if loaded.torch_model is not None else loaded.inputs]

    def across_runs() -> None:
        names = _fresh_runs(run, loaded, threads)
        if previous is None or not names:
            return
        before = sorted(k for k in previous if k.startswith("run_"))
        if not before:
            run.skip(
                "gate vs the baseline audit",
                "the baseline audit has no fresh-process runs (made by an older silenttax, or "
                "of an in-memory torch module): its latency cannot be compared across runs",
            )
            return
        roles = {f"baseline_{i}": run.keep(f"baseline_{k}", previous[k]) for i, k in
                 enumerate(before)}  # fmt: skip
        roles.update({f"current_{i}": name for i, name in enumerate(names)})
        run.check(
            "gate_runs",
            subject=(
                f"this audit vs the baseline audit (across runs: {len(names)} vs "
                f"{len(before)} fresh processes)"
            ),
            **roles,
        )

    def predictions() -> None:
        assert ref is not None and cur is not None
        _prediction_step(run, loaded, ref, cur, input_columns=input_columns, target=target)

    with _pinned(run, threads):
        run.step("serve the model", serve)
        if ref is not None and loaded.inputs_from.startswith("the current data"):
            run.step("model outputs", predictions)
        elif ref is not None:
            run.skip("model outputs", "the model's inputs were not read from the data: its "
                     "outputs on the reference and current data cannot be compared")  # fmt: skip
        run.step("threads", threads_fit)
        if capacity_slo is not None:
            options = dict(capacity_options or {})
            run.step(
                "capacity under load",
                lambda: _capacity_step(run, loaded, threads, capacity_slo, required_rate, options),
            )
        run.step("runs in fresh processes", across_runs)
        _model_steps(
            run, loaded, max_time=max_time, pricing=pricing, methods=methods,
            calibration=calibration,
        )  # fmt: skip
        _environment_steps(run, index=index)
    return run.finish(checks)


def _capacity_step(run: _Run, model: AuditModel, threads: int | None, slo: float,
                   required_rate: float | None, options: dict[str, Any]) -> None:  # fmt: skip
    """The model's capacity at a p99 SLO, driven open-loop in this process."""
    from silenttax.load import as_target, capacity
    from silenttax.trace import Tracer

    handle = _call(model, Tracer(enabled=False), threads)
    inputs = model.inputs
    target = as_target(lambda: handle(inputs), name=model.name)
    found = capacity(target, slo_p99=slo, **options)
    run.context["capacity"] = {"verdict": found.verdict, "capacity": found.capacity,
                               "ci": found.ci, "slo_p99": slo}  # fmt: skip
    run.add("saved", "capacity", found.report(required_rate=required_rate))


#: Fresh processes the model is re-run in, so a later audit can gate against this one
#: across runs (between-process variance in the interval).
RUNS = 3


def _fresh_runs(
    run: _Run, model: AuditModel, threads: int | None, *, runs: int = RUNS, seconds: float = 0.5
) -> list[str]:
    """Time the bare model in ``runs`` fresh worker processes, one after another; keep each
    as a BenchmarkResult snapshot ``run_<i>``. Returns their names ([] when the model
    cannot travel to another process: an in-memory torch module)."""
    from silenttax._contention import Sensor, summarize
    from silenttax.benchmark import ModelSpec, fresh_runs

    if model.torch_model is None and model.onnx is not None:
        spec = ModelSpec.onnx(model.onnx, inputs=model.feeds(), threads=threads)
    elif model.factory is not None:
        spec = ModelSpec.torch(model.factory, inputs=list(model.inputs), threads=threads)
    else:
        run.skip(
            "runs in fresh processes",
            "an in-memory torch module cannot be rebuilt in another process (audit it by "
            "import path 'pkg.module:factory' to make it a baseline across runs)",
        )
        return []
    sensor = Sensor(needed=threads or 1)
    mark = sensor.mark()
    results = fresh_runs(spec, runs=runs, seconds=seconds, name=model.name)
    loads = [sensor.since(mark)]
    names = [run.keep(f"run_{i}", result) for i, result in enumerate(results)]
    run.context["runs"] = {"processes": len(names), "machine": summarize(loads)}
    return names


@contextlib.contextmanager
def _pinned(run: _Run, threads: int | None) -> Iterator[None]:
    """Every measurement of the audit at ``threads`` torch intra-op threads (None: as set)."""
    from silenttax._system import intra_op_threads, torch_threads

    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise InputError(f"threads must be an int >= 1, got {threads!r}")
    if threads is not None and is_installed("torch"):
        from silenttax._deps import optional_import

        optional_import("torch")  # so the setting takes before the model is built
    with torch_threads(threads):
        run.context["pinned_threads"] = threads if threads is not None else intra_op_threads()
        yield


def _inputs_finding(model: AuditModel) -> Report:
    """``audit.inputs``: which data fed the model (WARNING when by position or synthesized)."""
    severity = Severity.WARNING if model.inputs_warn else Severity.INFO
    return Report(
        findings=[
            make_finding(
                "audit.inputs",
                severity=severity,
                subject=model.name,
                message=f"model inputs: {model.inputs_from}"
                + "".join(f"; {note}" for note in model.notes),
                evidence={"inputs_from": model.inputs_from, "notes": list(model.notes)},
                recommendation=(
                    "Name the columns the model was trained on: --input-columns a,b,... "
                    "(input_columns=[...]), or give --inputs FILE.npy."
                    if model.inputs_warn
                    else None
                ),
                detector="audit.audit",
            )
        ],
        source="audit.inputs",
    )


def _previous(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """A previous audit's snapshots by name (for ``--baseline``)."""
    import silenttax
    from silenttax.audit._judge import read_manifest

    read_manifest(directory)  # a clear error when it is not an audit directory
    root = Path(directory) / "snapshots"
    return {p.stem: silenttax.load(p) for p in sorted(root.glob("*.json"))}


def _call(model: AuditModel, tracer: Any, threads: int | None = None) -> Callable[[Any], Any]:
    """One traced call: convert the inputs, run the model, convert the outputs."""
    if model.torch_model is not None:
        from silenttax._deps import optional_import

        torch: Any = optional_import("torch")
        module = model.torch_model

        def handle_torch(arrays: tuple[np.ndarray, ...]) -> Any:
            with tracer.span("call", route="model"):
                with tracer.span("to_tensor", stage="preprocess"):
                    args = tuple(torch.from_numpy(a) for a in arrays)
                with tracer.span("forward", stage="model"), torch.inference_mode():
                    out = module(*args)
                with tracer.span("to_numpy", stage="postprocess"):
                    return out.numpy() if hasattr(out, "numpy") else out

        return handle_torch
    from silenttax._models import onnx_session

    session = onnx_session(model.onnx, threads=threads)
    names = model.input_names

    def handle_onnx(arrays: tuple[np.ndarray, ...]) -> Any:
        with tracer.span("call", route="model"):
            with tracer.span("feeds", stage="preprocess"):
                feeds = dict(zip(names, arrays, strict=True))
            with tracer.span("run", stage="model"):
                return session.run(None, feeds)

    return handle_onnx
