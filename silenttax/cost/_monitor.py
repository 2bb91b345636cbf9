"""CostMonitor: realized cost per 1000 inferences over time, and why it moved."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

from silenttax._merge import same_settings
from silenttax._stability import count_or_none, invalid_input_finding, seconds_or_none
from silenttax._state import State, Stateful, settings, with_policy
from silenttax.cost._model import CostModel
from silenttax.errors import InputError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding

__all__ = ["CostMonitor", "CostMonitorState", "CostWindow", "check_cost"]


_Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # seconds, prices: finite, >= 0


class CostWindow(BaseModel):
    """Traffic and price over one time window, and the cost figures they imply.

    With ``occupied_seconds`` (wall time in which at least one request was in
    flight, summed over instances: what the serving middleware measures) the
    window's throughput and utilisation are separated whatever the concurrency:
    ``throughput = instances * inferences / occupied_seconds`` (the capacity the
    deployment showed at the concurrency it actually ran, inferences/s) and
    ``utilization = occupied_seconds / (instances * seconds)``, never above 1.
    Without it, ``busy_seconds`` (summed service time) stands in with a declared
    ``concurrency``: ``throughput = slots * inferences / busy_seconds`` and
    ``utilization = busy_seconds / (slots * seconds)``, ``slots = instances *
    concurrency`` (right only when the declared concurrency is the real one).
    Either way their product is the served rate, so ``cost_per_1k = 1000 *
    cost_per_hour / (3600 * throughput * utilization)`` equals the realized cost.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    start: float
    """Window start, seconds since the epoch."""
    seconds: _Amount
    """Window length, wall-clock seconds."""
    inferences: NonNegativeInt
    """Inferences served in the window."""
    busy_seconds: _Amount | None
    """Summed service time of those inferences (None when not recorded)."""
    price_per_hour: _Amount
    """Price of one instance-hour during the window."""
    instances: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """Instances billed during the window."""
    concurrency: PositiveInt = 1
    """Requests one instance serves at once (declared; used without ``occupied_seconds``)."""
    occupied_seconds: _Amount | None = None
    """Wall time with at least one request in flight, summed over instances (None: not
    measured)."""

    @classmethod
    def merged(cls, windows: list[CostWindow]) -> CostWindow:
        """Consecutive windows as one (traffic summed, price and instances time-weighted).

        Raises:
            InputError: no window.
        """
        if not windows:
            raise InputError("windows: need at least one")
        return _merge(windows)

    @property
    def cost(self) -> float:
        """Money billed for the window."""
        return self.price_per_hour * self.instances * self.seconds / 3600.0

    @property
    def cost_per_1k(self) -> float | None:
        """Realized cost of 1000 inferences; None when nothing was served."""
        return 1000.0 * self.cost / self.inferences if self.inferences else None

    @property
    def throughput(self) -> float | None:
        """Capacity throughput of the deployment, inferences/s (needs occupied or busy time)."""
        if not self.inferences:
            return None
        if self.occupied_seconds:
            return self.instances * self.inferences / self.occupied_seconds
        if not self.busy_seconds:
            return None
        return self.instances * self.concurrency * self.inferences / self.busy_seconds

    @property
    def utilization(self) -> float | None:
        """Occupied share of the paid time (or busy share of the declared slots)."""
        if self.seconds <= 0:
            return None
        if self.occupied_seconds is not None:
            return min(1.0, self.occupied_seconds / (self.instances * self.seconds))
        if self.busy_seconds is None:
            return None
        return self.busy_seconds / (self.instances * self.concurrency * self.seconds)

    @property
    def in_flight(self) -> float | None:
        """Mean requests in flight while any was (busy over occupied time; None: unknown)."""
        if not self.occupied_seconds or self.busy_seconds is None:
            return None
        return self.busy_seconds / self.occupied_seconds


class CostMonitorState(State):
    """JSON state of a :class:`CostMonitor`: the pricing and the closed windows."""

    KIND: ClassVar[str] = "silenttax.cost_monitor"
    SCHEMA_VERSION: ClassVar[int] = 2

    pricing: CostModel
    """The price in force."""
    windows: list[CostWindow]
    """Closed windows, oldest first."""
    baseline: CostWindow | None = None
    """The window later ones are compared with."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Constructor settings (older files: none, the defaults apply)."""
    invalid: NonNegativeInt = 0
    """``record`` calls whose inferences or service time were not valid numbers."""
    open_start: float | None = None
    """Start of the window still open (None: none is open)."""
    open_inferences: NonNegativeInt = 0
    """Inferences recorded in the open window so far."""
    open_busy_seconds: _Amount | None = 0.0
    """Their service time so far (None once a record had none)."""
    open_occupied_seconds: _Amount | None = None
    """Their occupied time so far (None: not measured)."""

    @classmethod
    def _migrate(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Version 1 called the price ``model``."""
        if "model" in data:
            data["pricing"] = data.pop("model")
        return data


def _ratio(a: float, b: float) -> float:
    """``a / b``, with a zero ``b`` as infinity (or 1 when both are zero)."""
    if b:
        return a / b
    return math.inf if a else 1.0


def _size(factor: float) -> float:
    """How far a cost factor is from 1 (``|log factor|``; zero and infinity are farthest)."""
    return abs(math.log(factor)) if 0 < factor < math.inf else math.inf


def _side_by_side(windows: list[CostWindow]) -> CostWindow:
    """Windows of several replicas over (about) the same time as one window of the fleet.

    Money adds exactly: the instances are time-weighted over the union of the
    windows, so ``price * instances * seconds`` is the sum of the replicas'.
    """
    start = min(w.start for w in windows)
    seconds = max(w.start + w.seconds for w in windows) - start
    paid = sum(w.instances * w.seconds for w in windows)
    money = sum(w.price_per_hour * w.instances * w.seconds for w in windows)
    busy = [w.busy_seconds for w in windows]
    occupied = [w.occupied_seconds for w in windows]
    if seconds <= 0 or paid <= 0:
        instances, price = sum(w.instances for w in windows), windows[0].price_per_hour
    else:
        instances, price = paid / seconds, money / paid
    return CostWindow(
        start=start,
        seconds=seconds,
        inferences=sum(w.inferences for w in windows),
        busy_seconds=None if None in busy else sum(b for b in busy if b is not None),
        price_per_hour=price,
        instances=instances,
        concurrency=windows[0].concurrency,
        occupied_seconds=_sum_known(occupied),
    )


def _merge(windows: list[CostWindow]) -> CostWindow:
    """Several consecutive windows as one (price and instances time-weighted)."""
    seconds = sum(w.seconds for w in windows)
    busy = [w.busy_seconds for w in windows]
    occupied = [w.occupied_seconds for w in windows]
    hourly = sum(w.price_per_hour * w.instances * w.seconds for w in windows)
    instances = sum(w.instances * w.seconds for w in windows) / seconds if seconds else 1.0
    return CostWindow(
        start=windows[0].start,
        seconds=seconds,
        inferences=sum(w.inferences for w in windows),
        busy_seconds=None if None in busy else sum(b for b in busy if b is not None),
        price_per_hour=hourly / (instances * seconds) if seconds else windows[0].price_per_hour,
        instances=instances,
        concurrency=windows[-1].concurrency,
        occupied_seconds=_sum_known(occupied),
    )


def _sum_known(values: list[float | None]) -> float | None:
    """The sum, or None when any is unknown."""
    return None if None in values else sum(v for v in values if v is not None)


class CostMonitor(Stateful[CostMonitorState]):
    """Track realized cost per 1000 inferences in time windows and explain changes.

    Call :meth:`record` for every inference (or batch), optionally with its
    service time; windows of ``window`` seconds close by themselves (or call
    :meth:`close_window`). :meth:`check` compares the latest windows with the
    baseline (the first closed window unless given) and, when cost per 1000
    rose by more than ``min_effect``, says which factor moved:

    ``cost/cost0 = (price/price0) * (throughput0/throughput) * (utilization0/utilization)``

    (price here is the hourly price of the whole deployment, so adding
    instances shows as price). Without service times only price and the
    served rate can be told apart.

    Args:
        pricing: Price of the deployment.
        window: Window length in seconds.
        baseline: A window to compare with (default: the first closed one).
        min_effect: Relative rise of cost per 1000 that is material (0.10 = 10%).
        critical_effect: Relative rise that is CRITICAL (0.50 = 50%).
        compare_windows: How many of the latest windows :meth:`check` pools.
        min_inferences: A window that served fewer is *idle*: its cost per 1000 is not
            judged (one request in an idle hour is not a cost increase of 10^5 %); when
            every pooled window is idle the check says so at INFO (``cost.idle``).
        concurrency: Requests one instance serves at once (for utilisation).
        max_windows: Closed windows kept (older ones are dropped).
        name: The model or endpoint: the subject of the findings and
            ``context["name"]`` of the report, as in every monitor.
        strict: Raise :class:`~silenttax.errors.InputError` on a bad ``record`` value
            instead of counting it.

    Examples:
        >>> monitor = CostMonitor(CostModel(price_per_hour=2.0), window=3600)
        >>> t0 = 1_700_000_000.0
        >>> monitor.record(inferences=360_000, busy_seconds=1800, now=t0)
        >>> _ = monitor.close_window(now=t0 + 3600)           # 10 ms per inference
        >>> monitor.record(inferences=360_000, busy_seconds=2700, now=t0 + 3600)
        >>> _ = monitor.close_window(now=t0 + 7200)           # 15 ms: slower, but idle
        >>> finding = monitor.check().filter(code="cost.per_1k_increase")[0]  # capacity
        >>> # absorbed it: same bill, same traffic, so the same cost per 1000
        >>> finding.severity, round(finding.effect_size, 2)
        (<Severity.OK: 'ok'>, 1.0)
    """

    STATE: ClassVar[type[State]] = CostMonitorState
    RENAMED: ClassVar[dict[str, str]] = {"tolerance": "min_effect"}

    def __init__(
        self,
        pricing: CostModel,
        *,
        window: float = 3600.0,
        baseline: CostWindow | None = None,
        min_effect: float = 0.10,
        critical_effect: float = 0.50,
        compare_windows: int = 1,
        min_inferences: int = 100,
        concurrency: int = 1,
        max_windows: int = 1000,
        name: str = "model",
        strict: bool = False,
    ) -> None:
        if not isinstance(pricing, CostModel):
            raise InputError(f"pricing must be a CostModel, got {type(pricing).__name__}")
        if not window > 0:
            raise InputError(f"window must be > 0 seconds, got {window!r}")
        if not 0 <= min_effect <= critical_effect:
            raise InputError(
                f"need 0 <= min_effect <= critical_effect, got {min_effect!r}, {critical_effect!r}"
            )
        counts = (compare_windows, concurrency, max_windows, min_inferences)
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in counts):
            raise InputError(
                "compare_windows, concurrency, max_windows and min_inferences must be "
                f"integers, got {counts}"
            )
        if compare_windows < 1 or concurrency < 1 or max_windows < 2 or min_inferences < 1:
            raise InputError(
                "need compare_windows >= 1, concurrency >= 1, max_windows >= 2, min_inferences >= 1"
            )
        self.min_inferences = min_inferences
        self.pricing = pricing
        self.window = float(window)
        self.baseline = baseline
        self.min_effect = min_effect
        self.critical_effect = critical_effect
        self.compare_windows = compare_windows
        self.concurrency = concurrency
        if not isinstance(name, str):
            raise InputError(f"name must be a string, got {type(name).__name__}")
        self.name = name
        self.max_windows = max_windows
        self.strict = bool(strict)
        self.invalid = 0
        """``record`` calls with invalid inferences or service time (counted, not raised)."""
        self._windows: deque[CostWindow] = deque(maxlen=max_windows)
        self._lock = threading.Lock()
        self._start: float | None = None
        self._inferences = 0
        self._busy = 0.0
        self._busy_known = True
        self._occupied: float | None = None

    @property
    def windows(self) -> tuple[CostWindow, ...]:
        """Closed windows, oldest first."""
        return tuple(self._windows)

    def record(
        self,
        inferences: int = 1,
        *,
        busy_seconds: float | None = None,
        occupied_seconds: float | None = None,
        now: float | None = None,
    ) -> None:
        """Count served inferences (and their service time); thread-safe, never raises
        unless ``strict=True``: a bad value is counted in :attr:`invalid` and reported
        as ``stability.invalid_input`` (a bad ``now`` drops the whole call).

        Args:
            inferences: How many inferences were served.
            busy_seconds: Their total service time; omit if unknown.
            occupied_seconds: Wall time with at least one request in flight since the
                last call (what the serving middleware measures; makes utilisation right
                at any concurrency); omit if unknown.
            now: Seconds since the epoch (default: the current time).
        """
        count = count_or_none(inferences)
        busy = None if busy_seconds is None else seconds_or_none(busy_seconds)
        occupied = None if occupied_seconds is None else seconds_or_none(occupied_seconds)
        when = time.time() if now is None else seconds_or_none(now)
        if self.strict and (
            count is None
            or (busy is None and busy_seconds is not None)
            or (occupied is None and occupied_seconds is not None)
            or when is None
        ):
            raise InputError(
                "record: need inferences an integer >= 0, busy_seconds and occupied_seconds "
                "finite numbers >= 0 "
                f"and now finite seconds since the epoch, got {inferences!r}, "
                f"{busy_seconds!r}, {occupied_seconds!r}, {now!r}"
            )
        with self._lock:
            if when is None:
                self.invalid += 1  # no time to file it under: the whole call is dropped
                return
            if self._start is None:
                self._start = when
            elif when - self._start >= self.window:
                end = self._start + self.window
                # windows follow each other (idle whole windows skipped); times that reach
                # back over a window's end: their part before it is that window's, so
                # occupied time never exceeds a window's length
                start = end + self.window * math.floor((when - end) / self.window)
                if occupied is not None:
                    before = max(0.0, occupied - (when - end))
                    self._occupied = (self._occupied or 0.0) + before
                    occupied = min(occupied - before, when - start)
                if busy is not None:
                    before = max(0.0, busy - (when - end))
                    self._busy += before
                    busy -= before
                self._close(end)
                self._start = start
            if count is None:
                self.invalid += 1
            else:
                self._inferences += count
            if busy_seconds is None:
                self._busy_known = False
            elif busy is None:
                self.invalid += 1
            else:
                self._busy += busy
            if occupied_seconds is not None:
                if occupied is None:
                    self.invalid += 1
                else:
                    self._occupied = (self._occupied or 0.0) + occupied

    def set_price(
        self, price_per_hour: float, *, instances: float | None = None, now: float | None = None
    ) -> None:
        """Change the price (or instance count) from ``now`` on; closes the open window there.

        Args:
            price_per_hour: The new hourly price of one instance.
            instances: The new instance count (default: unchanged).
            now: Seconds since the epoch (default: the current time), as for :meth:`record`.
        """
        pricing = CostModel(  # validated before anything changes
            price_per_hour=price_per_hour,
            instances=self.pricing.instances if instances is None else instances,
            currency=self.pricing.currency,
        )
        self.close_window(now=now)
        self.pricing = pricing

    def merge(self, other: CostMonitor) -> Self:
        """Add another replica's windows into this one (in place): the fleet's cost.

        Windows that start in the same slot of ``window`` seconds are combined
        into one window of the fleet: inferences and busy time add up, and the
        money billed adds up exactly (instances are time-weighted). The price in
        force becomes the fleet's (instances added up). The baselines combine
        the same way when both replicas have one in the same slot, and the
        other replica's open window is added to this one's.

        Raises:
            InputError: ``other`` is not a CostMonitor, a setting differs (named), or
                the currencies differ.
        """
        if not isinstance(other, CostMonitor):
            raise InputError(f"can only merge a CostMonitor, got {type(other).__name__}")
        state, theirs = self.state(), other.state()
        local = ("max_windows", "strict")
        same_settings(
            "CostMonitor",
            {k: v for k, v in state.params.items() if k not in local},
            {k: v for k, v in theirs.params.items() if k not in local},
        )
        if self.pricing.currency != other.pricing.currency:
            raise InputError(
                f"currency: cannot merge {other.pricing.currency!r} costs into "
                f"{self.pricing.currency!r} ones"
            )
        slots: dict[int, list[CostWindow]] = {}
        for window in [*state.windows, *theirs.windows]:
            slots.setdefault(math.floor(window.start / self.window), []).append(window)
        merged = [_side_by_side(group) for _, group in sorted(slots.items())]
        baselines = [b for b in (state.baseline, theirs.baseline) if b is not None]
        baseline = baselines[0] if baselines else None
        if len(baselines) == 2 and len({math.floor(b.start / self.window) for b in baselines}) == 1:
            baseline = _side_by_side(baselines)
        instances = self.pricing.instances + other.pricing.instances
        price = (
            self.pricing.price_per_hour * self.pricing.instances
            + other.pricing.price_per_hour * other.pricing.instances
        ) / instances
        with self._lock:
            self._windows.clear()
            self._windows.extend(merged)
            self.baseline = baseline
            self.invalid += theirs.invalid
            if theirs.open_start is not None:  # the other replica's open window joins ours
                if self._start is None:
                    self._start = theirs.open_start
                self._inferences += theirs.open_inferences
                if theirs.open_busy_seconds is None:
                    self._busy_known = False
                else:
                    self._busy += theirs.open_busy_seconds
                if theirs.open_occupied_seconds is not None:
                    self._occupied = (self._occupied or 0.0) + theirs.open_occupied_seconds
            self.pricing = CostModel(
                price_per_hour=price, instances=instances, currency=self.pricing.currency
            )
        return self

    def reset(self) -> None:
        """Forget the windows, the open window and the learnt baseline (settings and price stay;
        a baseline passed to the constructor is forgotten too)."""
        with self._lock:
            self._windows.clear()
            self._start = None
            self._inferences, self._busy, self._busy_known = 0, 0.0, True
            self._occupied = None
            self.baseline = None
            self.invalid = 0

    def close_window(self, now: float | None = None) -> CostWindow | None:
        """Close the open window now; returns it (None if no window was open).

        Raises:
            InputError: ``now`` is not finite seconds since the epoch.
        """
        end = time.time() if now is None else seconds_or_none(now)
        if end is None:
            raise InputError(f"now must be finite seconds since the epoch, got {now!r}")
        with self._lock:
            if self._start is None:
                return None
            window = self._close(end)
            self._start = None
            return window

    def _close(self, end: float) -> CostWindow:
        assert self._start is not None
        window = CostWindow(
            start=self._start,
            seconds=max(0.0, end - self._start),
            inferences=self._inferences,
            busy_seconds=self._busy if self._busy_known else None,
            price_per_hour=self.pricing.price_per_hour,
            instances=self.pricing.instances,
            concurrency=self.concurrency,
            occupied_seconds=self._occupied,
        )
        self._windows.append(window)
        if self.baseline is None and window.inferences >= self.min_inferences:
            self.baseline = window
        self._inferences, self._busy, self._busy_known = 0, 0.0, True
        self._occupied = None
        return window

    def state(self) -> CostMonitorState:
        """JSON-serializable snapshot (pricing, closed windows, baseline, settings)."""
        with self._lock:
            return CostMonitorState(
                pricing=self.pricing,
                windows=list(self._windows),
                baseline=self.baseline,
                params={
                    "window": self.window,
                    "min_effect": self.min_effect,
                    "critical_effect": self.critical_effect,
                    "compare_windows": self.compare_windows,
                    "min_inferences": self.min_inferences,
                    "concurrency": self.concurrency,
                    "max_windows": self.max_windows,
                    "name": self.name,
                    "strict": self.strict,
                },
                invalid=self.invalid,
                open_start=self._start,
                open_inferences=self._inferences,
                open_busy_seconds=self._busy if self._busy_known else None,
                open_occupied_seconds=self._occupied,
            )

    @classmethod
    def from_state(cls, state: CostMonitorState) -> Self:
        """Rebuild a monitor from :meth:`state` (closed windows, baseline and settings)."""
        monitor = cls(state.pricing, baseline=state.baseline, **settings(cls, state.params))
        monitor._windows.extend(state.windows)
        monitor.invalid = state.invalid
        monitor._start, monitor._inferences = state.open_start, state.open_inferences
        monitor._busy_known = state.open_busy_seconds is not None
        monitor._busy = state.open_busy_seconds or 0.0
        monitor._occupied = state.open_occupied_seconds
        return monitor

    # ---------------------------------------------------------------------- check
    def check(self, baseline: CostWindow | CostMonitor | CostMonitorState | None = None) -> Report:
        """``cost.per_1k`` for the latest windows and ``cost.per_1k_increase`` vs baseline.

        The same as :func:`check_cost` on :meth:`state`.

        Args:
            baseline: Compare with this window (or another monitor's baseline window)
                instead of this monitor's own baseline.

        Raises:
            InputError: ``baseline`` is not a CostWindow, a CostMonitor or its state.
        """
        return check_cost(self, baseline)

    def _judge(self) -> Report:
        served = [w for w in self._windows if w.inferences]
        findings: list[Finding] = []
        cur = self.pricing.currency
        if self.invalid:
            findings.append(
                invalid_input_finding(
                    self.name,
                    invalid=self.invalid,
                    recorded=sum(w.inferences for w in self._windows) + self._inferences,
                    what="record() values (inferences, busy_seconds or now)",
                    detector="cost.CostMonitor",
                )
            )
        if not served:
            findings.append(
                make_finding(
                    "cost.no_data",
                    severity=Severity.INFO,
                    subject=self.name,
                    message="no closed window with served inferences yet",
                    detector="cost.CostMonitor",
                )
            )
            return Report(findings=findings, source="cost.check_cost")
        latest = _merge(list(self._windows)[-self.compare_windows :])
        if latest.inferences < self.min_inferences:
            findings.append(
                make_finding(
                    "cost.idle",
                    severity=Severity.INFO,
                    subject=self.name,
                    message=(
                        f"idle: {latest.inferences} inferences in the latest "
                        f"{latest.seconds / 3600:.3g} h (fewer than {self.min_inferences}); "
                        "cost per 1000 is judged over windows that served traffic"
                    ),
                    metric="inferences",
                    value=float(latest.inferences),
                    threshold=float(self.min_inferences),
                    evidence=latest.model_dump(),
                    recommendation="Nothing to do if the idle time is expected; otherwise "
                    "scale the idle replicas down.",
                    detector="cost.CostMonitor",
                )
            )
            return Report(
                findings=findings,
                source="cost.check_cost",
                context={"name": self.name, "windows": len(self._windows), "currency": cur},
            )
        current = latest
        cost = current.cost_per_1k
        assert cost is not None
        detail = f"{current.inferences} inferences in {current.seconds / 3600:.3g} h"
        if current.utilization is not None and current.throughput is not None:
            detail += (
                f", capacity {current.throughput:.4g} inf/s at "
                f"{current.utilization:.0%} utilisation"
            )
            if current.in_flight is not None:
                detail += f", {current.in_flight:.3g} requests in flight while busy"
        findings.append(
            make_finding(
                "cost.per_1k",
                severity=Severity.OK,
                subject=self.name,
                message=f"realized cost {cost:.4g} {cur} per 1000 inferences ({detail})",
                metric="cost_per_1k",
                value=cost,
                unit=cur,
                evidence=current.model_dump(),
                detector="cost.CostMonitor",
            )
        )
        base = self.baseline
        if (
            base is not None
            and base.cost_per_1k
            and base.inferences >= self.min_inferences
            and base is not self._windows[-1]
        ):
            findings.append(self._compare(base, current))
        return Report(
            findings=findings,
            source="cost.check_cost",
            context={"name": self.name, "windows": len(self._windows), "currency": cur},
        )

    def _compare(self, base: CostWindow, current: CostWindow) -> Finding:
        cur = self.pricing.currency
        assert base.cost_per_1k is not None and current.cost_per_1k is not None
        ratio = current.cost_per_1k / base.cost_per_1k
        factors: dict[str, float] = {
            "price": (current.price_per_hour * current.instances)
            / (base.price_per_hour * base.instances)
        }
        if None not in (base.throughput, current.throughput, base.utilization, current.utilization):
            factors["throughput"] = _ratio(base.throughput, current.throughput)  # type: ignore[arg-type]
            factors["utilization"] = _ratio(base.utilization, current.utilization)  # type: ignore[arg-type]
        else:
            factors["served rate"] = ratio / factors["price"] if factors["price"] else 1.0
        words = {
            "price": "price per hour",
            "throughput": "throughput",
            "utilization": "utilisation",
            "served rate": "served inferences per paid hour",
        }
        parts = []
        for key, factor in sorted(factors.items(), key=lambda kv: -_size(kv[1])):
            # price moves cost directly; the other factors are inverse (slower: dearer)
            change = factor - 1 if key == "price" else _ratio(1.0, factor) - 1
            parts.append(f"{words[key]} {change * 100:+.0f}% (cost x{factor:.2f})")
        driver = max(factors, key=lambda k: _size(factors[k]))
        rose = ratio > 1 + self.min_effect
        severity = Severity.OK
        if rose:
            severity = Severity.CRITICAL if ratio > 1 + self.critical_effect else Severity.WARNING
        verdict = "rose" if ratio > 1 else "fell"
        message = (
            f"cost per 1000 inferences {verdict} {abs(ratio - 1) * 100:.0f}%: "
            f"{base.cost_per_1k:.4g} -> {current.cost_per_1k:.4g} {cur}; " + "; ".join(parts)
        )
        recommendation = None
        if rose:
            recommendation = {
                "price": "The price or instance count changed: check the billing and autoscaler.",
                "throughput": "Each inference got slower: profile the model and trace the "
                "request pipeline (silenttax.profile, silenttax.trace).",
                "utilization": "Paid capacity sits idle: scale down or consolidate replicas.",
                "served rate": "Fewer inferences per paid hour: record busy_seconds to tell "
                "slower inferences from idle capacity.",
            }[driver]
        return make_finding(
            "cost.per_1k_increase",
            severity=severity,
            subject=self.name,
            message=message,
            metric="cost_per_1k",
            value=current.cost_per_1k,
            baseline=base.cost_per_1k,
            threshold=base.cost_per_1k * (1 + self.min_effect),
            unit=cur,
            effect_size=ratio,
            evidence={
                "factors": {k: v if math.isfinite(v) else None for k, v in factors.items()},
                "driver": driver,
                "log_shares": {  # None where a factor or the ratio is 0 (a free price)
                    k: (
                        math.log(v) / math.log(ratio)
                        if _size(v) < math.inf and 0 < _size(ratio) < math.inf
                        else (0.0 if ratio == 1 else None)
                    )
                    for k, v in factors.items()
                },
            },
            recommendation=recommendation,
            detector="cost.CostMonitor",
        )


def check_cost(
    current: CostMonitor | CostMonitorState,
    baseline: CostWindow | CostMonitor | CostMonitorState | None = None,
    *,
    min_effect: float | None = None,
    critical_effect: float | None = None,
    compare_windows: int | None = None,
    min_inferences: int | None = None,
) -> Report:
    """Judge a cost snapshot, optionally against a baseline, under a policy (pure).

    The policy defaults to the monitor's settings; a keyword given here
    replaces it. The baseline defaults to the monitor's own (the first closed
    window unless one was given); a monitor or its state as ``baseline``
    stands for its baseline window. ``CostMonitor.check`` is this function on
    the live monitor.

    Args:
        current: The monitor or its state.
        baseline: A window, or a monitor (or its state) whose baseline window to use.
        min_effect: Relative rise of cost per 1000 that is material (0.10 = 10%).
        critical_effect: Relative rise that is CRITICAL.
        compare_windows: How many of the latest windows to pool.
        min_inferences: Windows that served fewer are idle (not judged).

    Raises:
        InputError: an argument of another type, or a policy value out of range.

    Examples:
        >>> monitor = CostMonitor(CostModel(price_per_hour=2.0), window=3600)
        >>> t0 = 1_700_000_000.0
        >>> monitor.record(inferences=360_000, now=t0)
        >>> _ = monitor.close_window(now=t0 + 3600)
        >>> monitor.set_price(3.0, now=t0 + 3600)             # the bill rose by half
        >>> monitor.record(inferences=360_000, now=t0 + 3600)
        >>> _ = monitor.close_window(now=t0 + 7200)
        >>> check_cost(monitor.state(), critical_effect=0.4).worst.value
        'critical'
    """
    policy = {
        "min_effect": min_effect,
        "critical_effect": critical_effect,
        "compare_windows": compare_windows,
        "min_inferences": min_inferences,
    }
    judge = with_policy(CostMonitor, current, policy)
    if baseline is not None:
        if isinstance(baseline, CostMonitor | CostMonitorState):
            judge.baseline = baseline.baseline
        elif isinstance(baseline, CostWindow):
            judge.baseline = baseline
        else:
            raise InputError(
                "baseline must be a CostWindow, a CostMonitor or its state, got "
                f"{type(baseline).__name__}"
            )
    return judge._judge()
