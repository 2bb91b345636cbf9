"""The model audit: every module run on one model and its data, judged, saved, rendered."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from silenttax._deps import is_installed
from silenttax._state import State
from silenttax.audit._judge import MANIFEST, Check, Manifest, judge
from silenttax.audit._model import AuditModel, load_model, model_inputs
from silenttax.errors import InputError, SilentTaxError
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
        except SilentTaxError as exc:
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

    def finish(self) -> Audit:
        if self.progress is not None:
            self.progress("done", self.total, self.total)
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


class _Served(NamedTuple):
    """What one deployment's serving recorded."""

    trace: Any
    latency: Any
    cost: Any
    resources: Any


def _serve(
    run: _Run,
    make_handle: Callable[[Any], Callable[[Any], Any]],
    requests: Sequence[Any],
    *,
    latency_name: str,
    cost_name: str,
    pricing: Any,
    seconds: float,
    max_requests: int = 100_000,
) -> _Served:
    """Serve ``requests`` round-robin for about ``seconds`` through a fresh tracer,
    latency, cost and resource monitor each; the cost window is closed at the end."""
    from silenttax.cost import CostMonitor
    from silenttax.monitor import LatencyMonitor, ResourceMonitor
    from silenttax.trace import Tracer

    tracer = Tracer(max_traces=0)
    handle = make_handle(tracer)
    latency = LatencyMonitor(name=latency_name)
    cost = CostMonitor(pricing, name=cost_name)
    resources = ResourceMonitor(interval=0.05, name=latency_name)
    deadline = time.perf_counter() + seconds
    served = 0
    resources.start()
    try:
        while served < max_requests and (served < 200 or time.perf_counter() < deadline):
            request = requests[served % len(requests)]
            t0 = time.perf_counter()
            handle(request)
            busy = time.perf_counter() - t0
            latency.record(busy)
            cost.record(1, busy_seconds=busy)
            served += 1
    finally:
        resources.stop()
    cost.close_window()
    run.context.setdefault("served", {})[latency_name] = served
    return _Served(tracer.breakdown(), latency.state(), cost, resources.state())


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
        choice = None
        if result is not None:
            choice = result.best() or max(
                (c for c in result.candidates if c.usable),
                key=lambda c: c.speedup or 0,
                default=None,
            )
        if choice is None or choice.artifact is None:
            run.skip("gate", "no usable quantized candidate to gate against the fp32 model")
            return
        if choice.backend == "torch":
            candidate = bench.torch_fn(choice.artifact, model.torch_inputs())
        else:
            candidate = bench.onnx_fn(choice.artifact, model.feeds())
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
    progress: Progress | None = None,
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
        progress: ``progress(step, done, total)`` callback.

    Example (about 30 s, so not a doctest)::

        result = demo_audit(index=False)
        assert result.report.worst >= "warning"  # it finds problems, by design
        result.save("silenttax-audit")
    """
    from silenttax.audit import _demo
    from silenttax.cost import CostModel

    run = _Run("silenttax demo audit", progress, steps=11)
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

        served = {
            label: _serve(
                run,
                deployment(shadow),
                _demo.requests(table),
                latency_name=f"{label} /predict",
                cost_name="/predict",
                pricing=pricing,
                seconds=serve_seconds,
            )
            for label, table, shadow in (
                ("reference", reference, False),
                ("production", current, True),
            )
        }
        trace0, latency0, cost0, _ = served["reference"]
        trace1, latency1, cost1, resources1 = served["production"]
        cost1.baseline = cost0.windows[-1]
        run.check(
            "trace",
            current=run.keep("trace", trace1),
            baseline=run.keep("trace_reference", trace0),
        )
        run.check(
            "latency",
            current=run.keep("latency", latency1),
            baseline=run.keep("latency_reference", latency0),
        )
        run.add("check", "cost", cost1.state())
        run.add("check", "resources", resources1)
        run.check(
            "gate",
            subject="production vs reference deployment",
            baseline="latency_reference",
            current="latency",
        )

    run.step("train the demo model", train)
    run.step("serve both deployments", serve)
    _model_steps(
        run, model, max_time=max_time, pricing=pricing, methods=None, calibration=calibration
    )
    _environment_steps(run, index=index)
    run.context["inputs"] = model.inputs_from
    return run.finish()


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
    progress: Progress | None = None,
) -> Audit:
    """Audit a model (and its data): every module, judged, with snapshots to re-judge later.

    Args:
        model: An ONNX file (path or bytes), a ``torch.nn.Module``, or a
            ``pkg.module:attr`` import path of a module or a no-argument factory.
        reference: Reference data (what the model was built on): a dataframe,
            dict of arrays, or a .csv / .parquet path.
        current: Production data, same forms; drift and feature health need both.
        inputs: Model inputs for one call (arrays, positional). Default: the
            current data when its numeric columns match the model's single 2-D
            input, else synthesized from the declared inputs.
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
        progress: ``progress(step, done, total)`` callback.

    Raises:
        InputError: a model that cannot be loaded, unreadable data, or inputs that do
            not fit the model (named).

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
        loaded, inputs=list(inputs) if inputs else None, current=cur, batch_size=batch_size
    )
    previous = _previous(baseline) if baseline is not None else None
    run = _Run(f"silenttax audit: {loaded.name}", progress, steps=10 if ref is not None else 8)
    run.context["inputs"] = loaded.inputs_from
    if ref is not None:
        _data_steps(run, ref, cur, alpha=0.05)
    pricing = CostModel(price_per_hour=price_per_hour if price_per_hour is not None else 0.0)
    if price_per_hour is None:
        run.skip("cost", "no --price-per-hour: cost per 1000 inferences is priced at 0")

    def serve() -> None:
        served = _serve(
            run,
            lambda tracer: _call(loaded, tracer),
            [loaded.inputs],
            latency_name=loaded.name,
            cost_name=loaded.name,
            pricing=pricing,
            seconds=serve_seconds,
        )
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
        if previous is not None and "latency" in previous:
            run.check(
                "gate",
                subject="this audit vs the baseline audit",
                baseline=run.keep("latency_baseline", previous["latency"]),
                current=current,
            )

    run.step("serve the model", serve)
    calibration = None
    if not loaded.inputs_from.startswith("synthesized"):
        calibration = [loaded.torch_inputs() if loaded.torch_model is not None else loaded.inputs]
    _model_steps(
        run, loaded, max_time=max_time, pricing=pricing, methods=methods, calibration=calibration
    )
    _environment_steps(run, index=index)
    return run.finish()


def _previous(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """A previous audit's snapshots by name (for ``--baseline``)."""
    import silenttax
    from silenttax.audit._judge import read_manifest

    read_manifest(directory)  # a clear error when it is not an audit directory
    root = Path(directory) / "snapshots"
    return {p.stem: silenttax.load(p) for p in sorted(root.glob("*.json"))}


def _call(model: AuditModel, tracer: Any) -> Callable[[Any], Any]:
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

    session = onnx_session(model.onnx)
    names = model.input_names

    def handle_onnx(arrays: tuple[np.ndarray, ...]) -> Any:
        with tracer.span("call", route="model"):
            with tracer.span("feeds", stage="preprocess"):
                feeds = dict(zip(names, arrays, strict=True))
            with tracer.span("run", stage="model"):
                return session.run(None, feeds)

    return handle_onnx
