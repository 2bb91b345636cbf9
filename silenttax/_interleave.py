"""Several callables timed in one interleaved session, and their ratios with honest CIs.

Machine noise on a shared or virtual machine comes in phases that last
seconds (another tenant, frequency changes, a noisy neighbour on the other
core). Timing a baseline and then a candidate, or each candidate against the
baseline in its own time window, lets a phase land on one side only: two
back-to-back runs then disagree by far more than their CIs say. Here every
callable runs a short block of calls in every round, in a shuffled order, for
the whole session, so each phase hits all of them. A ratio is the geometric
mean of the per-round ratios of block medians; its confidence interval is the
textbook batch-means interval (Student's t over the means of contiguous
groups of rounds), so slow phase-to-phase drift that survives the pairing
widens the interval instead of hiding in it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Interleaved", "batch_means_interval", "interleave", "paired_batches"]

_pc = time.perf_counter
#: Most batches the rounds are grouped into for the interval (Law & Kelton use 10-30).
MAX_BATCHES = 10


def batch_means_interval(
    logs: Any, confidence: float = 0.95, batches: int = MAX_BATCHES
) -> tuple[float, float, float]:
    """Mean of a serially correlated series with its batch-means t interval.

    The series is cut into ``batches`` contiguous groups (fewer when it is
    short); the estimate is the mean of the group means and the interval is
    ``mean ± t(1 - (1 - confidence) / 2, b - 1) · sd / sqrt(b)`` over the ``b``
    group means. Needs at least 2 values; with 2 the interval is very wide, as
    it should be.

    Examples:
        >>> est, lo, hi = batch_means_interval([0.1, 0.2, 0.1, 0.2, 0.1, 0.2])
        >>> round(est, 3), lo < est < hi
        (0.15, True)
    """
    from scipy.stats import t

    values = np.asarray(logs, dtype=float)
    b = min(batches, values.size)
    if b < 2:
        raise ValueError("a batch-means interval needs at least 2 values")
    means = np.array([chunk.mean() for chunk in np.array_split(values, b)])
    estimate = float(means.mean())
    half = float(t.ppf(0.5 + confidence / 2, b - 1) * means.std(ddof=1) / math.sqrt(b))
    return estimate, estimate - half, estimate + half


def paired_batches(
    baseline: Any,
    candidate: Any,
    calls_per_round: int,
    statistic: Callable[[np.ndarray], float],
    *,
    keep: Any = None,
    batches: int = MAX_BATCHES,
) -> np.ndarray:
    """Per batch of rounds, ``statistic(candidate) - statistic(baseline)``: paired differences.

    ``baseline`` and ``candidate`` are per-call samples in call order, ``calls_per_round``
    of each per round (so round ``r`` is ``samples[r * c:(r + 1) * c]``); ``keep`` is a
    boolean per round (False: left out, e.g. measured while the machine was busy). The
    kept rounds are cut into ``batches`` contiguous groups (fewer when there are few
    rounds; at least 2 rounds per group) and the statistic is taken over each group's
    pooled samples on each side. Their differences are paired (both sides saw the same
    seconds of the machine) and serially nearly independent, so their mean with a
    Student t interval (:func:`batch_means_interval` over them) is the paired test.

    Examples:
        >>> import numpy as np
        >>> a = np.tile([1.0, 1.0, 2.0, 2.0], 10)  # 20 rounds of 2 calls
        >>> d = paired_batches(a, a * 1.5, 2, lambda x: float(np.log(np.median(x))))
        >>> len(d), bool(np.allclose(d, np.log(1.5)))
        (10, True)
    """
    c = max(1, int(calls_per_round))
    base = np.asarray(baseline, dtype=float)
    cand = np.asarray(candidate, dtype=float)
    rounds = min(base.size, cand.size) // c
    base, cand = base[: rounds * c].reshape(rounds, c), cand[: rounds * c].reshape(rounds, c)
    if keep is not None:
        mask = np.asarray(keep, dtype=bool)[:rounds]
        if mask.size < rounds:
            mask = np.concatenate([mask, np.ones(rounds - mask.size, dtype=bool)])
        base, cand = base[mask], cand[mask]
    k = min(batches, base.shape[0] // 2)
    if k < 2:
        return np.empty(0)
    return np.array(
        [
            statistic(cand_part.ravel()) - statistic(base_part.ravel())
            for base_part, cand_part in zip(
                np.array_split(base, k), np.array_split(cand, k), strict=True
            )
        ]
    )


@dataclass
class Interleaved:
    """What :func:`interleave` measured: per-call samples and per-round block medians."""

    names: list[str]
    """One label per callable, in the order given."""
    samples: list[list[float]]
    """Per-call latencies of each callable, seconds, in call order."""
    blocks: np.ndarray
    """``(rounds, callables)``: median latency of each callable's block in each round."""
    calls_per_block: list[int]
    """Calls each callable made per round."""
    wall_time: float
    """Seconds the session took (warm-up excluded)."""
    errors: dict[int, str] = field(default_factory=dict)
    """Callables that raised during the session (index -> error); their figures are dropped."""
    round_contended: list[bool] = field(default_factory=list)
    """Per round, whether the machine was busy (see :mod:`silenttax._contention`)."""
    contention: dict[str, Any] = field(default_factory=dict)
    """What the machine did during the session (:func:`silenttax._contention.summarize`)."""

    @property
    def rounds(self) -> int:
        """Rounds in which every callable ran a block."""
        return int(self.blocks.shape[0])

    @property
    def quiet(self) -> np.ndarray:
        """Boolean per round: the rounds ratios use (all of them when the machine was busy
        for most of the session: see :attr:`busy`)."""
        from silenttax._contention import quiet_rounds

        keep = quiet_rounds(self.round_contended, self.rounds)
        return np.ones(self.rounds, dtype=bool) if keep is None else keep

    @property
    def busy(self) -> bool:
        """Most of the session ran while other processes held the cores it needed."""
        from silenttax._contention import quiet_rounds

        return quiet_rounds(self.round_contended, self.rounds) is None

    def ratio(
        self, baseline: int, other: int, confidence: float = 0.95
    ) -> tuple[float, float, float]:
        """Latency of ``other`` / latency of ``baseline``, with its batch-means CI.

        ``(estimate, low, high)``; above 1 means ``other`` is slower. Rounds measured
        while the machine was busy are left out (all rounds count when it was busy
        for most of the session, and :attr:`busy` says so).
        """
        keep = self.quiet
        logs = np.log(self.blocks[keep, other]) - np.log(self.blocks[keep, baseline])
        estimate, lo, hi = batch_means_interval(logs, confidence)
        return math.exp(estimate), math.exp(lo), math.exp(hi)


def _warm(fn: Callable[[], Any], budget: float) -> float:
    """Call ``fn`` until ``budget`` seconds and 3 calls are spent (1 call for a slow one);
    return the median of the last calls' latencies."""
    times: list[float] = []
    began = _pc()
    while True:
        start = _pc()
        fn()
        now = _pc()
        times.append(now - start)
        spent = now - began
        if (len(times) >= 3 and spent >= budget) or spent >= 2 * budget:
            return float(np.median(times[-5:]))


def interleave(
    fns: Sequence[Callable[[], Any]],
    names: Sequence[str],
    *,
    max_time: float,
    min_rounds: int = 10,
    block_time: float = 0.01,
    warmup_time: float = 0.3,
    seed: int = 0,
) -> Interleaved:
    """Time ``fns`` in rounds; each round runs a block of each, in a shuffled order.

    A block is about ``block_time`` seconds of calls (at least one call, so a
    very slow callable makes fewer, longer rounds rather than none). Rounds
    go on until ``max_time`` is spent and ``min_rounds`` are done; when slow
    callables make ``min_rounds`` cost more than ``max_time``, the session
    stops at ``4 * max_time`` with at least 3 rounds. A callable that raises
    is dropped from the rest of the session, its error kept in ``errors``.

    Examples:
        >>> import time
        >>> def spin(seconds):
        ...     end = time.perf_counter() + seconds
        ...     while time.perf_counter() < end:
        ...         pass
        >>> run = interleave([lambda: spin(2e-4), lambda: spin(4e-4)], ["a", "b"], max_time=0.3)
        >>> est, lo, hi = run.ratio(0, 1)
        >>> 1.6 < est < 2.4 and lo < est < hi
        True
    """
    rng = np.random.default_rng(seed)
    errors: dict[int, str] = {}
    per_call: list[float] = []
    for i, fn in enumerate(fns):
        try:
            per_call.append(_warm(fn, warmup_time))
        except Exception as exc:
            errors[i] = f"{type(exc).__name__}: {exc}"[:500]
            per_call.append(math.inf)
    counts = [
        1 if not math.isfinite(t) else max(1, min(200, round(block_time / max(t, 1e-7))))
        for t in per_call
    ]
    from silenttax._contention import RoundLoads, Sensor, summarize
    from silenttax._system import intra_op_threads

    sensed = RoundLoads(Sensor(needed=intra_op_threads() or 1))
    samples: list[list[float]] = [[] for _ in fns]
    rows: list[list[float]] = []
    live = [i for i in range(len(fns)) if i not in errors]
    began = _pc()
    while live:
        elapsed = _pc() - began
        done = len(rows)
        if (done >= min_rounds and elapsed >= max_time) or (done >= 3 and elapsed >= 4 * max_time):
            break
        row = [math.nan] * len(fns)
        for i in rng.permutation(live):
            fn, block = fns[i], []
            try:
                for _ in range(counts[i]):
                    start = _pc()
                    fn()
                    block.append(_pc() - start)
            except Exception as exc:
                errors[int(i)] = f"{type(exc).__name__} while measuring: {exc}"[:500]
                live.remove(int(i))
                continue
            samples[i].extend(block)
            row[i] = max(float(np.median(block)), 1e-9)
        rows.append(row)
        sensed.after(len(rows))  # the machine's load over ~0.1 s of rounds
    sensed.after(len(rows), close=True)
    wall = _pc() - began
    blocks = np.array(rows, dtype=float).reshape(len(rows), len(fns))
    for i in errors:
        samples[i] = []
    return Interleaved(
        names=list(names),
        samples=samples,
        blocks=blocks,
        calls_per_block=counts,
        wall_time=wall,
        errors=errors,
        round_contended=sensed.flags,
        contention=summarize(sensed.loads),
    )
