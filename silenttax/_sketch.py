"""LatencySketch: a mergeable quantile sketch with a relative-error guarantee.

Values fall into logarithmic buckets with OpenTelemetry's base-2 exponential
mapping: at scale ``s`` the base is ``b = 2 ** (2 ** -s)`` and bucket ``i``
holds ``(b**i, b**(i+1)]``. Answering with ``2 b**(i+1) / (1 + b)`` is within
``(b - 1) / (b + 1)`` of any value in the bucket, so the sketch picks the
smallest scale whose bound meets ``relative_accuracy`` (scale 6, 0.54%, for the
default 1%). Memory depends on the dynamic range (64 buckets per doubling at
scale 6, ~1,700 for 1 µs-100 s), never on the count. Buckets are the OTLP
``ExponentialHistogram`` layout, so :meth:`LatencySketch.exponential_histogram`
exports them unchanged.

The recording path appends to a ``array('d')`` buffer (one C call under the
GIL, so concurrent ``add`` calls lose nothing) and folds it into the bucket
counts with NumPy every 8,192 values or on any read.
"""

from __future__ import annotations

import math
import numbers
import threading
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, NonNegativeInt, model_validator

from silenttax._parse import to_float
from silenttax._state import State, Stateful
from silenttax._stats import lower_rank, quantile_rank_interval
from silenttax.errors import InputError

__all__ = ["LatencySketch", "LatencySketchState", "as_sketch", "quantile_interval"]

_FOLD_AT = 8192
_CHUNK = 16384
_MIN_SCALE, _MAX_SCALE = -10, 20


def scale_for(relative_accuracy: float) -> int:
    """Smallest base-2 exponential scale whose relative error is <= ``relative_accuracy``.

    Examples:
        >>> scale_for(0.01), scale_for(0.02), scale_for(0.001)
        (6, 5, 9)
    """
    gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
    scale = math.ceil(-math.log2(math.log2(gamma)))
    return min(_MAX_SCALE, max(_MIN_SCALE, scale))


def bound_for(scale: int) -> float:
    """Relative error bound ``(b - 1) / (b + 1)`` of a scale (``b = 2 ** 2 ** -scale``)."""
    base = math.pow(2.0, math.pow(2.0, -scale))
    return (base - 1.0) / (base + 1.0)


class LatencySketchState(State):
    """JSON state of a :class:`LatencySketch` (OTLP exponential-histogram layout)."""

    KIND: ClassVar[str] = "silenttax.latency_sketch"

    relative_accuracy: float
    """The accuracy the sketch was created with."""
    scale: int
    """Base-2 exponential scale: base = 2 ** (2 ** -scale)."""
    offset: int = 0
    """Bucket index of ``counts[0]``."""
    counts: list[NonNegativeInt] = Field(default_factory=list)
    """Counts of buckets ``offset, offset + 1, ...`` (leading/trailing zeros trimmed)."""
    zero_count: NonNegativeInt = 0
    """Observations equal to zero."""
    count: NonNegativeInt = 0
    """Valid observations (zero included)."""
    sum: float = 0.0
    """Sum of valid observations."""
    min: float = math.inf
    """Smallest valid observation (inf when empty)."""
    max: float = -math.inf
    """Largest valid observation (-inf when empty)."""
    invalid: NonNegativeInt = 0
    """Rejected values (NaN, negative, infinite or not a number)."""
    max_buckets: int | None = None
    """A custom bucket cap the sketch was created with (None: the default for its accuracy)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.zero_count + sum(self.counts) != self.count:
            raise ValueError(
                f"count {self.count} is not zero_count + the bucket counts "
                f"({self.zero_count + sum(self.counts)})"
            )
        return self


def _flat(values: Any) -> list[Any]:
    """The elements of whatever ``add_many`` got, one level deep (ragged input included)."""
    try:
        return list(np.asarray(values, dtype=object).ravel())
    except Exception:  # not even an object array: nothing usable
        return [values]


class LatencySketch(Stateful[LatencySketchState]):
    """Mergeable quantile sketch of positive durations (seconds) with bounded relative error.

    Every quantile is within ``relative_accuracy`` of the exact lower order
    statistic ``x_(floor(q (n - 1)))`` (NumPy's ``method="lower"``), on any
    data, and memory is bounded by the dynamic range. Merging sketches of the
    same accuracy is exact: shards merged give the same quantiles as one pass.
    Invalid values (NaN, negative, infinite, ``None``) are counted in
    :attr:`invalid` and dropped; with ``strict=True`` they raise instead.

    Args:
        relative_accuracy: Relative error bound of quantiles, in (0, 1).
        max_buckets: Safety cap on bucket count; beyond it the sketch halves its
            resolution (see :attr:`effective_accuracy`). Default: enough for a
            dynamic range of 2**64 (64 doublings: 4,096 buckets at 1%), far
            beyond any real latency range.
        strict: Raise :class:`~silenttax.errors.InputError` on invalid values.

    Examples:
        >>> import numpy as np
        >>> sketch = LatencySketch(relative_accuracy=0.01)
        >>> for ms in (12, 15, 11, 240, 13):
        ...     sketch.add(ms / 1000)
        >>> sketch.add_many(np.full(95, 0.014))
        >>> sketch.count, round(sketch.quantile(0.5), 4), round(sketch.quantile(0.99), 3)
        (100, 0.014, 0.015)
        >>> sketch.max
        0.24
    """

    STATE: ClassVar[type[State]] = LatencySketchState

    __slots__ = (
        "_buf",
        "_count",
        "_counts",
        "_custom_buckets",
        "_invalid",
        "_lock",
        "_max",
        "_max_buckets",
        "_min",
        "_offset",
        "_on_fold",
        "_scale",
        "_strict",
        "_sum",
        "_zero",
        "relative_accuracy",
    )

    def __init__(
        self,
        *,
        relative_accuracy: float = 0.01,
        max_buckets: int | None = None,
        strict: bool = False,
    ) -> None:
        if not (isinstance(relative_accuracy, float | int) and 0 < relative_accuracy < 1):
            raise InputError(f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}")
        if max_buckets is not None and not (isinstance(max_buckets, int) and max_buckets >= 16):
            raise InputError(f"max_buckets must be an int >= 16, got {max_buckets!r}")
        self.relative_accuracy = float(relative_accuracy)
        self._scale = scale_for(self.relative_accuracy)
        self._custom_buckets = max_buckets
        self._max_buckets = max_buckets or max(1024, 64 << max(self._scale, 0))
        self._strict = strict
        self._lock = threading.Lock()
        self._buf = array("d")
        self._on_fold: Callable[[npt.NDArray[np.float64]], None] | None = None
        """Called with every batch of values in arrival order as it is folded (the latency
        monitor's creep detector listens here, so recording pays nothing extra)."""
        self._counts: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._offset = 0
        self._zero = 0
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._invalid = 0

    # ----------------------------------------------------------------- recording
    def add(self, seconds: float) -> None:
        """Record one duration in seconds (O(1), lock-free, thread-safe)."""
        if self._strict:
            self._validate(seconds)
        buf = self._buf
        try:
            buf.append(seconds)
        except (TypeError, OverflowError):  # not a number; an int beyond the float range
            self._reject(seconds)
            return
        if len(buf) >= _FOLD_AT:
            self._fold()

    def add_many(self, seconds: npt.ArrayLike) -> None:
        """Record many durations at once (vectorized; a few ns per value; small batches
        join the buffer and are counted with it)."""
        try:
            values = np.asarray(seconds, dtype=np.float64).ravel()
        except (TypeError, ValueError, OverflowError) as exc:
            if self._strict:
                raise InputError(f"seconds must be numbers: {exc}") from exc
            values = np.asarray(
                [to_float(x) if isinstance(x, float | int) else math.nan for x in _flat(seconds)],
                dtype=np.float64,
            )
        if self._strict and values.size and not (np.isfinite(values) & (values >= 0)).all():
            raise InputError("seconds must be finite numbers >= 0")
        if values.size < _FOLD_AT:  # small batches join the buffer: one fold for many calls
            buf = self._buf
            buf.frombytes(values.tobytes())
            if len(buf) >= _FOLD_AT:
                self._fold()
            return
        with self._lock:
            self._ingest(values)
            if self._on_fold is not None:
                self._on_fold(values)

    @staticmethod
    def _validate(seconds: object) -> None:
        ok = isinstance(seconds, numbers.Real) and not isinstance(seconds, bool)
        if not (ok and 0.0 <= seconds < math.inf):  # type: ignore[operator]
            raise InputError(f"seconds must be a finite number >= 0, got {seconds!r}")

    def _reject(self, value: object) -> None:
        if self._strict:
            raise InputError(f"seconds must be a number, got {value!r}")
        with self._lock:
            self._invalid += 1

    def _fold(self) -> None:
        """Move buffered values into the bucket counts."""
        with self._lock:
            buf = self._buf
            n = len(buf)
            if not n:
                return
            values = np.frombuffer(buf[:n], dtype=np.float64)
            # Under the GIL, values appended meanwhile sit after n and stay buffered.
            del buf[:n]
            self._ingest(values)
            if self._on_fold is not None:
                self._on_fold(values)

    def _ingest(self, values: npt.NDArray[np.float64]) -> None:
        """Add values to the counts (caller holds the lock)."""
        for start in range(0, values.size, _CHUNK):
            chunk = values[start : start + _CHUNK]
            valid = np.isfinite(chunk) & (chunk >= 0)
            if not valid.all():
                self._invalid += int(chunk.size - np.count_nonzero(valid))
                chunk = chunk[valid]
                if not chunk.size:
                    continue
            self._count += chunk.size
            self._sum += float(chunk.sum())
            self._min = min(self._min, float(chunk.min()))
            self._max = max(self._max, float(chunk.max()))
            positive = chunk[chunk > 0]
            self._zero += chunk.size - positive.size
            if positive.size:
                self._add_indices(self._index(positive))

    def _index(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        scaled = np.log2(values)
        scaled *= 2.0**self._scale
        np.ceil(scaled, out=scaled)
        index = scaled.astype(np.int64)
        index -= 1
        return index

    def _add_indices(self, index: npt.NDArray[np.int64]) -> None:
        lo = int(index.min())
        self._add_buckets(lo, np.bincount(index - lo), self._scale)

    # --------------------------------------------------------------- bucket store
    def _add_buckets(self, offset: int, counts: npt.NDArray[np.int64], scale: int) -> None:
        """Add bucket ``counts`` (first index ``offset``, at ``scale``) into the store.

        Downscales this sketch when ``scale`` is coarser, or when the combined
        range would exceed ``max_buckets``; the common case (same scale, inside
        the range) is one slice addition.
        """
        if not counts.size:
            return
        if scale < self._scale:
            self._downscale(self._scale - scale)
        last = offset + counts.size - 1
        while True:
            shift = scale - self._scale
            lo, hi = offset >> shift, last >> shift
            if self._counts.size:
                lo = min(lo, self._offset)
                hi = max(hi, self._offset + self._counts.size - 1)
            if hi - lo + 1 <= self._max_buckets:
                break
            self._downscale(1)
        self._grow(lo, hi)
        if shift == 0:
            start = offset - self._offset
            self._counts[start : start + counts.size] += counts
        else:
            index = (np.arange(counts.size, dtype=np.int64) + offset) >> shift
            np.add.at(self._counts, index - self._offset, counts)

    def _grow(self, lo: int, hi: int) -> None:
        """Make room for buckets ``lo..hi`` (exact range; growth is rare after warm-up)."""
        size = self._counts.size
        if size and self._offset <= lo and hi < self._offset + size:
            return
        counts = np.zeros(hi - lo + 1, dtype=np.int64)
        if size:
            counts[self._offset - lo : self._offset - lo + size] = self._counts
        self._counts, self._offset = counts, lo

    def _downscale(self, shift: int) -> None:
        """Halve the resolution ``shift`` times (bucket i -> i >> shift)."""
        self._scale -= shift
        if not self._counts.size:
            return
        index = (np.arange(self._counts.size, dtype=np.int64) + self._offset) >> shift
        offset = int(index[0])
        counts = np.zeros(int(index[-1]) - offset + 1, dtype=np.int64)
        np.add.at(counts, index - offset, self._counts)
        self._counts, self._offset = counts, offset

    # ------------------------------------------------------------------- queries
    @property
    def scale(self) -> int:
        """Current base-2 exponential scale (OpenTelemetry's meaning)."""
        self._fold()
        return self._scale

    @property
    def effective_accuracy(self) -> float:
        """The relative error bound actually guaranteed now (<= ``relative_accuracy``
        unless ``max_buckets`` forced a coarser scale)."""
        self._fold()
        return bound_for(self._scale)

    @property
    def count(self) -> int:
        """Number of valid observations."""
        self._fold()
        return self._count

    @property
    def sum(self) -> float:
        """Sum of valid observations (seconds)."""
        self._fold()
        return self._sum

    @property
    def min(self) -> float:
        """Smallest observation (exact); NaN when empty."""
        self._fold()
        return self._min if self._count else math.nan

    @property
    def max(self) -> float:
        """Largest observation (exact); NaN when empty."""
        self._fold()
        return self._max if self._count else math.nan

    @property
    def mean(self) -> float:
        """Mean of valid observations; NaN when empty."""
        self._fold()
        return self._sum / self._count if self._count else math.nan

    @property
    def invalid(self) -> int:
        """Number of rejected values (NaN, negative, infinite, not a number)."""
        self._fold()
        return self._invalid

    def __len__(self) -> int:
        return self.count

    def quantile(self, q: float) -> float:
        """The q-quantile (0 <= q <= 1), within ``relative_accuracy`` of the exact value.

        Raises:
            InputError: ``q`` is outside [0, 1], or nothing was recorded.
        """
        return float(self.quantiles([q])[0])

    def quantiles(self, qs: Sequence[float] | npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Several quantiles at once (vectorized); see :meth:`quantile`."""
        q = np.asarray(qs, dtype=np.float64).ravel()
        if q.size and not ((q >= 0) & (q <= 1)).all():
            raise InputError(f"quantiles must be within [0, 1], got {q.tolist()}")
        self._fold()
        with self._lock:
            n = self._count
            if n == 0:
                raise InputError("quantile of an empty LatencySketch: nothing was recorded")
            ranks = np.array([lower_rank(n, float(x)) for x in q], dtype=np.int64)
            return self._values_at_ranks(ranks)

    def value_at_rank(self, rank: int) -> float:
        """Estimate of the ``rank``-th smallest observation (0-based), bounded error."""
        self._fold()
        with self._lock:
            if not 0 <= rank < self._count:
                raise InputError(f"rank must be in [0, {self._count}), got {rank}")
            return float(self._values_at_ranks(np.array([rank]))[0])

    def _values_at_ranks(self, ranks: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        cumulative = np.cumsum(self._counts)
        out = np.empty(ranks.size, dtype=np.float64)
        in_zero = ranks < self._zero
        out[in_zero] = 0.0
        positive = ~in_zero
        if positive.any():
            bucket = np.searchsorted(cumulative, ranks[positive] - self._zero, side="right")
            out[positive] = self._bucket_values(bucket + self._offset)
        # Exact extremes, and no estimate outside the observed range.
        out = np.clip(out, self._min, self._max)
        out[ranks == 0] = self._min
        out[ranks == self._count - 1] = self._max
        return out

    def _bucket_values(self, index: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        base = math.pow(2.0, math.pow(2.0, -self._scale))
        upper: npt.NDArray[np.float64] = np.exp2((index + 1) * 2.0**-self._scale)
        return 2.0 * upper / (1.0 + base)

    def bucket_bounds(self, rank: int) -> tuple[float, float]:
        """Lower and upper edge of the bucket holding the ``rank``-th smallest value.

        The true order statistic lies in this interval: use it to widen
        confidence intervals by the sketch's own resolution.
        """
        self._fold()
        with self._lock:
            if not 0 <= rank < self._count:
                raise InputError(f"rank must be in [0, {self._count}), got {rank}")
            if rank < self._zero:
                return 0.0, 0.0
            bucket = int(np.searchsorted(np.cumsum(self._counts), rank - self._zero, "right"))
            factor = 2.0**-self._scale
            lo = 2.0 ** ((bucket + self._offset) * factor)
            hi = 2.0 ** ((bucket + self._offset + 1) * factor)
            return max(lo, self._min), min(hi, self._max)

    # ------------------------------------------------------------ merge & state
    def merge(self, other: LatencySketch) -> Self:
        """Add ``other``'s observations into this sketch (in place) and return it.

        Exact when both have the same scale; otherwise the finer one is
        downscaled to the coarser scale first.
        """
        if not isinstance(other, LatencySketch):
            raise InputError(f"can only merge a LatencySketch, got {type(other).__name__}")
        other._fold()
        with other._lock:
            counts, offset, scale = other._counts.copy(), other._offset, other._scale
            scalars = (other._zero, other._count, other._sum, other._min, other._max)
            invalid = other._invalid
        self._fold()
        with self._lock:
            self._absorb(offset, counts, scale, *scalars, invalid)
        return self

    def _absorb(
        self,
        offset: int,
        counts: npt.NDArray[np.int64],
        scale: int,
        zero: int,
        count: int,
        total: float,
        low: float,
        high: float,
        invalid: int,
    ) -> None:
        """Add another sketch's buckets and totals (caller holds the lock)."""
        self._add_buckets(offset, counts, scale)
        self._zero += zero
        self._count += count
        self._sum += total
        self._min = min(self._min, low)
        self._max = max(self._max, high)
        self._invalid += invalid

    def since(self, earlier: LatencySketchState) -> LatencySketchState:
        """What this sketch recorded after ``earlier``, a snapshot of the same sketch
        taken before (bucket counts, count and sum subtracted: exact at this sketch's
        scale; min and max are the bounds of the remaining buckets).

        Raises:
            InputError: ``earlier`` is not an earlier snapshot of this sketch (it holds
                more in some bucket, or more observations).

        Examples:
            >>> sketch = LatencySketch()
            >>> sketch.add_many([0.010, 0.011])
            >>> mark = sketch.state()
            >>> sketch.add_many([0.100, 0.120])
            >>> window = sketch.since(mark)
            >>> window.count, round(LatencySketch.from_state(window).quantile(0.5), 2)
            (2, 0.1)
        """
        later = self.state()
        window = LatencySketch.from_state(later)
        with window._lock:
            if earlier.scale < window._scale:
                raise InputError("since: the earlier snapshot is coarser: not of this sketch")
            window._add_buckets(
                earlier.offset, -np.asarray(earlier.counts, dtype=np.int64), earlier.scale
            )
            window._zero -= earlier.zero_count
            window._count -= earlier.count
            window._sum -= earlier.sum
            window._invalid = max(0, window._invalid - earlier.invalid)
            if (window._counts < 0).any() or window._zero < 0 or window._count < 0:
                raise InputError("since: the earlier snapshot holds observations this one lacks")
            nonzero = np.flatnonzero(window._counts)
            factor = 2.0**-window._scale
            if window._count == 0:
                window._min, window._max, window._sum = math.inf, -math.inf, 0.0
            elif nonzero.size:
                low = 2.0 ** ((window._offset + int(nonzero[0])) * factor)
                high = 2.0 ** ((window._offset + int(nonzero[-1]) + 1) * factor)
                window._min = 0.0 if window._zero else max(later.min, low)
                window._max = min(later.max, high)
            else:  # zeros only
                window._min = window._max = 0.0
        return window.state()

    def _merge_state(self, state: LatencySketchState) -> None:
        self._absorb(
            state.offset,
            np.asarray(state.counts, dtype=np.int64),
            state.scale,
            state.zero_count,
            state.count,
            state.sum,
            state.min,
            state.max,
            state.invalid,
        )

    def state(self) -> LatencySketchState:
        """A JSON-serializable snapshot of the sketch (buffered values folded in)."""
        self._fold()
        with self._lock:
            nonzero = np.flatnonzero(self._counts)
            if nonzero.size:
                first, last = int(nonzero[0]), int(nonzero[-1])
                counts = self._counts[first : last + 1].tolist()
                offset = self._offset + first
            else:
                counts, offset = [], 0
            return LatencySketchState(
                relative_accuracy=self.relative_accuracy,
                scale=self._scale,
                offset=offset,
                counts=counts,
                zero_count=self._zero,
                count=self._count,
                sum=self._sum,
                min=self._min,
                max=self._max,
                invalid=self._invalid,
                max_buckets=self._custom_buckets,
            )

    @classmethod
    def from_state(cls, state: LatencySketchState, *, strict: bool = False) -> Self:
        """Rebuild a sketch from :meth:`state`."""
        sketch = cls(
            relative_accuracy=state.relative_accuracy,
            strict=strict,
            max_buckets=state.max_buckets,
        )
        with sketch._lock:
            sketch._merge_state(state)
        return sketch

    def copy(self) -> Self:
        """An independent copy."""
        return self.from_state(self.state(), strict=self._strict)

    def reset(self) -> None:
        """Forget every observation (keeps the configuration)."""
        with self._lock:
            del self._buf[:]
            self._scale = scale_for(self.relative_accuracy)
            self._counts = np.zeros(0, dtype=np.int64)
            self._offset = self._zero = self._count = self._invalid = 0
            self._sum, self._min, self._max = 0.0, math.inf, -math.inf

    @classmethod
    def merged(cls, sketches: Iterable[LatencySketch]) -> LatencySketch:
        """A new sketch holding the observations of all ``sketches``."""
        items = list(sketches)
        if not items:
            raise InputError("sketches: need at least one sketch to merge")
        result = LatencySketch(relative_accuracy=max(s.relative_accuracy for s in items))
        for sketch in items:
            result.merge(sketch)
        return result

    def exponential_histogram(self) -> dict[str, Any]:
        """The sketch as an OpenTelemetry ``ExponentialHistogramDataPoint`` (field names
        as in OTLP): ``scale``, ``zero_count``, ``positive`` {``offset``,
        ``bucket_counts``}, ``count``, ``sum``, ``min``, ``max``.
        """
        state = self.state()
        return {
            "scale": state.scale,
            "zero_count": state.zero_count,
            "positive": {"offset": state.offset, "bucket_counts": state.counts},
            "negative": {"offset": 0, "bucket_counts": []},
            "count": state.count,
            "sum": state.sum,
            "min": state.min if state.count else None,
            "max": state.max if state.count else None,
        }

    def __repr__(self) -> str:
        n = self.count
        if not n:
            return f"LatencySketch(relative_accuracy={self.relative_accuracy}, count=0)"
        p50, p99 = self.quantiles([0.5, 0.99])
        return (
            f"LatencySketch(relative_accuracy={self.relative_accuracy}, count={n}, "
            f"p50={p50:.4g}, p99={p99:.4g})"
        )


def quantile_interval(
    sketch: LatencySketch, q: float, confidence: float = 0.95
) -> tuple[float, float] | None:
    """Distribution-free confidence interval for the true q-quantile behind ``sketch``.

    The order-statistic interval from the counts (binomial ranks), widened
    to the edges of the buckets holding those ranks so that the sketch's own
    resolution is inside the interval too. ``None`` when there are too few
    observations for the interval to exist (e.g. < ~300 for p99 at 95%).

    Examples:
        >>> import numpy as np
        >>> s = LatencySketch()
        >>> s.add_many(np.random.default_rng(0).lognormal(np.log(0.02), 0.5, 20_000))
        >>> lo, hi = quantile_interval(s, 0.5)
        >>> lo < s.quantile(0.5) < hi, round(hi / lo, 2)
        (True, 1.03)
    """
    ranks = quantile_rank_interval(sketch.count, q, confidence)
    if ranks is None:
        return None
    return sketch.bucket_bounds(ranks[0])[0], sketch.bucket_bounds(ranks[1])[1]


def as_sketch(value: Any) -> LatencySketch | None:
    """The sketch behind ``value``: a ``LatencySketch``, its state, or anything that
    holds one as ``.sketch`` (a ``LatencyMonitor`` or its state); None otherwise.

    Examples:
        >>> s = LatencySketch()
        >>> as_sketch(s) is s, as_sketch(s.state()).count, as_sketch([0.1])
        (True, 0, None)
    """
    if not isinstance(value, LatencySketch | LatencySketchState):
        value = getattr(value, "sketch", None)
    if isinstance(value, LatencySketchState):
        return LatencySketch.from_state(value)
    return value if isinstance(value, LatencySketch) else None
