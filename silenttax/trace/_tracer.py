"""Tracer: an always-on, low-overhead request recorder that attributes time to stages.

The hot path is two small ``__slots__`` classes: entering a span reads the
monotonic clock and sets a ``ContextVar``; leaving it reads the clock again,
resets the variable and links the span to its parent (or, for a top-level
span, appends the finished request to a buffer). Everything else — self
times, the tracer's own overhead correction, per-stage sketches, retention of
the slowest requests — happens in batches off the per-span path.
"""

from __future__ import annotations

import functools
import heapq
import inspect
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar, Token
from operator import attrgetter
from types import TracebackType
from typing import Any, ClassVar, TypeVar, cast

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from silenttax.errors import InputError
from silenttax.monitor._sketch import LatencySketch
from silenttax.report import Report
from silenttax.trace._breakdown import Breakdown, SpanStats, StageStats

__all__ = ["SpanRecord", "Tracer"]

_F = TypeVar("_F", bound=Callable[..., Any])
_FOLD_AT = 4096  # spans buffered before a batch is aggregated
_OTHER = "<other>"
_perf_ns = time.perf_counter_ns


class SpanRecord(BaseModel):
    """One retained span and its children (from :meth:`Tracer.traces`).

    Durations are corrected for the tracer's own measured overhead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    name: str
    """Span name."""
    stage: str
    """What the span is (``model``, ``preprocess``, ``serialize``, ...)."""
    start: float
    """Start, seconds since the epoch (monotonic clock mapped to wall time once)."""
    start_ns: int
    """Start, nanoseconds since the epoch."""
    duration: float
    """Wall time from start to end, seconds."""
    self_time: float
    """Duration minus the children's durations, seconds (0 if children overlap it)."""
    attributes: dict[str, JsonValue] = Field(default_factory=dict)
    """Attributes given to ``span()`` or set on it."""
    error: str | None = None
    """Exception type name if the span ended with an exception."""
    children: list[SpanRecord] = Field(default_factory=list)
    """Child spans in the order they ended."""

    def walk(self) -> list[SpanRecord]:
        """This span and all its descendants, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


class _NoopSpan:
    """Returned when the tracer is disabled or the request is not sampled."""

    __slots__ = ()

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        """Ignored."""


_NOOP = _NoopSpan()


class _SkipRoot:
    """An unsampled request: marks the context so its children cost nothing."""

    __slots__ = ("_token", "_var")

    def __init__(self, var: ContextVar[Any]) -> None:
        self._var = var
        self._token: Token[Any] | None = None

    def __enter__(self) -> _SkipRoot:
        self._token = self._var.set(_NOOP)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            self._var.reset(self._token)

    def set_attribute(self, key: str, value: Any) -> None:
        """Ignored."""


class _Span:
    """A span being recorded (the hot path: two clock reads, two ContextVar sets, one append).

    Each tracer makes its own subclass holding its context variable, buffer
    and itself as class attributes, so the hot path reads them in one step.
    """

    __slots__ = ("attributes", "end", "error", "name", "parent", "stage", "start")
    _var: ClassVar[ContextVar[Any]]
    _done: ClassVar[list[_Span]]
    _tracer: ClassVar[Tracer]

    def __init__(self, name: str, stage: str | None, attributes: dict[str, Any]) -> None:
        self.name = name
        self.stage = stage  # None: the name (resolved when aggregating)
        self.attributes = attributes

    def __enter__(self) -> _Span:
        var = self._var
        self.parent = var.get()
        var.set(self)
        self.start = _perf_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end = _perf_ns()
        parent = self.parent
        self._var.set(parent)
        if exc_type is not None:
            self.error = exc_type.__name__
            self._tracer._errored.append(self)
        done = self._done
        done.append(self)
        if parent is None and len(done) >= _FOLD_AT:
            self._tracer._fold()

    def set_attribute(self, key: str, value: Any) -> None:
        """Attach an attribute to the span (kept on retained traces and replayed to OTel)."""
        self.attributes[key] = value


class _Ids(dict[str | None, int]):
    """Name -> dense int id, assigning new ids on first sight (C-speed lookups).

    ``None`` (a span without an explicit stage) always has id 0.
    """

    def __init__(self) -> None:
        super().__init__({None: 0})

    def __missing__(self, key: str | None) -> int:
        value = self[key] = len(self)
        return value


def _root_of(group: list[_Span]) -> _Span:
    return next(span for span in reversed(group) if span.parent is None)


def _error(span: _Span) -> str | None:
    return getattr(span, "error", None)


_parent = attrgetter("parent")
_start = attrgetter("start")
_end = attrgetter("end")
_name = attrgetter("name")
_stage = attrgetter("stage")


def _stage_of(span: _Span) -> str:
    return span.stage or span.name


class _Batch:
    """Finished spans of complete requests, with the per-span figures computed in NumPy."""

    __slots__ = ("duration", "ids", "n_requests", "request", "roots", "self_ns", "spans")

    def __init__(
        self,
        spans: list[_Span],
        request: npt.NDArray[np.int64],
        duration: npt.NDArray[np.int64],
        self_ns: npt.NDArray[np.int64],
        roots: npt.NDArray[np.int64],
        ids: npt.NDArray[np.int64],
    ) -> None:
        self.spans = spans
        self.ids = ids  # per span: id() of the span object
        self.request = request  # per span: index of its request in ``roots``
        self.duration = duration  # per span, overhead-corrected, ns
        self.self_ns = self_ns  # per span, overhead-corrected, ns
        self.roots = roots  # span index of each request's root
        self.n_requests = len(roots)


def _analyse(spans: list[_Span], overhead: int) -> tuple[_Batch, list[_Span]]:
    """Link spans to parents and requests; returns the complete requests and the rest.

    Spans whose request has not finished yet (a concurrent request in another
    thread) are returned to be carried over to the next batch.
    """
    n = len(spans)
    ids = np.fromiter(map(id, spans), np.int64, n)
    parent_ids = np.fromiter(map(id, map(_parent, spans)), np.int64, n)
    start = np.fromiter(map(_start, spans), np.int64, n)
    end = np.fromiter(map(_end, spans), np.int64, n)
    order = np.argsort(ids)
    pos = np.minimum(np.searchsorted(ids[order], parent_ids), n - 1)
    parent_row = np.where(ids[order][pos] == parent_ids, order[pos], -1)
    is_root = parent_ids == id(None)
    # Walk up to the root (pointer jumping); -1 marks a chain whose root is not here yet.
    root = np.where(is_root, np.arange(n), parent_row)
    depth = np.where(is_root, 0, 1)
    while True:
        climbing = (root >= 0) & ~is_root[np.maximum(root, 0)]
        if not climbing.any():
            break
        root = np.where(climbing, parent_row[np.maximum(root, 0)], root)
        depth = depth + climbing
    complete = root >= 0
    carry = [spans[i] for i in np.flatnonzero(~complete)]
    raw = end - start
    has_parent = complete & (parent_row >= 0)
    child_ns = np.bincount(parent_row[has_parent], weights=raw[has_parent], minlength=n)
    n_child = np.bincount(parent_row[has_parent], minlength=n)
    n_desc = np.zeros(n, dtype=np.int64)
    for level in range(int(depth[complete].max(initial=0)), 0, -1):
        rows = np.flatnonzero(complete & (depth == level))
        np.add.at(n_desc, parent_row[rows], n_desc[rows] + 1)
    duration = raw - n_desc * overhead
    self_ns = np.maximum(0, raw - child_ns.astype(np.int64) - n_child * overhead)
    keep = np.flatnonzero(complete)
    roots = np.flatnonzero(complete & is_root)
    request_of_root = np.full(n, -1, dtype=np.int64)
    request_of_root[roots] = np.arange(roots.size)
    kept_spans = [spans[i] for i in keep] if carry else spans
    remap = np.full(n, -1, dtype=np.int64)
    remap[keep] = np.arange(keep.size)
    batch = _Batch(
        kept_spans,
        request_of_root[root[keep]],
        duration[keep],
        self_ns[keep],
        remap[roots],
        ids[keep],
    )
    return batch, carry


class _Stats:
    """Mutable accumulators behind a Breakdown entry."""

    __slots__ = (
        "errors",
        "first",
        "first_self",
        "requests",
        "sketch",
        "spans",
        "sq",
        "stage",
        "total",
        "total2",
    )

    def __init__(self, stage: str = "") -> None:
        self.stage = stage
        self.spans = 0
        self.requests = 0
        self.total = 0.0
        self.total2 = 0.0  # self time (span stats)
        self.sq = 0.0  # sum of squared per-request time (stage stats)
        self.errors = 0
        self.first: float | None = None
        self.first_self: float | None = None
        self.sketch = LatencySketch()


class Tracer:
    """Record requests as span trees and tell where their time goes.

    ``with tracer.span("request"):`` opens a top-level span (a request); spans
    opened inside it — in the same thread or in asyncio tasks it starts — are
    its children (context variables, so concurrent requests never mix). Each
    span has a ``stage`` (``model``, ``preprocess``, ``postprocess``,
    ``serialize``, ``validate``, ``logging``, ``io`` or any string; default:
    its name). Time is taken with ``perf_counter_ns``.

    Every request feeds :meth:`breakdown` (per stage and per span name:
    counts, totals, shares of request time and p50/p95/p99 from mergeable
    sketches; memory stays bounded however many requests run). The last
    ``max_traces`` request trees and the slowest ones are kept for
    :meth:`traces` and OpenTelemetry replay. :meth:`check` reports the
    "shadow pipeline": time outside the model, and stages that grew or
    appeared against a baseline.

    The hot path only stamps times and appends finished spans to a buffer;
    self times, the overhead correction, sketches and retention are computed
    in NumPy batches every few hundred spans. The tracer measures its own
    cost per span when created and subtracts it from every figure. Disabled
    (``enabled=False``) it returns a shared no-op span; with ``sample < 1`` an
    unsampled request costs one random draw.

    Args:
        max_traces: Recent request trees kept for :meth:`traces`.
        max_slowest: Slowest request trees kept besides the recent ones
            (default ``max_traces // 10``).
        sample: Share of requests recorded, in (0, 1].
        model_stages: Stages that count as model time.
        max_names: Distinct span names (and stages) aggregated; more go to ``<other>``.
        max_spans_per_trace: Children kept per span in :meth:`traces` (all are aggregated).
        enabled: Record at all.
        seed: Seed of the sampling draws (for reproducible sampling).

    Examples:
        >>> tracer = Tracer()
        >>> with tracer.span("predict", route="/score"):
        ...     with tracer.span("parse", stage="preprocess"):
        ...         pass
        ...     with tracer.span("forward", stage="model"):
        ...         pass
        >>> [span.name for span in tracer.traces()[0].walk()]
        ['predict', 'parse', 'forward']
        >>> tracer.breakdown().requests
        1
    """

    def __init__(
        self,
        *,
        max_traces: int = 1000,
        max_slowest: int | None = None,
        sample: float = 1.0,
        model_stages: tuple[str, ...] | list[str] = ("model",),
        max_names: int = 256,
        max_spans_per_trace: int = 1000,
        enabled: bool = True,
        seed: int | None = None,
        _calibrate: bool = True,
    ) -> None:
        if not (isinstance(max_traces, int) and max_traces >= 0):
            raise InputError(f"max_traces must be an int >= 0, got {max_traces!r}")
        if not 0 < sample <= 1:
            raise InputError(f"sample must be in (0, 1], got {sample!r}")
        if not model_stages:
            raise InputError("model_stages must name at least one stage")
        self.max_traces = max_traces
        self.max_slowest = max_traces // 10 if max_slowest is None else max_slowest
        self.sample = float(sample)
        self.model_stages = tuple(model_stages)
        self.max_names = max_names
        self.max_spans_per_trace = max_spans_per_trace
        self._enabled = enabled
        self._random = random.Random(seed).random
        self._var: ContextVar[Any] = ContextVar(f"silenttax_tracer_{id(self)}", default=None)
        self._done: list[_Span] = []
        self._span = type(
            "_Span",
            (_Span,),
            {"__slots__": (), "_var": self._var, "_done": self._done, "_tracer": self},
        )
        self._errored: list[_Span] = []  # spans that ended with an exception, not yet folded
        self._plain = enabled and sample >= 1.0
        self._lock = threading.RLock()
        self._segments: deque[_Batch] = deque()
        self._segment_requests = 0
        self._slowest: list[tuple[int, int, list[_Span]]] = []
        self._seq = itertools.count()
        # perf_counter_ns -> epoch ns, taken once so durations never jump with NTP
        self._epoch_offset = time.time_ns() - _perf_ns()
        self._requests = 0
        self._request_total = 0.0
        self._request_sketch = LatencySketch()
        self._names = _Ids()
        self._stage_stats: dict[int, _Stats] = {}
        self._span_stats: dict[int, _Stats] = {}
        self.overhead_ns = self._measure_overhead() if _calibrate else 0

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded; set it to switch recording off and on at run time."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        self._plain = self._enabled and self.sample >= 1.0

    # ---------------------------------------------------------------- recording
    def span(self, name: str, *, stage: str | None = None, **attributes: Any) -> Any:
        """A context manager recording one span; top-level spans are requests.

        Args:
            name: What the span is called (e.g. ``"tokenize"``).
            stage: What kind of work it is; default: ``name``.
            **attributes: Kept on retained traces and replayed to OpenTelemetry.
        """
        if self._plain:
            return self._span(name, stage, attributes)
        if not self._enabled:
            return _NOOP
        if self.sample < 1.0:
            parent = self._var.get()
            if parent is _NOOP:
                return _NOOP
            if parent is None and self._random() >= self.sample:
                return _SkipRoot(self._var)
        return self._span(name, stage, attributes)

    def traced(self, name: str | None = None, *, stage: str | None = None) -> Callable[[_F], _F]:
        """Decorator: record each call of a sync or async function as a span.

        The return value and exceptions pass through unchanged (an exception
        marks the span as errored).

        Examples:
            >>> tracer = Tracer()
            >>> @tracer.traced(stage="model")
            ... def forward(x):
            ...     return x + 1
            >>> forward(1), tracer.traces()[0].stage
            (2, 'model')
        """

        def decorate(fn: _F) -> _F:
            span_name = name or fn.__qualname__
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    with self.span(span_name, stage=stage):
                        return await fn(*args, **kwargs)

                return cast(_F, async_wrapper)

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with self.span(span_name, stage=stage):
                    return fn(*args, **kwargs)

            return cast(_F, wrapper)

        return decorate

    def current_span(self) -> Any:
        """The span open in this context (or None): set attributes on it."""
        return self._var.get()

    # -------------------------------------------------------------- aggregation
    def _measure_overhead(self) -> int:
        """Cost of one child span, in ns, as seen from its parent (median of trials)."""
        probe = Tracer(max_traces=0, max_slowest=0, _calibrate=False)
        probe._fold = lambda: probe._done.clear()  # type: ignore[method-assign]
        with_child: list[int] = []
        without: list[int] = []
        for _ in range(400):
            with probe.span("p") as parent:
                pass
            without.append(parent.end - parent.start)
            with probe.span("p") as parent, probe.span("c"):
                pass
            with_child.append(parent.end - parent.start)
        with_child.sort()
        without.sort()
        return max(0, with_child[len(with_child) // 2] - without[len(without) // 2])

    def _fold(self) -> None:
        """Aggregate finished requests (batched, under the lock)."""
        with self._lock:
            done = self._done
            n = len(done)
            if not n:
                return
            spans = done[:n]
            del done[:n]  # under the GIL, spans appended meanwhile stay in the buffer
            batch, carry = _analyse(spans, self.overhead_ns)
            if carry:
                done.extend(carry)
            if batch.n_requests:
                self._aggregate(batch)
                self._retain(batch)

    def _key(self, table: dict[int, _Stats], ident: int) -> int:
        if ident in table or len(table) < self.max_names:
            return ident
        return self._names[_OTHER]

    def _aggregate(self, batch: _Batch) -> None:
        spans = batch.spans
        n = len(spans)
        names = self._names
        name_id = np.fromiter(map(names.__getitem__, map(_name, spans)), np.int64, n)
        stage_id = np.fromiter(map(names.__getitem__, map(_stage, spans)), np.int64, n)
        stage_id = np.where(stage_id == 0, name_id, stage_id)  # no stage: the span's name
        seconds = batch.duration / 1e9
        self_s = batch.self_ns / 1e9
        errors = np.zeros(n, dtype=bool)
        if self._errored:  # rare: spans that raised, tracked off the hot path
            failed = np.fromiter(map(id, self._errored), np.int64, len(self._errored))
            errors = np.isin(batch.ids, failed)
            folded = np.isin(failed, batch.ids)
            self._errored = [span for span, f in zip(self._errored, folded, strict=True) if not f]
        requests = seconds[batch.roots]
        self._requests += batch.n_requests
        self._request_total += float(requests.sum())
        self._request_sketch.add_many(requests)
        # per span name: sort once, then one slice per name
        order = np.argsort(name_id, kind="stable")
        counts = np.bincount(name_id)
        present = np.flatnonzero(counts)
        bounds = np.concatenate(([0], np.cumsum(counts[present])))
        by_name = seconds[order]
        totals = np.add.reduceat(by_name, bounds[:-1])
        self_totals = np.add.reduceat(self_s[order], bounds[:-1])
        error_counts = np.add.reduceat(errors[order].astype(np.int64), bounds[:-1])
        for j, ident in enumerate(present.tolist()):
            slot = self._key(self._span_stats, ident)
            stats = self._span_stats.get(slot)
            if stats is None:
                first = int(order[bounds[j]])
                stats = self._span_stats[slot] = _Stats(_stage_of(spans[first]))
                stats.first = float(seconds[first])
                stats.first_self = float(self_s[first])
            stats.spans += int(counts[ident])
            stats.total += float(totals[j])
            stats.total2 += float(self_totals[j])
            stats.errors += int(error_counts[j])
            stats.sketch.add_many(by_name[bounds[j] : bounds[j + 1]])
        # per stage: self time summed per request (a dense requests x stages table)
        stages = np.flatnonzero(np.bincount(stage_id))
        local = np.searchsorted(stages, stage_id)
        width = stages.size
        cells = batch.n_requests * width
        key = batch.request * width + local
        per_cell = np.bincount(key, weights=self_s, minlength=cells).reshape(-1, width)
        has = (np.bincount(key, minlength=cells) > 0).reshape(-1, width)
        span_counts = np.bincount(local, minlength=width)
        for j, ident in enumerate(stages.tolist()):
            values = per_cell[has[:, j], j]
            slot = self._key(self._stage_stats, ident)
            stage_stats = self._stage_stats.get(slot)
            if stage_stats is None:
                stage_stats = self._stage_stats[slot] = _Stats()
            stage_stats.spans += int(span_counts[j])
            stage_stats.requests += values.size
            stage_stats.total += float(values.sum())
            stage_stats.sq += float((values * values).sum())
            stage_stats.sketch.add_many(values)

    def _retain(self, batch: _Batch) -> None:
        """Keep the batch for the recent ring, and the slowest requests' spans."""
        if self.max_traces:
            self._segments.append(batch)
            self._segment_requests += batch.n_requests
            while self._segment_requests - self._segments[0].n_requests >= self.max_traces:
                self._segment_requests -= self._segments.popleft().n_requests
        if self.max_slowest:
            heap = self._slowest
            durations = batch.duration[batch.roots]
            for r in np.argsort(durations)[::-1][: self.max_slowest].tolist():
                if len(heap) >= self.max_slowest and durations[r] <= heap[0][0]:
                    break
                group = [batch.spans[i] for i in np.flatnonzero(batch.request == r)]
                item = (int(durations[r]), next(self._seq), group)
                if len(heap) < self.max_slowest:
                    heapq.heappush(heap, item)
                else:
                    heapq.heapreplace(heap, item)

    def _recent_groups(self) -> list[list[_Span]]:
        """The last ``max_traces`` requests, each as its list of spans."""
        groups: list[list[_Span]] = []
        for batch in self._segments:
            order = np.argsort(batch.request, kind="stable")
            bounds = np.searchsorted(batch.request[order], np.arange(batch.n_requests + 1))
            ordered = [batch.spans[i] for i in order]
            groups.extend(ordered[bounds[r] : bounds[r + 1]] for r in range(batch.n_requests))
        return groups[-self.max_traces :] if self.max_traces else []

    # ------------------------------------------------------------------- queries
    def breakdown(self) -> Breakdown:
        """Per-stage and per-span aggregates over every request so far (JSON state)."""
        self._fold()
        with self._lock:
            label = {ident: name for name, ident in self._names.items() if name is not None}
            return Breakdown(
                requests=self._requests,
                request_total=self._request_total,
                request_sketch=self._request_sketch.state(),
                stages={
                    label[ident]: StageStats(
                        spans=s.spans,
                        requests=s.requests,
                        total=s.total,
                        total_sq=s.sq,
                        sketch=s.sketch.state(),
                    )
                    for ident, s in self._stage_stats.items()
                },
                spans={
                    label[ident]: SpanStats(
                        stage=s.stage,
                        count=s.spans,
                        errors=s.errors,
                        total=s.total,
                        self_total=s.total2,
                        first=s.first,
                        first_self=s.first_self,
                        sketch=s.sketch.state(),
                    )
                    for ident, s in self._span_stats.items()
                },
                model_stages=list(self.model_stages),
                overhead_per_span=self.overhead_ns / 1e9,
            )

    def traces(self) -> list[SpanRecord]:
        """Retained request trees (recent and slowest), oldest first."""
        self._fold()
        with self._lock:
            groups = {id(_root_of(g)): g for g in self._recent_groups()}
            groups.update((id(_root_of(item[2])), item[2]) for item in self._slowest)
            trees = [self._tree(g) for g in groups.values()]
            return sorted(trees, key=lambda t: t.start_ns)

    def _tree(self, group: list[_Span]) -> SpanRecord:
        """Rebuild one request's tree from its spans."""
        children: dict[int, list[_Span]] = {}
        root = group[-1]
        for span in group:
            if span.parent is None:
                root = span
            else:
                children.setdefault(id(span.parent), []).append(span)
        for siblings in children.values():
            siblings.sort(key=_end)
        return self._record(root, children)

    def _record(self, span: _Span, children_of: dict[int, list[_Span]]) -> SpanRecord:
        children = children_of.get(id(span), [])[: self.max_spans_per_trace]
        records = [self._record(c, children_of) for c in children]
        n_desc = sum(len(r.walk()) for r in records)
        overhead = self.overhead_ns
        duration_ns = max(0, span.end - span.start - n_desc * overhead)
        child_ns = sum(c.end - c.start for c in children)
        self_ns = max(0, span.end - span.start - child_ns - len(children) * overhead)
        start_ns = span.start + self._epoch_offset
        return SpanRecord(
            name=span.name,
            stage=_stage_of(span),
            start=start_ns / 1e9,
            start_ns=start_ns,
            duration=duration_ns / 1e9,
            self_time=self_ns / 1e9,
            attributes={k: _jsonable(v) for k, v in span.attributes.items()},
            error=_error(span),
            children=records,
        )

    def reset(self) -> None:
        """Forget every request and aggregate (settings and calibration stay)."""
        with self._lock:
            del self._done[:]
            self._errored.clear()
            self._segments.clear()
            self._segment_requests = 0
            self._slowest.clear()
            self._requests, self._request_total = 0, 0.0
            self._request_sketch = LatencySketch()
            self._stage_stats.clear()
            self._span_stats.clear()

    def check(self, baseline: Tracer | Breakdown | None = None, **options: Any) -> Report:
        """Shadow-pipeline findings against an optional baseline (a tracer or a saved
        breakdown); ``options`` as for :func:`silenttax.trace.check_breakdown`."""
        from silenttax.trace._check import check_breakdown

        if baseline is not None and not isinstance(baseline, Tracer | Breakdown):
            raise InputError(
                f"baseline must be a Tracer or a Breakdown, got {type(baseline).__name__}"
            )
        base = baseline.breakdown() if isinstance(baseline, Tracer) else baseline
        return check_breakdown(self.breakdown(), base, **options)


def _jsonable(value: Any) -> JsonValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)
