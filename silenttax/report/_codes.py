"""The registry of finding codes: every code a silenttax module emits, in one place.

Codes are lower-case dotted ``area.what`` ids. Modules build findings through
:func:`make_finding`, which takes the category from this registry, so a code
always lands in the same category and an unregistered code fails loudly in
development instead of reaching a dashboard. Users building their own
findings may use any code matching :data:`~silenttax.report.CODE_PATTERN`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypedDict, Unpack

from silenttax.report._enums import Category, Severity
from silenttax.report._finding import CODE_PATTERN, Finding

__all__ = ["CodeInfo", "finding_codes", "make_finding", "register_code"]


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """One registered finding code."""

    code: str
    """The dotted id, e.g. ``drift.numeric``."""
    category: Category | str
    """The category every finding with this code has (a user's code may have its own)."""
    summary: str
    """What the code means, one sentence (shown in the docs)."""
    recommendation: str | None = None
    """What to do about it: the findings' ``recommendation`` when they give none."""


_C = Category
#: Every code silenttax emits. Add new codes here (tests check uniqueness and format).
CODES: tuple[CodeInfo, ...] = (
    # silenttax.monitor: LatencyMonitor
    CodeInfo("latency.quantile", _C.LATENCY, "A latency quantile with its confidence interval."),
    CodeInfo(
        "latency.regression",
        _C.LATENCY,
        "A latency quantile compared with a baseline, judged from confidence bounds.",
    ),
    CodeInfo("latency.slo", _C.LATENCY, "A latency quantile compared with its SLO."),
    CodeInfo(
        "latency.creep",
        _C.LATENCY,
        "A sustained rise of p50 or p95 in what a monitor recorded: 20% or more, held "
        "(WARNING while it holds, INFO once it ended).",
    ),
    CodeInfo(
        "latency.hiccup",
        _C.LATENCY,
        "A rise of p50 or p95 that came back before it was creep (INFO).",
    ),
    CodeInfo("latency.no_data", _C.LATENCY, "Nothing was recorded, so nothing was checked."),
    # silenttax.benchmark
    CodeInfo("latency.benchmark", _C.LATENCY, "Latency figures of one benchmarked function."),
    CodeInfo("latency.ab_regression", _C.LATENCY, "A/B latency ratio with its CI."),
    CodeInfo("dependency.environment", _C.DEPENDENCY, "The environment a measurement ran on."),
    CodeInfo("dependency.environment_diff", _C.DEPENDENCY, "Two environments that differ."),
    CodeInfo("dependency.version_change", _C.DEPENDENCY, "A package version that differs."),
    CodeInfo("dependency.thread_change", _C.DEPENDENCY, "A thread setting that differs."),
    CodeInfo("dependency.platform_change", _C.DEPENDENCY, "An interpreter/OS/CPU difference."),
    CodeInfo(
        "dependency.threads", _C.DEPENDENCY, "Threads that oversubscribe the usable or free CPUs."
    ),
    CodeInfo("dependency.ort_spinning", _C.DEPENDENCY, "torch and ONNX Runtime in one process."),
    CodeInfo("dependency.load", _C.DEPENDENCY, "A machine too loaded for clean timings."),
    # silenttax.benchmark: stack checks
    CodeInfo(
        "dependency.version_lag",
        _C.DEPENDENCY,
        "An installed package against the newest release on the package index.",
    ),
    CodeInfo(
        "dependency.rot",
        _C.DEPENDENCY,
        "The same model is faster on the newer stack: staying on the old one is a tax.",
    ),
    CodeInfo(
        "dependency.upgrade_regression",
        _C.DEPENDENCY,
        "The same model is slower on the newer stack: do not upgrade blindly.",
    ),
    CodeInfo(
        "dependency.stack_equivalent",
        _C.DEPENDENCY,
        "The two stacks are equivalent within the margin (TOST over pairs of processes).",
    ),
    CodeInfo(
        "dependency.stack_inconclusive",
        _C.DEPENDENCY,
        "A stack check that did not resolve, with the pairs that would resolve it.",
    ),
    CodeInfo(
        "dependency.stack_aa",
        _C.DEPENDENCY,
        "An A/A self-test of a stack check: identical stacks must not differ.",
    ),
    CodeInfo(
        "dependency.output_change",
        _C.DEPENDENCY,
        "The two stacks' outputs on the same inputs, compared within a tolerance.",
    ),
    CodeInfo(
        "dependency.cold_start",
        _C.DEPENDENCY,
        "Load and first-call times of each stack, kept apart from steady state.",
    ),
    # silenttax.profile
    CodeInfo("model_bloat.profile", _C.MODEL_BLOAT, "Where a model's step time goes."),
    CodeInfo("model_bloat.data_movement", _C.MODEL_BLOAT, "Step time spent moving data."),
    CodeInfo("model_bloat.python_loop", _C.MODEL_BLOAT, "Per-item ops: a Python loop."),
    CodeInfo("model_bloat.framework_overhead", _C.MODEL_BLOAT, "Step time outside any op."),
    CodeInfo("model_bloat.quantizable", _C.MODEL_BLOAT, "Dense-compute bound: try int8."),
    # silenttax.quantize
    CodeInfo("quantize.recommendation", _C.COST, "The quantization candidate to use, if any."),
    CodeInfo("quantize.cost", _C.COST, "Cost per 1000 inferences before and after quantizing."),
    CodeInfo("quantize.candidate", _C.MODEL_BLOAT, "One measured quantization candidate."),
    CodeInfo("quantize.no_op", _C.MODEL_BLOAT, "A quantization method that changed nothing."),
    CodeInfo("quantize.failed", _C.MODEL_BLOAT, "A quantization method that failed."),
    CodeInfo("quantize.skipped", _C.MODEL_BLOAT, "A quantization method that could not run."),
    # silenttax.monitor: ResourceMonitor
    CodeInfo("resource.memory", _C.RESOURCE, "Memory of the process (RSS, USS, per inference)."),
    CodeInfo("resource.memory_growth", _C.RESOURCE, "A significant and material memory trend."),
    CodeInfo("resource.cpu", _C.RESOURCE, "CPU utilisation of the process; saturation."),
    CodeInfo("resource.gpu", _C.RESOURCE, "Utilisation and memory of one GPU."),
    CodeInfo("resource.no_data", _C.RESOURCE, "Too few resource samples to judge."),
    # silenttax.cost
    CodeInfo("cost.per_1k", _C.COST, "Realized cost per 1000 inferences."),
    CodeInfo(
        "cost.per_1k_increase",
        _C.COST,
        "Cost per 1000 inferences vs a baseline, decomposed into price, throughput, utilisation.",
    ),
    CodeInfo("cost.what_if", _C.COST, "Cost before and after a throughput change."),
    CodeInfo("cost.no_data", _C.COST, "No served inferences yet, so no cost to judge."),
    CodeInfo("cost.idle", _C.COST, "The latest windows served (almost) nothing: not judged."),
    # silenttax.drift
    CodeInfo("drift.dataset", _C.DATA_DRIFT, "How many columns drifted (dataset summary)."),
    CodeInfo("drift.numeric", _C.DATA_DRIFT, "Distribution drift of a numeric column."),
    CodeInfo("drift.categorical", _C.DATA_DRIFT, "Distribution drift of a label column."),
    CodeInfo("drift.boolean", _C.DATA_DRIFT, "Change in the rate of a boolean column."),
    CodeInfo("drift.null_rate", _C.DATA_DRIFT, "Change in a column's missing-value rate."),
    CodeInfo("drift.non_finite", _C.DATA_DRIFT, "Change in a column's rate of +-inf."),
    CodeInfo("drift.all_null", _C.DATA_DRIFT, "A column with no usable value on one side."),
    CodeInfo("drift.missing_column", _C.DATA_DRIFT, "A reference column absent from the data."),
    CodeInfo("drift.type_change", _C.DATA_DRIFT, "A column that arrived with another type."),
    CodeInfo("drift.skipped", _C.DATA_DRIFT, "A column not tested for drift (e.g. datetimes)."),
    # silenttax.monitor.PredictionMonitor
    CodeInfo(
        "prediction.drift",
        _C.DATA_DRIFT,
        "Drift of the model's own outputs (score or value distribution) against a reference "
        "window: the label-free early warning.",
    ),
    CodeInfo(
        "prediction.class_rate",
        _C.DATA_DRIFT,
        "A change in the model's positive rate or class rates against a reference window.",
    ),
    CodeInfo(
        "prediction.invalid",
        _C.DATA_DRIFT,
        "Model outputs that are unreadable, missing or not finite, or a change in their rate.",
    ),
    # silenttax.features
    CodeInfo("feature.ok", _C.FEATURE_HEALTH, "A column that matches the reference schema."),
    CodeInfo("feature.missing_column", _C.FEATURE_HEALTH, "A schema column absent from the data."),
    CodeInfo("feature.unexpected_column", _C.FEATURE_HEALTH, "A column not in the schema."),
    CodeInfo("feature.type_change", _C.FEATURE_HEALTH, "A column whose type changed."),
    CodeInfo("feature.numeric_string", _C.FEATURE_HEALTH, "Numbers arriving as strings."),
    CodeInfo("feature.whitespace", _C.FEATURE_HEALTH, "Strings padded with whitespace."),
    CodeInfo("feature.null_rate", _C.FEATURE_HEALTH, "More missing values (incl. sentinels)."),
    CodeInfo("feature.non_finite", _C.FEATURE_HEALTH, "More infinite values."),
    CodeInfo("feature.out_of_range", _C.FEATURE_HEALTH, "Values outside the reference range."),
    CodeInfo("feature.precision", _C.FEATURE_HEALTH, "Rounding or noise digits."),
    CodeInfo("feature.new_category", _C.FEATURE_HEALTH, "Values never seen in the reference."),
    CodeInfo("feature.vanished_category", _C.FEATURE_HEALTH, "Reference values that vanished."),
    CodeInfo("feature.cardinality", _C.FEATURE_HEALTH, "Far more distinct values than before."),
    CodeInfo("feature.constant", _C.FEATURE_HEALTH, "A column that became constant."),
    # silenttax.trace
    CodeInfo("pipeline.shadow_overhead", _C.PIPELINE, "Share of request time outside the model."),
    CodeInfo("pipeline.stage_time", _C.PIPELINE, "Time of one stage per request (vs baseline)."),
    CodeInfo(
        "pipeline.queueing",
        _C.PIPELINE,
        "Share of request time spent waiting before the handler ran (thread pool, event "
        "loop, GIL), told apart from the framework's own work.",
    ),
    CodeInfo("pipeline.new_stage", _C.PIPELINE, "A stage that was not in the baseline."),
    CodeInfo("pipeline.removed_stage", _C.PIPELINE, "A baseline stage that no longer appears."),
    CodeInfo("pipeline.request_time", _C.PIPELINE, "Request p50 against the baseline."),
    CodeInfo("pipeline.span_errors", _C.PIPELINE, "Spans that ended with an exception."),
    CodeInfo("pipeline.warmup", _C.PIPELINE, "A first call far slower than the p50 (warm-up)."),
    CodeInfo("pipeline.no_data", _C.PIPELINE, "No request was traced."),
    CodeInfo("pipeline.gc_pauses", _C.PIPELINE, "Garbage-collection pauses inside a stage."),
    CodeInfo("pipeline.threads", _C.PIPELINE, "CPU saturation and thread oversubscription."),
    CodeInfo("gate.verdict", _C.LATENCY, "The deployment gate's verdict over its metrics."),
    CodeInfo("gate.latency", _C.LATENCY, "A latency quantile ratio candidate / baseline, gated."),
    CodeInfo("gate.memory", _C.RESOURCE, "Peak memory ratio candidate / baseline, gated."),
    CodeInfo("gate.cost", _C.COST, "Cost per 1000 inferences ratio candidate / baseline, gated."),
    CodeInfo("gate.inefficiency", _C.MODEL_BLOAT, "A major inefficiency new in the candidate."),
    CodeInfo(
        "canary.decision", _C.LATENCY, "The canary's decision: continue, promote, rollback, halt."
    ),
    CodeInfo(
        "canary.latency", _C.LATENCY, "Tail exceedances of the canary vs the control at one edge."
    ),
    CodeInfo("canary.resource", _C.RESOURCE, "Canary vs control exceedances of a resource."),
    CodeInfo("canary.split", _C.STABILITY, "The realized traffic split vs the declared one."),
    # every recorder (request-path safety)
    CodeInfo(
        "stability.invalid_input",
        _C.STABILITY,
        "Values a recorder refused (NaN, negative, infinite, not a number): counted, not raised.",
    ),
    CodeInfo(
        "stability.internal_error",
        _C.STABILITY,
        "silenttax's own failures on the request path, counted instead of raised into the host.",
    ),
    CodeInfo(
        "stability.check_failed",
        _C.STABILITY,
        "A check of your own (a component's check() or a check function) raised or gave "
        "no Report: its findings are missing.",
    ),
    CodeInfo(
        "stability.error_rate",
        _C.STABILITY,
        "A route's share of failed requests (5xx or an exception) in the recent windows, "
        "against the error budget (anytime-valid test).",
    ),
    CodeInfo(
        "stability.client_errors",
        _C.STABILITY,
        "A route's share of client errors (4xx) in the recent windows over its budget, or "
        "risen against the baseline window.",
    ),
    CodeInfo(
        "stability.error_rise",
        _C.STABILITY,
        "A route's failures in the recent windows risen against its baseline window (under "
        "the budget, but at least twice its own earlier rate; anytime-valid test).",
    ),
    CodeInfo(
        "stability.overload",
        _C.STABILITY,
        "Requests in flight and time per request grown together while throughput stalled, "
        "the added time spent waiting (Little's law, recent vs baseline window).",
    ),
    CodeInfo(
        "stability.self_time",
        _C.STABILITY,
        "silenttax's own work in the serving process: its background threads' CPU time "
        "(time they held the interpreter), longest slice, and the requests in flight then.",
    ),
    # silenttax.load
    CodeInfo(
        "load.capacity",
        _C.STABILITY,
        "The highest offered rate meeting the latency SLO (open loop, cluster-aware bound, "
        "confirmed), with its interval; WARNING below the required rate.",
    ),
    CodeInfo(
        "load.regression",
        _C.STABILITY,
        "Candidate / baseline capacity from interleaved paired blocks, with a bootstrap "
        "interval: pass, regression or inconclusive.",
    ),
    CodeInfo(
        "load.knee", _C.STABILITY, "The first probed rate whose p99 is over twice the light load's."
    ),
    CodeInfo(
        "load.tail_amplification",
        _C.STABILITY,
        "p99 at the safe capacity over p99 at light load (WARNING at 3x or more).",
    ),
    CodeInfo(
        "load.errors",
        _C.STABILITY,
        "Errors, timeouts and requests not sent under load, by rate and kind.",
    ),
    CodeInfo(
        "load.memory_growth",
        _C.STABILITY,
        "Resident memory growing under sustained load: MB per 1000 requests with its interval.",
    ),
    CodeInfo(
        "load.p99_drift",
        _C.STABILITY,
        "p99 drifting under sustained load: seconds per 1000 requests with its interval.",
    ),
    CodeInfo(
        "load.generator_bound",
        _C.STABILITY,
        "The load generator could not keep its schedule (its lag a material share of the "
        "latency): the run is invalid, not a verdict on the target.",
    ),
    CodeInfo(
        "load.machine_busy",
        _C.STABILITY,
        "Other processes held the machine's cores during the run (or it stalled on them).",
    ),
    CodeInfo(
        "load.inconclusive",
        _C.STABILITY,
        "The runs cannot support a verdict, and what would decide it.",
    ),
    # silenttax.history
    CodeInfo(
        "history.creep",
        _C.HISTORY,
        "A figure creeping across daily rollups: sieve-bootstrap rank trend (autocorrelated "
        "days, weekly looks), Theil-Sen slope per 30 days with its interval, projected "
        "crossing of its limit.",
    ),
    CodeInfo(
        "history.change_point",
        _C.HISTORY,
        "The dated step behind a creep (E-divisive, sieve-bootstrap p-value): size with "
        "its interval and the nearest deploy, version or environment marker.",
    ),
    CodeInfo("history.trend", _C.HISTORY, "A tracked figure's slope per 30 days: no creep."),
    CodeInfo("history.gap", _C.HISTORY, "Over 10% of a window's periods have no snapshot."),
    CodeInfo("history.no_data", _C.HISTORY, "Too few rollups to judge a trend yet."),
    # silenttax.audit
    CodeInfo("audit.skipped", _C.STABILITY, "A part of the audit that could not run, and why."),
    CodeInfo("audit.inputs", _C.STABILITY, "Which data columns fed the model, and how."),
)

_BUILTIN = MappingProxyType({info.code: info for info in CODES})
_USER: dict[str, CodeInfo] = {}  # registered by users (register_code)
_BY_CODE: dict[str, CodeInfo] = dict(_BUILTIN)


def finding_codes() -> MappingProxyType[str, CodeInfo]:
    """Every registered finding code, by code: silenttax's own and those registered with
    :func:`register_code`.

    Examples:
        >>> codes = finding_codes()
        >>> all(code == info.code for code, info in codes.items())
        True
    """
    return MappingProxyType(_BY_CODE)


def register_code(
    code: str,
    category: Category | str,
    description: str,
    *,
    recommendation: str | None = None,
) -> CodeInfo:
    """Register a finding code of your own, so :func:`make_finding` fills its category
    and recommendation and :func:`finding_codes` lists it. Registering the same code
    again with the same details is a no-op (a module imported twice).

    Args:
        code: A lower-case dotted id (:data:`CODE_PATTERN`), e.g. ``queue.depth``;
            silenttax's own codes are reserved.
        category: A built-in :class:`Category` or a category of your own (a lower-case
            identifier, e.g. ``business``).
        description: What the code means, one sentence.
        recommendation: What to do about it (used when a finding gives none).

    Raises:
        InputError: a malformed code or category, a built-in code, or a code already
            registered with other details (each is named).

    Examples:
        >>> info = register_code("example.queue_depth", "stability",
        ...                      "The request queue is deeper than its budget.")
        >>> make_finding("example.queue_depth", severity="warning", subject="api",
        ...              message="queue 40 > 25").category
        <Category.STABILITY: 'stability'>
    """
    from silenttax.errors import InputError
    from silenttax.report._enums import category as open_category

    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise InputError(f"code: not a lower-case dotted id like 'queue.depth': {code!r}")
    if code in _BUILTIN:
        raise InputError(f"code: {code!r} is one of silenttax's own codes (reserved)")
    try:
        chosen = open_category(category)
    except ValueError as exc:
        raise InputError(f"category: {exc}") from exc
    if not isinstance(description, str) or not description.strip():
        raise InputError(f"description: one sentence saying what {code!r} means")
    info = CodeInfo(code, chosen, description.strip(), recommendation)
    known = _USER.get(code)
    if known is not None and known != info:
        raise InputError(f"code: {code!r} is already registered as {known}")
    _USER[code] = _BY_CODE[code] = info
    return info


class FindingFields(TypedDict, total=False):
    """The optional fields of a :class:`Finding`, typed (a misspelt one is a type error)."""

    metric: str | None
    value: float | None
    baseline: float | None
    threshold: float | None
    unit: str | None
    p_value: float | None
    effect_size: float | None
    evidence: dict[str, Any]
    recommendation: str | None
    detector: str | None


def make_finding(
    code: str,
    *,
    severity: Severity | str,
    subject: str,
    message: str,
    **fields: Unpack[FindingFields],
) -> Finding:
    """Build a :class:`Finding` for a registered ``code`` (silenttax's own or one of
    :func:`register_code`), its category filled in, and its recommendation where the
    finding gives none.

    Raises:
        InputError: ``code`` is not registered (:func:`register_code` it first).
    """
    info = _BY_CODE.get(code)
    if info is None:
        from silenttax.errors import InputError

        raise InputError(
            f"code: {code!r} is not registered: silenttax.component.register_code it first "
            "(or build the Finding yourself)"
        )
    if info.recommendation is not None and fields.get("recommendation") is None:
        fields["recommendation"] = info.recommendation
    return Finding(
        code=code,
        category=info.category,
        severity=severity,
        subject=subject,
        message=message,
        **fields,
    )


def _check_registry() -> None:
    seen: set[str] = set()
    for info in CODES:
        if info.code in seen:
            raise ValueError(f"finding code {info.code!r} registered twice")
        if not CODE_PATTERN.match(info.code):
            raise ValueError(f"finding code {info.code!r} is not lower-case dotted")
        seen.add(info.code)
