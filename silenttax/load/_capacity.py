"""Capacity: the highest offered rate whose latency quantile meets the SLO, with an
interval, and a paired comparison of two versions' capacities.

The search is exploratory: bracket (doubling), then bisect (geometric midpoints), each
probe a short open-loop run judged by a cluster-aware bound on P(latency > SLO)
(:func:`~silenttax.load._generator.exceedance_bound`). A monotone (isotonic) fit of the
exceedance share against the rate gives the estimate; only a longer **confirmation**
run at the reported rate issues the claim (the probes' winner's curse stays out of it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from silenttax.errors import InputError
from silenttax.load._generator import (
    OK,
    Array,
    Exceedance,
    LoadRun,
    _finite,
    exceedance_bound,
    run,
)
from silenttax.load._target import Target, as_target

Verdict = Literal["pass", "fail", "inconclusive", "invalid"]
CONFIRMATIONS = 4  # confirmation runs at most, stepping down by ``precision``


@dataclass
class Probe:
    """One point of the latency-throughput curve."""

    rate: float
    achieved: float
    p50: float
    p99: float
    exceedance: Exceedance
    errors: Exceedance
    lag_p99: float
    valid: bool
    verdict: Verdict
    confirmation: bool = False
    requests: int = 0
    mean_latency: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "achieved": _finite(self.achieved),
            "p50": _finite(self.p50),
            "p99": _finite(self.p99),
            "exceedance": self.exceedance.share,
            "exceedance_high": self.exceedance.high,
            "exceedance_low": self.exceedance.low,
            "clusters": self.exceedance.clusters,
            "error_share": self.errors.share,
            "lag_p99": _finite(self.lag_p99),
            "valid": self.valid,
            "verdict": self.verdict,
            "confirmation": self.confirmation,
            "requests": self.requests,
        }


def judge(run_: LoadRun, slo: float, limit: float, max_error_rate: float, alpha: float) -> Probe:
    """A run -> a curve point with its verdict: ``fail`` when the exceedance's lower bound
    is over ``limit``, failures are surely over ``max_error_rate``, or the target did not
    keep up (achieved < 90% of offered, half the requests over the SLO, or one busy
    period — the system never empty — across half the run: regeneration-based bounds
    know nothing then, and a stable queue empties often); ``pass`` when the upper bound
    is within ``limit``; ``invalid`` when the generator was the bottleneck; else
    ``inconclusive``."""
    e = run_.exceedance(slo, alpha=alpha)
    errors = exceedance_bound(run_.outcome != OK, run_.empty, alpha=alpha)
    finite = run_.latencies[np.isfinite(run_.latencies)]
    verdict: Verdict
    if not run_.valid:
        verdict = "invalid"
    elif (
        errors.low > max_error_rate
        or e.low > limit
        or run_.achieved < 0.9 * run_.offered
        or e.share >= 0.5
        or run_.longest_busy > 0.5 * (run_.duration - run_.warmup)
    ):
        verdict = "fail"
    elif e.high <= limit:
        verdict = "pass"
    else:
        verdict = "inconclusive"
    return Probe(run_.rate, run_.achieved, run_.p50, run_.p99, e, errors, run_.lag_p99,
                 run_.valid, verdict, requests=run_.requests,
                 mean_latency=float(finite.mean()) if finite.size else math.nan)  # fmt: skip


def isotonic(x: Array, y: Array, w: Array) -> Array:
    """Non-decreasing least-squares fit of ``y`` on sorted ``x`` (pool adjacent violators).

    >>> isotonic(np.arange(4.0), np.array([0.0, 0.2, 0.1, 0.5]), np.ones(4))
    array([0.  , 0.15, 0.15, 0.5 ])
    """
    blocks: list[list[float]] = []  # [value, weight, count]
    for yi, wi in zip(y, w, strict=True):
        blocks.append([float(yi), float(wi), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            total = w1 + w2
            blocks.append([(v1 * w1 + v2 * w2) / total if total else (v1 + v2) / 2, total, n1 + n2])
    return np.concatenate([np.full(int(n), v) for v, _, n in blocks]) if blocks else np.array([])


def crossing(rates: Array, shares: Array, weights: Array, limit: float) -> float | None:
    """The rate where the isotonic fit of the exceedance share crosses ``limit`` (log-linear
    between the probes around it); None when every probe is on one side."""
    order = np.argsort(rates)
    r, fit = rates[order], isotonic(rates[order], shares[order], weights[order])
    above = np.nonzero(fit > limit)[0]
    if not above.size or above[0] == 0:
        return None
    j = int(above[0])
    lo, hi = math.log(r[j - 1]), math.log(r[j])
    a, b = fit[j - 1], fit[j]
    frac = (limit - a) / (b - a) if b > a else 0.5
    return float(math.exp(lo + frac * (hi - lo)))


@dataclass
class CapacityResult:
    """The outcome of :func:`capacity`."""

    target: str
    slo_p99: float
    quantile: float
    capacity: float | None
    """Requests per second at which the latency quantile meets the SLO (estimate)."""
    ci: tuple[float, float] | None
    """(safe capacity: confirmed, the truth is above it with ~95%; the lowest rate shown to
    fail, or the lowest probed over the limit when none was shown)."""
    verdict: Verdict
    curve: list[Probe] = field(default_factory=list)
    light_p99: float | None = None
    knee: float | None = None
    tail_amplification: float | None = None
    upper_shown: bool = False
    """Whether a probe was shown to fail (else the interval's upper end is open)."""
    reason: str = ""
    generator_ceiling: float | None = None

    @property
    def safe(self) -> float | None:
        """The confirmed rate: the claim this result makes."""
        return None if self.ci is None else self.ci[0]

    def figures(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "slo_p99": self.slo_p99,
            "quantile": self.quantile,
            "capacity": self.capacity,
            "ci": None if self.ci is None else list(self.ci),
            "safe": self.safe,
            "verdict": self.verdict,
            "light_p99": self.light_p99,
            "knee": self.knee,
            "tail_amplification": self.tail_amplification,
            "upper_shown": self.upper_shown,
            "reason": self.reason,
            "generator_ceiling": self.generator_ceiling,
            "curve": [p.as_dict() for p in self.curve],
        }

    def plan(self, peak_rate: float, *, headroom: float = 0.3, cost: Any = None) -> dict[str, Any]:
        """Replicas for ``peak_rate`` with ``headroom``, the autoscaler's concurrency target
        (Little's law: safe rate x mean latency there) and, with a
        :class:`~silenttax.cost.CostModel`, the cost per 1000 inferences at the SLO.

        Raises:
            InputError: no safe capacity was confirmed, or a bad peak rate / headroom.
        """
        if self.safe is None or self.safe <= 0:
            raise InputError(f"plan: no capacity was confirmed ({self.reason or self.verdict})")
        if not (peak_rate > 0 and math.isfinite(peak_rate)) or not 0 <= headroom < 10:
            raise InputError(
                f"plan: need peak_rate > 0 and headroom >= 0, got {peak_rate!r}, {headroom!r}"
            )
        replicas = math.ceil(peak_rate * (1 + headroom) / self.safe)
        confirmed = [p for p in self.curve if p.confirmation and p.verdict == "pass"]
        mean = confirmed[-1].mean_latency if confirmed else math.nan
        out: dict[str, Any] = {
            "peak_rate": peak_rate,
            "headroom": headroom,
            "replicas": replicas,
            "safe_capacity": self.safe,
            "concurrency_target": self.safe * mean if math.isfinite(mean) else None,
            "cost_per_1k_at_slo": None,
        }
        if cost is not None:
            price = getattr(cost, "price_per_hour", None)
            if not isinstance(price, int | float):
                raise InputError("plan: cost must be a silenttax.cost.CostModel")
            out["cost_per_1k_at_slo"] = price / 3600.0 / self.safe * 1000.0
        return out

    def report(self, *, required_rate: float | None = None) -> Any:
        """Findings: ``load.capacity`` (WARNING below ``required_rate``), the knee, tail
        amplification, errors under load, generator-bound probes, inconclusive."""
        from silenttax.load._findings import capacity_findings

        return capacity_findings(self, required_rate=required_rate)


def _probe(t: Target, rate: float, seconds: float, seed: int, slo: float, limit: float,
           options: dict[str, Any], confirmation: bool = False) -> Probe:  # fmt: skip
    done = run(t, rate=rate, duration=seconds, seed=seed, timeout=options["timeout"],
               warmup=options["warmup"], max_in_flight=options["max_in_flight"],
               calibrate=False, max_lag=options["max_lag"],
               arrival=options["arrival"])  # fmt: skip
    judged = judge(done, slo, limit, options["max_error_rate"], options["alpha"])
    judged.confirmation = confirmation
    if options.get("progress") is not None:
        options["progress"](judged)
    return judged


def _service_rate(t: Target, slo: float, options: dict[str, Any]) -> float:
    """A starting rate: half of one server's rate, from a short light run."""
    light = run(t, rate=20.0, duration=1.0, timeout=options["timeout"], calibrate=False,
                max_in_flight=options["max_in_flight"])  # fmt: skip
    service = light.service
    mean = float(service.mean()) if service.size else slo
    return max(1.0, 0.5 / max(mean, 1e-5))


def capacity(
    target: Any,
    *,
    slo_p99: float,
    quantile: float = 0.99,
    max_error_rate: float = 0.01,
    payloads: Any = None,
    start_rate: float | None = None,
    probe: float = 5.0,
    confirm: float = 20.0,
    precision: float = 0.1,
    max_probes: int = 12,
    seed: int = 0,
    timeout: float | None = None,
    warmup: float | Literal["auto"] = "auto",
    max_in_flight: int = 256,
    alpha: float = 0.05,
    arrival: str = "poisson",
    progress: Callable[[Probe], object] | None = None,
) -> CapacityResult:
    """The highest rate (requests/s) at which ``quantile`` of latencies (intended send ->
    end) stays within ``slo_p99`` seconds, with failures under ``max_error_rate``.

    Args:
        target: A callable, a :class:`~silenttax.benchmark.ModelSpec` or an ``http://`` URL.
        slo_p99: The latency limit, seconds.
        quantile: The share of requests that must meet it (0.99: p99).
        max_error_rate: Failures (errors, timeouts) tolerated; shown above it: fail.
        payloads: Items sent in turn (see :func:`run`).
        start_rate: The first probe's rate (default: half of one server's rate, from a
            one-second light run).
        probe: Seconds per exploratory probe.
        confirm: Seconds of the confirmation run that issues the claim.
        precision: Stop bisecting when the bracket is this narrow (0.1: 10%).
        max_probes: Exploratory probes at most.
        seed: First schedule seed (each probe its own, derived from it).
        timeout: Seconds after which a request counts as timed out (default 10 x SLO, at
            least 1 s).
        warmup: Leading seconds of each probe left out, or ``"auto"``: where its
            latencies settle (MSER-5, :func:`~silenttax.load.warmup_end`).
        max_in_flight: Requests in flight at most (see :func:`run`).
        alpha: Each bound's error rate (the confirmations share it: Bonferroni).
        arrival: ``"poisson"`` or ``"constant"``.
        progress: Called with each probe as it is judged (the command line's progress).

    Raises:
        InputError: a bad target or option.
    """
    if not (isinstance(slo_p99, int | float) and math.isfinite(slo_p99) and slo_p99 > 0):
        raise InputError(f"slo_p99 must be positive seconds, got {slo_p99!r}")
    if not 0.5 <= quantile < 1:
        raise InputError(f"quantile must be in [0.5, 1), got {quantile!r}")
    if not 0 <= max_error_rate < 1:
        raise InputError(f"max_error_rate must be in [0, 1), got {max_error_rate!r}")
    if warmup != "auto" and (probe <= warmup or confirm <= warmup):
        raise InputError(f"probe and confirm must be longer than warmup ({warmup} s)")
    if not 0 < precision < 1 or max_probes < 2:
        raise InputError("precision must be in (0, 1) and max_probes >= 2")
    limit = 1 - quantile
    options = {
        "timeout": timeout if timeout is not None else max(1.0, 10 * slo_p99),
        "warmup": warmup, "max_in_flight": max_in_flight, "max_error_rate": max_error_rate,
        "alpha": alpha, "arrival": arrival, "max_lag": 0.1 * slo_p99, "progress": progress,
    }  # fmt: skip
    t = as_target(target, payloads)
    try:
        return _search(t, slo_p99, quantile, limit, start_rate, probe, confirm, precision,
                       max_probes, seed, options)  # fmt: skip
    finally:
        t.release(target)


def _search(t: Target, slo: float, quantile: float, limit: float, start_rate: float | None,
            probe: float, confirm: float, precision: float, max_probes: int, seed: int,
            options: dict[str, Any]) -> CapacityResult:  # fmt: skip
    rate = start_rate if start_rate is not None else _service_rate(t, slo, options)
    curve: list[Probe] = []
    lo: float | None = None
    hi: float | None = None
    ceiling: float | None = None

    def up(p: Probe) -> bool:  # exploratory direction
        return p.verdict == "pass" or (p.verdict == "inconclusive" and p.exceedance.share <= limit)

    while len(curve) < max_probes:
        p = _probe(t, rate, probe, seed + len(curve), slo, limit, options)
        curve.append(p)
        if p.verdict == "invalid":
            ceiling = rate if ceiling is None else min(ceiling, rate)
            hi = rate
        elif up(p):
            lo = rate
        else:
            hi = rate
        if lo is not None and hi is not None:
            if hi / lo - 1 <= precision:
                break
            rate = math.sqrt(lo * hi)
        elif lo is None:
            rate = hi / 2 if hi is not None else rate / 2
            if rate < 0.01:
                break
        else:
            rate = lo * 2
    valid = [p for p in curve if p.valid]
    result = CapacityResult(t.name, slo, quantile, None, None, "inconclusive", curve,
                            generator_ceiling=ceiling)  # fmt: skip
    if not valid:
        result.verdict = "invalid"
        result.reason = "every probe was generator-bound"
        return result
    estimate = _estimate(valid, limit)
    if lo is None:
        result.reason = f"no probed rate met the SLO (lowest {min(p.rate for p in curve):.3g}/s)"
        result.verdict = "fail"
        return result
    # confirmation: a longer run at the reported rate alone issues the claim; up to
    # CONFIRMATIONS tries, each lower than the last, sharing alpha (Bonferroni)
    # at the crossing itself P(latency > SLO) is the limit: no run could show it below, so
    # the first try stands one step under it, and the steps widen (x0.9, 0.77, 0.65, ...)
    candidate = (lo if estimate is None else min(lo, estimate)) * (1 - precision)
    confirmed = None
    split = dict(options, alpha=options["alpha"] / CONFIRMATIONS)
    for k in range(CONFIRMATIONS):
        p = _probe(t, candidate, confirm, seed + 1000 + k, slo, limit, split, True)
        curve.append(p)
        if p.verdict == "pass":
            confirmed = candidate
            break
        if p.verdict == "invalid":
            break
        candidate *= 1 - 1.5 * precision
    # the interval's upper end: the lowest rate shown to fail (by the bound or by a queue
    # that did not keep up); an inconclusive probe over the limit shows nothing
    shown = [p.rate for p in curve if p.verdict == "fail"]
    if confirmed is not None and estimate is not None:
        # one run to show the upper end near the estimate (it narrows the interval)
        target_rate = max(estimate, confirmed) * (1 + 2 * precision)
        if not shown or target_rate < min(shown):
            p = _probe(t, target_rate, confirm, seed + 2000, slo, limit, options, True)
            curve.append(p)
            if p.verdict == "fail":
                shown.append(target_rate)
    upper = min(shown) if shown else None
    result.upper_shown = bool(shown)
    if confirmed is None:
        result.reason = "the confirmation runs did not show the SLO met (longer runs would decide)"
        result.capacity = estimate
        return result
    high = upper if upper is not None and upper > confirmed else math.inf
    estimate = _estimate([p for p in curve if p.valid], limit)  # confirmations: data too
    point = estimate if estimate is not None else confirmed
    result.capacity = float(min(max(point, confirmed), high))
    result.ci = (float(confirmed), float(high))
    result.verdict = "pass"
    if not math.isfinite(high):
        result.reason = "no probe exceeded the SLO: the upper end is open"
    _shape(result)
    return result


def _estimate(probes: list[Probe], limit: float) -> float | None:
    """The isotonic crossing of the probes' exceedance shares (weighted by requests)."""
    return crossing(np.array([p.rate for p in probes]),
                    np.array([p.exceedance.share for p in probes]),
                    np.array([float(p.requests) for p in probes]), limit)  # fmt: skip


def _shape(result: CapacityResult) -> None:
    """Light-load p99, the knee (first rate whose p99 is over twice it) and tail
    amplification p99(safe capacity) / p99(light load)."""
    valid = sorted((p for p in result.curve if p.valid), key=lambda p: p.rate)
    if not valid or result.safe is None:
        return
    light = valid[0]
    if light.rate > 0.5 * result.safe or not math.isfinite(light.p99):
        return
    result.light_p99 = light.p99
    knees = [p.rate for p in valid if p.p99 > 2 * light.p99]
    result.knee = min(knees) if knees else None
    at = [p for p in result.curve if p.confirmation and p.verdict == "pass"]
    if at and math.isfinite(at[-1].p99) and light.p99 > 0:
        result.tail_amplification = at[-1].p99 / light.p99
