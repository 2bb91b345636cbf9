"""Tracer: an always-on, low-overhead request recorder that attributes time to stages.

The hot path is one small ``__slots__`` class per tracer (or the same thing
compiled, ``_speedups.c``, when it was built). Entering a span reads the
monotonic clock and sets a ``ContextVar``; leaving it reads the clock again,
restores the variable and appends five integers (name/stage key, start, end,
its sequence number, its parent's) to a flat buffer. The span object itself
is freed as soon as the ``with`` block ends, so recording keeps nothing the
garbage collector has to walk. Everything else — linking spans to
requests, self times, the tracer's own overhead correction, per-stage
sketches, retention of recent and slowest requests — happens in NumPy batches
off the per-span path.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import inspect
import itertools
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, TypeVar, cast

import numpy as np
import numpy.typing as npt
import psutil
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from silenttax._sketch import LatencySketch
from silenttax._system import intra_op_threads, usable_cores
from silenttax.errors import InputError, InternalError
from silenttax.report import Report
from silenttax.trace._breakdown import Breakdown, SpanStats, StageStats
from silenttax.trace._runtime import gc_pauses, overlap_ns

try:  # the compiled recorder; absent when silenttax was installed without a C compiler
    from silenttax.trace import _speedups
except ImportError:  # pragma: no cover - depends on the install
    _speedups = None  # type: ignore[assignment]

__all__ = ["SpanRecord", "Tracer"]

# Use the compiled recorder when it was built (SILENTTAX_PURE_PYTHON=1 turns it off).
SPEEDUPS = _speedups is not None and not os.environ.get("SILENTTAX_PURE_PYTHON")

_F = TypeVar("_F", bound=Callable[..., Any])
_FOLD_AT = 4096  # spans buffered before a batch is aggregated (when a request ends)
_HARD_AT = 16 * _FOLD_AT  # ... and regardless, so no single long request can grow the buffer
_MAX_CARRY = 16 * _FOLD_AT  # spans of unfinished requests carried between batches
_MAX_PENDING = 4 * _MAX_CARRY  # attributes/errors of spans not aggregated yet
_FIELDS = 5  # per span in the buffer: key, start, end, seq, parent seq
_KEY, _START, _END, _SEQ, _PARENT = range(_FIELDS)
_OTHER = "<other>"
_perf_ns = time.perf_counter_ns
_Array = npt.NDArray[np.int64]


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
    gc_time: float = 0.0
    """Garbage-collection pauses inside the span's self time, seconds (runtime hints)."""
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


class _Root:
    """The context value outside any span: the parent of every request."""

    __slots__ = ()
    seq: ClassVar[int] = -1


_ROOT = _Root()


class _NoopSpan:
    """Returned when the tracer is disabled or the request is not sampled."""

    __slots__ = ()
    seq: ClassVar[int] = -1  # a span opened under it (recording switched on) is a request

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
            try:
                self._var.reset(self._token)
            except ValueError:  # left in another context than it was entered in
                self._var.set(_ROOT)

    def set_attribute(self, key: str, value: Any) -> None:
        """Ignored."""


class _Span:
    """A span being recorded; use it as a context manager (``with tracer.span(...)``).

    Each tracer makes its own subclass whose methods close over the tracer's
    context variable and buffer, so the hot path does no attribute lookups
    beyond its own four slots.
    """

    __slots__ = ("key", "parent", "seq", "start")
    key: int
    parent: Any
    seq: int
    start: int

    def __init__(self, name: str, *, stage: str | None = None, **attributes: Any) -> None:
        raise NotImplementedError  # pragma: no cover - the tracer's subclass implements it

    def __enter__(self) -> _Span:
        raise NotImplementedError  # pragma: no cover

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise NotImplementedError  # pragma: no cover

    def set_attribute(self, key: str, value: Any) -> None:
        """Attach an attribute to the span (kept on retained traces and replayed to OTel)."""
        raise NotImplementedError  # pragma: no cover


def _span_class(tracer: Tracer) -> type[_Span]:
    """The tracer's pure-Python span class: every name it needs is a closure variable."""
    get = tracer._var.get
    set_ = tracer._var.set
    buf = tracer._buf
    extend = buf.extend
    table = tracer._table
    attrs = tracer._attrs
    errors = tracer._errors
    next_seq = tracer._seqs.__next__
    new_key = tracer._new_key
    fold_at = _FOLD_AT * _FIELDS
    hard_at = _HARD_AT * _FIELDS
    root = _ROOT
    clock = _perf_ns

    class _TracerSpan(_Span):
        __slots__ = ()

        def __init__(self, name: str, *, stage: str | None = None, **attributes: Any) -> None:
            try:
                self.key = table[stage][name]
            except (KeyError, TypeError):
                self.key = new_key(name, stage)
            self.seq = seq = next_seq()
            if attributes:
                attrs[seq] = attributes

        def __enter__(self) -> _Span:
            parent = get()
            if parent is not self:  # entered again inside itself: keep the first parent
                self.parent = parent
            set_(self)
            self.start = clock()
            return self

        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None:
            end = clock()
            parent = self.parent
            set_(parent)
            extend((self.key, self.start, end, self.seq, parent.seq))
            if exc_type is not None:
                errors[self.seq] = exc_type.__name__
            if len(buf) >= fold_at and (parent is root or len(buf) >= hard_at):
                tracer._fold_quietly()

        def set_attribute(self, key: str, value: Any) -> None:
            """Attach an attribute to the span (kept on retained traces and replayed to OTel).

            Only while the span is open in this context (or an enclosing one);
            otherwise the attribute is ignored.
            """
            span = get()
            while span is not self:  # walk the open spans: cheap, and rarely called
                span = getattr(span, "parent", None)
                if span is None:
                    return
            attrs.setdefault(self.seq, {})[key] = value

    return _TracerSpan


class _Requests(NamedTuple):
    """Spans of complete requests (rows of the span buffer) with figures computed in NumPy."""

    rows: _Array  # (spans, 5): key, start, end, seq, parent seq
    request: _Array  # per span: index of its request in ``roots``
    duration: _Array  # per span, overhead-corrected, ns
    self_ns: _Array  # per span, overhead-corrected, ns
    gc_ns: _Array  # per span: garbage-collection pauses inside its self time, ns
    roots: _Array  # row of each request's root span
    attributes: dict[int, dict[str, Any]]  # by span seq, only spans that have any
    errors: dict[int, str]  # by span seq: exception type name

    @property
    def n_requests(self) -> int:
        return len(self.roots)

    def split(self, requests: list[int]) -> list[_Requests]:
        """The given requests (sorted indices), one each: one gather, then views of it."""
        chosen = np.zeros(self.n_requests, dtype=bool)
        chosen[requests] = True
        rows = np.flatnonzero(chosen[self.request])
        rows = rows[np.argsort(self.request[rows], kind="stable")]
        bounds = np.searchsorted(self.request[rows], [*requests, self.n_requests]).tolist()
        own_rows, duration = self.rows[rows], self.duration[rows]
        self_ns, gc_ns = self.self_ns[rows], self.gc_ns[rows]
        is_root = np.zeros(len(self.rows), dtype=bool)
        is_root[self.roots] = True
        root_at = np.flatnonzero(is_root[rows])  # one root per request, in request order
        zeros = np.zeros(len(rows), dtype=np.int64)
        out = []
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            attributes: dict[int, dict[str, Any]] = {}
            errors: dict[int, str] = {}
            if self.attributes or self.errors:
                seqs = own_rows[lo:hi, _SEQ].tolist()
                attributes = {q: self.attributes[q] for q in seqs if q in self.attributes}
                errors = {q: self.errors[q] for q in seqs if q in self.errors}
            out.append(
                _Requests(
                    own_rows[lo:hi],
                    zeros[lo:hi],
                    duration[lo:hi],
                    self_ns[lo:hi],
                    gc_ns[lo:hi],
                    root_at[i : i + 1] - lo,
                    attributes,
                    errors,
                )
            )
        return out


def _analyse(
    rows: _Array, overhead: int, pauses: tuple[_Array, _Array] | None = None
) -> tuple[_Requests, _Array]:
    """Link spans to parents and requests; returns the complete requests and the rest.

    ``pauses`` (sorted, disjoint garbage-collection pauses) are matched to each
    span's self time.

    Spans whose request has not finished yet (a concurrent request in another
    thread, or a parent still open) are returned to be carried to the next batch.
    """
    n = len(rows)
    seq = rows[:, _SEQ]
    parent_seq = rows[:, _PARENT]
    # Sequence numbers are dense: a lookup table from seq to row links children to parents.
    low = int(seq.min())
    span = int(seq.max()) - low + 1
    if span <= 8 * n:
        row_of = np.full(span + 1, -1, dtype=np.int64)  # the extra cell: parents not here
        row_of[seq - low] = np.arange(n)
        offset = parent_seq - low
        parent_row = row_of[np.where((offset >= 0) & (offset < span), offset, span)]
    else:  # spans carried from long ago: search instead
        order = np.argsort(seq, kind="stable")
        sorted_seq = seq[order]
        pos = np.minimum(np.searchsorted(sorted_seq, parent_seq), n - 1)
        parent_row = np.where(sorted_seq[pos] == parent_seq, order[pos], -1)
    is_root = parent_seq < 0
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
    raw = rows[:, _END] - rows[:, _START]
    has_parent = complete & (parent_row >= 0)
    child_ns = np.bincount(parent_row[has_parent], weights=raw[has_parent], minlength=n)
    n_child = np.bincount(parent_row[has_parent], minlength=n)
    n_desc = np.zeros(n, dtype=np.int64)
    for level in range(int(depth[complete].max(initial=0)), 0, -1):
        level_rows = np.flatnonzero(complete & (depth == level))
        n_desc += np.bincount(
            parent_row[level_rows], weights=n_desc[level_rows] + 1, minlength=n
        ).astype(np.int64)
    duration = np.maximum(0, raw - n_desc * overhead)
    self_ns = np.maximum(0, raw - child_ns.astype(np.int64) - n_child * overhead)
    if pauses is not None and pauses[0].size:
        gc_ns = overlap_ns(rows[:, _START], rows[:, _END], *pauses)
        child_gc = np.bincount(parent_row[has_parent], weights=gc_ns[has_parent], minlength=n)
        gc_ns = np.minimum(self_ns, np.maximum(0, gc_ns - child_gc.astype(np.int64)))
    else:
        gc_ns = np.zeros(n, dtype=np.int64)
    roots = np.flatnonzero(complete & is_root)
    request_of_root = np.full(n, -1, dtype=np.int64)
    request_of_root[roots] = np.arange(roots.size)
    if complete.all():
        requests = _Requests(rows, request_of_root[root], duration, self_ns, gc_ns, roots, {}, {})
        return requests, rows[:0]
    keep = np.flatnonzero(complete)
    remap = np.full(n, -1, dtype=np.int64)
    remap[keep] = np.arange(keep.size)
    requests = _Requests(
        rows[keep],
        request_of_root[root[keep]],
        duration[keep],
        self_ns[keep],
        gc_ns[keep],
        remap[roots],
        {},
        {},
    )
    return requests, rows[~complete]


def _take(store: dict[int, Any], seqs: _Array) -> dict[int, Any]:
    """Move the entries of ``store`` whose span is among ``seqs`` into a new dict."""
    if not store:
        return {}
    keys = list(store)  # a snapshot: other threads may add entries meanwhile
    found = np.isin(np.asarray(keys, dtype=np.int64), seqs)
    return {k: store.pop(k) for k, f in zip(keys, found.tolist(), strict=True) if f}


class _Stats:
    """Mutable accumulators behind a Breakdown entry."""

    __slots__ = (
        "errors",
        "first",
        "first_self",
        "gc",
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
        self.gc = 0.0  # garbage-collection pauses inside the stage's self time
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

    The hot path only stamps times and appends five integers per span to a
    buffer; self times, the overhead correction, sketches and retention are
    computed in NumPy batches every few thousand spans, when a request ends.
    The tracer measures its own cost per span when created and subtracts it
    from every figure. Disabled (``enabled=False``) it returns a shared no-op
    span; with ``sample < 1`` an unsampled request costs one random draw.

    Args:
        max_traces: Recent request trees kept for :meth:`traces`.
        max_slowest: Slowest request trees kept besides the recent ones
            (default ``max_traces // 10``).
        sample: Share of requests recorded, in (0, 1].
        model_stages: Stages that count as model time.
        max_names: Distinct span names (and stages) kept; more are recorded as
            ``<other>``, in the breakdown and in traces.
        max_spans_per_trace: Children kept per span in :meth:`traces` (all are aggregated).
        enabled: Record at all.
        seed: Seed of the sampling draws (for reproducible sampling).
        runtime_hints: Match garbage-collection pauses to spans (one process-wide
            ``gc.callbacks`` hook) and sample the process's CPU time and threads once
            per batch, for the ``pipeline.gc_pauses`` and ``pipeline.threads`` findings.
            The per-span path is the same either way.

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
        runtime_hints: bool = True,
        _calibrate: bool = True,
    ) -> None:
        if not (isinstance(max_traces, int) and max_traces >= 0):
            raise InputError(f"max_traces must be an int >= 0, got {max_traces!r}")
        if max_slowest is not None and not (isinstance(max_slowest, int) and max_slowest >= 0):
            raise InputError(f"max_slowest must be an int >= 0, got {max_slowest!r}")
        if not (isinstance(sample, int | float) and 0 < sample <= 1):
            raise InputError(f"sample must be in (0, 1], got {sample!r}")
        if not (isinstance(max_names, int) and max_names >= 1):
            raise InputError(f"max_names must be an int >= 1, got {max_names!r}")
        if not model_stages:
            raise InputError("model_stages must name at least one stage")
        self.max_traces = max_traces
        self.max_slowest = max_traces // 10 if max_slowest is None else max_slowest
        self.sample = float(sample)
        self.model_stages = tuple(model_stages)
        self.max_names = max_names
        self.max_spans_per_trace = max_spans_per_trace
        self._enabled = bool(enabled)
        self._random = random.Random(seed).random
        self._lock = threading.RLock()
        self._var: ContextVar[Any] = ContextVar(f"silenttax_tracer_{id(self)}", default=_ROOT)
        # The span buffer: five ints per finished span (see _FIELDS), appended lock-free.
        self._buf: list[int] = []
        self._seqs = itertools.count()
        self._attrs: dict[int, dict[str, Any]] = {}  # by span seq, spans with attributes
        self._errors: dict[int, str] = {}  # by span seq, spans that raised
        self._carry: _Array = np.empty((0, _FIELDS), dtype=np.int64)
        self._fold_error: BaseException | None = None
        # (stage, name) -> key, and per key its (capped) name and resolved stage
        self._table: dict[str | None, dict[str, int]] = {}
        self._key_of: dict[tuple[str, str], int] = {}
        self._key_names: list[str] = []
        self._key_stages: list[str] = []
        self._key_name_ids: list[int] = []
        self._key_stage_ids: list[int] = []
        self._names: dict[str, int] = {}  # name -> id (in order of first sight)
        self._stages: dict[str, int] = {}
        self._recorder = (
            _speedups.Recorder(
                self,
                self._var,
                self._table,
                self._attrs,
                self._errors,
                _ROOT,
                _FOLD_AT * _FIELDS,
                _HARD_AT * _FIELDS,
            )
            if SPEEDUPS
            else None
        )
        self._span: Callable[..., Any] = (
            self._recorder.span if self._recorder is not None else _span_class(self)
        )
        self._segments: deque[_Requests] = deque()
        self._segment_requests = 0
        self._slowest: list[tuple[int, int, _Requests]] = []
        # perf_counter_ns -> epoch ns, taken once so durations never jump with NTP
        self._epoch_offset = time.time_ns() - _perf_ns()
        self._requests = 0
        self._request_total = 0.0
        self._request_sketch = LatencySketch()
        self._stage_stats: dict[str, _Stats] = {}
        self._span_stats: dict[str, _Stats] = {}
        self.runtime_hints = bool(runtime_hints)
        self._process = psutil.Process() if self.runtime_hints else None
        self._max_threads = 0
        self._threads_at = 0
        self._window = (_perf_ns(), time.process_time_ns())  # wall, CPU: since creation/reset
        if self.runtime_hints:
            gc_pauses.acquire()
            weakref.finalize(self, gc_pauses.release)
        self._route()
        self.overhead_ns = self._measure_overhead() if _calibrate else 0

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded; set it to switch recording off and on at run time."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        self._route()

    def _route(self) -> None:
        """Point ``self.span`` straight at the span class when every request is recorded."""
        if self._enabled and self.sample >= 1.0:
            self.__dict__["span"] = self._span
        else:
            self.__dict__.pop("span", None)

    # ---------------------------------------------------------------- recording
    def span(self, name: str, *, stage: str | None = None, **attributes: Any) -> Any:
        """A context manager recording one span; top-level spans are requests.

        Args:
            name: What the span is called (e.g. ``"tokenize"``).
            stage: What kind of work it is; default: ``name``.
            **attributes: Kept on retained traces and replayed to OpenTelemetry.
        """
        # Recording every request, ``tracer.span`` is the span class itself (see _route).
        if not self._enabled:
            return _NOOP
        if self.sample < 1.0:
            parent = self._var.get()
            if parent is _NOOP:
                return _NOOP
            if parent is _ROOT and self._random() >= self.sample:
                return _SkipRoot(self._var)
        return self._span(name, stage=stage, **attributes)

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
        span = self._var.get()
        return None if span is _ROOT else span

    def _new_key(self, name: Any, stage: Any) -> int:
        """The key of a (name, stage) pair not seen yet (off the hot path, under the lock)."""
        with self._lock:
            name = name if isinstance(name, str) else str(name)
            stage = stage if stage is None or isinstance(stage, str) else str(stage)
            capped = False
            if name not in self._names and len(self._names) >= self.max_names:
                name, capped = _OTHER, True
            resolved = name if stage is None else stage
            if resolved not in self._stages and len(self._stages) >= self.max_names:
                resolved, capped = _OTHER, True
            key = self._key_of.get((name, resolved))
            if key is None:
                key = self._key_of[name, resolved] = len(self._key_names)
                self._key_names.append(name)
                self._key_stages.append(resolved)
                self._key_name_ids.append(self._names.setdefault(name, len(self._names)))
                self._key_stage_ids.append(self._stages.setdefault(resolved, len(self._stages)))
            if not capped:  # capped pairs stay out of the table, so it stays bounded
                self._table.setdefault(stage, {})[name] = key
            return key

    # -------------------------------------------------------------- aggregation
    def _measure_overhead(self) -> int:
        """Cost of one child span, in ns, as seen from its parent (median of trials)."""
        probe = Tracer(max_traces=0, max_slowest=0, runtime_hints=False, _calibrate=False)
        probe._fold_quietly = lambda: None  # type: ignore[method-assign]
        span = probe._span
        for _ in range(400):
            with span("without"):
                pass
            with span("with"), span("child"):
                pass
        rows = probe._take_rows()
        raw = rows[:, _END] - rows[:, _START]
        keys = rows[:, _KEY]
        without = np.median(raw[keys == probe._table[None]["without"]])
        with_child = np.median(raw[keys == probe._table[None]["with"]])
        return max(0, int(with_child - without))

    @property
    def compiled(self) -> bool:
        """Whether spans are recorded by the compiled recorder (else pure Python)."""
        return self._recorder is not None

    def _buffered(self) -> int:
        """Values (five per span) waiting to be aggregated."""
        return self._recorder.values() if self._recorder is not None else len(self._buf)

    def _take_rows(self) -> _Array:
        """Take the finished spans out of the buffer, one row each."""
        if self._recorder is not None:
            data = np.frombuffer(self._recorder.take(), dtype=np.int64)
        else:
            buf = self._buf
            m = len(buf)  # other threads only ever append whole spans
            data = np.fromiter(buf, np.int64, m)
            del buf[:m]
        return data.reshape(-1, _FIELDS)

    def _discard(self) -> None:
        """Drop the finished spans without aggregating them."""
        if self._recorder is not None:
            self._recorder.clear()
        del self._buf[:]

    def _fold_quietly(self) -> None:
        """Fold from the request path: an internal failure is kept for the next query."""
        try:
            self._fold()
        except Exception as error:  # never raise into the traced request
            self._fold_error = error

    def _fold(self) -> None:
        """Aggregate finished requests (batched, under the lock)."""
        with self._lock:
            if not self._buffered() and not self._carry.size:
                return
            rows = self._take_rows()
            if self._carry.size:
                rows = np.concatenate((self._carry, rows))
            if not rows.size:
                return
            pauses = None
            if self.runtime_hints:
                pauses = gc_pauses.between(int(rows[:, _START].min()), int(rows[:, _END].max()))
                self._sample_threads()
            requests, carry = _analyse(rows, self.overhead_ns, pauses)
            if len(carry) > _MAX_CARRY:  # parents that never end: drop the oldest
                carry = carry[np.argsort(carry[:, _SEQ])[-_MAX_CARRY:]]
            self._carry = carry
            if requests.n_requests:
                seqs = requests.rows[:, _SEQ]
                requests = requests._replace(
                    attributes=_take(self._attrs, seqs), errors=_take(self._errors, seqs)
                )
                self._aggregate(requests)
                self._retain(requests)
            for store in (self._attrs, self._errors):
                if len(store) > _MAX_PENDING:  # spans never entered, or dropped above
                    for seq in sorted(store)[: len(store) - _MAX_PENDING // 2]:
                        store.pop(seq, None)

    def _sample_threads(self, *, now: bool = False) -> None:
        """Note the OS thread count (at most every 0.1 s while folding; always if ``now``)."""
        if self._process is None:
            return
        t = _perf_ns()
        if now or t - self._threads_at >= 100_000_000:
            self._threads_at = t
            with contextlib.suppress(psutil.Error):  # the OS refused: keep what we have
                self._max_threads = max(self._max_threads, self._process.num_threads())

    def _aggregate(self, batch: _Requests) -> None:
        rows = batch.rows
        n = len(rows)
        key = rows[:, _KEY]
        name_id = np.asarray(self._key_name_ids, dtype=np.int64)[key]
        stage_id = np.asarray(self._key_stage_ids, dtype=np.int64)[key]
        names = list(self._names)
        stages = list(self._stages)
        seconds = batch.duration / 1e9
        self_s = batch.self_ns / 1e9
        errors = np.zeros(n, dtype=bool)
        if batch.errors:
            errors = np.isin(rows[:, _SEQ], np.fromiter(batch.errors, np.int64))
        requests = seconds[batch.roots]
        self._requests += batch.n_requests
        self._request_total += float(requests.sum())
        self._request_sketch.add_many(requests)
        # per span name: sort once (a radix sort on few ids), then one slice per name
        small = name_id.astype(np.int16) if len(names) < 2**15 else name_id
        order = np.argsort(small, kind="stable")
        counts = np.bincount(name_id)
        present = np.flatnonzero(counts)
        bounds = np.concatenate(([0], np.cumsum(counts[present])))
        by_name = seconds[order]
        totals = np.add.reduceat(by_name, bounds[:-1])
        self_totals = np.add.reduceat(self_s[order], bounds[:-1])
        error_counts = np.add.reduceat(errors[order].astype(np.int64), bounds[:-1])
        for j, ident in enumerate(present.tolist()):
            name = names[ident]
            stats = self._span_stats.get(name)
            if stats is None:
                first = int(order[bounds[j]])
                stats = self._span_stats[name] = _Stats(stages[int(stage_id[first])])
                stats.first = float(seconds[first])
                stats.first_self = float(self_s[first])
            stats.spans += int(counts[ident])
            stats.total += float(totals[j])
            stats.total2 += float(self_totals[j])
            stats.errors += int(error_counts[j])
            stats.sketch.add_many(by_name[bounds[j] : bounds[j + 1]])
        # per stage: self time summed per request (a dense requests x stages table)
        present = np.flatnonzero(np.bincount(stage_id))
        width = present.size
        local = np.zeros(present[-1] + 1, dtype=np.int64)
        local[present] = np.arange(width)
        cells = batch.n_requests * width
        cell = batch.request * width + local[stage_id]
        per_cell = np.bincount(cell, weights=self_s, minlength=cells).reshape(-1, width)
        has = (np.bincount(cell, minlength=cells) > 0).reshape(-1, width)
        span_counts = np.bincount(local[stage_id], minlength=width)
        gc_by_stage = np.bincount(local[stage_id], weights=batch.gc_ns / 1e9, minlength=width)
        for j, ident in enumerate(present.tolist()):
            values = per_cell[has[:, j], j]
            stage = stages[ident]
            stage_stats = self._stage_stats.get(stage)
            if stage_stats is None:
                stage_stats = self._stage_stats[stage] = _Stats()
            stage_stats.spans += int(span_counts[j])
            stage_stats.requests += values.size
            stage_stats.total += float(values.sum())
            stage_stats.sq += float((values * values).sum())
            stage_stats.gc += float(gc_by_stage[j])
            stage_stats.sketch.add_many(values)

    def _retain(self, batch: _Requests) -> None:
        """Keep the batch for the recent ring, and the slowest requests' spans."""
        if self.max_traces:
            self._segments.append(batch)
            self._segment_requests += batch.n_requests
            while self._segment_requests - self._segments[0].n_requests >= self.max_traces:
                self._segment_requests -= self._segments.popleft().n_requests
        if self.max_slowest:
            heap = self._slowest
            durations = batch.duration[batch.roots]
            candidates = np.arange(durations.size)
            if len(heap) >= self.max_slowest:  # only requests slower than the slowest kept
                candidates = np.flatnonzero(durations > heap[0][0])
            ranked = candidates[np.argsort(durations[candidates])[::-1]][: self.max_slowest]
            chosen = sorted(ranked.tolist())
            for r, request in zip(chosen, batch.split(chosen), strict=True):
                item = (int(durations[r]), int(batch.rows[batch.roots[r], _SEQ]), request)
                if len(heap) < self.max_slowest:
                    heapq.heappush(heap, item)
                elif item[0] > heap[0][0]:
                    heapq.heapreplace(heap, item)

    def _recent(self) -> list[_Requests]:
        """The last ``max_traces`` requests, one each."""
        out: list[_Requests] = []
        skip = self._segment_requests - self.max_traces
        for batch in self._segments:
            first = max(0, skip)
            skip -= batch.n_requests
            out.extend(batch.split(list(range(first, batch.n_requests))))
        return out

    def _checked(self) -> None:
        """Fold, and surface a failure of this or an earlier fold on the request path."""
        self._fold_quietly()
        error, self._fold_error = self._fold_error, None
        if error is not None:
            raise InternalError("silenttax tracer failed to aggregate a batch") from error

    # ------------------------------------------------------------------- queries
    def breakdown(self) -> Breakdown:
        """Per-stage and per-span aggregates over every request so far (JSON state)."""
        self._checked()
        with self._lock:
            wall0, cpu0 = self._window
            if self.runtime_hints:
                self._sample_threads(now=True)
            return Breakdown(
                requests=self._requests,
                request_total=self._request_total,
                request_sketch=self._request_sketch.state(),
                stages={
                    stage: StageStats(
                        spans=s.spans,
                        requests=s.requests,
                        total=s.total,
                        total_sq=s.sq,
                        gc_total=s.gc,
                        sketch=s.sketch.state(),
                    )
                    for stage, s in self._stage_stats.items()
                },
                spans={
                    name: SpanStats(
                        stage=s.stage,
                        count=s.spans,
                        errors=s.errors,
                        total=s.total,
                        self_total=s.total2,
                        first=s.first,
                        first_self=s.first_self,
                        sketch=s.sketch.state(),
                    )
                    for name, s in self._span_stats.items()
                },
                model_stages=list(self.model_stages),
                overhead_per_span=self.overhead_ns / 1e9,
                runtime_hints=self.runtime_hints,
                wall_time=(_perf_ns() - wall0) / 1e9 if self.runtime_hints else 0.0,
                cpu_time=(time.process_time_ns() - cpu0) / 1e9 if self.runtime_hints else 0.0,
                cores=usable_cores() if self.runtime_hints else 0,
                max_threads=self._max_threads,
                intra_op_threads=intra_op_threads() if self.runtime_hints else None,
            )

    def traces(self) -> list[SpanRecord]:
        """Retained request trees (recent and slowest), oldest first."""
        self._checked()
        with self._lock:
            requests = {int(r.rows[r.roots[0], _SEQ]): r for r in self._recent()}
            requests.update((item[1], item[2]) for item in self._slowest)
            trees = [self._tree(r) for r in requests.values()]
            return sorted(trees, key=lambda t: t.start_ns)

    def _tree(self, request: _Requests) -> SpanRecord:
        """Rebuild one request's tree from its rows."""
        rows = request.rows.tolist()
        children: dict[int, list[int]] = {}
        for i in np.argsort(request.rows[:, _END], kind="stable").tolist():
            children.setdefault(rows[i][_PARENT], []).append(i)
        duration = request.duration.tolist()
        self_ns = request.self_ns.tolist()
        gc_ns = request.gc_ns.tolist()
        limit = self.max_spans_per_trace

        def record(i: int) -> SpanRecord:
            key, start, _end, seq, _parent = rows[i]
            start_ns = start + self._epoch_offset
            attributes = request.attributes.get(seq, {})
            return SpanRecord(
                name=self._key_names[key],
                stage=self._key_stages[key],
                start=start_ns / 1e9,
                start_ns=start_ns,
                duration=duration[i] / 1e9,
                self_time=self_ns[i] / 1e9,
                gc_time=gc_ns[i] / 1e9,
                attributes={k: _jsonable(v) for k, v in attributes.items()},
                error=request.errors.get(seq),
                children=[record(c) for c in children.get(seq, [])[:limit]],
            )

        return record(int(request.roots[0]))

    def reset(self) -> None:
        """Forget every request and aggregate (settings and calibration stay)."""
        with self._lock:
            self._discard()
            self._carry = self._carry[:0]
            self._attrs.clear()
            self._errors.clear()
            self._fold_error = None
            self._segments.clear()
            self._segment_requests = 0
            self._slowest.clear()
            self._requests, self._request_total = 0, 0.0
            self._request_sketch = LatencySketch()
            self._stage_stats.clear()
            self._span_stats.clear()
            self._max_threads = 0
            self._window = (_perf_ns(), time.process_time_ns())

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
