"""Two versions' capacities, paired: interleaved blocks at the same rates and seeds.

Both arms see the same arrivals (common random numbers: one seed per block and rate) and
run in alternating order (AB, BA, ...), so a neighbour's burst or a drifting clock hits
both. Each arm's capacity is the isotonic crossing of its exceedance share over the
ladder of rates; the ratio candidate / baseline gets a block-paired bootstrap interval
(the same blocks drawn for both arms), and a verdict like the gate's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from silenttax.errors import InputError
from silenttax.load._capacity import capacity, crossing, isotonic
from silenttax.load._generator import run
from silenttax.load._target import as_target

CompareVerdict = Literal["pass", "regression", "inconclusive"]

LADDER = (0.8, 0.9, 1.0, 1.1, 1.2)
"""The default ladder, times the baseline's capacity from a first search."""
MIN_BLOCKS = 6
"""Fewest blocks a comparison is judged on (see ``benchmarks/bench_load_calibration.py``)."""


@dataclass
class CapacityComparison:
    """The outcome of :func:`compare_capacity`."""

    baseline: str
    candidate: str
    slo_p99: float
    ratio: float | None
    """Candidate capacity / baseline capacity (< 1: the candidate serves less)."""
    ci: tuple[float, float] | None
    """Two-sided ``1 - 2 alpha`` bootstrap interval of the ratio (blocks paired)."""
    verdict: CompareVerdict
    tolerance: float
    capacities: tuple[float | None, float | None] = (None, None)
    rates: list[float] = field(default_factory=list)
    shares: dict[str, list[float]] = field(default_factory=dict)
    blocks: int = 0
    invalid_runs: int = 0
    """Generator-bound runs: their rates were left out for both arms."""
    reason: str = ""

    def figures(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "slo_p99": self.slo_p99,
            "ratio": self.ratio,
            "ci": None if self.ci is None else list(self.ci),
            "verdict": self.verdict,
            "tolerance": self.tolerance,
            "capacities": list(self.capacities),
            "rates": self.rates,
            "shares": self.shares,
            "blocks": self.blocks,
            "invalid_runs": self.invalid_runs,
            "reason": self.reason,
        }

    @classmethod
    def from_figures(cls, figures: dict[str, Any]) -> CapacityComparison:
        """Back from :meth:`figures` (``silenttax load compare --json``'s ``"figures"``).

        Raises:
            InputError: not the figures of a capacity comparison.
        """
        try:
            ci, caps = figures.get("ci"), figures.get("capacities") or (None, None)
            made = cls(**{**figures, "ci": None if ci is None else (float(ci[0]), float(ci[1])),
                          "capacities": (caps[0], caps[1])})  # fmt: skip
        except (TypeError, KeyError, IndexError, ValueError) as exc:
            raise InputError(f"not the figures of a capacity comparison ({exc})") from None
        if made.verdict not in ("pass", "regression", "inconclusive"):
            raise InputError(f"verdict: {made.verdict!r} is not pass, regression or inconclusive")
        return made

    def report(self) -> Any:
        """``load.regression`` (WARNING on a regression, OK on a pass, INFO inconclusive)."""
        from silenttax.load._findings import comparison_findings

        return comparison_findings(self)


def compare_capacity(
    baseline: Any,
    candidate: Any,
    *,
    slo_p99: float,
    quantile: float = 0.99,
    tolerance: float = 0.05,
    rates: list[float] | None = None,
    blocks: int = 8,
    block: float = 3.0,
    payloads: Any = None,
    seed: int = 0,
    timeout: float | None = None,
    warmup: float = 0.3,
    max_in_flight: int = 256,
    alpha: float = 0.05,
    draws: int = 1000,
    progress: Callable[[int, int], object] | None = None,
) -> CapacityComparison:
    """Is ``candidate``'s capacity lower than ``baseline``'s, beyond ``tolerance``?

    Args:
        baseline: A target (see :func:`~silenttax.load.run`).
        candidate: Another, driven the same way.
        slo_p99: The latency limit (seconds) of the capacity.
        quantile: The share of requests that must meet it.
        tolerance: Capacity loss tolerated (0.05: 5%).
        rates: The ladder of rates (default: 0.8-1.2 x the baseline's capacity, from a
            short search first).
        blocks: Rounds; each runs both arms at every rate, in alternating order (at
            least ``MIN_BLOCKS``: a bootstrap over fewer is too narrow).
        block: Seconds per run.
        payloads: Items sent in turn, the same to both.
        seed: Seeds of the schedules (one per round and rate, shared by both arms).
        alpha: One-sided error of each end of the interval.
        draws: Bootstrap draws.
        progress: Called with ``(blocks done, blocks)`` after each block (the command
            line's progress).

    Verdicts: **pass** when the interval's lower end is at least ``1 - tolerance``;
    **regression** when its upper end is below 1 and the ratio below ``1 - tolerance``;
    **inconclusive** otherwise (more blocks, or a narrower ladder, would decide).

    Raises:
        InputError: bad targets or options.
    """
    if not 0 < tolerance < 1:
        raise InputError(f"tolerance must be in (0, 1), got {tolerance!r}")
    if not (isinstance(blocks, int) and blocks >= MIN_BLOCKS):
        raise InputError(
            f"blocks must be an int >= {MIN_BLOCKS}, got {blocks!r} (a bootstrap over fewer "
            "blocks makes its interval too narrow: 6.5-12% false alarms at 4 in simulation)"
        )
    if not (block > warmup):
        raise InputError(f"block must be longer than warmup ({warmup} s)")
    limit = 1 - quantile
    a = as_target(baseline, payloads, name="baseline")
    b = as_target(candidate, payloads, name="candidate")
    timeout = timeout if timeout is not None else max(1.0, 10 * slo_p99)
    try:
        if rates is None:
            found = capacity(a, slo_p99=slo_p99, quantile=quantile, probe=max(2.0, block),
                             confirm=2 * block, seed=seed + 7, timeout=timeout,
                             max_in_flight=max_in_flight, precision=0.15)  # fmt: skip
            centre = found.capacity or (found.curve[-1].rate if found.curve else None)
            if not centre:
                why = "the baseline's capacity was not found: give rates="
                return CapacityComparison(a.name, b.name, slo_p99, None, None, "inconclusive",
                                          tolerance, reason=why)  # fmt: skip
            rates = [centre * f for f in LADDER]
        if not rates or any(not (r > 0 and math.isfinite(r)) for r in rates):
            raise InputError(f"rates must be positive requests per second, got {rates!r}")
        ladder = sorted(float(r) for r in rates)
        # counts[arm][round, rate] = (exceeding, requests)
        over = np.zeros((2, blocks, len(ladder)))
        count = np.zeros((2, blocks, len(ladder)))
        bad = np.zeros(len(ladder), bool)  # a generator-bound run at this rate, either arm
        invalid = 0
        for r in range(blocks):
            for k, rate in enumerate(ladder):
                arms = (0, 1) if (r + k) % 2 == 0 else (1, 0)
                for arm in arms:
                    done = run((a, b)[arm], rate=rate, duration=block, seed=seed + 1000 * r + k,
                               timeout=timeout, warmup=warmup, max_in_flight=max_in_flight,
                               calibrate=False, max_lag=0.1 * slo_p99)  # fmt: skip
                    invalid += not done.valid
                    bad[k] |= not done.valid
                    e = done.exceedance(slo_p99)
                    over[arm, r, k] = e.exceeding
                    count[arm, r, k] = e.requests
            if progress is not None:
                progress(r + 1, blocks)
    finally:
        a.release(baseline)
        b.release(candidate)
    if bad.any():  # the generator could not drive those rates: both arms lose them
        over, count = over[:, :, ~bad], count[:, :, ~bad]
        ladder = [r for r, b in zip(ladder, bad, strict=True) if not b]
    if len(ladder) < 2:
        return CapacityComparison(a.name, b.name, slo_p99, None, None, "inconclusive",
                                  tolerance, blocks=blocks, invalid_runs=invalid,
                                  reason=f"{invalid} runs were generator-bound: too few "
                                  "rates left to judge")  # fmt: skip
    result = judge_blocks(over, count, ladder, limit=limit, tolerance=tolerance, alpha=alpha,
                          draws=draws, seed=seed)  # fmt: skip
    result.baseline, result.candidate, result.slo_p99 = a.name, b.name, slo_p99
    result.invalid_runs = invalid
    return result


def judge_blocks(
    over: np.ndarray[Any, Any],
    count: np.ndarray[Any, Any],
    rates: list[float],
    *,
    limit: float = 0.01,
    tolerance: float = 0.05,
    alpha: float = 0.05,
    draws: int = 1000,
    seed: int = 0,
) -> CapacityComparison:
    """The verdict of :func:`compare_capacity` from its counts alone (a pure check).

    ``over[arm, block, k]`` and ``count[arm, block, k]``: requests over the SLO and
    requests at ``rates[k]`` in each block, arm 0 the baseline. Each arm's capacity is
    where the isotonic fit of its exceedance share crosses ``limit``; the ratio's
    interval is a percentile bootstrap over whole blocks (both arms resampled together:
    the pairing is kept), its log deviations widened by ``sqrt(B / (B - 1))``.

    >>> over = np.zeros((2, 6, 3)); count = np.full((2, 6, 3), 1000.0)
    >>> over[0, :, 2] = 50; over[1, :, 1:] = 50   # the candidate fails one rate earlier
    >>> judge_blocks(over, count, [100.0, 200.0, 300.0]).verdict
    'regression'
    """
    blocks = over.shape[1]
    if over.shape != count.shape or over.ndim != 3 or over.shape[0] != 2:
        raise InputError(f"over and count: need two equal (2, blocks, rates) arrays, got "
                         f"{over.shape} and {count.shape}")  # fmt: skip
    if blocks < MIN_BLOCKS or over.shape[2] != len(rates) or len(rates) < 2:
        raise InputError(f"need at least {MIN_BLOCKS} blocks and 2 rates (one count per "
                         f"rate), got {blocks} blocks and {len(rates)} rates")  # fmt: skip
    ladder_arr = np.asarray(rates, float)

    def caps(rows: np.ndarray[Any, Any], edges: bool = False) -> tuple[float | None, float | None]:
        """Each arm's crossing over the blocks ``rows``; with ``edges``, a crossing off the
        ladder is its nearer end (every rate within the limit: the top; none: the bottom)."""
        out: list[float | None] = []
        for arm in (0, 1):
            n = count[arm, rows].sum(axis=0)
            share = over[arm, rows].sum(axis=0) / np.maximum(n, 1)
            found = crossing(ladder_arr, share, n, limit)
            if found is None and edges:
                fit = isotonic(ladder_arr, share, n)
                found = float(ladder_arr[-1] if fit[-1] <= limit else ladder_arr[0])
            out.append(found)
        return out[0], out[1]

    cap_a, cap_b = caps(np.arange(blocks))
    shares = {
        arm: list(over[i].sum(axis=0) / np.maximum(count[i].sum(axis=0), 1))
        for i, arm in enumerate(("baseline", "candidate"))
    }
    result = CapacityComparison("baseline", "candidate", math.nan, None, None, "inconclusive",
                                tolerance, (cap_a, cap_b), list(rates), shares,
                                blocks)  # fmt: skip
    if cap_a is None or cap_b is None:
        result.reason = (
            "a capacity lies outside the ladder of rates "
            f"({rates[0]:.3g}-{rates[-1]:.3g}/s): widen rates="
        )
        return result
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(draws):
        ca, cb = caps(rng.integers(0, blocks, blocks), edges=True)
        assert ca is not None and cb is not None
        ratios.append(cb / ca)
    # deviations widened by sqrt(B / (B - 1)): the bootstrap variance over B blocks is
    # (B - 1) / B of the usual estimate, which matters at 6-12 blocks
    centre = math.log(cap_b / cap_a)
    spread = (np.log(ratios) - centre) * math.sqrt(blocks / (blocks - 1))
    low, high = (math.exp(centre + float(x)) for x in np.quantile(spread, [alpha, 1 - alpha]))
    result.ratio = cap_b / cap_a
    result.ci = (low, high)
    if low >= 1 - tolerance:
        result.verdict = "pass"
    elif high < 1 and result.ratio < 1 - tolerance:
        result.verdict = "regression"
    else:
        result.reason = "the interval straddles the tolerance: more blocks would decide"
    return result
