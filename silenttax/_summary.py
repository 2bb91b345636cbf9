"""Bounded, exactly mergeable column summaries (the fitted reference).

**Numbers** go into a *dyadic histogram* in the signed-log space
``t = sign(x) log(1 + |x|)`` (linear near zero, logarithmic in the tails, so
heavy tails and offsets such as timestamps both keep resolution). Bucket
``i`` at scale ``k`` covers ``t`` in ``[i / 2**k, (i + 1) / 2**k)``. A summary
uses the *finest* scale (up to ``2**-40``) at which at most ``budget``
buckets are occupied. Coarsening maps bucket ``i`` to ``i >> 1``, occupancy
only falls as the scale coarsens, so merging two summaries — coarsen both to
the coarser scale, add the counts, coarsen while over budget — gives exactly
the summary of the pooled data: partitions merged equal one pass.

Tests read the cumulative counts at bucket edges, where they are exact. The
KS distance from buckets is therefore never above the exact one and at most
the largest single-bucket mass below it (reported with each test); with the
default 4,096 buckets that is ~0.001 on smooth data, far under the KS noise
at sample sizes where it matters. Columns with few distinct values keep one
bucket per value (exact). Moments (count, sum, sum of squares, min, max),
nulls and infinities are kept exactly.

**Labels** keep exact counts per level up to ``max_levels``; beyond it the
rarest levels are folded into one ``other`` count (merging is then exact only
while within the cap).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import Counter
from collections.abc import Iterator
from itertools import chain
from typing import Annotated, Any, Literal, NamedTuple, Self

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PlainSerializer,
    PlainValidator,
    PositiveInt,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
    model_validator,
)

__all__ = [
    "CategoricalSummary",
    "NumericSummary",
    "Summary",
    "merge_summaries",
    "summarize_labels",
    "summarize_numbers",
]

K_MAX = 40
_DENSE_MAX = 1 << 20
_GAP = 8  # zero buckets allowed inside one stored run


def to_t(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The signed-log transform ``sign(x) log(1 + |x|)``."""
    a = np.asarray(x, dtype=np.float64)
    return np.asarray(np.copysign(np.log1p(np.abs(a)), a), dtype=np.float64)


def from_t(t: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Inverse of :func:`to_t`."""
    a = np.asarray(t, dtype=np.float64)
    with np.errstate(over="ignore"):  # past the float range: +-inf, clipped by the callers
        return np.asarray(np.copysign(np.expm1(np.abs(a)), a), dtype=np.float64)


def _index(t: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int64]:
    return np.floor(t * (2.0**k)).astype(np.int64)


def _aggregate(
    index: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Sum counts of equal indices (``index`` sorted)."""
    if index.size == 0:
        return index, counts
    starts = np.flatnonzero(np.concatenate(([True], np.diff(index) != 0)))
    return index[starts], np.add.reduceat(counts, starts)


def coarsen(
    index: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], shift: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Buckets ``shift`` scales coarser (``i -> i >> shift``), counts summed."""
    if shift <= 0 or index.size == 0:
        return index, counts
    return _aggregate(index >> shift, counts)


def count_at(
    t: npt.NDArray[np.float64], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Occupied bucket indices at scale ``k`` and their counts."""
    if t.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    g = _index(t, k)
    lo, hi = int(g.min()), int(g.max())
    if hi - lo < _DENSE_MAX:
        dense = np.bincount(g - lo)
        nz = np.flatnonzero(dense)
        return nz + lo, dense[nz]
    index, counts = np.unique(g, return_counts=True)
    return index, counts.astype(np.int64)


def fit_buckets(
    t: npt.NDArray[np.float64], budget: int
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The finest scale (<= K_MAX) with at most ``budget`` occupied buckets, and its counts.

    The general search over a whole column; :func:`summarize_numbers` first tries the
    common cases block by block (:func:`_fit_blocks`), with the same result."""
    if t.size == 0:
        return K_MAX, np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo, hi = float(t.min()), float(t.max())
    span = hi - lo
    if span == 0 or t.size <= budget:  # every value can have its own bucket
        index, counts = np.unique(_index(t, K_MAX), return_counts=True)
        return K_MAX, index, counts.astype(np.int64)
    # Start where a dense count array has ~2**16 cells, refine while few are occupied.
    k = min(K_MAX, math.floor(math.log2(((1 << 16) - 2) / span)))
    while True:
        base = math.floor(lo * 2.0**k)
        dense = np.bincount(_index(t, k) - base)
        occupied = int(np.count_nonzero(dense))
        if occupied > budget or k == K_MAX:
            break
        if span * 2.0 ** (k + 1) >= _DENSE_MAX:
            # Sparse at every dense-countable scale: sort once at the finest scale.
            index, counts = np.unique(_index(t, K_MAX), return_counts=True)
            counts = counts.astype(np.int64)
            k = K_MAX
            while index.size > budget:
                index, counts = coarsen(index, counts, 1)
                k -= 1
            return k, index, counts
        k += 1
    return _halved(dense, base, k, occupied, budget)


def _halved(
    dense: npt.NDArray[np.int64], base: int, k: int, occupied: int, budget: int
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Halve the resolution of dense counts (cell ``i`` is bucket ``base + i`` at scale
    ``k``) until at most ``budget`` cells are occupied; the occupied buckets."""
    while occupied > budget:
        if base % 2:
            dense = np.concatenate(([0], dense))
            base -= 1
        if dense.size % 2:
            dense = np.concatenate((dense, [0]))
        dense = dense.reshape(-1, 2).sum(axis=1)
        base //= 2
        k -= 1
        occupied = int(np.count_nonzero(dense))
    nz = np.flatnonzero(dense)
    return k, nz + base, dense[nz].astype(np.int64)


# ------------------------------------------------------------------ block by block
_BLOCK = 1 << 15
"""Values per block. A block and its temporaries stay in a core's cache, so a pass
reads the column from memory once instead of once per NumPy operation: whole-column
summaries are memory-bound, and two processes on two cores ran at a third of one's
speed each (``benchmarks/bench_scale.py``)."""
_BLOCK_CELLS = 1 << 17  # most dense cells counted block by block (1 MiB of counts)


class _Moments(NamedTuple):
    finite: int
    nulls: int
    pos_inf: int
    total: float
    total_sq: float
    min: float
    max: float


def blocks(values: npt.NDArray[Any]) -> Iterator[npt.NDArray[Any]]:
    """Consecutive views of ``_BLOCK`` values: a pass over them reads the column once."""
    for i in range(0, values.size, _BLOCK):
        yield values[i : i + _BLOCK]


def _finite_blocks(values: npt.NDArray[np.float64]) -> Iterator[npt.NDArray[np.float64]]:
    for block in blocks(values):
        yield block[np.isfinite(block)]


def _moments(values: npt.NDArray[np.float64]) -> _Moments:
    """Counts, sums and range of a column, in one pass of blocks."""
    count = nulls = pos_inf = 0
    total = total_sq = 0.0
    lo, hi = math.inf, -math.inf
    with np.errstate(over="ignore", invalid="ignore"):  # magnitudes near the float limit
        for block in blocks(values):
            finite = block[np.isfinite(block)]
            nulls += int(np.count_nonzero(np.isnan(block)))
            pos_inf += int(np.count_nonzero(np.isposinf(block)))
            if finite.size:
                count += finite.size
                total += float(finite.sum())
                # not np.dot: BLAS wakes its threads per call, and two processes'
                # threads fighting over two cores made this pass 10-20x slower
                total_sq += float(np.square(finite).sum())
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return _Moments(count, nulls, pos_inf, total, total_sq, lo, hi)


def _t_range(m: _Moments) -> tuple[float, float]:
    """The column's range, transformed (the transform is monotone)."""
    low, high = to_t(np.array([m.min, m.max])).tolist()
    return low, high


def _dense_blocks(
    values: npt.NDArray[np.float64], k: int, low: float, high: float
) -> tuple[int, npt.NDArray[np.int64]] | None:
    """Dense bucket counts at scale ``k`` of the finite values in [low, high] (their
    range, transformed), block by block: ``(base, counts)``, or None if too many cells."""
    base = math.floor(low * 2.0**k) - 1  # a cell of slack on each side for rounding
    cells = math.floor(high * 2.0**k) - base + 2
    if cells > _BLOCK_CELLS:
        return None
    dense = np.zeros(cells, np.int64)
    for finite in _finite_blocks(values):
        if finite.size:
            g = _index(to_t(finite), k) - base
            first, last = int(g.min()), int(g.max())
            if first < 0 or last >= cells:  # past the slack: let the general path count
                return None
            dense[first : last + 1] += np.bincount(g - first)
    return base, dense


def _integer_blocks(
    values: npt.NDArray[np.float64], m: _Moments
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """Finest buckets of a column whose values are all integers in [m.min, m.max], a
    narrow range: each distinct value counted directly, no search for a scale."""
    lo = int(m.min)
    dense = np.zeros(int(m.max) - lo + 1, np.int64)
    for finite in _finite_blocks(values):
        whole = finite.astype(np.int64)
        if not np.array_equal(whole, finite):
            return None
        dense += np.bincount(whole - lo, minlength=dense.size)
    nz = np.flatnonzero(dense)
    # each distinct value is its own finest bucket (or shares it with a neighbour)
    return _aggregate(_index(to_t((nz + lo).astype(np.float64)), K_MAX), dense[nz])


def _fit_blocks(
    values: npt.NDArray[np.float64], budget: int, m: _Moments
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """:func:`fit_buckets` for the common columns, block by block; None for the others
    (few values, one value, or concentrated so that the search must refine)."""
    if m.finite <= budget or not m.min < m.max:
        return None
    integral = m.max - m.min < budget and m.min == math.floor(m.min) and abs(m.min) < 2.0**53
    if integral and (found := _integer_blocks(values, m)) is not None:
        return K_MAX, *found
    low, high = _t_range(m)
    if not high > low:
        return None
    k = min(K_MAX, math.floor(math.log2(((1 << 16) - 2) / (high - low))))
    counted = _dense_blocks(values, k, low, high)
    if counted is None:
        return None
    base, dense = counted
    occupied = int(np.count_nonzero(dense))
    if occupied <= budget and k < K_MAX:
        return None  # few cells occupied: the general search refines the scale
    return _halved(dense, base, k, occupied, budget)


def _runs(index: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> list[list[int]]:
    """Compact JSON form: [first_index, count, count, ...] per run of nearby buckets."""
    if index.size == 0:
        return []
    index = np.asarray(index, dtype=np.int64)
    new_run = np.concatenate(([True], np.diff(index) > _GAP))
    run = np.cumsum(new_run) - 1
    firsts = index[new_run]
    # a run is [first, counts of first..last with zeros in the gaps]: one flat array
    spans = index[np.concatenate((np.flatnonzero(new_run)[1:] - 1, [index.size - 1]))] - firsts + 1
    heads = np.concatenate(([0], np.cumsum(spans + 1)[:-1]))
    flat = np.zeros(int(spans.sum() + spans.size), dtype=np.int64)
    flat[heads] = firsts
    flat[heads[run] + 1 + index - firsts[run]] = counts
    values = flat.tolist()
    bounds = [*heads.tolist(), len(values)]
    return [values[x:y] for x, y in itertools.pairwise(bounds)]


def _flat_runs(runs: list[list[int]]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Runs as one flat array, and where each run's head (its first index) sits in it."""
    sizes = np.fromiter(map(len, runs), np.int64, len(runs))
    flat = np.fromiter(chain.from_iterable(runs), np.int64, int(sizes.sum()))
    return flat, np.cumsum(sizes) - sizes


def _decode(runs: list[list[int]]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Inverse of :func:`_runs`: occupied bucket indices and counts."""
    if not runs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    flat, heads = _flat_runs(runs)
    is_head = np.zeros(flat.size, dtype=bool)
    is_head[heads] = True
    run = np.cumsum(is_head) - 1
    position = np.arange(flat.size, dtype=np.int64) - heads[run] - 1
    index = flat[heads][run] + position
    keep = ~is_head & (flat > 0)
    return index[keep], flat[keep]


class Buckets:
    """Occupied bucket indices (sorted, int64) and their counts, held as read-only
    NumPy arrays: 16 bytes a bucket in memory (Python lists took about 100), saved as
    the compact runs of :func:`_runs`."""

    __slots__ = ("counts", "index")

    def __init__(self, index: npt.ArrayLike, counts: npt.ArrayLike) -> None:
        self.index = np.array(index, dtype=np.int64)
        self.counts = np.array(counts, dtype=np.int64)
        self.index.flags.writeable = self.counts.flags.writeable = False

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Buckets)
            and np.array_equal(self.index, other.index)
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return int(self.index.size)

    def __repr__(self) -> str:
        return f"Buckets({len(self)} occupied, {int(self.counts.sum())} values)"


_RUNS = TypeAdapter(list[list[int]])


def _read_buckets(value: Any) -> Buckets:
    if isinstance(value, Buckets):
        return value
    runs = _RUNS.validate_python(value)
    if runs and min(map(len, runs)) < 2:
        raise ValueError("runs: each run is [first_index, count, ...]")
    try:
        index, counts = _decode(runs)
    except OverflowError:
        raise ValueError("runs: bucket indices and counts must fit in 64 bits") from None
    if counts.size and counts.min() < 0:
        raise ValueError("runs: bucket counts must be >= 0")
    return Buckets(index, counts)


StoredBuckets = Annotated[
    Buckets,
    PlainValidator(_read_buckets),
    PlainSerializer(lambda b: _runs(b.index, b.counts), return_type=list[list[int]]),
    WithJsonSchema({"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}),
]
"""Buckets in a state: arrays in memory, ``[first_index, count, ...]`` runs in JSON."""


def _total(counts: npt.NDArray[np.int64]) -> int:
    """Sum of non-negative int64 counts, exact even past the int64 range."""
    if counts.size == 0 or int(counts.max()) < (1 << 62) // counts.size:
        return int(counts.sum())
    return int(counts.sum(dtype=object))


class NumericSummary(BaseModel):
    """Summary of a numeric (or boolean) column: exact moments, dyadic buckets."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    type: Literal["numeric"] = "numeric"
    """Discriminator."""
    budget: PositiveInt = 4096
    """Most occupied buckets kept."""
    count: NonNegativeInt = 0
    """Finite values."""
    nulls: NonNegativeInt = 0
    """Missing values (NaN/None)."""
    pos_inf: NonNegativeInt = 0
    """+inf values."""
    neg_inf: NonNegativeInt = 0
    """-inf values."""
    total: float = 0.0
    """Sum of finite values (``inf`` once it leaves the float range, whatever its sign:
    see ``mean``)."""
    total_sq: float = 0.0
    """Sum of squares of finite values (``inf`` past the float range: see ``sd``)."""
    min: float = math.inf
    """Smallest finite value."""
    max: float = -math.inf
    """Largest finite value."""
    scale: int = K_MAX
    """Bucket width is ``2 ** -scale`` in t-space."""
    runs: StoredBuckets = Field(default_factory=lambda: Buckets([], []))
    """Occupied buckets (saved as ``[first_index, count, ...]`` runs)."""
    exact_values: list[float] | None = None
    """Every finite value, sorted (exact mode only)."""

    @field_validator("total", "total_sq")
    @classmethod
    def _overflowed(cls, value: float) -> float:
        # a sum past the float range is inf or NaN (+inf and -inf halves): one marker,
        # so a state always equals itself and merges stay overflowed
        return value if math.isfinite(value) else math.inf

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if _total(self.runs.counts) != self.count:
            raise ValueError(f"runs: bucket counts must add up to count {self.count}")
        return self

    @property
    def rows(self) -> int:
        """All rows: finite, missing and infinite."""
        return self.count + self.nulls + self.pos_inf + self.neg_inf

    def _scaled(self) -> tuple[float, npt.NDArray[np.float64]]:
        """The values over their largest magnitude (for moments whose sums overflowed)."""
        top = max(abs(self.min), abs(self.max))
        return top, self.values() / top

    @property
    def mean(self) -> float:
        """Mean of the finite values (NaN when there are none)."""
        if not self.count:
            return math.nan
        if math.isfinite(self.total):
            return self.total / self.count
        top, scaled = self._scaled()  # the sum overflowed: values near the float limit
        return float(np.mean(scaled)) * top

    @property
    def var(self) -> float:
        """Sample variance of the finite values (0 with fewer than 2; ``inf`` when it
        exceeds the float range: use :attr:`sd`)."""
        sd = self.sd
        with np.errstate(over="ignore"):
            return float(np.float64(sd) * sd)

    @property
    def sd(self) -> float:
        """Sample standard deviation of the finite values (0 with fewer than 2); from the
        exact moments, or from the values scaled down when the sums of squares overflowed."""
        if self.count < 2:
            return 0.0
        if math.isfinite(self.total) and math.isfinite(self.total_sq):
            mean = self.total / self.count
            var = (self.total_sq - self.count * mean * mean) / (self.count - 1)
            if math.isfinite(var):
                return math.sqrt(max(0.0, var))
        top, scaled = self._scaled()
        return float(np.std(scaled, ddof=1)) * top

    def buckets(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Occupied bucket indices (sorted) and counts (read-only arrays)."""
        return self.runs.index, self.runs.counts

    def values(self) -> npt.NDArray[np.float64]:
        """The finite values: exact in exact mode, else bucket midpoints repeated by count."""
        if self.exact_values is not None:
            return np.asarray(self.exact_values, dtype=np.float64)
        index, counts = self.buckets()
        mid = from_t((index + 0.5) / 2.0**self.scale)
        return np.clip(np.repeat(mid, counts), self.min, self.max)

    @property
    def distinct(self) -> int:
        """Occupied buckets (distinct values when at the finest scale)."""
        return int(self.buckets()[0].size)


class CategoricalSummary(BaseModel):
    """Summary of a label column: exact counts per level (up to ``max_levels``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["categorical"] = "categorical"
    """Discriminator."""
    max_levels: PositiveInt = 1000
    """Most levels kept; the rest are folded into ``other``."""
    count: NonNegativeInt = 0
    """Non-missing values."""
    nulls: NonNegativeInt = 0
    """Missing values (None)."""
    levels: dict[str, NonNegativeInt] = Field(default_factory=dict)
    """Count per level."""
    other: NonNegativeInt = 0
    """Values of levels folded away by the ``max_levels`` cap."""

    @property
    def rows(self) -> int:
        """All rows, missing included."""
        return self.count + self.nulls


Summary = Annotated[NumericSummary | CategoricalSummary, Field(discriminator="type")]


def summarize_numbers(
    values: npt.NDArray[np.float64],
    *,
    budget: int = 4096,
    exact: bool = False,
    scale: int | None = None,
) -> NumericSummary:
    """Summarize a float64 column (NaN = missing); at ``scale`` if given, else the finest."""
    m = _moments(values)
    found: tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None
    if scale is None:
        found = _fit_blocks(values, budget, m)
    elif m.finite and (counted := _dense_blocks(values, scale, *_t_range(m))) is not None:
        base, dense = counted
        nz = np.flatnonzero(dense)
        found = scale, nz + base, dense[nz]
    if found is None:  # the general search over the whole column
        t = to_t(values[np.isfinite(values)])
        found = fit_buckets(t, budget) if scale is None else (scale, *count_at(t, scale))
    k, index, counts = found
    while index.size > budget:
        index, counts = coarsen(index, counts, 1)
        k -= 1
    return NumericSummary(
        budget=budget,
        count=m.finite,
        nulls=m.nulls,
        pos_inf=m.pos_inf,
        neg_inf=int(values.size - m.finite - m.nulls - m.pos_inf),
        total=m.total,
        total_sq=m.total_sq,
        min=m.min,
        max=m.max,
        scale=k,
        runs=Buckets(index, counts),
        exact_values=np.sort(values[np.isfinite(values)]).tolist() if exact else None,
    )


def summarize_labels(
    values: npt.NDArray[Any] | Counter[Any], *, max_levels: int = 1000
) -> CategoricalSummary:
    """Summarize a label column (None = missing; other objects are counted by ``str``),
    given its values or their counts (:meth:`silenttax._input.Table.level_counts`)."""
    counts = Counter(values) if isinstance(values, Counter) else Counter(values.tolist())
    rows = sum(counts.values())
    nulls = counts.pop(None, 0)
    levels: dict[str, int] = {}
    for level, n in counts.items():
        key = level if isinstance(level, str) else str(level)
        if len(key) > MAX_LEVEL_CHARS:
            key = level_key(key)
        levels[key] = levels.get(key, 0) + n
    other = 0
    if len(levels) > max_levels:  # fold before validating: millions of levels stay cheap
        ranked = sorted(levels.items(), key=lambda kv: (-kv[1], kv[0]))
        levels = dict(ranked[:max_levels])
        other = sum(n for _, n in ranked[max_levels:])
    return CategoricalSummary(
        max_levels=max_levels,
        count=int(rows - nulls),
        nulls=nulls,
        levels=levels,
        other=other,
    )


#: Longest level kept verbatim; longer ones are stored as :func:`level_key`.
MAX_LEVEL_CHARS = 200


def level_key(text: str) -> str:
    """A bounded stand-in for a long level: its start and a hash of the whole, so
    distinct long values stay distinct (a summary of megabyte strings stays small).

    Examples:
        >>> key = level_key("x" * 10_000)
        >>> len(key) <= MAX_LEVEL_CHARS, key.startswith("xxx"), key == level_key("x" * 10_000)
        (True, True, True)
    """
    if len(text) <= MAX_LEVEL_CHARS:
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{text[: MAX_LEVEL_CHARS - 20]}…#{digest}"


def _capped(summary: CategoricalSummary) -> CategoricalSummary:
    if len(summary.levels) <= summary.max_levels:
        return summary
    ranked = sorted(summary.levels.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[: summary.max_levels])
    folded = sum(n for _, n in ranked[summary.max_levels :])
    return summary.model_copy(update={"levels": kept, "other": summary.other + folded})


def merge_summaries(
    a: NumericSummary | CategoricalSummary, b: NumericSummary | CategoricalSummary
) -> NumericSummary | CategoricalSummary:
    """The summary of the pooled data (exact for numbers; for labels within ``max_levels``)."""
    if isinstance(a, CategoricalSummary) and isinstance(b, CategoricalSummary):
        levels = dict(a.levels)
        for level, n in b.levels.items():
            levels[level] = levels.get(level, 0) + n
        return _capped(
            CategoricalSummary(
                max_levels=min(a.max_levels, b.max_levels),
                count=a.count + b.count,
                nulls=a.nulls + b.nulls,
                levels=levels,
                other=a.other + b.other,
            )
        )
    if isinstance(a, NumericSummary) and isinstance(b, NumericSummary):
        budget = min(a.budget, b.budget)
        k = min(a.scale, b.scale)
        ia, ca = coarsen(*a.buckets(), a.scale - k)
        ib, cb = coarsen(*b.buckets(), b.scale - k)
        index = np.concatenate([ia, ib])
        order = np.argsort(index, kind="stable")
        index, counts = _aggregate(index[order], np.concatenate([ca, cb])[order])
        while index.size > budget:
            index, counts = coarsen(index, counts, 1)
            k -= 1
        exact = (
            sorted(a.exact_values + b.exact_values)
            if a.exact_values is not None and b.exact_values is not None
            else None
        )
        return NumericSummary(
            budget=budget,
            count=a.count + b.count,
            nulls=a.nulls + b.nulls,
            pos_inf=a.pos_inf + b.pos_inf,
            neg_inf=a.neg_inf + b.neg_inf,
            total=a.total + b.total,
            total_sq=a.total_sq + b.total_sq,
            min=min(a.min, b.min),
            max=max(a.max, b.max),
            scale=k,
            runs=Buckets(index, counts),
            exact_values=exact,
        )
    raise TypeError(f"cannot merge a {a.type} summary with a {b.type} summary")


def histogram(
    reference: NumericSummary | CategoricalSummary,
    current: NumericSummary | CategoricalSummary,
    *,
    bins: int = 24,
) -> dict[str, Any] | None:
    """Overlaid reference/current shares on common bins, for plots (a few hundred bytes).

    Numbers: one bar per value when both sides hold at most ``bins`` distinct
    values, else equal-width bins over the pooled 0.5%-99.5% range (values
    outside go to the end bins). Labels: the ``bins`` most common levels of
    either side, the rest as ``(other)``. Shares of each side's non-missing
    values; None when a side has none.
    """
    if reference.count == 0 or current.count == 0:
        return None
    if isinstance(reference, CategoricalSummary) and isinstance(current, CategoricalSummary):
        pooled = Counter(reference.levels) + Counter(current.levels)
        top = [level for level, _ in pooled.most_common(bins)]

        def label_shares(s: CategoricalSummary) -> list[float]:
            shares = [s.levels.get(level, 0) / s.count for level in top]
            return [*shares, max(0.0, 1.0 - sum(shares))] if len(pooled) > bins else shares

        labels = [*top, "(other)"] if len(pooled) > bins else top
        return {
            "type": "labels",
            "labels": labels,
            "reference": _rounded(label_shares(reference)),
            "current": _rounded(label_shares(current)),
        }
    if not (isinstance(reference, NumericSummary) and isinstance(current, NumericSummary)):
        return None
    k = min(reference.scale, current.scale)  # both sides on the coarser grid
    grids = [coarsen(*side.buckets(), side.scale - k) for side in (reference, current)]
    keys = np.union1d(grids[0][0], grids[1][0])
    if keys.size <= bins:
        shares = []
        for index, counts in grids:
            full = np.zeros(keys.size)
            full[np.searchsorted(keys, index)] = counts
            shares.append(full / full.sum())
        return {
            "type": "values",
            "values": [float(f"{v:.6g}") for v in from_t(keys / 2.0**k)],
            "reference": _rounded(shares[0]),
            "current": _rounded(shares[1]),
        }
    low, high = min(reference.min, current.min), max(reference.max, current.max)
    sides = [
        (np.clip(from_t((index + 0.5) / 2.0**k), low, high), counts.astype(np.float64))
        for index, counts in grids
    ]
    mids = np.concatenate([m for m, _ in sides])
    weights = np.concatenate([c / c.sum() for _, c in sides])
    order = np.argsort(mids)
    cdf = np.cumsum(weights[order]) / weights.sum()
    lo = float(mids[order][int(np.searchsorted(cdf, 0.005))])
    hi = float(mids[order][min(int(np.searchsorted(cdf, 0.995)), mids.size - 1)])
    if not hi > lo:
        lo, hi = float(mids.min()), float(mids.max())
    if math.isfinite(hi - lo):
        edges = np.linspace(lo, hi, bins + 1)
    else:  # a span past the float range: halve, space, double
        edges = np.linspace(lo / 2, hi / 2, bins + 1) * 2
        edges[0], edges[-1] = lo, hi
    out: list[npt.NDArray[np.float64]] = []
    for mid, weight in sides:
        hist, _ = np.histogram(np.clip(mid, lo, hi), bins=edges, weights=weight)
        out.append(hist / weight.sum())
    return {
        "type": "bins",
        "edges": [float(f"{e:.6g}") for e in edges],
        "reference": _rounded(out[0]),
        "current": _rounded(out[1]),
    }


def _rounded(values: Any) -> list[float]:
    return [round(float(v), 5) for v in values]
