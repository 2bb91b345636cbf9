"""Pure-ASGI middleware: per-route latency, per-stage time, status classes, cost.

``SilentTaxMiddleware(app)`` wraps any ASGI application (FastAPI, Starlette,
Litestar, a bare ASGI callable) without ``BaseHTTPMiddleware``: it only
wraps ``send`` to watch the response, so streaming and background tasks keep
working and the added cost per request is a few microseconds.

Per request it records:

- the **duration** from the request's arrival to the *last* response body
  chunk (``more_body`` false), so a streamed response is measured for as long
  as it streams, and the **time to first byte** separately, per route;
- one request span in a :class:`~silenttax.trace.Tracer` (its own time, in no
  stage of yours, is the ``framework`` stage: routing, validation,
  serialization), with the stages the
  handler opens as children: ``with silenttax.stage("preprocess"):``
  works in sync and async handlers and in thread-pool endpoints (the span
  context travels in context variables). The request span closes when the
  application returns, so a Starlette background task counts in the stage
  shares but not in the route's duration;
- the status class (``2xx`` ... ``5xx``), exceptions (``error``; ``timeout`` for a
  ``TimeoutError``) and requests the client abandoned (``cancelled``), per route, in
  total and in wall-clock windows of ``window`` seconds: the check names a
  route whose failures exceed ``error_budget`` in the recent windows
  (``stability.error_rate``; see :mod:`silenttax.integrations._errors`);
- one inference per request in a ``CostMonitor``, with its service time;
- latencies measured elsewhere (queue wait, GPU time) with :func:`observe`;
- live feature health, when ``feature_health=`` or ``drift=`` is given with
  ``features=``: requests are sampled at ``sample_rate`` *before* their body is
  converted (one integer decrement per unsampled request), the raw bodies of the
  sampled ones are kept in a bounded reservoir, and a background thread parses
  them, folds them into mergeable FeatureHealth / drift windows and checks them
  (see :class:`~silenttax.integrations._live.LiveFeatures`).

The whole state is one snapshot (:meth:`SilentTaxMiddleware.state`, kind
``silenttax.serving``) that merges across workers; with ``snapshot_dir=`` each
worker writes it atomically every ``snapshot_interval`` seconds and at shutdown,
for :meth:`silenttax.integrations.prometheus.SilentTaxCollector.from_directory`.

The route label is the *template* (``/items/{item_id}``, from
``scope["route"].path``), ``"__unmatched__"`` when no route matched, and
``"__other__"`` past ``max_routes`` distinct templates, so URLs cannot
multiply the series. Errors inside silenttax are counted (``internal_errors``)
and never reach the request unless ``strict=True``; the application's own
exceptions propagate unchanged.

Examples:
    >>> import asyncio
    >>> async def app(scope, receive, send):
    ...     with stage("model"):
    ...         body = b"ok"
    ...     await send({"type": "http.response.start", "status": 200, "headers": []})
    ...     await send({"type": "http.response.body", "body": body})
    >>> wrapped = SilentTaxMiddleware(app)
    >>> async def call():
    ...     async def receive():
    ...         return {"type": "http.request", "body": b"", "more_body": False}
    ...     async def send(message):
    ...         pass
    ...     await wrapped({"type": "http", "path": "/predict", "method": "GET"}, receive, send)
    >>> asyncio.run(call())
    >>> wrapped.requests()
    {('__unmatched__', '2xx'): 1}
    >>> sorted(wrapped.tracer.breakdown().stages)  # framework: time in no stage of yours
    ['framework', 'model']
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import Field, JsonValue

from silenttax._current import CURRENT as _current
from silenttax._current import HANDLER as _handler
from silenttax._current import MIDDLEWARE as _middleware
from silenttax._current import observe, observe_prediction, stage
from silenttax._merge import same_settings, since
from silenttax._stability import check_failed_finding, internal_error_finding, self_time_finding
from silenttax._state import State, Stateful
from silenttax._system import SelfTime
from silenttax.cost import CostMonitor, CostMonitorState
from silenttax.drift import DriftDetector, DriftDetectorState
from silenttax.errors import InputError, StateError
from silenttax.features import FeatureHealth, FeatureHealthState
from silenttax.integrations._errors import (
    CANCELLED,
    TIMEOUT,
    Counts,
    add_counts,
    check_error_rise,
    check_errors,
    roll_windows,
)
from silenttax.integrations._live import Extractor, LiveFeatures, LiveState
from silenttax.integrations._overload import check_overload
from silenttax.integrations._queue import check_queueing
from silenttax.monitor import LatencyMonitor, LatencyMonitorState, LatencySketch, LatencySketchState
from silenttax.report import Finding, Report, Severity
from silenttax.trace import Breakdown, Tracer, check_breakdown

__all__ = [
    "OTHER",
    "UNMATCHED",
    "ServingState",
    "SilentTaxMiddleware",
    "observe",
    "observe_prediction",
    "stage",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "__unmatched__"
_MARKS_PER_WINDOW = 30  # stage snapshots kept per window (the window's start to 1/30)
OTHER = "__other__"
_STATUS = {n: f"{n}xx" for n in range(1, 6)}  # status // 100 -> its class


class ServingState(State):
    """Snapshot of a :class:`SilentTaxMiddleware`: what every worker writes and a scrape
    merges (counts add up, sketches merge, live feature windows merge slot by slot)."""

    KIND: ClassVar[str] = "silenttax.serving"

    params: dict[str, JsonValue]
    """Settings (must match to merge)."""
    monitor: LatencyMonitorState
    """The per-route monitors' template (settings only)."""
    routes: dict[str, LatencyMonitorState]
    """Route template -> request duration to the last body chunk."""
    ttfb: dict[str, LatencySketchState]
    """Route template -> time to first byte."""
    observed: dict[str, LatencyMonitorState]
    """Name -> durations recorded with :func:`observe`."""
    requests: dict[str, dict[str, int]]
    """Route -> status class -> requests."""
    recent: dict[str, dict[str, int]] = Field(default_factory=dict)
    """The same in the current ``window`` (wall-clock slot ``recent_slot``)."""
    recent_previous: dict[str, dict[str, int]] = Field(default_factory=dict)
    """The same in the window before it."""
    recent_slot: int | None = None
    """The current error window's slot (``floor(time / window)``)."""
    internal_errors: int = 0
    """silenttax errors counted instead of raised."""
    breakdown: Breakdown
    """Request and stage spans."""
    cost: CostMonitorState | None = None
    """The cost monitor (None: none was given)."""
    health_reference: FeatureHealthState | None = None
    """The reference schema live samples are judged against (must match to merge)."""
    drift_reference: DriftDetectorState | None = None
    """The reference live samples are tested for drift against (must match to merge)."""
    live: LiveState | None = None
    """The sampled live feature windows."""
    before_handler: LatencySketchState | None = None
    """Seconds from arrival to the handler's first ``stage()`` (None: no stage marked)."""
    before_handler_alone: LatencySketchState | None = None
    """The same for requests that arrived with nothing else in flight."""
    stage_recent: Breakdown | None = None
    """The stages of the latest ``window`` (None: no full window since the baseline yet)."""
    stage_baseline: Breakdown | None = None
    """The stages of the first ``baseline_window`` seconds of traffic (None: not yet)."""
    requests_baseline: dict[str, dict[str, int]] | None = None
    """Route -> outcome -> requests of the same baseline window (None: not yet)."""
    self_time: dict[str, dict[str, float]] = Field(default_factory=dict)
    """silenttax's own work: ``background`` (its threads' ticks) and ``request_folds``
    (tracer folds inside a request) -> :meth:`~silenttax._system.SelfTime.figures`."""
    components: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Users' components given with ``checks=`` (kind -> its snapshot, as JSON): merged
    across workers by their own ``merge``, judged by their own ``check``."""
    workers: list[str] = Field(default_factory=list)
    """Worker snapshot files merged into this one (fleet bookkeeping)."""
    generation: str | None = None
    """The server generation that wrote it (fleet bookkeeping; see
    :mod:`silenttax.integrations.fleet`)."""
    references: dict[str, str] = Field(default_factory=dict)
    """``health_reference`` / ``drift_reference`` kept in a file beside this one (a fleet
    writes the references once, not in every snapshot): field -> file name."""

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, windows: bool = True) -> Self:
        """Read a file written by :meth:`save`, with the references it names read from
        their files beside it.

        Args:
            path: The snapshot.
            windows: Read the live features' sampled windows where a fleet worker keeps
                them in a file of their own (``references["live"]``; False: the
                counters only, as a scrape reads them).

        Raises:
            StateError: the file, or a reference file it names, cannot be read.
        """
        from silenttax.drift import DriftDetectorState
        from silenttax.features import FeatureHealthState

        state = super().load(path)
        if not state.references:
            return state
        kinds: dict[str, type[State]] = {
            "health_reference": FeatureHealthState,
            "drift_reference": DriftDetectorState,
        }
        update: dict[str, Any] = {}
        for field, name in state.references.items():
            if (field not in kinds and field != "live") or Path(name).name != name:
                raise StateError(f"{str(path)!r}: bad reference {field!r} -> {name!r}")
            if field == "live":
                if windows and state.live is not None:
                    update["live"] = _with_windows(state.live, Path(path).parent / name)
            else:
                update[field] = _reference_file(kinds[field], Path(path).parent / name)
        return state.model_copy(update=update)


_REFERENCES: dict[tuple[str, str], State] = {}  # content-addressed files never change
LIVE_WINDOWS = ("slot", "health", "health_previous", "drift", "drift_previous")
"""The fields of a :class:`LiveState` a fleet worker writes to a file of their own."""


def _with_windows(live: LiveState, path: Path) -> LiveState:
    """``live``'s counters with the sampled windows read from ``path``."""
    try:
        windows = LiveState.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read the live windows {str(path)!r}: {exc}") from exc
    return live.model_copy(update={field: getattr(windows, field) for field in LIVE_WINDOWS})


def _with_queueing(report: Report, queueing: Report) -> Report:
    """``pipeline.shadow_overhead`` says how much of the time outside the model was
    queueing (waiting before the handler), with advice that fits when it is most of it."""
    if not queueing.findings or not queueing[0].value or queueing[0].value < 0.05:
        return report
    share = float(queueing[0].value)

    def told(f: Finding) -> Finding:
        if f.code != "pipeline.shadow_overhead" or f.value is None:
            return f
        update: dict[str, Any] = {
            "message": f"{f.message}; of that, {share:.0%} of request time is queueing before "
            "the handler (pipeline.queueing), not framework work",
            "evidence": {**f.evidence, "queue_share": share},
        }
        if f.severity >= Severity.WARNING and share >= float(f.value) / 2:
            update["recommendation"] = queueing[0].recommendation
        return f.model_copy(update=update)

    return report.model_copy(update={"findings": tuple(told(f) for f in report.findings)})


def _by_route(counts: Mapping[tuple[str, str], int]) -> Counts:
    """(route, outcome) -> n as route -> outcome -> n."""
    out: Counts = {}
    for (route, outcome), n in counts.items():
        out.setdefault(route, {})[outcome] = n
    return out


def _counted(sketch: LatencySketch) -> LatencySketchState | None:
    return sketch.state() if sketch.count else None


def _merged_window(mine: Breakdown | None, theirs: Breakdown | None) -> Breakdown | None:
    if mine is None or theirs is None:
        return mine if theirs is None else theirs
    return mine.merge(theirs)


def _windowed(report: Report, window: float) -> Report:
    """The stage findings of the latest window, said so in their evidence."""
    return report.model_copy(
        update={
            "findings": tuple(
                f.model_copy(update={"evidence": {**f.evidence, "window_seconds": window}})
                for f in report.findings
            )
        }
    )


def _component(kind: str, data: dict[str, Any]) -> Any:
    """A user's component from its snapshot in a worker file (registered in this process,
    or a StateError naming the kind and how to register it)."""
    from silenttax._registry import load

    if data.get("kind") != kind:
        raise StateError(f"components: {kind!r} holds a state of kind {data.get('kind')!r}")
    return load(data)


def _reference_file(kind: type[State], path: Path) -> State:
    key = (kind.KIND, str(path))
    got = _REFERENCES.get(key)
    if got is None:
        got = kind.load(path)
        if len(_REFERENCES) >= 64:
            _REFERENCES.clear()
        _REFERENCES[key] = got
    return got


def _warm_checks() -> None:
    """Import what checks need (``scipy.stats``) while the app is built, not in the first
    background fold or scrape: the import holds the interpreter for about a second, and in
    a serving worker every request would wait for it (each recycled worker again)."""
    import scipy.stats  # noqa: F401


async def _unbound_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("a SilentTaxMiddleware rebuilt from a snapshot has no application")


def _unsaved(body: Any) -> Any:
    raise InputError("the features extractor is not saved in a snapshot")


class _Exchange:
    """One request in flight: what its responses show (the wrapped ``send``) and when its
    handler started (set by :func:`silenttax.stage`)."""

    __slots__ = ("alone", "before", "first", "middleware", "recorded", "scope", "send",
                 "start", "status")  # fmt: skip

    def __init__(
        self, middleware: SilentTaxMiddleware, scope: Scope, send: Send, start: float, alone: bool
    ) -> None:
        self.middleware = middleware
        self.scope = scope
        self.send = send
        self.start = start  # perf_counter at arrival
        self.alone = alone  # nothing else was in flight: no one to queue behind
        self.before: float | None = None  # seconds from arrival to the first stage
        self.status: int | None = None
        self.first: float | None = None  # perf_counter of the first body chunk
        self.recorded = False

    async def watched(self, message: Message) -> None:
        """``send``, watched: the status, the first body chunk and the end of the response."""
        kind = message.get("type")
        if kind == "http.response.body":
            now = time.perf_counter()
            if self.first is None:
                self.first = now
            if not message.get("more_body", False):
                await self.send(message)
                self.done(now, None)  # visible as soon as the response is complete
                return
        elif kind == "http.response.start":
            self.status = message.get("status")
        await self.send(message)

    def done(self, end: float, failure: str | None) -> None:
        """Record the request once: at its last body chunk, or when the app returns."""
        if self.recorded:
            return
        self.recorded = True
        middleware = self.middleware
        try:
            middleware._record(self.scope, self.start, self.first, end, self.status, failure)
            before = self.before
            if before is not None:
                middleware._before_handler.add(before)
                if self.alone:
                    middleware._before_handler_alone.add(before)
        except Exception:
            middleware.internal_errors += 1
            if middleware.strict:
                raise


class SilentTaxMiddleware(Stateful[ServingState]):
    """Wrap an ASGI ``app``; see the module docs for what is recorded.

    Args:
        app: The ASGI application.
        monitor: Template for the per-route latency monitors (its settings are
            copied: ``slo``, quantiles, accuracy, creep); default ``LatencyMonitor()``.
        tracer: The tracer for request and stage spans (default: a new one).
        cost: A ``CostMonitor`` counting one inference per request.
        exclude_paths: Paths not recorded (scrapes, health checks).
        max_routes: Distinct route labels kept; later ones are ``"__other__"``.
        model_stages: Stages that are the model (the rest is the shadow pipeline).
        strict: Let silenttax's own errors raise (default: count them).
        feature_health: A ``FeatureHealth`` fitted on the reference: live samples of the
            request features are checked against it.
        drift: A ``DriftDetector`` fitted on the reference: live samples are tested
            against it.
        features: How to get features from a request (needed with either of the two):
            a callable over the parsed JSON body returning a row (or a list of rows),
            or a pydantic model class the body is validated with.
        sample_rate: Share of requests whose body is sampled (before any conversion).
        max_samples: Bodies kept per ``check_interval`` (a reservoir: bounded work
            whatever the load).
        feature_window: Seconds per live window (wall-clock slots, aligned across
            workers; the check judges the previous and the current window).
        check_interval: Seconds between background folds and checks of the samples.
        snapshot_dir: Write this worker's snapshot there every ``snapshot_interval``
            seconds and at shutdown (for a multi-worker scrape).
        snapshot_interval: Seconds between snapshot writes.
        trace: Open a request span per request, the parent of the handler's stages
            (False where the stages run and are traced in another process, as in
            LitServe's inference workers: see :mod:`silenttax.integrations.litserve`).
        error_budget: Share of failed requests (5xx, exceptions) a route may have in
            the recent windows before ``stability.error_rate`` names it.
        client_error_budget: The same for client errors (4xx), reported apart.
        window: Seconds per live window (wall-clock slots, aligned across workers):
            the check judges errors over the previous and the current window, and
            the stages of the latest window against the baseline (renamed from
            ``error_window``).
        baseline_window: Seconds of traffic from this middleware's first request
            that form the baseline the stages of the latest window are judged
            against (``pipeline.stage_time``: a stage that got slower is named).
        checks: Your own monitors and checks (see :mod:`silenttax.component`): a
            registered component (``state``/``merge``/``check``; your handlers record
            into it) is saved in every snapshot, merged across the fleet's workers,
            judged by its ``check()`` and its ``gauges()`` exported; a function
            ``(snapshots) -> Report`` gets ``{"serving": <this middleware>, <kind>:
            <component>, ...}``. A check that raises becomes a ``stability.check_failed``
            finding (raised with ``strict=True``).
    """

    STATE: ClassVar[type[State]] = ServingState

    def __init__(
        self,
        app: ASGIApp,
        *,
        monitor: LatencyMonitor | None = None,
        tracer: Tracer | None = None,
        cost: Any = None,
        exclude_paths: Sequence[str] = ("/metrics", "/health"),
        max_routes: int = 100,
        model_stages: Sequence[str] = ("model",),
        strict: bool = False,
        feature_health: FeatureHealth | None = None,
        drift: DriftDetector | None = None,
        features: Extractor | None = None,
        sample_rate: float = 0.01,
        max_samples: int = 1000,
        feature_window: float = 300.0,
        check_interval: float = 5.0,
        snapshot_dir: str | Path | None = None,
        snapshot_interval: float = 5.0,
        trace: bool = True,
        error_budget: float = 0.01,
        client_error_budget: float = 0.05,
        window: float = 300.0,
        baseline_window: float = 3600.0,
        checks: Sequence[Any] = (),
    ) -> None:
        for name, share in (("error_budget", error_budget),
                            ("client_error_budget", client_error_budget)):  # fmt: skip
            if not 0 < share < 1:
                raise InputError(f"{name} must be in (0, 1), got {share!r}")
        for name, seconds in (("window", window), ("baseline_window", baseline_window)):
            if not (seconds > 0 and math.isfinite(seconds)):
                raise InputError(f"{name} must be positive seconds, got {seconds!r}")
        if cost is not None and not isinstance(cost, CostMonitor):
            raise InputError(f"cost must be a CostMonitor, got {type(cost).__name__}")
        if max_routes < 1:
            raise InputError(f"max_routes must be >= 1, got {max_routes!r}")
        if (feature_health is not None or drift is not None) and features is None:
            raise InputError("features: needed with feature_health= or drift= (how to get "
                             "the features from a request body)")  # fmt: skip
        if features is not None and feature_health is None and drift is None:
            raise InputError("features: given without feature_health= or drift= to judge them")
        if not (snapshot_interval > 0 and math.isfinite(snapshot_interval)):
            raise InputError(
                f"snapshot_interval must be positive seconds, got {snapshot_interval!r}"
            )
        self.app = app
        self.template = monitor or LatencyMonitor()
        self.tracer = tracer or Tracer(model_stages=tuple(model_stages))
        self._cost: CostMonitor | None = cost
        # requests, busy and occupied seconds, Unix second not yet given to the cost monitor
        self._cost_pending: list[float] = [0, 0.0, 0.0, 0.0]
        # ... handed over at least this often: a second, or 1/50 of a short cost window
        self._cost_tick = 1.0 if cost is None else min(1.0, cost.window / 50)
        self.exclude_paths = frozenset(exclude_paths)
        self.max_routes = max_routes
        self.model_stages = tuple(model_stages)
        self.strict = strict
        self.internal_errors = 0
        """silenttax errors counted instead of raised."""
        self.live: LiveFeatures | None = None
        """Live feature sampling (None when not asked for)."""
        if features is not None:
            self.live = LiveFeatures(
                features,
                health=feature_health,
                drift=drift,
                sample_rate=sample_rate,
                max_samples=max_samples,
                window=feature_window,
                interval=check_interval,
            )
        self.self_time = SelfTime(probe=self._probe)
        """silenttax's background ticks in this process, timed (``stability.self_time``)."""
        if self.live is not None:
            self.live.timing = self.self_time
        self.tracer.request_folds.watch(self._probe)
        self.sample_rate = sample_rate
        self.max_samples = max_samples
        self.feature_window = feature_window
        self.check_interval = check_interval
        self.snapshot_interval = snapshot_interval
        self.trace = bool(trace)
        self.error_budget = float(error_budget)
        self.client_error_budget = float(client_error_budget)
        self.window = float(window)
        self.baseline_window = float(baseline_window)
        self._first: float | None = None  # Unix time of the first recorded request
        self._stage_baseline: Breakdown | None = None  # frozen after baseline_window
        self._marks: list[tuple[float, Breakdown]] = []  # (Unix time, stages so far)
        self._restored: tuple[Breakdown | None, Breakdown | None] = (None, None)
        self._requests_baseline: Counts | None = None  # frozen with the stage baseline
        self._marks_lock = threading.Lock()
        self._before_handler = LatencySketch()  # arrival -> first stage, every request
        self._before_handler_alone = LatencySketch()  # ... of requests that arrived alone
        self.components: dict[str, Any] = {}
        """Users' components given with ``checks=``, by kind (see :mod:`silenttax.component`)."""
        self.checks: list[Any] = []
        """Users' check functions given with ``checks=``."""
        for item in checks:
            self._add_check(item)
        self._wall = time.time() - time.perf_counter()  # perf_counter -> Unix seconds
        self._recent: Counts = {}
        self._recent_previous: Counts = {}
        self._recent_slot: int | None = None
        self._latency: dict[str, LatencyMonitor] = {}
        self._ttfb: dict[str, LatencySketch] = {}
        self._observed: dict[str, LatencyMonitor] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._in_flight = 0
        self._arrivals = 0
        self._self_merged: dict[str, dict[str, float]] = {}  # other workers' self time
        self._occupied = 0.0  # wall seconds with >= 1 request in flight
        self._reported = 0.0  # of those, already given to the cost monitor
        self._last = 0.0  # perf_counter of the latest arrival or completion
        self._merged: Breakdown | None = None  # other workers' spans, merged in
        self._workers: list[str] = []
        self._lock = threading.Lock()
        self.writer: Any = None
        """The snapshot writer (a :class:`~silenttax.integrations.fleet.SnapshotWriter`)."""
        if snapshot_dir is not None:
            from silenttax.integrations.fleet import SnapshotWriter

            self.writer = SnapshotWriter(self, snapshot_dir, interval=snapshot_interval)
        _warm_checks()

    # ------------------------------------------------------------------ reads
    def latency(self) -> dict[str, LatencyMonitor]:
        """Route -> latency monitor (request arrival to the last body chunk)."""
        with self._lock:
            return dict(self._latency)

    def ttfb(self) -> dict[str, LatencySketch]:
        """Route -> time-to-first-byte sketch."""
        with self._lock:
            return dict(self._ttfb)

    def requests(self) -> dict[tuple[str, str], int]:
        """(route, status class) -> requests; exceptions count as ``"error"``."""
        with self._lock:
            return dict(self._counts)

    def observed(self) -> dict[str, LatencyMonitor]:
        """Name -> latency monitor of the durations recorded with :func:`observe`."""
        with self._lock:
            return dict(self._observed)

    def observed_monitor(self, name: str) -> LatencyMonitor:
        """The monitor :func:`observe` records ``name`` in (created on first use; past
        ``max_routes`` names, ``"__other__"``)."""
        monitor = self._observed.get(name)
        if monitor is not None:
            return monitor
        with self._lock:
            if name not in self._observed and len(self._observed) >= self.max_routes:
                name = OTHER
            if name not in self._observed:
                self._observed[name] = self._new_monitor(name)
            return self._observed[name]

    def _add_check(self, item: Any) -> None:
        from silenttax._registry import target

        if callable(getattr(item, "state", None)) and callable(getattr(item, "check", None)):
            kind = item.state().kind
            try:
                known = target(kind)
            except StateError as exc:
                raise InputError(
                    f"checks: {type(item).__name__} is not registered (kind {kind!r}): "
                    "silenttax.component.register it so the fleet can read it back"
                ) from exc
            if not isinstance(item, known):
                raise InputError(f"checks: kind {kind!r} is registered to {known.__name__}")
            if kind in self.components:
                raise InputError(f"checks: two components of kind {kind!r}; give each once")
            self.components[kind] = item
        elif callable(item):
            self.checks.append(item)
        else:
            raise InputError(
                f"checks: a registered component or a function (snapshots) -> Report, "
                f"got {type(item).__name__}"
            )

    def _user_checks(self) -> Report:
        """Users' components and check functions, each failure a finding (never raised
        into a request unless ``strict``)."""
        report = Report()
        snapshots: dict[str, Any] = {"serving": self, **self.components}
        judges: list[tuple[str, Any]] = [
            (kind, component.check) for kind, component in self.components.items()
        ]
        judges += [(getattr(fn, "__qualname__", repr(fn)), lambda fn=fn: fn(snapshots))
                   for fn in self.checks]  # fmt: skip
        for name, judge in judges:
            try:
                got = judge()
                if not isinstance(got, Report):
                    raise InputError(f"returned a {type(got).__name__}, not a Report")
            except Exception as exc:
                if self.strict:
                    raise
                got = Report(findings=[check_failed_finding(name, exc)])
            report = report | got
        return report

    def stage_windows(
        self, breakdown: Breakdown | None = None, *, now: float | None = None
    ) -> tuple[Breakdown | None, Breakdown | None]:
        """(the latest window's stages, the baseline's stages): what the check compares.

        The baseline is the stages of the first ``baseline_window`` seconds after the
        first request (frozen at the first check or snapshot after it); the latest
        window is what was recorded since the newest mark at least ``window`` seconds
        old (marks are taken at each check and snapshot: with a snapshot writer or
        live features, every few seconds). Each is None until there is one. A view
        rebuilt from snapshots (a fleet) returns the workers' windows, merged.
        """
        now = time.time() if now is None else now
        with self._marks_lock:
            if self._first is None:  # served nothing itself: a view of snapshots, or idle
                return self._restored
            cumulative = self.breakdown() if breakdown is None else breakdown
            if self._stage_baseline is None:
                if now - self._first < self.baseline_window:
                    return None, None
                self._stage_baseline, self._marks = cumulative, [(now, cumulative)]
                with self._lock:
                    self._requests_baseline = _by_route(self._counts)
                return None, self._stage_baseline
            if now - self._marks[-1][0] >= self.window / _MARKS_PER_WINDOW:
                self._marks.append((now, cumulative))  # at most ~30 per window, however often
            old = [i for i, (at, _) in enumerate(self._marks) if now - at >= self.window]
            if old:
                del self._marks[: old[-1]]
            start_at, start = self._marks[0]
            if now - start_at < self.window:
                return None, self._stage_baseline
            try:
                return since(cumulative, start), self._stage_baseline
            except InputError:  # the tracer was reset: start again from here
                self._marks = [(now, cumulative)]
                return None, self._stage_baseline

    def breakdown(self) -> Breakdown:
        """Request and stage spans of this worker (and of those merged in)."""
        mine = self.tracer.breakdown()
        if self._merged is None:
            return mine
        # a restored or fleet view that served nothing itself adds no wall time of its own
        return self._merged if not mine.requests else mine.merge(self._merged)

    def check(self) -> Report:
        """Findings over what was served: per-route latency, the shadow pipeline, cost
        and the live feature windows (the latest background check)."""
        report = Report()
        for monitor in self.latency().values():
            report = report | monitor.check()
        breakdown = self.breakdown()
        latest, baseline = self.stage_windows(breakdown)
        if latest is not None and baseline is not None:
            report = report | _windowed(check_breakdown(latest, baseline), self.window)
            report = report | check_overload(latest, baseline, window=f"the last {self.window:g} s")
        elif breakdown.requests:
            report = report | check_breakdown(breakdown)
        if breakdown.requests:
            queueing = check_queueing(self._before_handler, self._before_handler_alone, breakdown)
            report = _with_queueing(report, queueing) | queueing
        if self.cost is not None:
            report = report | self.cost.check()
        recent = self.recent_requests()
        if recent:
            report = report | self._errors(recent)
        if self.live is not None:
            report = report | self.live.report()
        if breakdown.requests and breakdown.wall_time > 0:  # a server that served
            report = report | Report(
                findings=[
                    self_time_finding(
                        self.self_time_figures(),
                        breakdown.wall_time,
                        detector="integrations.SilentTaxMiddleware",
                    )
                ]
            )
        if self.components or self.checks:
            report = report | self._user_checks()
        errors = self.internal_error_count()
        if errors:
            last = self.live.last_error if self.live is not None else None
            report = report | Report(
                findings=[
                    internal_error_finding(
                        "serving",
                        errors=errors,
                        what="middleware steps (recording, snapshot writes, live feature "
                        "folds and checks" + (f"; last: {last}" if last else "") + ")",
                        detector="integrations.SilentTaxMiddleware",
                    )
                ]
            )
        return report

    def _errors(self, recent: Counts) -> Report:
        """The error budgets over the recent windows, and rises against the baseline
        window on the routes the budgets did not name."""
        minutes, alpha = self.window / 60, 1.0 - self.template.confidence
        window = f"the last {minutes:g}-{2 * minutes:g} min"
        report = check_errors(
            recent,
            budget=self.error_budget,
            client_budget=self.client_error_budget,
            alpha=alpha,
            window=window,
        )
        baseline = self._requests_baseline
        if baseline is None:
            return report
        named = {
            ("stability.error_rise" if f.code == "stability.error_rate" else f.code, f.subject)
            for f in report.findings
            if f.severity is not Severity.OK
        }
        rises = check_error_rise(recent, baseline, alpha=alpha, window=window)
        return report | Report(
            findings=[f for f in rises.findings if (f.code, f.subject) not in named]
        )

    def internal_error_count(self) -> int:
        """silenttax's own failures counted instead of raised: on the request path, in the
        snapshot writer and in the live features' background thread."""
        writer, live = self.writer, self.live
        return (
            self.internal_errors
            + (writer.errors if writer is not None else 0)
            + (live.internal_errors if live is not None else 0)
        )

    def close(self) -> None:
        """Fold the last samples and write the last snapshot (also done at the ASGI
        lifespan shutdown and at interpreter exit)."""
        if self.live is not None:
            self.live.close()
        if self.writer is not None:
            self.writer.close()

    # ------------------------------------------------------------------ snapshot
    def _params(self) -> dict[str, JsonValue]:
        return {
            "exclude_paths": list[JsonValue](sorted(self.exclude_paths)),
            "max_routes": self.max_routes,
            "model_stages": list[JsonValue](self.model_stages),
            "strict": self.strict,
            "sample_rate": self.sample_rate,
            "max_samples": self.max_samples,
            "feature_window": self.feature_window,
            "check_interval": self.check_interval,
            "snapshot_interval": self.snapshot_interval,
            "trace": self.trace,
            "error_budget": self.error_budget,
            "client_error_budget": self.client_error_budget,
            "window": self.window,
            "baseline_window": self.baseline_window,
        }

    def state(self, *, references: bool = True) -> ServingState:
        """The snapshot of everything recorded (thread-safe; merges across workers).

        Args:
            references: Include the live features' reference states (False: the
                snapshot writer keeps them in one shared file instead).
        """
        with self._lock:
            routes = {r: m.state() for r, m in self._latency.items()}
            ttfb = {r: s.state() for r, s in self._ttfb.items()}
            observed = {n: m.state() for n, m in self._observed.items()}
            counts = dict(self._counts)
            workers = list(self._workers)
            recent = {r: dict(o) for r, o in self._recent.items()}
            previous = {r: dict(o) for r, o in self._recent_previous.items()}
            slot = self._recent_slot
        live = self.live
        breakdown = self.breakdown()
        latest, baseline = self.stage_windows(breakdown)
        return ServingState(
            params=self._params(),
            monitor=self.template.state(),
            routes=routes,
            ttfb=ttfb,
            observed=observed,
            requests=_by_route(counts),
            requests_baseline=self._requests_baseline,
            recent=recent,
            recent_previous=previous,
            recent_slot=slot,
            internal_errors=self.internal_error_count(),
            breakdown=breakdown,
            stage_recent=latest,
            stage_baseline=baseline,
            before_handler=_counted(self._before_handler),
            before_handler_alone=_counted(self._before_handler_alone),
            cost=None if self.cost is None else self.cost.state(),
            health_reference=None
            if live is None or live.health is None or not references
            else live.health.state(),
            drift_reference=None
            if live is None or live.drift is None or not references
            else live.drift.state(),
            live=None if live is None else live.state(),
            self_time=self.self_time_figures(),
            components={
                kind: component.state().model_dump(mode="json")
                for kind, component in self.components.items()
            },
            workers=workers,
        )

    @classmethod
    def from_state(cls, state: ServingState) -> Self:
        """A middleware holding a snapshot's recordings (to read, merge and export; its
        ``app`` is unset and its features extractor is not saved)."""
        params: dict[str, Any] = dict(state.params)
        live = state.live is not None
        middleware = cls(
            _unbound_app,
            monitor=LatencyMonitor.from_state(state.monitor),
            cost=None if state.cost is None else CostMonitor.from_state(state.cost),
            exclude_paths=params.pop("exclude_paths"),
            model_stages=params.pop("model_stages"),
            feature_health=(
                FeatureHealth.from_state(state.health_reference) if state.health_reference else None
            ),
            drift=DriftDetector.from_state(state.drift_reference)
            if state.drift_reference
            else None,
            features=_unsaved if live else None,
            **params,
        )
        middleware._restore(state)
        return middleware

    def _restore(self, state: ServingState) -> None:
        with self._lock:
            self._latency = {r: LatencyMonitor.from_state(m) for r, m in state.routes.items()}
            self._ttfb = {r: LatencySketch.from_state(s) for r, s in state.ttfb.items()}
            self._observed = {n: LatencyMonitor.from_state(m) for n, m in state.observed.items()}
            self._counts = {
                (route, status): n
                for route, statuses in state.requests.items()
                for status, n in statuses.items()
            }
            self._workers = list(state.workers)
            self._recent = {r: dict(o) for r, o in state.recent.items()}
            self._recent_previous = {r: dict(o) for r, o in state.recent_previous.items()}
            self._recent_slot = state.recent_slot
        self.internal_errors = state.internal_errors
        self.components = {kind: _component(kind, data) for kind, data in state.components.items()}
        self._merged = state.breakdown if state.breakdown.requests else None
        self._restored = (state.stage_recent, state.stage_baseline)
        self._requests_baseline = state.requests_baseline
        self._self_merged = {part: dict(f) for part, f in state.self_time.items()}
        for sketch, saved in (
            (self._before_handler, state.before_handler),
            (self._before_handler_alone, state.before_handler_alone),
        ):
            sketch.reset()
            if saved is not None:
                sketch.merge(LatencySketch.from_state(saved))
        if self.live is not None and state.live is not None:
            self.live.restore(state.live)

    def merge(self, other: SilentTaxMiddleware | ServingState) -> Self:
        """Add another worker's recordings (a middleware or its snapshot) into this one.

        Raises:
            InputError: the settings differ (named).
        """
        theirs = other.state() if isinstance(other, SilentTaxMiddleware) else other
        if not isinstance(theirs, ServingState):
            raise InputError(f"can only merge a SilentTaxMiddleware, got {type(other).__name__}")
        local = ("strict", "check_interval", "snapshot_interval")  # each worker's own
        mine, their_params = (
            {k: v for k, v in params.items() if k not in local}
            for params in (self._params(), dict(theirs.params))
        )
        same_settings("SilentTaxMiddleware", mine, their_params)
        if (self.cost is None) != (theirs.cost is None):
            raise InputError("cannot merge SilentTaxMiddlewares: 'cost' is set in only one")
        if (self.live is None) != (theirs.live is None):
            raise InputError("cannot merge SilentTaxMiddlewares: 'features' is set in only one")
        live = self.live
        if live is not None:
            for name, reference in (
                ("health_reference", live.health),
                ("drift_reference", live.drift),
            ):
                ours = None if reference is None else reference.state()
                if ours != getattr(theirs, name):
                    raise InputError(f"cannot merge SilentTaxMiddlewares: {name!r} differs")
        with self._lock:
            for monitors, their in (
                (self._latency, theirs.routes),
                (self._observed, theirs.observed),
            ):
                for name, monitor_state in their.items():
                    got = LatencyMonitor.from_state(monitor_state)
                    if name in monitors:
                        monitors[name].merge(got)
                    else:
                        monitors[name] = got
            for route, sketch_state in theirs.ttfb.items():
                sketch = LatencySketch.from_state(sketch_state)
                if route in self._ttfb:
                    self._ttfb[route].merge(sketch)
                else:
                    self._ttfb[route] = sketch
            for route, statuses in theirs.requests.items():
                for status, n in statuses.items():
                    self._counts[route, status] = self._counts.get((route, status), 0) + n
            # the error windows: both moved to the later slot, then added
            slots = [x for x in (self._recent_slot, theirs.recent_slot) if x is not None]
            if slots:
                self._roll(max(slots))
                _, current, previous = roll_windows(
                    theirs.recent_slot, theirs.recent, theirs.recent_previous, max(slots)
                )
                self._recent = add_counts(self._recent, current)
                self._recent_previous = add_counts(self._recent_previous, previous)
            self._workers = sorted(set(self._workers) | set(theirs.workers))
        self.internal_errors += theirs.internal_errors
        for part, figures in theirs.self_time.items():
            self._self_merged[part] = SelfTime.merged(self._self_merged.get(part, {}), figures)
        for kind, data in theirs.components.items():
            component = _component(kind, data)
            if kind in self.components:
                self.components[kind].merge(component)
            else:
                self.components[kind] = component
        if theirs.breakdown.requests:
            self._merged = (
                theirs.breakdown if self._merged is None else self._merged.merge(theirs.breakdown)
            )
        for sketch, saved in (
            (self._before_handler, theirs.before_handler),
            (self._before_handler_alone, theirs.before_handler_alone),
        ):
            if saved is not None:
                sketch.merge(LatencySketch.from_state(saved))
        with self._marks_lock:
            mine_recent, mine_baseline = self._restored
            if theirs.requests_baseline is not None:
                self._requests_baseline = add_counts(
                    self._requests_baseline or {}, theirs.requests_baseline
                )
            self._restored = (
                _merged_window(mine_recent, theirs.stage_recent),
                _merged_window(mine_baseline, theirs.stage_baseline),
            )
        if self.cost is not None and theirs.cost is not None:
            self.cost.merge(CostMonitor.from_state(theirs.cost))
        if self.live is not None and theirs.live is not None:
            self.live.merge(theirs.live)
        return self

    # ------------------------------------------------------------------ the path
    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        label = path if isinstance(path, str) and path else UNMATCHED
        if label in self._latency:
            return label
        with self._lock:
            if label not in self._latency:
                if len(self._latency) >= self.max_routes and label != UNMATCHED:
                    label = OTHER
                if label not in self._latency:
                    self._latency[label] = self._new_monitor(label)
                    self._ttfb[label] = LatencySketch()
        return label

    def _new_monitor(self, name: str) -> LatencyMonitor:
        t = self.template
        return LatencyMonitor(
            name=name,
            slo=t.slo,
            slo_quantile=t.slo_quantile,
            quantiles=t.quantiles,
            min_effect=t.min_effect,
            critical_effect=t.critical_effect,
            confidence=t.confidence,
            creep=t._creep is not None,
            creep_seconds=t.creep_seconds,
            creep_shift=t.creep_shift,
        )

    def _roll(self, slot: int) -> None:
        """Move the error windows on to ``slot`` (lock held)."""
        self._recent_slot, self._recent, self._recent_previous = roll_windows(
            self._recent_slot, self._recent, self._recent_previous, slot
        )

    def recent_requests(self, now: float | None = None) -> dict[str, dict[str, int]]:
        """Route -> outcome -> requests in the previous and the current error window (as
        of ``now``, Unix seconds; default: now): what ``stability.error_rate`` judges."""
        slot = int((time.time() if now is None else now) // self.window)
        with self._lock:
            _, current, previous = roll_windows(
                self._recent_slot, self._recent, self._recent_previous, slot
            )
            return add_counts(previous, current)

    def _probe(self) -> tuple[int, int]:
        """(requests in flight, requests arrived so far): who may wait for our own work."""
        return self._in_flight, self._arrivals

    def self_time_figures(self) -> dict[str, dict[str, float]]:
        """silenttax's own work: ``background`` and ``request_folds`` -> their figures
        (this worker's and those merged in; see :class:`~silenttax._system.SelfTime`)."""
        mine = {"background": self.self_time.figures(),
                "request_folds": self.tracer.request_folds.figures()}  # fmt: skip
        for part, theirs in self._self_merged.items():
            mine[part] = SelfTime.merged(mine.get(part, {}), theirs)
        return mine

    @property
    def cost(self) -> CostMonitor | None:
        """The cost monitor (one inference per request), with every finished request
        counted: the request path hands it its requests once a second (or 1/50 of its
        window, if shorter), reading it
        through the middleware hands it the rest first."""
        self._flush_cost()
        return self._cost

    def _fold_in_background(self) -> None:
        try:
            self.tracer.fold_in_background(timing=self.self_time)
        except Exception:  # no thread to be had: folds stay in the request
            self.internal_errors += 1
            if self.strict:
                raise

    def _flush_cost(self) -> None:
        if self._cost is None:
            return
        with self._lock:
            count, busy, occupied, when = self._cost_pending
            self._cost_pending = [0, 0.0, 0.0, 0.0]
        if count:
            try:
                self._cost.record(
                    int(count), busy_seconds=busy, occupied_seconds=occupied, now=when
                )
            except Exception:
                self.internal_errors += 1
                if self.strict:
                    raise

    @property
    def in_flight(self) -> int:
        """Requests being served now (arrived, not yet recorded)."""
        return self._in_flight

    def _record(self, scope: Scope, start: float, first: float | None, end: float,
                status: int | None, failure: str | None) -> None:  # fmt: skip
        """One finished request: its route's latency, outcome and error window, the time
        with requests in flight, and (once a second) the cost monitor."""
        unix = end + self._wall
        if self._first is None:
            self._first = unix
        route = self._route(scope)
        self._latency[route].record(end - start)
        if first is not None:
            self._ttfb[route].add(first - start)
        kind = failure or (
            "error" if status is None else _STATUS.get(status // 100) or f"{status // 100}xx"
        )
        key = (route, kind)
        slot = int(unix // self.window)
        due = None
        with self._lock:
            if self._in_flight:  # the wall time with >= 1 request in flight, to this end
                self._occupied += max(0.0, end - self._last)
                self._in_flight -= 1
            if end > self._last:
                self._last = end
            self._counts[key] = self._counts.get(key, 0) + 1
            if slot != self._recent_slot:
                self._roll(slot)
            window = self._recent.setdefault(route, {})
            window[kind] = window.get(kind, 0) + 1
            if self._cost is not None:
                pending = self._cost_pending
                tick = self._cost_tick  # a new tick: hand the last one over
                if pending[0] and int(pending[3] / tick) != int(unix / tick):
                    due, pending = pending, [0, 0.0, 0.0, 0.0]
                    self._cost_pending = pending
                pending[0] += 1
                pending[1] += end - start
                pending[2] += self._occupied - self._reported
                pending[3] = unix
                self._reported = self._occupied
        if due is not None and self._cost is not None:
            self._cost.record(int(due[0]), busy_seconds=due[1], occupied_seconds=due[2], now=due[3])

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the lifespan through; write the last snapshot before shutdown completes."""

        async def watched(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                try:
                    self.close()
                except Exception:
                    self.internal_errors += 1
            await send(message)

        await self.app(scope, receive, watched)

    def _sampled(self, live: LiveFeatures, receive: Receive) -> Receive:
        """``receive`` that keeps this request's raw body for the live sample (or -1)."""
        try:
            slot = live.take()
        except Exception:
            self.internal_errors += 1
            return receive
        if slot < 0:
            return receive
        chunks: list[bytes] = []
        size = [0]

        async def tee() -> Message:
            message = await receive()
            if message.get("type") == "http.request" and size[0] >= 0:
                body = message.get("body", b"")
                size[0] += len(body)
                if size[0] > live.max_body:
                    size[0] = -1
                    chunks.clear()
                    live.offer(slot, None)
                else:
                    chunks.append(body)
                    if not message.get("more_body", False):
                        live.offer(slot, b"".join(chunks))
            return message

        return tee

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind != "http" or scope.get("path") in self.exclude_paths:
            if kind == "lifespan" and (self.writer is not None or self.live is not None):
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        with self._lock:  # one more request in flight
            alone = self._in_flight == 0  # nothing else in flight: no one to queue behind
            if not alone:
                self._occupied += start - self._last
            self._last = start
            self._in_flight += 1
            self._arrivals += 1
        exchange = _Exchange(self, scope, send, start, alone)
        writer = self.writer
        if writer is not None and writer.thread is None:
            writer.start()
        if self.tracer._folder is None and self.trace:  # folds off the request path
            self._fold_in_background()
        live = self.live
        if live is not None:
            live.countdown -= 1
            if live.countdown <= 0:
                receive = self._sampled(live, receive)
        watched = exchange.watched
        token = _current.set(self.tracer if self.trace else None)
        mine = _middleware.set(self)
        handler = _handler.set(exchange)
        failure: str | None = None
        try:
            if self.trace:
                with self.tracer.span("request", stage="framework"):
                    await self.app(scope, receive, watched)
            else:
                await self.app(scope, receive, watched)
        except BaseException as exc:  # the client went away, or the application failed
            failure = (
                CANCELLED
                if isinstance(exc, asyncio.CancelledError)
                else TIMEOUT
                if isinstance(exc, TimeoutError)
                else "error"
            )
            raise
        finally:
            _current.reset(token)
            _middleware.reset(mine)
            _handler.reset(handler)
            if not exchange.recorded:
                exchange.done(time.perf_counter(), failure)
