"""performance_gate: is the candidate slower than the baseline, beyond a tolerance?

Per metric a ratio candidate / baseline with a confidence interval, and a
three-way verdict:

- **pass**: the one-sided upper bound of the ratio is below ``1 + tolerance``;
- **regression**: the one-sided lower bound is above 1 (after Holm's
  adjustment over the gated metrics) *and* the estimate is above
  ``1 + tolerance``;
- **inconclusive** otherwise, with how many samples per side would decide it.

Quantile ratios use distribution-free order-statistic intervals, turned into
a standard error of the log quantile on each side. Ties from timings rounded
to a clock's resolution are spread evenly inside their rounding cell first,
so a median that flips between two clock ticks is not read as a change.
When a side comes in blocks (interleaved rounds, separate runs), the spread
of the block-level log quantiles bounds its standard error from below and
the test becomes a Welch t on the blocks: noise between processes is in the
interval, which is what makes a run-to-run shift of 10% stop failing builds.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from silenttax._sketch import LatencySketch, as_sketch, quantile_interval
from silenttax._stats import adjust, quantile_rank_interval
from silenttax.errors import InputError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_duration as _dur

__all__ = ["Verdict", "exit_status", "performance_gate", "verdict"]

Verdict = Literal["pass", "regression", "inconclusive"]
_Z95 = 1.959963984540054  # the two-sided 95% intervals the standard errors are read from
_Float = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _Side:
    """One side's figures for one metric: log estimate, its standard error, sizes."""

    log_value: float
    se: float
    n: int
    blocks: int
    df: float | None  # degrees of freedom when the block spread sets ``se``
    test_log: float | None = None  # what the test runs on, when not ``log_value``
    test_se: float | None = None

    @property
    def tested(self) -> tuple[float, float]:
        if self.test_log is None or self.test_se is None:
            return self.log_value, self.se
        return self.test_log, self.test_se


@dataclass(frozen=True, slots=True)
class _Latency:
    """A side as the gate reads it: raw blocks of samples, or a sketch."""

    blocks: list[_Float]
    sketch: LatencySketch | None
    peak_rss: list[float]

    @property
    def n(self) -> int:
        if self.sketch is not None:
            return int(self.sketch.count)
        return sum(len(b) for b in self.blocks)


def _dequantize(x: _Float) -> _Float:
    """Spread tied values evenly over their rounding cell (sorted output).

    Timings rounded to a clock's resolution put many samples on one value;
    order statistics of such data jump a whole tick. Spreading each tie
    group uniformly inside ``[v - res/2, v + res/2]`` (``res`` the smallest
    gap between distinct values) gives the continuous values a finer clock
    would have shown, on average, without changing anything for data
    without ties.
    """
    x = np.sort(x)
    values, start, counts = np.unique(x, return_index=True, return_counts=True)
    if len(values) == len(x) or len(values) < 2:
        return x
    res = float(np.min(np.diff(values)))
    rank = np.arange(len(x)) - np.repeat(start, counts)
    width = np.repeat(counts, counts)
    spread = np.repeat(values, counts) + res * ((rank + 0.5) / width - 0.5)
    return np.maximum(spread, np.nextafter(0.0, 1.0))


#: The p99 is tested on the mean log quantile over this upper band (an L-statistic:
#: the same shift, a smaller variance than p99 alone) and reported as the p99 ratio.
_BAND = {0.99: (0.975, 0.98, 0.985, 0.99, 0.995)}


def _log_quantile(values: _Float | LatencySketch, q: float) -> tuple[float, float] | None:
    """log q-quantile and its standard error (from the 95% order-statistic interval)."""
    if isinstance(values, LatencySketch):
        ci = quantile_interval(values, q, 0.95)
        value = values.quantile(q)
    else:
        ranks = quantile_rank_interval(len(values), q, 0.95)
        ci = None if ranks is None else (values[ranks[0] - 1], values[ranks[1] - 1])
        value = float(np.quantile(values, q)) if len(values) else 0.0
    if ci is None or not (ci[0] > 0 and value > 0):
        return None
    return math.log(value), (math.log(ci[1]) - math.log(ci[0])) / (2 * _Z95)


def _band(values: _Float | LatencySketch, band: tuple[float, ...]) -> tuple[float, float] | None:
    """Mean log quantile over ``band`` and its standard error.

    Var of the mean from the asymptotic covariance of sample quantiles,
    ``Cov(log Q(p), log Q(r)) = se_p se_r sqrt(p (1 - r) / (r (1 - p)))`` for
    ``p <= r``, with each ``se`` read off its order-statistic interval.
    """
    parts = [_log_quantile(values, p) for p in band]
    if any(part is None for part in parts):
        return None
    logs = np.array([part[0] for part in parts if part is not None])
    se = np.array([part[1] for part in parts if part is not None])
    p = np.asarray(band)
    lo, hi = np.minimum.outer(p, p), np.maximum.outer(p, p)
    corr = np.sqrt(lo * (1 - hi) / (hi * (1 - lo)))
    var = float(se @ corr @ se) / len(band) ** 2
    return float(logs.mean()), math.sqrt(var)


def _quantile_side(side: _Latency, q: float) -> _Side | None:
    """log q-quantile and its standard error; None when too few samples."""
    band = _BAND.get(q)
    if side.sketch is not None:
        point = _log_quantile(side.sketch, q)
        if point is None:
            return None
        test = _band(side.sketch, band) if band else None
        return _Side(
            point[0], point[1], side.sketch.count, 1, None, *(test if test else (None, None))
        )
    pooled = _dequantize(np.concatenate(side.blocks))
    point = _log_quantile(pooled, q)
    if point is None:
        return None
    test = _band(pooled, band) if band else None
    n, k = len(pooled), len(side.blocks)
    if k >= 2:  # blocks: their spread bounds the standard error from below
        per_block, per_block_test = [], []
        for block in side.blocks:
            b = _dequantize(block)
            level = float(np.quantile(b, q)) if len(b) else 0.0
            if level > 0:
                per_block.append(math.log(level))
                if band:
                    qs = np.quantile(b, band)
                    if np.all(qs > 0):
                        per_block_test.append(float(np.mean(np.log(qs))))
        if len(per_block) >= 2:
            between = float(np.std(per_block, ddof=1)) / math.sqrt(len(per_block))
            if between > point[1]:
                between_test = (
                    float(np.std(per_block_test, ddof=1)) / math.sqrt(len(per_block_test))
                    if test is not None and len(per_block_test) == len(per_block)
                    else None
                )
                band_part: tuple[float | None, float | None] = (None, None)
                if test is not None and between_test is not None:
                    band_part = (test[0], max(test[1], between_test))
                df = float(len(per_block) - 1)
                return _Side(point[0], between, n, k, df, *band_part)
    return _Side(point[0], point[1], n, k, None, *(test if test else (None, None)))


def _mean_side(side: _Latency) -> _Side | None:
    """log mean latency (cost per inference at a fixed price) and its standard error."""
    if side.sketch is not None:
        return None  # a sketch keeps no exact sum of squares
    pooled = np.concatenate(side.blocks)
    n = len(pooled)
    if n < 30:
        return None
    mean = float(pooled.mean())
    if mean <= 0:
        return None
    se = float(pooled.std(ddof=1)) / (mean * math.sqrt(n))
    k = len(side.blocks)
    if k >= 2:
        means = [float(b.mean()) for b in side.blocks if len(b)]
        if len(means) >= 2 and min(means) > 0:
            between = float(np.std(np.log(means), ddof=1)) / math.sqrt(len(means))
            if between > se:
                return _Side(math.log(mean), between, n, k, float(len(means) - 1))
    return _Side(math.log(mean), se, n, k, None)


def _memory_side(side: _Latency) -> _Side | None:
    """log peak RSS over runs (one value per run); needs two runs per side."""
    values = [v for v in side.peak_rss if v > 0]
    if len(values) < 2:
        return None
    logs = np.log(values)
    se = float(np.std(logs, ddof=1)) / math.sqrt(len(values))
    return _Side(float(logs.mean()), max(se, 1e-12), len(values), len(values), len(values) - 1.0)


def _read(value: Any, role: str) -> _Latency:
    """Samples, blocks of samples, BenchmarkResults, sketches or monitors (or their states)."""
    from silenttax.benchmark import BenchmarkResult

    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise InputError(f"{role}: no samples")
    sketches = [as_sketch(item) for item in items]
    if all(s is not None for s in sketches):
        return _Latency([], LatencySketch.merged(s for s in sketches if s is not None), [])
    if isinstance(value, BenchmarkResult | np.ndarray) or (
        isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value)
    ):
        items = [value]
    blocks: list[_Float] = []
    peaks: list[float] = []
    for item in items:
        if isinstance(item, BenchmarkResult):
            samples: Any = item.samples
            if item.peak_rss:
                peaks.append(float(item.peak_rss))
        elif as_sketch(item) is not None:
            raise InputError(f"{role}: mix of sketches and raw samples; pass one kind")
        else:
            samples = item
        try:
            block = np.asarray(samples, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{role}: expected latencies in seconds, a BenchmarkResult, a sketch or a "
                f"monitor (or a list of them), got {type(item).__name__}"
            ) from exc
        if not np.all(np.isfinite(block)) or np.any(block < 0):
            bad = int(np.count_nonzero(~np.isfinite(block) | (block < 0)))
            raise InputError(f"{role}: {bad} latencies are negative, NaN or infinite")
        if len(block):
            blocks.append(block)
    if not blocks:
        raise InputError(f"{role}: no samples")
    return _Latency(blocks, None, peaks)


@functools.cache
def _min_n(q: float) -> int:
    """Smallest sample for a two-sided 95% order-statistic interval on the q-quantile."""
    lo, hi = 2, 2
    while quantile_rank_interval(hi, q, 0.95) is None:
        lo, hi = hi, hi * 2
    while lo < hi:  # the interval exists from some n on: bisect for it
        mid = (lo + hi) // 2
        if quantile_rank_interval(mid, q, 0.95) is None:
            lo = mid + 1
        else:
            hi = mid
    return hi


@dataclass(frozen=True, slots=True)
class _Metric:
    name: str
    tolerance: float
    base: _Side | None
    cand: _Side | None
    need: str  # why a side is missing
    unit_value: tuple[float, float] | None = None  # baseline, candidate on their own scale
    paired: tuple[float, float, int] | None = None  # log ratio, se, batches (interleaved)
    busy: dict[str, Any] | None = None  # the machine was busy: no verdict, these figures


def _p_one_sided(z: float, df: float | None) -> float:
    from scipy.stats import norm, t

    return float(t.sf(z, df)) if df is not None else float(norm.sf(z))


def _quantile_of(p: float, df: float | None) -> float:
    from scipy.stats import norm, t

    return float(t.ppf(p, df)) if df is not None else float(norm.ppf(p))


def _welch_df(a: _Side, b: _Side) -> float | None:
    if a.df is None and b.df is None:
        return None
    parts = [(s.se**2, s.df if s.df is not None else math.inf) for s in (a, b)]
    num = sum(v for v, _ in parts) ** 2
    den = sum(v**2 / d for v, d in parts if math.isfinite(d))
    return num / den if den > 0 else None


def _comparison_sides(comparison: Any) -> tuple[_Float, _Float]:
    """Both sides' samples of an interleaved comparison, from its quiet rounds only."""
    keep = comparison.quiet_rounds()
    calls = comparison.round_calls
    sides = []
    for result in (comparison.baseline, comparison.candidate):
        samples = np.asarray(result.samples, dtype=np.float64)
        rounds = min(comparison.rounds, samples.size // calls)
        if keep is not None and rounds:
            samples = samples[: rounds * calls].reshape(rounds, calls)[keep[:rounds]].ravel()
        sides.append(samples)
    return sides[0], sides[1]


def _paired_metric(comparison: Any, q: float) -> tuple[float, float, int] | None:
    """The paired log ratio of the q-quantile (p99: of the upper band) over batches."""
    band = _BAND.get(q)
    if band is None:
        return comparison.paired(q)  # type: ignore[no-any-return]

    def band_log(x: _Float) -> float:
        return float(np.mean(np.log(np.maximum(np.quantile(x, band), 1e-12))))

    return comparison.paired(q, band_log)  # type: ignore[no-any-return]


def performance_gate(
    baseline: Any,
    candidate: Any = None,
    *,
    policy: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    max_p50_regression: float = 0.05,
    max_p99_regression: float = 0.10,
    max_memory_regression: float | None = None,
    max_cost_regression: float | None = None,
    alpha: float = 0.05,
    cost: Any = None,
    profiles: tuple[Any, Any] | None = None,
    study: Any = None,
    capacity: Any = None,
) -> Report:
    """Gate a candidate against the baseline on latency (and memory, cost, capacity).

    ``baseline`` alone may be a :class:`~silenttax.benchmark.Comparison` from
    ``compare()`` (both models interleaved in one process, the credible way to
    gate): its rounds are grouped into ten blocks per side. Otherwise
    ``baseline`` and ``candidate`` each are latencies in seconds (an array),
    blocks of them (a list of arrays: rounds or runs, whose spread then counts),
    a :class:`~silenttax.benchmark.BenchmarkResult` or a list of them (one per
    run), or a ``LatencySketch`` / ``LatencyMonitor`` (or the state of one, or a
    list of them, merged first: replicas of one deployment).

    Each gated metric gets a ``gate.*`` finding with both values, the ratio
    and its interval, the tolerance and the verdict (in ``evidence["verdict"]``):
    OK for pass, WARNING for a regression (CRITICAL when even the lower bound is
    above ``1 + 2 * tolerance``), INFO for inconclusive, with how many samples
    per side would decide it. A ``gate.verdict`` finding sums up:
    ``report.context["verdict"]`` is ``"pass"``, ``"regression"`` or
    ``"inconclusive"`` (see :func:`verdict`). Holm's step-down keeps the chance
    of any false regression at most ``alpha`` over the gated metrics.

    Args:
        baseline: What runs in production (see above), or a ``Comparison``.
        candidate: What would replace it (None with a ``Comparison``).
        policy: The tolerances and ``alpha`` by name, as a mapping or a JSON or
            TOML file (a team's gate policy, kept in the repository); its values
            replace the keyword arguments below.
        max_p50_regression: Tolerated p50 slowdown (0.05 = 5%).
        max_p99_regression: Tolerated p99 slowdown.
        max_memory_regression: Tolerated rise of peak RSS (needs BenchmarkResults
            with ``peak_rss``, at least two runs per side); None: not gated.
        max_cost_regression: Tolerated rise of cost per 1000 inferences, read as
            the ratio of mean latencies (busy time per inference at the same
            price); None: not gated.
        alpha: Family-wise false-regression rate over the gated metrics.
        cost: A :class:`~silenttax.cost.CostModel`: adds the money impact of the
            throughput change (``cost.what_if``).
        profiles: ``(baseline_profile, candidate_profile)``: adds ``gate.inefficiency``
            for each major inefficiency the candidate has and the baseline has not.
        study: A :class:`~silenttax.quantize.QuantizationStudy` of the candidate: adds
            its recommendation (priced with ``cost`` when given).
        capacity: A :class:`~silenttax.load.CapacityComparison` of the two
            (``compare_capacity``: capacity at the p99 SLO under open-loop load, paired
            blocks): its ``load.regression`` finding joins the report and its verdict
            the overall one (a regression fails the gate; inconclusive keeps it
            inconclusive). Its interval carries its own error rate, outside Holm's.

    Raises:
        InputError: unreadable samples (named by side), or a tolerance or alpha out
            of range.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> prod = rng.lognormal(np.log(0.010), 0.5, 20_000)
        >>> same = rng.lognormal(np.log(0.010), 0.5, 20_000)
        >>> verdict(performance_gate(prod, same))
        'pass'
        >>> slower = rng.lognormal(np.log(0.013), 0.5, 20_000)
        >>> report = performance_gate(prod, slower)
        >>> verdict(report), exit_status(report)
        ('regression', 1)
        >>> verdict(performance_gate(prod[:100], same[:100]))  # too few for p99
        'inconclusive'
    """
    if policy is not None:
        chosen = _policy(policy)
        max_p50_regression = chosen.get("max_p50_regression", max_p50_regression)
        max_p99_regression = chosen.get("max_p99_regression", max_p99_regression)
        max_memory_regression = chosen.get("max_memory_regression", max_memory_regression)
        max_cost_regression = chosen.get("max_cost_regression", max_cost_regression)
        alpha = chosen.get("alpha", alpha)
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
    tolerances = {
        "max_p50_regression": max_p50_regression,
        "max_p99_regression": max_p99_regression,
        "max_memory_regression": max_memory_regression,
        "max_cost_regression": max_cost_regression,
    }
    for name, tol in tolerances.items():
        if tol is not None and not (0 <= tol < 10 and math.isfinite(tol)):
            raise InputError(f"{name} must be a number in [0, 10), got {tol!r}")
    from silenttax.benchmark import Comparison

    if isinstance(baseline, Comparison):
        if candidate is not None:
            raise InputError("candidate: a Comparison holds both sides; pass it alone")
        if baseline.scope != "interleaved":
            # Its samples come from separate processes: blocks of them would hide the
            # between-process variance that dominates such a comparison.
            raise InputError(
                "baseline: only an interleaved Comparison (silenttax.benchmark.compare) can be "
                f"gated alone; this one is {baseline.scope} (compare_results): pass the "
                "BenchmarkResults themselves, one list per side with one result per process"
            )
        comparison = baseline
        baseline, candidate = _comparison_sides(comparison)
    elif candidate is None:
        raise InputError("candidate: missing (only a Comparison carries both sides)")
    else:
        comparison = None
    base, cand = _read(baseline, "baseline"), _read(candidate, "candidate")
    metrics: list[_Metric] = []
    for q, tol in ((0.5, max_p50_regression), (0.99, max_p99_regression)):
        label = f"p{q * 100:g}"
        b, c = _quantile_side(base, q), _quantile_side(cand, q)
        need = f"at least {_min_n(q)} samples per side"
        paired = busy = None
        if comparison is not None:
            if comparison.busy:
                busy = comparison.contention or {}
            elif b is not None and c is not None:
                paired = _paired_metric(comparison, q)
                if paired is None:
                    b = c = None
                    need = "at least 4 rounds in 2 batches"
        metrics.append(_Metric(label, tol, b, c, need, paired=paired, busy=busy))
    if max_memory_regression is not None:
        metrics.append(
            _Metric(
                "peak_rss",
                max_memory_regression,
                _memory_side(base),
                _memory_side(cand),
                "BenchmarkResults with peak_rss, at least 2 runs per side",
            )
        )
    if max_cost_regression is not None:
        metrics.append(
            _Metric(
                "cost_per_1k",
                max_cost_regression,
                _mean_side(base),
                _mean_side(cand),
                "at least 30 raw samples per side (a sketch keeps no mean)",
            )
        )
    findings = _judge(metrics, alpha)
    overall: Verdict = "pass"
    verdicts = [str(f.evidence["verdict"]) for f in findings]
    if "regression" in verdicts:
        overall = "regression"
    elif "inconclusive" in verdicts:
        overall = "inconclusive"
    extra: list[Finding] = []
    if capacity is not None:
        from silenttax.load import CapacityComparison

        if not isinstance(capacity, CapacityComparison):
            raise InputError(
                f"capacity must be a CapacityComparison (compare_capacity), got "
                f"{type(capacity).__name__}"
            )
        findings.extend(capacity.report().findings)
        if capacity.verdict == "regression":
            overall = "regression"
        elif capacity.verdict == "inconclusive" and overall == "pass":
            overall = "inconclusive"
    if cost is not None:
        extra.extend(_cost_impact(cost, base, cand))
    if profiles is not None:
        extra.extend(_inefficiencies(profiles))
    if study is not None:
        from silenttax.quantize import QuantizationStudy

        if not isinstance(study, QuantizationStudy):
            raise InputError(f"study must be a QuantizationStudy, got {type(study).__name__}")
        wanted = ("quantize.recommendation", "quantize.cost")
        extra.extend(f for f in study.report(cost) if f.code in wanted)
    worst = max((f.severity for f in findings), default=Severity.OK)
    each = ", ".join(
        f"{str(f.metric).removesuffix('_ratio')} {f.evidence['verdict']}" for f in findings
    )
    gated = sum(1 for f in findings if f.code.startswith("gate."))
    summary = make_finding(
        "gate.verdict",
        severity=worst,
        subject="candidate",
        message=(f"gate: {overall} (" + each + f"; Holm over {gated} metrics at alpha {alpha:g})"),
        evidence={"verdict": overall, "alpha": alpha, "metrics": len(findings)},
        detector="gate.performance_gate",
    )
    return Report(
        findings=[summary, *findings, *extra],
        source="gate.performance_gate",
        context={
            "verdict": overall,
            "alpha": alpha,
            "baseline_samples": base.n,
            "candidate_samples": cand.n,
        },
    )


_POLICY_NAMES = (
    "max_p50_regression",
    "max_p99_regression",
    "max_memory_regression",
    "max_cost_regression",
    "alpha",
)


def _policy(policy: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """The gate policy from a mapping or a JSON / TOML file; unknown names are refused."""
    if isinstance(policy, Mapping):
        data: Any = dict(policy)
    else:
        path = Path(policy)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"policy: cannot read {str(path)!r}: {exc}") from exc
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (ValueError, RecursionError) as exc:  # TOMLDecodeError is a ValueError
            raise InputError(f"policy: {str(path)!r} is not valid JSON or TOML: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("gate"), dict):
        data = data["gate"]  # a [gate] table in a larger file
    if not isinstance(data, dict):
        raise InputError("policy: expected a mapping of tolerance names to numbers")
    unknown = sorted(set(data) - set(_POLICY_NAMES))
    if unknown:
        raise InputError(f"policy: unknown name(s) {unknown}; known: {list(_POLICY_NAMES)}")
    for name, value in data.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InputError(f"policy: {name} must be a number, got {value!r}")
    return data


def _judge(metrics: list[_Metric], alpha: float) -> list[Finding]:
    judged = [m for m in metrics if m.base is not None and m.cand is not None and m.busy is None]
    stats: dict[str, tuple[float, float, float | None]] = {}
    p_raw: dict[str, float] = {}
    for m in judged:
        assert m.base is not None and m.cand is not None
        if m.paired is not None:  # one paired series: its own mean, se and t
            log_ratio, se, k = m.paired
            stats[m.name] = (log_ratio, se, float(k - 1))
            z = log_ratio / se if se > 0 else math.copysign(math.inf, log_ratio or -1.0)
            p_raw[m.name] = _p_one_sided(z, float(k - 1))
            continue
        log_ratio = m.cand.log_value - m.base.log_value
        se = math.hypot(m.base.se, m.cand.se)
        df = _welch_df(m.base, m.cand)
        stats[m.name] = (log_ratio, se, df)
        (b_log, b_se), (c_log, c_se) = m.base.tested, m.cand.tested
        t_ratio, t_se = c_log - b_log, math.hypot(b_se, c_se)
        p_raw[m.name] = _p_one_sided(t_ratio / t_se, df) if t_se > 0 else float(t_ratio <= 0)
    adjusted = dict(zip(p_raw, adjust(list(p_raw.values()), "holm"), strict=True))
    return [_metric_finding(m, stats.get(m.name), p_raw, adjusted, alpha) for m in metrics]


def _metric_finding(
    m: _Metric,
    stat: tuple[float, float, float | None] | None,
    p_raw: dict[str, float],
    adjusted: dict[str, float],
    alpha: float,
) -> Finding:
    code = {"peak_rss": "gate.memory", "cost_per_1k": "gate.cost"}.get(m.name, "gate.latency")
    limit = 1 + m.tolerance
    if m.busy is not None:
        figures = m.busy
        return make_finding(
            code,
            severity=Severity.INFO,
            subject="candidate",
            message=(
                f"{m.name}: inconclusive: machine busy — "
                f"{figures.get('contended_share', 0):.0%} of the run had fewer free cores than "
                f"it needs (other processes used a median "
                f"{figures.get('other_cores_median') or 0:g} cores); rerun when the machine "
                "is quiet, or on a dedicated one"
            ),
            metric=f"{m.name}_ratio",
            threshold=limit,
            evidence={
                "verdict": "inconclusive",
                "reason": "machine busy",
                "tolerance": m.tolerance,
                "contention": figures,
            },
            detector="gate.performance_gate",
        )
    if stat is None:
        return make_finding(
            code,
            severity=Severity.INFO,
            subject="candidate",
            message=f"{m.name}: inconclusive, too little data: need {m.need}",
            metric=f"{m.name}_ratio",
            threshold=limit,
            evidence={"verdict": "inconclusive", "tolerance": m.tolerance, "need": m.need},
            detector="gate.performance_gate",
        )
    assert m.base is not None and m.cand is not None
    log_ratio, se, df = stat
    ratio = math.exp(log_ratio)
    crit = _quantile_of(1 - alpha, df)
    lower, upper = math.exp(log_ratio - crit * se), math.exp(log_ratio + crit * se)
    p_adj = adjusted[m.name]
    if p_adj < alpha and ratio > limit:
        result: Verdict = "regression"
        far = lower > 1 + 2 * m.tolerance
        severity = Severity.CRITICAL if far else Severity.WARNING
    elif upper < limit:
        result, severity = "pass", Severity.OK
    else:
        result, severity = "inconclusive", Severity.INFO
    values = (math.exp(m.base.log_value), math.exp(m.cand.log_value))
    shown = (
        f"{_dur(values[0])} -> {_dur(values[1])}"
        if m.name.startswith("p")
        else f"{values[0]:.4g} -> {values[1]:.4g}"
    )
    message = (
        f"{m.name} {shown}: ratio {ratio:.3f} ({1 - alpha:.0%} one-sided bounds "
        f"{lower:.3f}-{upper:.3f}), tolerance {m.tolerance:.0%}: {result}"
    )
    evidence: dict[str, Any] = {
        "verdict": result,
        "tolerance": m.tolerance,
        "ratio_lower": lower,
        "ratio_upper": upper,
        "p_value_raw": p_raw[m.name],
        "p_value_adjustment": "holm",
        "baseline_n": m.base.n,
        "candidate_n": m.cand.n,
        "baseline_blocks": m.base.blocks,
        "candidate_blocks": m.cand.blocks,
        "method": (
            f"paired t over {m.paired[2]} batches of interleaved rounds"
            if m.paired is not None
            else "Welch t over blocks"
            if df is not None
            else "order-statistic intervals"
        ),
    }
    if result == "inconclusive":
        distance = math.log(limit) - log_ratio if ratio < limit else log_ratio
        if distance > 0:
            factor = (crit * se / distance) ** 2
            needed = math.ceil(max(m.base.n, m.cand.n) * factor)
            evidence["samples_to_decide"] = needed
            message += f"; about {needed:,} per side would decide it"
    recommendation = None
    if result == "regression":
        recommendation = (
            "Profile the candidate (silenttax.profile) and compare its stages with the "
            "baseline's (silenttax.trace) before promoting it."
        )
    return make_finding(
        code,
        severity=severity,
        subject="candidate",
        message=message,
        metric=f"{m.name}_ratio",
        value=ratio,
        baseline=1.0,
        threshold=limit,
        p_value=p_adj,
        effect_size=ratio,
        evidence=evidence,
        recommendation=recommendation,
        detector="gate.performance_gate",
    )


def _cost_impact(pricing: Any, base: _Latency, cand: _Latency) -> list[Finding]:
    from silenttax.cost import CostModel

    if not isinstance(pricing, CostModel):
        raise InputError(f"cost must be a CostModel, got {type(pricing).__name__}")
    b, c = _mean_side(base), _mean_side(cand)
    if b is None or c is None:
        return []
    before, after = 1 / math.exp(b.log_value), 1 / math.exp(c.log_value)
    comparison = pricing.what_if(before, after, traffic=min(before, after), label="candidate")
    return list(comparison.report())


def _inefficiencies(profiles: tuple[Any, Any]) -> list[Finding]:
    """Major inefficiencies (WARNING or worse) in the candidate's profile, not in the baseline's."""
    try:
        base_profile, cand_profile = profiles
        base_report, cand_report = base_profile.report(), cand_profile.report()
    except (TypeError, ValueError, AttributeError) as exc:
        raise InputError(
            "profiles must be (baseline_profile, candidate_profile) from silenttax.profile"
        ) from exc
    known = {f.code for f in base_report if f.severity >= Severity.WARNING}
    new = [f for f in cand_report if f.severity >= Severity.WARNING and f.code not in known]
    if not new:
        return [
            make_finding(
                "gate.inefficiency",
                severity=Severity.OK,
                subject="candidate",
                message="no new major inefficiency in the candidate's profile",
                detector="gate.performance_gate",
            )
        ]
    return [
        make_finding(
            "gate.inefficiency",
            severity=f.severity,
            subject="candidate",
            message=f"new in the candidate: {f.message}",
            metric=f.metric,
            value=f.value,
            threshold=f.threshold,
            evidence={"code": f.code},
            recommendation=f.recommendation,
            detector="gate.performance_gate",
        )
        for f in new
    ]


def verdict(report: Report) -> Verdict:
    """The gate's verdict in a report from :func:`performance_gate` (or a loaded one).

    Raises:
        InputError: the report has no gate verdict.
    """
    value = report.context.get("verdict")
    if value not in ("pass", "regression", "inconclusive"):
        raise InputError("report: not a gate report (no context['verdict'])")
    return value  # type: ignore[return-value]


def exit_status(report: Report) -> int:
    """0 pass, 1 regression, 3 inconclusive (the CLI's exit statuses; 2 is a usage error)."""
    return {"pass": 0, "regression": 1, "inconclusive": 3}[verdict(report)]
