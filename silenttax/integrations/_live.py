"""Live feature health for the serving middleware: request bodies sampled before any
conversion, folded into mergeable FeatureHealth / drift windows off the request path.

The request path pays one integer decrement per request (the skip count to the next
sampled request is drawn from the geometric distribution, so requests are sampled
independently at ``sample_rate``). A sampled request's raw body bytes are kept in a
reservoir of ``max_samples`` per fold interval (Vitter's algorithm R over the sampled
requests: whatever the load, the rows parsed per interval are bounded and uniform over
the interval). Parsing, feature extraction, profiling and the check run in a background
thread every ``interval`` seconds, never in a request.

Windows are wall-clock slots of ``window`` seconds, the same on every worker, so the
current and previous windows of several workers merge slot by slot; the check judges
the previous and current windows together (at least one full window of traffic).
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field, JsonValue

from silenttax._system import SelfTime, background, let_others_run
from silenttax.drift import DriftWindow
from silenttax.errors import InputError
from silenttax.features import FeatureHealth, FeatureHealthState
from silenttax.report import Report

__all__ = ["LiveFeatures", "LiveState"]

Extractor = Callable[[Any], Any]


class LiveState(BaseModel):
    """The sampled windows and counters of :class:`LiveFeatures` (part of a serving snapshot)."""

    model_config = {"frozen": True, "extra": "forbid"}

    params: dict[str, JsonValue]
    """Sampling settings (must match to merge)."""
    slot: int | None = None
    """The current window's wall-clock slot (``floor(time / window)``)."""
    health: FeatureHealthState | None = None
    """FeatureHealthState of the current window's sampled rows (None: no rows yet)."""
    health_previous: FeatureHealthState | None = None
    """The same for the previous window."""
    drift: DriftWindow | None = None
    """DriftWindow of the current window's sampled rows."""
    drift_previous: DriftWindow | None = None
    """The same for the previous window."""
    candidates: int = 0
    """Requests sampled (at ``sample_rate``)."""
    rows: int = 0
    """Feature rows folded in."""
    dropped: int = 0
    """Sampled requests left out by the reservoir (over ``max_samples`` per interval)."""
    failed: int = 0
    """Sampled bodies that could not be read into features (bad JSON, a raising extractor)."""
    truncated: int = 0
    """Sampled bodies over ``max_body`` bytes (not kept)."""
    errors: dict[str, int] = Field(default_factory=dict)
    """Why bodies failed: exception type -> count."""


_INSTANCES: weakref.WeakSet[LiveFeatures] = weakref.WeakSet()


def _after_fork() -> None:
    for live in list(_INSTANCES):
        live._after_fork()


os.register_at_fork(after_in_child=_after_fork)  # one hook for all: instances come and go


def _geometric(rate: float, rng: random.Random) -> int:
    """Requests up to and including the next sampled one (geometric, mean 1/rate)."""
    if rate >= 1.0:
        return 1
    return int(math.log(1.0 - rng.random()) / math.log1p(-rate)) + 1


class LiveFeatures:
    """Sample request bodies, fold them into live FeatureHealth and drift windows.

    Args:
        features: How to get features from a request body: a callable over the parsed
            JSON body returning one row (a mapping column -> value) or a list of rows,
            or a pydantic model class (the body is validated with it and dumped).
        health: A ``FeatureHealth`` fitted on the reference.
        drift: A ``DriftDetector`` fitted on the reference.
        sample_rate: Share of requests sampled (independently, before any conversion).
        max_samples: Bodies kept per fold interval (a reservoir over the sampled ones).
        window: Seconds per live window (wall-clock slots, aligned across workers).
        interval: Seconds between background folds and checks.
        max_body: Larger bodies are not kept (counted as ``truncated``).
        seed: Seed of the sampling draws (default: from the OS).
    """

    def __init__(
        self,
        features: Extractor | type[BaseModel],
        *,
        health: Any = None,
        drift: Any = None,
        sample_rate: float = 0.01,
        max_samples: int = 1000,
        window: float = 300.0,
        interval: float = 5.0,
        max_body: int = 1 << 20,
        seed: int | None = None,
    ) -> None:
        from silenttax.drift import DriftDetector

        if health is None and drift is None:
            raise InputError("feature sampling needs feature_health= or drift= (a fitted one)")
        if health is not None and not isinstance(health, FeatureHealth):
            raise InputError(f"feature_health must be a FeatureHealth, got {type(health).__name__}")
        if drift is not None and not isinstance(drift, DriftDetector):
            raise InputError(f"drift must be a DriftDetector, got {type(drift).__name__}")
        if health is not None:
            health.profiles  # noqa: B018 - raises NotFittedError when not fitted
        if drift is not None:
            drift.reference  # noqa: B018
        if isinstance(features, type) and issubclass(features, BaseModel):
            model = features
            self._extract: Extractor = lambda body: model.model_validate_json(body).model_dump()
            self._raw = True
        elif callable(features):
            self._extract = features
            self._raw = False
        else:
            raise InputError(
                "features must be a callable over the parsed body or a pydantic model class, "
                f"got {type(features).__name__}"
            )
        if not 0 < sample_rate <= 1:
            raise InputError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
        for name, value in (("max_samples", max_samples), ("max_body", max_body)):
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        for name, seconds in (("window", window), ("interval", interval)):
            if not (seconds > 0 and math.isfinite(seconds)):
                raise InputError(f"{name} must be positive seconds, got {seconds!r}")
        self.features = features
        self.health = health
        self.drift = drift
        self.sample_rate = float(sample_rate)
        self.max_samples = max_samples
        self.window = float(window)
        self.interval = float(interval)
        self.max_body = max_body
        self._rng = random.Random(seed)
        self.countdown = _geometric(self.sample_rate, self._rng)
        """Requests left until the next sampled one (decremented on the request path)."""
        self._bodies: list[bytes] = []
        self._seen = 0  # sampled requests offered this interval
        self._counts = dict.fromkeys(("candidates", "dropped", "truncated"), 0)
        self._lock = threading.Lock()
        self._state = LiveState(params=self._params())
        self._report = Report()
        self._stale = False  # restored or merged since the last judgement
        self._thread: threading.Thread | None = None
        self.timing: SelfTime | None = None
        """Where the background folds count their time (the middleware's ``self_time``)."""
        self._stop = threading.Event()
        self.internal_errors = 0
        """Background folds or checks that failed (counted, never raised; the next
        fold runs as usual)."""
        self.last_error: str | None = None
        """The latest of those failures, as ``"Type: message"``."""
        _INSTANCES.add(self)

    def _after_fork(self) -> None:
        """In a forked child: the thread did not survive; a new one starts lazily."""
        self._thread = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _params(self) -> dict[str, JsonValue]:
        return {
            "sample_rate": self.sample_rate,
            "max_samples": self.max_samples,
            "window": self.window,
            "max_body": self.max_body,
        }

    # ------------------------------------------------------------ request path
    def take(self) -> int:
        """Called when ``countdown`` reached 0: a reservoir slot for this request, or -1."""
        self.countdown = _geometric(self.sample_rate, self._rng)
        if self._thread is None:
            self.start()
        with self._lock:
            self._seen += 1
            self._counts["candidates"] += 1
            if len(self._bodies) < self.max_samples:
                self._bodies.append(b"")
                return len(self._bodies) - 1
            self._counts["dropped"] += 1  # this request, or the one whose slot it takes
            slot = self._rng.randrange(self._seen)
            return slot if slot < self.max_samples else -1

    def offer(self, slot: int, body: bytes | None) -> None:
        """A sampled request's raw body (None: over ``max_body``)."""
        with self._lock:
            if body is None:
                self._counts["truncated"] += 1
            elif slot < len(self._bodies):
                self._bodies[slot] = body

    # ---------------------------------------------------------------- folding
    def start(self) -> None:
        """Start the background fold thread (done lazily by the first sampled request)."""
        if self._thread is not None:
            return
        self._thread = background(self, LiveFeatures.fold, self.interval, self._stop,
                                  "silenttax-live", LiveFeatures._failed,
                                  self.timing)  # fmt: skip

    def _failed(self, exc: Exception) -> None:
        self.internal_errors += 1
        self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"

    def close(self) -> None:
        """Stop the background thread after one last fold."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        try:
            self.fold()
        except Exception as exc:
            self._failed(exc)

    def _rows(self, bodies: Sequence[bytes]) -> tuple[list[Mapping[str, Any]], dict[str, int]]:
        rows: list[Mapping[str, Any]] = []
        errors: dict[str, int] = {}
        for i, body in enumerate(bodies):
            if not body:
                continue
            if i % 64 == 63:
                let_others_run()
            try:
                got = self._extract(body if self._raw else json.loads(body))
                batch = [got] if isinstance(got, Mapping) else list(got)
                if not all(isinstance(row, Mapping) for row in batch):
                    raise TypeError("features must return a mapping or a list of mappings")
                rows.extend(batch)
            except Exception as exc:  # a user's extractor or a bad body: counted
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        return rows, errors

    def fold(self, now: float | None = None) -> None:
        """Parse the bodies sampled since the last fold into the current window and
        re-run the check (the background thread calls this every ``interval``)."""
        with self._lock:
            bodies, self._bodies, self._seen = self._bodies, [], 0
            counts, self._counts = self._counts, dict.fromkeys(self._counts, 0)
        rows, errors = self._rows(bodies)
        batch = _columns(rows)
        update: dict[str, Any] = {}
        if rows:
            try:
                if self.health is not None:
                    let_others_run()  # between steps: none holds requests up for long
                    update["health"] = FeatureHealth.from_state(self.health.state()).fit(batch)
                if self.drift is not None:
                    let_others_run()
                    update["drift"] = self.drift.window(batch)
            except Exception as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + len(rows)
                update, rows = {}, []
        slot = int((time.time() if now is None else now) // self.window)
        with self._lock:
            state = _roll(self._state, slot)
            fields: dict[str, Any] = {
                "candidates": state.candidates + counts["candidates"],
                "dropped": state.dropped + counts["dropped"],
                "truncated": state.truncated + counts["truncated"],
                "rows": state.rows + len(rows),
                "failed": state.failed + sum(errors.values()),
                "errors": _add(state.errors, errors),
            }
            try:
                if "health" in update:
                    fields["health"] = _merge_health(state.health, update["health"].state())
                if "drift" in update:
                    fields["drift"] = (
                        update["drift"]
                        if state.drift is None
                        else state.drift.merge(update["drift"])
                    )
            except Exception as exc:  # settings that cannot merge: counted, rows left out
                fields["failed"] += len(rows)
                fields["errors"] = _add(fields["errors"], {type(exc).__name__: len(rows)})
                fields["rows"] -= len(rows)
                fields.pop("health", None)
                fields.pop("drift", None)
            self._state = state.model_copy(update=fields)
        let_others_run()
        self._rejudge(self._state)

    def _rejudge(self, state: LiveState) -> None:
        """Judge ``state`` into the report served between folds (a failure is counted and
        the previous report kept)."""
        try:
            self._report = self.judge(state)
        except Exception as exc:
            self._failed(exc)
        self._stale = False

    # ------------------------------------------------------------------ reads
    def state(self) -> LiveState:
        """The windows and counters (thread-safe copy)."""
        with self._lock:
            return self._state

    def restore(self, state: LiveState) -> None:
        """Replace the windows and counters (from a snapshot)."""
        with self._lock:
            self._state = state
            self._stale = True  # judged when read: a fleet view merges many first

    def merge(self, other: LiveState) -> None:
        """Add another worker's windows and counters into these."""
        with self._lock:
            self._state = merge_live(self._state, other)
            self._stale = True

    def report(self) -> Report:
        """The latest background check (findings on the sampled live windows; failures of
        the background work are counted in ``internal_errors``)."""
        if self._stale:
            self._rejudge(self.state())
        return self._report

    def null_rates(self) -> dict[str, float]:
        """Feature -> share of nulls in the sampled rows of the previous and current windows."""
        state = self.state()
        health = _merge_health(state.health_previous, state.health)
        if health is None:
            return {}
        return {n: p.nulls / p.rows for n, p in health.profiles.items() if p.rows}

    def drift_scores(self) -> dict[str, tuple[str, float]]:
        """Feature -> (metric, effect size) of the latest live drift check."""
        return {
            f.subject: (f.metric or "effect", float(f.effect_size))
            for f in self.report()
            if f.code in ("drift.numeric", "drift.categorical") and f.effect_size is not None
        }

    def judge(self, state: LiveState) -> Report:
        """Findings on the previous and current windows of ``state``, together."""
        report = Report()
        if self.health is not None:
            health = _merge_health(state.health_previous, state.health)
            if health is not None:
                report = report | self.health.check(FeatureHealth.from_state(health))
        if self.drift is not None:
            windows = [w for w in (state.drift_previous, state.drift) if w is not None]
            if windows:
                let_others_run()
                merged = windows[0] if len(windows) == 1 else windows[0].merge(windows[1])
                report = report | self.drift.check(merged)
        return report


def _columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Rows -> columns (a key missing from a row is a null there)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(map(str, row)))
    return {name: [row.get(name) for row in rows] for name in names}


def _add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}


def _merge_health(
    a: FeatureHealthState | None, b: FeatureHealthState | None
) -> FeatureHealthState | None:
    """Two FeatureHealthStates (either may be None) as one."""
    if a is None or b is None:
        return b if a is None else a
    return FeatureHealth.from_state(a).merge(FeatureHealth.from_state(b)).state()


def _roll(state: LiveState, slot: int) -> LiveState:
    """``state`` moved on to wall-clock ``slot`` (the current window becomes the previous)."""
    if state.slot is None or slot <= state.slot:
        return state if state.slot is not None else state.model_copy(update={"slot": slot})
    moved = slot == state.slot + 1
    return state.model_copy(
        update={
            "slot": slot,
            "health": None,
            "drift": None,
            "health_previous": state.health if moved else None,
            "drift_previous": state.drift if moved else None,
        }
    )


def merge_live(a: LiveState, b: LiveState) -> LiveState:
    """Two workers' live states as one: windows moved to the later slot, then merged."""
    from silenttax._merge import same_settings

    same_settings("LiveFeatures", dict(a.params), dict(b.params))
    slots = [s for s in (a.slot, b.slot) if s is not None]
    if slots:
        a, b = _roll(a, max(slots)), _roll(b, max(slots))

    def drift(x: DriftWindow | None, y: DriftWindow | None) -> DriftWindow | None:
        return y if x is None else x if y is None else x.merge(y)

    return a.model_copy(
        update={
            "slot": max(slots) if slots else None,
            "health": _merge_health(a.health, b.health),
            "health_previous": _merge_health(a.health_previous, b.health_previous),
            "drift": drift(a.drift, b.drift),
            "drift_previous": drift(a.drift_previous, b.drift_previous),
            "candidates": a.candidates + b.candidates,
            "rows": a.rows + b.rows,
            "dropped": a.dropped + b.dropped,
            "failed": a.failed + b.failed,
            "truncated": a.truncated + b.truncated,
            "errors": _add(a.errors, b.errors),
        }
    )
