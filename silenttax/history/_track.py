"""Periodic appends of a live component: what it recorded since the last append.

A live component counts since it started: appending the same ``LatencyMonitor`` every
minute would store its p99 *since start* (a line that flattens as the months go by and
hides creep), and an hour's rollup would merge sixty copies of the same requests.
:meth:`History.track <silenttax.history.History.track>` appends the **window** instead:
the snapshot now minus the one at the previous append (sketch bucket counts and
counters subtracted, exactly; :func:`silenttax._merge.since`), so each raw point is that
period's figure and a rollup counts every request once.

The appends run on a daemon thread, off the caller's path; an append that fails (the
file locked by other writers past the store's ``timeout``, a full disk) is counted in
``errors`` and the next append covers both periods: nothing recorded is lost, nothing
raises into the host unless ``strict=True`` (then :meth:`Tracker.stop` raises it).
``stop()`` (also at interpreter exit and from :meth:`History.close`) appends the last
window.
"""

from __future__ import annotations

import atexit
import inspect
import math
import threading
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from silenttax.errors import InputError, SilentTaxError
from silenttax.history._slim import slim

if TYPE_CHECKING:
    from silenttax.history._store import History

__all__ = ["Tracker", "window"]


def _latency_monitor(later: Any, earlier: Any) -> Any:
    from silenttax._sketch import LatencySketch

    sketch = LatencySketch.from_state(later.sketch).since(earlier.sketch)
    creep = later.creep
    if creep is not None and earlier.creep is not None:  # the events new in the window
        creep = creep.model_copy(update={
            "events": [e for e in creep.events if e not in earlier.creep.events],
            "hiccups": [h for h in creep.hiccups if h not in earlier.creep.hiccups],
        })  # fmt: skip
    return later.model_copy(update={"sketch": sketch, "creep": creep})


def _latency_sketch(later: Any, earlier: Any) -> Any:
    from silenttax._sketch import LatencySketch

    return LatencySketch.from_state(later).since(earlier)


def _each(window_of: Callable[[Any, Any], Any], later: dict[str, Any],
          earlier: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {k: window_of(v, earlier[k]) if k in earlier else v for k, v in later.items()}


def _counts(later: dict[str, dict[str, int]], earlier: dict[str, dict[str, int]]) -> Any:
    out = {
        route: {o: n - earlier.get(route, {}).get(o, 0) for o, n in outcomes.items()}
        for route, outcomes in later.items()
    }
    if any(n < 0 for outcomes in out.values() for n in outcomes.values()):
        raise InputError("since: the earlier snapshot counted requests this one lacks")
    return out


def _serving(later: Any, earlier: Any) -> Any:
    """The middleware's window: per-route monitors, time to first byte, observed
    durations, request outcomes, internal errors, spans and the cost windows closed in
    it (the live features' references and sampled windows are left out by
    :data:`_LEFT_OUT`); the overload and stage windows are the later snapshot's (they
    already are windows)."""
    from silenttax._merge import since

    if later.internal_errors < earlier.internal_errors:
        raise InputError("since: the earlier snapshot counted more internal errors")
    sketch = {"before_handler": None, "before_handler_alone": None}
    for name in sketch:
        mine, theirs = getattr(later, name), getattr(earlier, name)
        sketch[name] = mine if mine is None or theirs is None else _latency_sketch(mine, theirs)
    cost = later.cost
    if cost is not None and earlier.cost is not None:
        cost = cost.model_copy(
            update={"windows": [w for w in cost.windows if w not in earlier.cost.windows]}
        )
    return later.model_copy(update={
        "routes": _each(_latency_monitor, later.routes, earlier.routes),
        "ttfb": _each(_latency_sketch, later.ttfb, earlier.ttfb),
        "observed": _each(_latency_monitor, later.observed, earlier.observed),
        "requests": _counts(later.requests, earlier.requests),
        "internal_errors": later.internal_errors - earlier.internal_errors,
        "breakdown": since(later.breakdown, earlier.breakdown),
        "cost": cost,
        **sketch,
    })  # fmt: skip


_LEFT_OUT: dict[str, dict[str, None]] = {
    "silenttax.serving": {"health_reference": None, "drift_reference": None, "live": None},
}
"""Kind -> fields no window keeps (large, and the same in every snapshot)."""

_WINDOWS: dict[str, Callable[[Any, Any], Any]] = {
    "silenttax.latency_monitor": _latency_monitor,
    "silenttax.latency_sketch": _latency_sketch,
    "silenttax.serving": _serving,
}
"""Kind -> how to window it (other kinds: their fields' declared merge rules)."""


def window(later: Any, earlier: Any | None) -> Any:
    """What a cumulative snapshot ``later`` recorded after ``earlier`` (an earlier
    snapshot of the same component; None: everything), with the creep watch's running
    state left out (it describes the whole run, not the window).

    Raises:
        InputError: ``earlier`` holds more than ``later`` (not the same component, or it
            was reset), or the kind cannot be windowed (its fields declare no rules).

    Examples:
        >>> from silenttax.monitor import LatencyMonitor
        >>> monitor = LatencyMonitor()
        >>> monitor.record(0.010)
        >>> first = monitor.state()
        >>> monitor.record(0.020); monitor.record(0.030)
        >>> window(monitor.state(), first).sketch.count
        2
    """
    from silenttax._merge import since

    if earlier is None:
        out = later
    else:
        how = _WINDOWS.get(later.KIND)
        try:
            out = how(later, earlier) if how is not None else since(later, earlier)
        except TypeError as exc:  # a field without a rule: the kind cannot be windowed
            raise InputError(
                f"a {later.KIND!r} snapshot cannot be windowed ({exc}): append a fresh "
                "snapshot per period instead"
            ) from exc
    left_out = _LEFT_OUT.get(later.KIND)
    return slim(out.model_copy(update=left_out) if left_out else out, summaries=False)


_LIVE: weakref.WeakSet[Tracker] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for tracker in list(_LIVE):
        tracker.stop()


class Tracker:
    """Appends a live component's window every ``every`` seconds (see the module).

    Attributes:
        appended: Windows appended so far.
        errors: Appends that failed (their periods went into the next window).
        last_error: The last failure, as text (None: none).
    """

    def __init__(
        self,
        store: History,
        component: Any,
        *,
        every: float = 60.0,
        labels: Mapping[str, Any] | None = None,
        strict: bool = False,
    ) -> None:
        if not (isinstance(every, int | float) and math.isfinite(every) and every > 0):
            raise InputError(f"every: need seconds > 0, got {every!r}")
        if not callable(getattr(component, "state", None)):
            raise InputError(
                f"component: need a live component with state() (a LatencyMonitor, ...), "
                f"got {type(component).__name__}"
            )
        # the serving middleware can leave its live references out: a window drops them
        self._state_args = (
            {"references": False}
            if "references" in inspect.signature(component.state).parameters
            else {}
        )
        first = component.state(**self._state_args)
        window(first, first)  # a kind that cannot be windowed is refused here
        self.store = store
        self.component = component
        self.every = float(every)
        self.labels = dict(labels or {})
        self.strict = strict
        self.appended = 0
        self.errors = 0
        self.last_error: str | None = None
        self._failure: Exception | None = None
        self._previous: Any = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="silenttax-history", daemon=True)
        _LIVE.add(self)
        self._thread.start()

    def flush(self, *, at: float | datetime | None = None) -> int:
        """Append the window since the last append now; returns its id.

        Raises:
            InputError: the component was reset since the last append (its window is
                then restarted from the reset).
            StateError: the store stayed locked (the window goes into the next one).
        """
        with self._lock:
            current = self.component.state(**self._state_args)
            try:
                part = window(current, self._previous)
            except InputError:
                self._previous = None  # reset since: a new run starts
                raise
            got = self.store.append(part, at=at, labels=self.labels)
            self._previous = current
            self.appended += 1
            return got

    def _guarded_flush(self) -> None:
        try:
            self.flush()
            self._failure = None  # whatever failed before is in this window
        except Exception as exc:  # never into the host: counted, the next window covers it
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._failure = exc

    def _run(self) -> None:
        while not self._stopped.wait(self.every):
            self._guarded_flush()

    def stop(self) -> None:
        """Stop, after appending the last window.

        Raises:
            SilentTaxError: with ``strict=True``, the last append, if it failed (what it
                held is not stored).
        """
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._guarded_flush()
        _LIVE.discard(self)
        if self.strict and self._failure is not None:
            failure, self._failure = self._failure, None
            if isinstance(failure, SilentTaxError):
                raise failure
            raise SilentTaxError(f"history: an append failed: {failure}") from failure

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
