"""Canary: an anytime-valid performance canary, read after every request if you like.

The test counts tail exceedances, as in Lindon & Malek's anytime-valid
multinomial tests (NeurIPS 2022) used for Netflix's canaries. Fix an edge
``e`` per watched quantile from the control arm: during a declared burn-in,
or from a production baseline given up front. After that, count per edge
the control requests above ``e``, the canary requests above ``e`` and the
canary requests above ``e * (1 + max_regression)``: three integers.

If the canary is no slower than the control at that quantile, a request
above ``e`` comes from the canary with probability at most the canary's
traffic share ``split``. Load that varies over the day cancels out, because
both arms share it. A one-sided beta-binomial mixture over the canary's share
of those events is an e-process. By Ville's inequality, the chance that it
*ever* reaches ``K / alpha`` (for K watched quantiles) is at most ``alpha / K``,
however often it is read. Rollback needs that evidence **and** an estimate
beyond the tolerance: more canary requests above ``e * (1 + max_regression)``
than its share. This is the gate's rule (significant and material).

Promotion is the mirror test, run on the events "control above ``e``" and
"canary above ``e * (1 + max_regression)``". If the canary were ``1 +
max_regression`` times slower, the canary's share of those events would be
``split``. An e-process against "at least ``split``" that reaches ``K / alpha``
at every edge certifies that the canary is within tolerance. A realized
split far from the declared one (the sample-ratio mismatch of A/B tests)
makes both arguments void, so the canary **halts** instead.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, NonNegativeInt, model_validator

from silenttax._sketch import as_sketch
from silenttax._stability import invalid_input_finding
from silenttax._state import State, Stateful, settings
from silenttax.errors import InputError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_duration as _dur

__all__ = ["Canary", "CanaryState", "Decision", "log_e_above", "log_e_below", "log_e_split"]

Decision = Literal["continue", "promote", "rollback", "halt"]
#: Share of ``alpha`` spent on the split test (halt); the rest goes to rollback.
HALT_SHARE = 0.1
_METRIC = re.compile(r"^p(\d+(?:\.\d+)?)$")
_Array = npt.NDArray[np.float64]


def _prior(split: float, strength: float) -> tuple[float, float]:
    return strength * split, strength * (1.0 - split)


def _log(x: Any) -> Any:
    with np.errstate(divide="ignore"):
        return np.log(x)


def _log_e_truncated(
    canary_events: Any, events: Any, split: float, strength: float, *, above: bool
) -> Any:
    """The beta-binomial mixture's log e-value, its prior truncated above or below ``split``."""
    from scipy.special import betainc, betaincc, betaln

    mass = betaincc if above else betainc  # prior mass on the side of the alternative
    k = np.asarray(canary_events, dtype=np.float64)
    n = np.asarray(events, dtype=np.float64)
    a, b = _prior(split, strength)
    mixture = betaln(a + k, b + n - k) + _log(mass(a + k, b + n - k, split))
    norm = betaln(a, b) + math.log(float(mass(a, b, split)))
    return mixture - norm - (k * math.log(split) + (n - k) * math.log1p(-split))


def log_e_above(canary_events: Any, events: Any, split: float, strength: float = 20.0) -> Any:
    """log e-value against "the canary's share of events is at most ``split``".

    A beta-binomial mixture over shares above ``split`` (a Beta(strength *
    split, strength * (1 - split)) prior truncated there): the likelihood of
    the observed labels under the mixture over their likelihood at
    ``split``. Under the null it is a nonnegative supermartingale, so it
    reaches ``1 / alpha`` with probability at most ``alpha``, ever. Works on
    NumPy arrays of counts too (a whole path at once).

    Examples:
        >>> round(float(log_e_above(30, 200, 0.05)), 2)  # 15% of events from a 5% arm
        12.34
        >>> float(log_e_above(10, 200, 0.05)) < 0
        True
    """
    return _log_e_truncated(canary_events, events, split, strength, above=True)


def log_e_below(canary_events: Any, events: Any, split: float, strength: float = 20.0) -> Any:
    """log e-value against "the canary's share of events is at least ``split``".

    The mirror image of :func:`log_e_above` (prior truncated below ``split``):
    large when the canary has clearly fewer events than its share.

    Examples:
        >>> float(log_e_below(0, 2000, 0.05)) > math.log(2 / 0.05)
        True
    """
    return _log_e_truncated(canary_events, events, split, strength, above=False)


def _detectable_ratio(
    events: int, split: float, bar: float, strength: float, power: float
) -> float | None:
    """Smallest exceedance-rate ratio caught with ``power`` from ``events`` tail events.

    The rollback test fires when the canary's count ``k`` of ``events`` makes
    ``log_e_above(k, events) >= bar``; ``k*`` is the least such count. Under a
    ratio ``rho`` the canary's share of tail events is ``s = split * rho /
    (split * rho + 1 - split)`` and ``k ~ Binomial(events, s)``; the ratio
    returned solves ``P(k >= k*) = power``. None when no count would suffice.
    """
    from scipy.optimize import brentq
    from scipy.stats import binom

    if events < 1:
        return None
    counts = np.arange(events + 1)
    crossing = np.flatnonzero(np.asarray(log_e_above(counts, events, split, strength)) >= bar)
    if crossing.size == 0:
        return None
    needed = int(crossing[0])

    def gap(share: float) -> float:
        return float(binom.sf(needed - 1, events, share)) - power

    if gap(1 - 1e-12) < 0:
        return None
    share = float(brentq(gap, split * 1e-6, 1 - 1e-12)) if gap(split * 1e-6) < 0 else split
    share = max(share, split)
    return share * (1 - split) / (split * (1 - share))


def log_e_split(canary: Any, total: Any, split: float, strength: float = 20.0) -> Any:
    """log e-value against "requests reach the canary with probability ``split``"
    (two-sided: an untruncated beta-binomial mixture).

    Examples:
        >>> float(log_e_split(500, 10_000, 0.05)) < 0   # 5.0%: as declared
        True
        >>> float(log_e_split(400, 10_000, 0.05)) > math.log(1 / 0.05)  # 4.0%
        True
    """
    from scipy.special import betaln

    m = np.asarray(canary, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    a, b = _prior(split, strength)
    mixture = betaln(a + m, b + n - m) - betaln(a, b)
    return mixture - (m * math.log(split) + (n - m) * math.log1p(-split))


def _finite_non_negative(value: Any) -> bool:
    try:
        return bool(value >= 0 and math.isfinite(value))
    except (TypeError, ValueError, OverflowError):  # not a number, an array, a huge int
        return False


def _quantile(metric: str) -> float:
    match = _METRIC.match(metric)
    q = float(match.group(1)) / 100 if match else -1.0
    if not 0 < q < 1:
        raise InputError(f"metrics: {metric!r} is not a quantile such as 'p50' or 'p99.9'")
    return q


class CanaryState(State):
    """JSON state of a :class:`Canary`: settings, edges and the event counts."""

    KIND: ClassVar[str] = "silenttax.canary"

    params: dict[str, Any]
    """Constructor settings."""
    edges: dict[str, float] | None = None
    """Control edge per watched quantile, seconds (None during the burn-in)."""
    baseline: dict[str, float] | None = None
    """The edges taken from a production baseline up front (None: from the burn-in)."""
    burn_in_values: dict[str, list[float]] = Field(default_factory=dict)
    """Control values of the burn-in so far, per series (``latency`` and each resource)."""
    control_events: dict[str, NonNegativeInt] = Field(default_factory=dict)
    """Control requests above the edge, per quantile."""
    canary_events: dict[str, NonNegativeInt] = Field(default_factory=dict)
    """Canary requests above the edge, per quantile."""
    canary_over: dict[str, NonNegativeInt] = Field(default_factory=dict)
    """Canary requests above ``edge * (1 + max_regression)``, per quantile."""
    control: NonNegativeInt = 0
    """Control requests recorded (burn-in included)."""
    canary: NonNegativeInt = 0
    """Canary requests recorded (burn-in included)."""
    invalid: NonNegativeInt = 0
    """Latencies that were not finite, non-negative numbers (ignored)."""
    decided: Decision | None = None
    """The first terminal decision reached (it stays)."""
    promoted_by: Literal["evidence", "horizon"] | None = None
    """Why it promoted: every quantile certified (``evidence``), or the horizon was
    reached with no rollback (``horizon``)."""
    started_at: float | None = None
    """Seconds since the epoch of the first request recorded (for ``max_duration``)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for name, events, total in (
            ("control_events", self.control_events, self.control),
            ("canary_events", self.canary_events, self.canary),
            ("canary_over", self.canary_over, self.canary),
        ):
            if any(n > total for n in events.values()):
                raise ValueError(f"{name}: more events than the {total} requests recorded")
        return self


class Canary(Stateful[CanaryState]):
    """A performance canary with an anytime-valid decision (see the module docs).

    ``record_control(seconds)`` and ``record_canary(seconds)`` for every
    request of each arm (O(number of quantiles), never raises unless
    ``strict=True``); :attr:`decision` may be read after every request:

    - ``"rollback"``: at some quantile the canary is slower than
      ``1 + max_regression`` times the control, with anytime-valid confidence;
    - ``"promote"``: at every quantile it is certified faster than that — or the
      ``horizon`` (requests) or ``max_duration`` (seconds) was reached with no
      rollback: then :meth:`check` states, per quantile, the smallest
      exceedance-rate ratio it would have rolled back with 80% power by then;
    - ``"halt"``: the realized traffic split is not the declared ``split``, so
      neither verdict can be trusted; fix the router;
    - ``"continue"`` otherwise (and during the burn-in).

    A terminal decision stays once reached. Under no regression and a correct
    split, the chance of *ever* rolling back or halting is at most ``alpha``:
    rollback spends ``0.9 * alpha`` (Bonferroni over the quantiles, Ville's
    inequality over time) and the split test the other ``0.1 * alpha``
    (:data:`HALT_SHARE`). So a healthy canary with a ``horizon`` promotes by it
    with probability at least ``1 - alpha``.

    Args:
        max_regression: Tolerated slowdown at each watched quantile (0.05 = 5%).
        alpha: Chance of ever rolling back or halting a canary within tolerance on
            a correct split (split between the two tests: :data:`HALT_SHARE`).
        metrics: The quantiles watched, as ``"p50"``, ``"p99"``, ``"p99.9"``.
        split: The canary's declared share of the traffic (the router weight).
        burn_in: Control requests that fix the edges before anything is tested
            (ignored when ``baseline`` is given).
        baseline: Production latencies that fix the edges up front: a
            ``LatencySketch`` or ``LatencyMonitor`` (or their state), or seconds;
            with ``resources``, a mapping from ``"latency"`` and each resource
            to its values. Canaries with the same edges merge (replicas of each arm).
        resources: Other per-request series to watch the same way, e.g.
            ``("memory", "cpu")``: pass their values to ``record_control`` and
            ``record_canary`` as keywords (``memory=bytes``). Each is watched at
            the same quantiles, as ``"memory p99"``; a higher value is worse.
        horizon: Requests (both arms) after which a canary with no rollback and no
            halt promotes (None: it continues until certified). The guarantee it
            promotes with is stated per quantile in :meth:`check`.
        max_duration: Seconds after the first request after which the same holds.
        prior_strength: Concentration of the beta mixture around ``split``. Lindon
            & Malek use 100; 20 puts more weight on large shifts. A +30% p99 then
            rolls back in a median of ~250 tail events (~265 at 100), while +15%
            is still caught within 4,000 events 98-99% of the time (see
            docs/benchmarks.md).
        strict: Raise :class:`~silenttax.errors.InputError` on an invalid latency.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> canary = Canary(split=0.05, burn_in=2000)
        >>> for _ in range(60_000):
        ...     if rng.random() < 0.05:
        ...         canary.record_canary(rng.lognormal(-4.0, 0.5) * 1.3)  # 30% slower
        ...     else:
        ...         canary.record_control(rng.lognormal(-4.0, 0.5))
        >>> canary.decision
        'rollback'
    """

    STATE: ClassVar[type[State]] = CanaryState

    def __init__(
        self,
        *,
        max_regression: float = 0.05,
        alpha: float = 0.05,
        metrics: Sequence[str] = ("p50", "p99"),
        split: float = 0.05,
        burn_in: int = 1000,
        baseline: Any = None,
        resources: Sequence[str] = (),
        horizon: int | None = None,
        max_duration: float | None = None,
        prior_strength: float = 20.0,
        strict: bool = False,
    ) -> None:
        if not (0 <= max_regression < 10 and math.isfinite(max_regression)):
            raise InputError(f"max_regression must be in [0, 10), got {max_regression!r}")
        if not 0 < alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
        if not 0 < split < 1:
            raise InputError(f"split must be in (0, 1), got {split!r}")
        if not isinstance(burn_in, int) or burn_in < 10:
            raise InputError(f"burn_in must be an int >= 10, got {burn_in!r}")
        if not prior_strength > 0:
            raise InputError(f"prior_strength must be > 0, got {prior_strength!r}")
        if horizon is not None and (
            isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1
        ):
            raise InputError(f"horizon must be an int >= 1 (requests) or None, got {horizon!r}")
        if max_duration is not None and not (
            isinstance(max_duration, int | float)
            and max_duration > 0
            and math.isfinite(max_duration)
        ):
            raise InputError(f"max_duration must be > 0 seconds or None, got {max_duration!r}")
        if not metrics:
            raise InputError("metrics: watch at least one quantile")
        if isinstance(resources, str) or any(
            not isinstance(r, str) or not r.isidentifier() or r == "latency" for r in resources
        ):
            raise InputError(
                f"resources: names such as ('memory', 'cpu') (not 'latency'), got {resources!r}"
            )
        self._quantiles = {m: _quantile(m) for m in metrics}
        self.resources = tuple(resources)
        self._series = ("latency", *self.resources)
        # (key, series, quantile) for every watched pair; latency keys are the bare metric
        self._keys = [
            (m if series == "latency" else f"{series} {m}", series, q)
            for series in self._series
            for m, q in self._quantiles.items()
        ]
        self.max_regression = float(max_regression)
        self.alpha = float(alpha)
        # one alpha for every false terminal decision: rollback gets 90% of it, the split
        # test the rest, so a healthy canary promotes at its horizon with chance >= 1 - alpha
        self._rollback_alpha = self.alpha * (1 - HALT_SHARE)
        self._halt_alpha = self.alpha * HALT_SHARE
        self.metrics = tuple(metrics)
        self.split = float(split)
        self.burn_in = burn_in
        self.prior_strength = float(prior_strength)
        self.horizon = horizon
        self.max_duration = None if max_duration is None else float(max_duration)
        self._promoted_by: Literal["evidence", "horizon"] | None = None
        self._started_at: float | None = None
        self.strict = strict
        self._lock = threading.Lock()
        self._edges: dict[str, float] | None = None
        self._burn: dict[str, list[float]] = {series: [] for series in self._series}
        self._zero_counts()
        self.control = 0
        self.canary = 0
        self.invalid = 0
        self._decided: Decision | None = None
        self._from_baseline = baseline is not None
        if baseline is not None:
            self._fix_edges(self._baseline_edges(baseline))
        self._bind()

    def _zero_counts(self) -> None:
        keys = [key for key, _, _ in self._keys]
        self._control_events = dict.fromkeys(keys, 0)
        self._canary_events = dict.fromkeys(keys, 0)
        self._canary_over = dict.fromkeys(keys, 0)

    def _baseline_edges(self, baseline: Any) -> dict[str, float]:
        if self.resources:
            if not isinstance(baseline, Mapping) or set(baseline) != set(self._series):
                raise InputError(
                    f"baseline: with resources, a mapping with the keys {list(self._series)}"
                )
            per_series = baseline
        else:
            per_series = {"latency": baseline}
        edges: dict[str, float] = {}
        for series, values in per_series.items():
            found = _baseline_quantiles(values, self._quantiles, series)
            edges.update(
                {m if series == "latency" else f"{series} {m}": v for m, v in found.items()}
            )
        return edges

    # ----------------------------------------------------------------- recording
    def _fix_edges(self, edges: dict[str, float]) -> None:
        self._edges = edges
        self._burn = {series: [] for series in self._series}
        self._bind()

    def _bind(self) -> None:
        edges = self._edges or {}
        scale = 1.0 + self.max_regression
        self._watch = [
            (key, edges[key], edges[key] * scale)
            for key, series, _ in self._keys
            if series == "latency" and key in edges
        ]
        self._watch_resource = {
            series: [
                (key, edges[key], edges[key] * scale)
                for key, s, _ in self._keys
                if s == series and key in edges
            ]
            for series in self.resources
        }

    def _resource_values(self, values: dict[str, Any]) -> dict[str, float]:
        """The valid resource values of one request (bad ones counted, or raised if strict)."""
        out = {}
        for name, value in values.items():
            if name in self._watch_resource and _finite_non_negative(value):
                out[name] = float(value)
                continue
            self.invalid += 1
            if self.strict:
                raise InputError(
                    f"{name}: not a watched resource ({list(self.resources)}) or not a finite "
                    f"number >= 0: {value!r}"
                )
        return out

    def _burn_in(self, seconds: float, resources: dict[str, float]) -> None:
        self._burn["latency"].append(seconds)
        for name, value in resources.items():
            self._burn[name].append(value)
        if len(self._burn["latency"]) < self.burn_in:
            return
        edges: dict[str, float] = {}
        for key, series, q in self._keys:
            values = self._burn[series]
            if len(values) >= 10:  # a resource seldom reported stays unwatched
                edges[key] = float(np.quantile(np.asarray(values), q))
        self._fix_edges(edges)

    def _valid(self, seconds: float) -> bool:
        try:  # _finite_non_negative inlined: this runs on every request
            ok = bool(seconds >= 0 and math.isfinite(seconds))
        except (TypeError, ValueError, OverflowError):  # not a number, an array, a huge int
            ok = False
        if not ok:
            self.invalid += 1
            if self.strict:
                raise InputError(f"seconds must be a finite number >= 0, got {seconds!r}")
        return ok

    def record_control(self, seconds: float, **resources: float) -> None:
        """Record one control request: its latency, and its ``resources`` by name
        (thread-safe; never raises unless ``strict=True``)."""
        with self._lock:
            if not self._valid(seconds):
                return
            if self._started_at is None:
                self._started_at = time.time()
            self.control += 1
            values = self._resource_values(resources) if resources else {}
            if self._edges is None:
                self._burn_in(float(seconds), values)
                return
            events = self._control_events
            for metric, edge, _ in self._watch:
                if seconds > edge:
                    events[metric] += 1
            for name, value in values.items():
                for key, edge, _ in self._watch_resource[name]:
                    if value > edge:
                        events[key] += 1

    def record_canary(self, seconds: float, **resources: float) -> None:
        """Record one canary request: its latency, and its ``resources`` by name
        (thread-safe; never raises unless ``strict=True``)."""
        with self._lock:
            if not self._valid(seconds):
                return
            if self._started_at is None:
                self._started_at = time.time()
            self.canary += 1
            events, over = self._canary_events, self._canary_over
            for metric, edge, scaled in self._watch:
                if seconds > edge:
                    events[metric] += 1
                    if seconds > scaled:
                        over[metric] += 1
            if resources:
                for name, value in self._resource_values(resources).items():
                    for key, edge, scaled in self._watch_resource[name]:
                        if value > edge:
                            events[key] += 1
                            if value > scaled:
                                over[key] += 1

    # ------------------------------------------------------------------ decision
    @property
    def edges(self) -> dict[str, float] | None:
        """The control edge per watched quantile (None during the burn-in)."""
        return dict(self._edges) if self._edges is not None else None

    def _evidence(self) -> tuple[float, dict[str, tuple[float, float, bool]]]:
        """log e-values: the split; per quantile (rollback, promote, beyond tolerance)."""
        strength, split = self.prior_strength, self.split
        srm = float(log_e_split(self.canary, self.control + self.canary, split, strength))
        per_metric: dict[str, tuple[float, float, bool]] = {}
        if self._edges is not None:
            for m in (key for key, _, _ in self._keys if key in self._edges):
                c, k, over = self._control_events[m], self._canary_events[m], self._canary_over[m]
                per_metric[m] = (
                    float(log_e_above(k, k + c, split, strength)),
                    float(log_e_below(over, over + c, split, strength)),
                    over * (1 - split) > c * split,  # more than its share beyond tolerance
                )
        return srm, per_metric

    @property
    def decision(self) -> Decision:
        """``"continue"``, ``"promote"``, ``"rollback"`` or ``"halt"`` (see the class docs)."""
        if self._decided is not None:
            return self._decided
        return self._decide(*self._evidence())

    def _decide(self, srm: float, per_metric: dict[str, tuple[float, float, bool]]) -> Decision:
        """The decision from the evidence (a terminal one is kept)."""
        if self._decided is not None:
            return self._decided
        bar = math.log(len(self._keys) / self._rollback_alpha)
        decided: Decision | None = None
        if srm >= math.log(1 / self._halt_alpha):
            decided = "halt"
        elif any(up >= bar and beyond for up, _, beyond in per_metric.values()):
            decided = "rollback"
        elif len(per_metric) == len(self._keys) and all(
            down >= bar for _, down, _ in per_metric.values()
        ):
            decided, self._promoted_by = "promote", "evidence"
        elif len(per_metric) == len(self._keys) and self._horizon_reached():
            decided, self._promoted_by = "promote", "horizon"
        if decided is not None:
            self._decided = decided
            return decided
        return "continue"

    def _horizon_reached(self) -> bool:
        if self.horizon is not None and self.control + self.canary >= self.horizon:
            return True
        return (
            self.max_duration is not None
            and self._started_at is not None
            and time.time() - self._started_at >= self.max_duration
        )

    def detectable(self, metric: str, power: float = 0.8) -> float | None:
        """The smallest exceedance-rate ratio (canary / control, above ``metric``'s edge)
        the rollback test would have caught with probability ``power`` on the tail
        events seen so far (None before the edges are fixed or without tail events).

        The guarantee a canary promoted at its horizon gives: a regression that put
        at least this many times the control's rate of requests above the edge would
        have been rolled back with at least that power: computed from the binomial
        model of the test (the share of tail events from the canary) at the observed
        number of tail events, for one look; the test is read after every request,
        so the real power is higher (benchmarks: 86.6% where 80% was stated).

        Raises:
            InputError: ``metric`` is not watched, or ``power`` not in (0, 1).
        """
        if not 0 < power < 1:
            raise InputError(f"power must be in (0, 1), got {power!r}")
        if metric not in self._control_events:
            watched = list(self._control_events)
            raise InputError(f"metric: {metric!r} is not watched; watched: {watched}")
        if self._edges is None or metric not in self._edges:
            return None
        n = self._control_events[metric] + self._canary_events[metric]
        return _detectable_ratio(
            n,
            self.split,
            math.log(len(self._keys) / self._rollback_alpha),
            self.prior_strength,
            power,
        )

    # ------------------------------------------------------------------- merging
    def merge(self, other: Canary) -> Self:
        """Add another replica's counts (same settings and edges) into this canary.

        Raises:
            InputError: ``other`` is not a Canary, a setting differs (named), or
                either canary's edges are not fixed yet or differ.
        """
        from silenttax._merge import same_settings

        if not isinstance(other, Canary):
            raise InputError(f"can only merge a Canary, got {type(other).__name__}")
        local = ("strict", "burn_in")
        same_settings(
            "Canary",
            {k: v for k, v in self._params().items() if k not in local},
            {k: v for k, v in other._params().items() if k not in local},
        )
        if self._edges is None or other._edges is None or self._edges != other._edges:
            raise InputError(
                "edges: canaries merge only with the same fixed edges; give every replica "
                "the same baseline= (edges from one production sketch)"
            )
        for m, _, _ in self._keys:
            self._control_events[m] += other._control_events[m]
            self._canary_events[m] += other._canary_events[m]
            self._canary_over[m] += other._canary_over[m]
        self.control += other.control
        self.canary += other.canary
        self.invalid += other.invalid
        if self._decided is None:
            self._decided, self._promoted_by = other._decided, other._promoted_by
        starts = [t for t in (self._started_at, other._started_at) if t is not None]
        self._started_at = min(starts) if starts else None
        return self

    def reset(self) -> None:
        """Forget every request (settings stay; edges from a burn-in are learnt again)."""
        edges = self._edges if self._from_baseline else None
        self._burn = {series: [] for series in self._series}
        self._zero_counts()
        self.control = self.canary = self.invalid = 0
        self._decided = self._promoted_by = self._started_at = None
        self._edges = edges
        self._bind()

    # --------------------------------------------------------------------- state
    def _params(self) -> dict[str, Any]:
        return {
            "max_regression": self.max_regression,
            "alpha": self.alpha,
            "metrics": list(self.metrics),
            "split": self.split,
            "burn_in": self.burn_in,
            "resources": list(self.resources),
            "horizon": self.horizon,
            "max_duration": self.max_duration,
            "prior_strength": self.prior_strength,
            "strict": self.strict,
        }

    def state(self) -> CanaryState:
        """JSON-serializable snapshot: settings, edges and counts."""
        return CanaryState(
            params=self._params(),
            edges=self.edges,
            baseline=self.edges if self._from_baseline else None,
            burn_in_values={series: list(v) for series, v in self._burn.items() if v},
            control_events=dict(self._control_events),
            canary_events=dict(self._canary_events),
            canary_over=dict(self._canary_over),
            control=self.control,
            canary=self.canary,
            invalid=self.invalid,
            decided=self._decided,
            promoted_by=self._promoted_by,
            started_at=self._started_at,
        )

    @classmethod
    def from_state(cls, state: CanaryState) -> Self:
        """Rebuild a canary from :meth:`state`."""
        canary = cls(**settings(cls, state.params))
        canary._from_baseline = state.baseline is not None
        for series, values in state.burn_in_values.items():
            canary._burn[series] = list(values)
        canary._edges = dict(state.edges) if state.edges is not None else None
        canary._control_events.update(state.control_events)
        canary._canary_events.update(state.canary_events)
        canary._canary_over.update(state.canary_over)
        canary.control, canary.canary, canary.invalid = state.control, state.canary, state.invalid
        canary._decided = state.decided
        canary._promoted_by = state.promoted_by
        canary._started_at = state.started_at
        canary._bind()
        return canary

    # --------------------------------------------------------------------- check
    def check(self) -> Report:
        """``canary.decision``, one ``canary.latency`` per watched quantile (``canary.resource``
        per resource and quantile) and ``canary.split``."""
        srm, per_metric = self._evidence()
        decision = self._decide(srm, per_metric)
        bar = len(self._keys) / self._rollback_alpha
        guarantee = {m: self.detectable(m) for m in per_metric}
        findings: list[Finding] = []
        severity = {
            "continue": Severity.INFO,
            "promote": Severity.OK,
            "rollback": Severity.CRITICAL,
            "halt": Severity.WARNING,
        }[decision]
        total = self.control + self.canary
        findings.append(
            make_finding(
                "canary.decision",
                severity=severity,
                subject="canary",
                message=(
                    f"canary: {decision} after {total:,} requests ({self.canary:,} canary)"
                    + (
                        f"; burn-in {len(self._burn['latency'])}/{self.burn_in} control requests"
                        if self._edges is None
                        else ""
                    )
                    + (
                        "; the horizon was reached with no rollback evidence: it would have "
                        "rolled back, with 80% power, a canary with "
                        + ", ".join(
                            f"{ratio:.2f}x the control's rate above the {m} edge"
                            if ratio is not None
                            else f"any rate above the {m} edge (too few tail events: none)"
                            for m, ratio in guarantee.items()
                        )
                        if decision == "promote" and self._promoted_by == "horizon"
                        else ""
                    )
                ),
                evidence={
                    "decision": decision,
                    "promoted_by": self._promoted_by if decision == "promote" else None,
                    "detectable_ratio_80": guarantee,
                    "control": self.control,
                    "canary": self.canary,
                    "alpha": self.alpha,
                },
                recommendation={
                    "rollback": "Roll the canary back and profile it against production.",
                    "halt": "The realized split differs from the declared one: fix the router "
                    "(or the split=) before trusting a verdict.",
                }.get(decision),
                detector="gate.Canary",
            )
        )
        for m, (up, down, beyond) in per_metric.items():
            assert self._edges is not None
            findings.append(self._edge_finding(m, up, down, beyond, bar))
        share = self.canary / total if total else self.split
        findings.append(
            make_finding(
                "canary.split",
                severity=Severity.WARNING if srm >= math.log(1 / self._halt_alpha) else Severity.OK,
                subject="canary",
                message=(
                    f"canary share {share:.2%} of {total:,} requests vs declared {self.split:.2%} "
                    f"(e-value {math.exp(min(srm, 700)):.3g}; halt at {1 / self._halt_alpha:g})"
                ),
                metric="canary_share",
                value=share,
                baseline=self.split,
                evidence={"log_e": srm},
                detector="gate.Canary",
            )
        )
        if self.invalid:
            findings.append(
                invalid_input_finding(
                    "canary",
                    invalid=self.invalid,
                    recorded=total,
                    what="latencies or resource values",
                    detector="gate.Canary",
                )
            )
        return Report(
            findings=findings,
            source="gate.Canary.check",
            context={"decision": decision, "requests": total},
        )

    def _edge_finding(self, m: str, up: float, down: float, beyond: bool, bar: float) -> Finding:
        assert self._edges is not None
        edge, scaled = self._edges[m], self._edges[m] * (1 + self.max_regression)
        c, k, over = self._control_events[m], self._canary_events[m], self._canary_over[m]
        odds = self.split / (1 - self.split)
        rate = (k / c) / odds if c else (math.inf if k else 1.0)  # canary / control above edge
        if up >= math.log(bar) and beyond:
            verdict, severity = "regression", Severity.WARNING
        elif down >= math.log(bar):
            verdict, severity = "within tolerance", Severity.OK
        else:
            verdict, severity = "open", Severity.INFO
        latency = " " not in m
        shown = _dur if latency else (lambda v: f"{v:.4g}")
        return make_finding(
            "canary.latency" if latency else "canary.resource",
            severity=severity,
            subject="canary",
            message=(
                f"{m}: above the control's {shown(edge)}, {k} canary vs {c} control requests "
                f"(exceedance-rate ratio {rate:.2f}); {over} canary above {shown(scaled)} "
                f"(e-values {math.exp(min(up, 700.0)):.3g} for rollback, "
                f"{math.exp(min(down, 700.0)):.3g} for promotion; decided at {bar:g}): {verdict}"
            ),
            metric=f"{m.replace(' ', '_')}_exceedance_ratio",
            value=rate if math.isfinite(rate) else None,
            baseline=1.0,
            evidence={
                "edge": edge,
                "tolerance_edge": scaled,
                "control_events": c,
                "canary_events": k,
                "canary_over_tolerance": over,
                "log_e_rollback": up,
                "log_e_promote": down,
                "verdict": verdict,
            },
            detector="gate.Canary",
        )


def _baseline_quantiles(
    baseline: Any, quantiles: dict[str, float], series: str = "latency"
) -> dict[str, float]:
    sketch = as_sketch(baseline)
    if sketch is not None:
        if sketch.count == 0:
            raise InputError(f"baseline: the {series} sketch is empty")
        return {m: sketch.quantile(q) for m, q in quantiles.items()}
    try:
        values: _Array = np.asarray(baseline, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"baseline: expected a sketch, a monitor or values for {series}, got "
            f"{type(baseline).__name__}"
        ) from exc
    values = values[np.isfinite(values) & (values >= 0)]
    if len(values) < 10:
        raise InputError(f"baseline: need at least 10 valid values for {series}")
    return {m: float(np.quantile(values, q)) for m, q in quantiles.items()}
