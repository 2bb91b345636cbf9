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
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, cast

import numpy as np
import psutil

from silenttax._sketch import LatencySketch
from silenttax._stability import invalid_input_finding
from silenttax._system import (
    SelfTime,
    background,
    intra_op_threads,
    let_others_run,
    usable_cores,
)
from silenttax.errors import InputError, InternalError
from silenttax.report import Report
from silenttax.trace._analyse import _analyse, _Array, _Requests, _Stats, _take
from silenttax.trace._breakdown import Breakdown, SpanStats, StageStats
from silenttax.trace._records import MAX_ATTRIBUTE_CHARS as _MAX_PLAIN
from silenttax.trace._records import SpanRecord, _jsonable
from silenttax.trace._runtime import gc_pauses
from silenttax.trace._spans import (
    _END,
    _FIELDS,
    _FOLD_AT,
    _HARD_AT,
    _KEY,
    _NOOP,
    _PARENT,
    _ROOT,
    _SEQ,
    _START,
    _perf_ns,
    _SkipRoot,
    _span_class,
)

if TYPE_CHECKING:
    from silenttax.trace._check import BreakdownPolicy


def _installed_speedups() -> Any:
    """The installed distribution's compiled recorder, when this import comes from a
    source folder that was never built (Python started in the clone's root after
    ``pip install .``: the folder shadows the install). None when there is none."""
    import importlib.metadata
    import importlib.util
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    try:
        files = importlib.metadata.files("silenttax") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name.startswith("_speedups.") and file.name.endswith((".so", ".pyd")):
            path = Path(str(file.locate())).resolve()
            if not path.is_file() or path.parent == here:
                continue
            spec = importlib.util.spec_from_file_location("silenttax.trace._speedups", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except ImportError:  # built for another interpreter
                continue
            sys.modules["silenttax.trace._speedups"] = module
            return module
    return None


try:  # the compiled recorder; absent when silenttax was installed without a C compiler
    from silenttax.trace import _speedups
except ImportError:  # pragma: no cover - depends on the install
    _speedups = _installed_speedups()

__all__ = ["SpanRecord", "Tracer"]

# Use the compiled recorder when it was built (SILENTTAX_PURE_PYTHON=1 turns it off).
SPEEDUPS = _speedups is not None and not os.environ.get("SILENTTAX_PURE_PYTHON")

_F = TypeVar("_F", bound=Callable[..., Any])


def _bounded(attributes: dict[str, Any]) -> dict[str, Any]:
    """A span's attributes as bounded JSON (plain short values are kept as they are)."""
    for value in attributes.values():
        kind = type(value)
        if not (kind in (int, float, bool) or value is None
                or (kind is str and len(value) <= _MAX_PLAIN)):  # fmt: skip
            return {k: _jsonable(v) for k, v in attributes.items()}
    return attributes


_MAX_CARRY = 16 * _FOLD_AT  # spans of unfinished requests carried between batches
_MAX_PENDING = 4 * _MAX_CARRY  # attributes/errors of spans not aggregated yet
_OTHER = "<other>"


def _as_text(value: Any) -> str:
    """``str(value)``, or its type's name where even that fails (never raises)."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


_FOLDING: weakref.WeakSet[Tracer] = weakref.WeakSet()  # tracers that may fold in background


def _after_fork() -> None:
    """In a forked child no folder thread survived: the next request starts one."""
    for tracer in list(_FOLDING):
        tracer._folder = None


os.register_at_fork(after_in_child=_after_fork)


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
        self.request_folds = SelfTime()
        """The folds that ran inside a request (the one that filled the buffer), timed:
        silenttax's own stall on the request path (see ``stability.self_time``)."""
        self._folder: threading.Thread | None = None  # see fold_in_background
        self._folder_timing: SelfTime | None = None
        _FOLDING.add(self)
        self.invalid = 0
        """Spans whose name or stage was not a string (recorded under ``str()`` of it)."""
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

    def activate(self) -> contextlib.AbstractContextManager[None]:
        """Make this tracer the current one for the block: ``silenttax.stage(name)``
        then records into it (as it does into a serving middleware's tracer during a
        request).

        Examples:
            >>> import silenttax
            >>> tracer = Tracer()
            >>> with tracer.activate(), tracer.span("job"), silenttax.stage("load"):
            ...     pass
            >>> sorted(tracer.breakdown().stages)
            ['job', 'load']
        """
        from silenttax._current import activated

        return activated(self)

    def current_span(self) -> Any:
        """The span open in this context (or None): set attributes on it."""
        span = self._var.get()
        return None if span is _ROOT else span

    def _new_key(self, name: Any, stage: Any) -> int:
        """The key of a (name, stage) pair not seen yet (off the hot path, under the lock)."""
        with self._lock:
            if not isinstance(name, str) or not (stage is None or isinstance(stage, str)):
                self.invalid += 1  # recorded under str(name): counted, reported by check()
                name = name if isinstance(name, str) else _as_text(name)
                stage = stage if stage is None or isinstance(stage, str) else _as_text(stage)
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

    def fold_in_background(self, *, interval: float = 0.05, timing: SelfTime | None = None) -> None:
        """Fold full span buffers on a daemon thread instead of inside the request that
        filled them (what the serving middleware does at its first request).

        The thread looks every ``interval`` seconds and folds in steps, handing the
        interpreter to waiting requests between them, so no request pays for a whole
        fold; a buffer that still grows to the hard limit is folded in the request, as
        without the thread. Each fold is timed in ``timing`` (default: not timed). The
        thread holds the tracer weakly and ends with it; in a forked child it is
        started again by the next call. Idempotent.

        >>> tracer = Tracer()
        >>> tracer.fold_in_background()
        >>> with tracer.span("request"):
        ...     pass
        >>> len(tracer.traces())  # queries fold what is buffered, as always
        1
        """
        folder = self._folder
        if folder is not None and folder.is_alive():
            return
        self._folder_timing = timing
        self._folder = background(self, Tracer._fold_if_full, interval, threading.Event(),
                                  "silenttax-tracer-fold", Tracer._fold_failed)  # fmt: skip

    def _fold_if_full(self) -> None:
        if self._buffered() < _FOLD_AT * _FIELDS:
            return
        timing = self._folder_timing
        if timing is None:
            self._fold(steps=True)
        else:
            with timing.timed():
                self._fold(steps=True)

    def _fold_failed(self, error: Exception) -> None:
        self._fold_error = error

    def _fold_quietly(self) -> None:
        """Fold from the request path (timed in :attr:`request_folds`): an internal
        failure is kept for the next query. With a background folder alive, nothing
        (below the hard limit): the folder takes the buffer within its interval."""
        folder = self._folder
        if folder is not None and self._buffered() < _HARD_AT * _FIELDS and folder.is_alive():
            return
        with self.request_folds.timed():
            self._fold_safely()

    def _fold_safely(self) -> None:
        """Fold; an internal failure is kept for the next query."""
        try:
            self._fold()
        except Exception as error:  # never raise into the traced request
            self._fold_error = error

    def _fold(self, *, steps: bool = False) -> None:
        """Aggregate finished requests (batched, under the lock); with ``steps`` (the
        background folder), hand the interpreter to waiting requests between steps."""
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
            if steps:
                let_others_run()
            requests, carry = _analyse(rows, self.overhead_ns, pauses)
            if steps:
                let_others_run()
            if len(carry) > _MAX_CARRY:  # parents that never end: drop the oldest
                carry = carry[np.argsort(carry[:, _SEQ])[-_MAX_CARRY:]]
            self._carry = carry
            if requests.n_requests:
                seqs = requests.rows[:, _SEQ]
                requests = requests._replace(
                    attributes=_take(self._attrs, seqs), errors=_take(self._errors, seqs)
                )
                self._aggregate(requests)
                if steps:
                    let_others_run()
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
        """Keep the batch for the recent ring, and the slowest requests' spans.

        Retained traces keep bounded JSON, not the user's objects (a tensor set as an
        attribute must not stay alive with the trace); only the attributes of the
        requests kept are converted (the ring's last ``max_traces`` and the slowest)."""
        if batch.attributes:
            batch = batch._replace(attributes=self._kept_attributes(batch))
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

    def _kept_attributes(self, batch: _Requests) -> dict[int, dict[str, Any]]:
        """The attributes, as bounded JSON, of the batch's requests this tracer may keep."""
        kept = np.zeros(batch.n_requests, dtype=bool)
        if self.max_traces:
            kept[max(0, batch.n_requests - self.max_traces) :] = True
        if self.max_slowest:
            durations = batch.duration[batch.roots]
            floor = self._slowest[0][0] if len(self._slowest) >= self.max_slowest else -1
            kept |= durations > floor
        seqs = batch.rows[kept[batch.request], _SEQ].tolist()
        raw = batch.attributes
        return {q: _bounded(raw[q]) for q in seqs if q in raw}

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
        self._fold_safely()
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
                attributes=dict(attributes),
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
            self.invalid = 0
            self._segments.clear()
            self._segment_requests = 0
            self._slowest.clear()
            self._requests, self._request_total = 0, 0.0
            self._request_sketch = LatencySketch()
            self._stage_stats.clear()
            self._span_stats.clear()
            self._max_threads = 0
            self._window = (_perf_ns(), time.process_time_ns())

    def check(
        self, baseline: Tracer | Breakdown | None = None, **policy: Unpack[BreakdownPolicy]
    ) -> Report:
        """Shadow-pipeline findings against an optional baseline (a tracer or a saved
        breakdown): :func:`silenttax.trace.check_breakdown` on :meth:`breakdown`, with
        the same policy keywords."""
        from silenttax.trace._check import check_breakdown

        if baseline is not None and not isinstance(baseline, Tracer | Breakdown):
            raise InputError(
                f"baseline must be a Tracer or a Breakdown, got {type(baseline).__name__}"
            )
        base = baseline.breakdown() if isinstance(baseline, Tracer) else baseline
        report = check_breakdown(self.breakdown(), base, **policy)
        if self.invalid:
            finding = invalid_input_finding(
                "tracer",
                invalid=self.invalid,
                recorded=self._requests,
                what="span names or stages (not strings)",
                detector="trace.Tracer",
                outcome="recorded under str() of them",
                recommendation="Name spans and stages with strings.",
            )
            report = report | Report(findings=[finding])
        return report
