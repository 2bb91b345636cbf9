"""Aggregates of traced requests: per stage and per span name, mergeable JSON state."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from silenttax._merge import ALL, EACH, FIRST, MAX, SKETCH, SUM, UNION, WeightedMean, merge
from silenttax._sketch import LatencySketch, LatencySketchState
from silenttax._state import State
from silenttax.errors import InputError

__all__ = ["Breakdown", "SpanStats", "StageStats"]

_QS = (0.5, 0.95, 0.99)


def _empty_sketch() -> LatencySketchState:
    return LatencySketch().state()


def _quantiles(sketch: LatencySketchState) -> dict[str, float]:
    if not sketch.count:
        return {}
    values = LatencySketch.from_state(sketch).quantiles(_QS)
    return {f"p{q * 100:g}": float(v) for q, v in zip(_QS, values, strict=True)}


class StageStats(BaseModel):
    """Time a stage takes per request (self time of its spans, summed per request)."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    spans: Annotated[int, SUM] = 0
    """Spans with this stage."""
    requests: Annotated[int, SUM] = 0
    """Requests with at least one span of this stage."""
    total: Annotated[float, SUM] = 0.0
    """Self time of the stage over all requests, seconds."""
    total_sq: Annotated[float, SUM] = 0.0
    """Sum over requests of the squared per-request stage time (for the variance)."""
    gc_total: Annotated[float, SUM] = 0.0
    """Garbage-collection pauses inside the stage's self time, seconds (runtime hints)."""
    sketch: Annotated[LatencySketchState, SKETCH] = Field(default_factory=_empty_sketch)
    """Per-request stage time (requests that have the stage), seconds."""

    def merged(self, other: StageStats) -> StageStats:
        """Stats over both sets of requests."""
        return merge(self, other)


class SpanStats(BaseModel):
    """Durations of the spans with one name."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    stage: Annotated[str, FIRST]
    """The span's stage (the last one seen if it varies)."""
    count: Annotated[int, SUM] = 0
    """Spans with this name."""
    errors: Annotated[int, SUM] = 0
    """Of which ended with an exception."""
    total: Annotated[float, SUM] = 0.0
    """Sum of their durations, seconds."""
    self_total: Annotated[float, SUM] = 0.0
    """Sum of their self times (duration minus children), seconds."""
    first: Annotated[float | None, FIRST] = None
    """Duration of the first span with this name seen by the tracer (warm-up)."""
    first_self: Annotated[float | None, FIRST] = None
    """Self time of that first span."""
    sketch: Annotated[LatencySketchState, SKETCH] = Field(default_factory=_empty_sketch)
    """Their durations, seconds."""

    def merged(self, other: SpanStats) -> SpanStats:
        """Stats over both sets of spans (the first one's stage and first call)."""
        return merge(self, other)


class Breakdown(State):
    """Where request time goes, aggregated over every recorded request.

    Stage figures use **self time** (a span's duration minus its children's),
    so nested spans are not counted twice and the stage totals add up to the
    request total. The tracer's own measured cost per span is subtracted
    before anything is aggregated. Breakdowns are JSON (``save``/``load``)
    and merge across processes and replicas with :meth:`merge`.

    Examples:
        >>> from silenttax.trace import Tracer
        >>> tracer = Tracer()
        >>> for _ in range(3):
        ...     with tracer.span("predict"):
        ...         with tracer.span("forward", stage="model"):
        ...             pass
        >>> b = tracer.breakdown()
        >>> b.requests, sorted(b.stages), 0 <= b.model_share <= 1
        (3, ['model', 'predict'], True)
    """

    KIND: ClassVar[str] = "silenttax.trace_breakdown"

    requests: Annotated[int, SUM] = 0
    """Requests (top-level spans) aggregated."""
    request_total: Annotated[float, SUM] = 0.0
    """Sum of request durations, seconds."""
    request_sketch: Annotated[LatencySketchState, SKETCH] = Field(default_factory=_empty_sketch)
    """Request durations, seconds."""
    stages: Annotated[dict[str, StageStats], EACH] = Field(default_factory=dict)
    """Per stage: self time per request."""
    spans: Annotated[dict[str, SpanStats], EACH] = Field(default_factory=dict)
    """Per span name: durations."""
    model_stages: Annotated[list[str], UNION] = Field(default_factory=lambda: ["model"])
    """Stages that count as model time."""
    overhead_per_span: Annotated[float, WeightedMean("weighted", weight="requests")] = 0.0
    """The tracer's own cost per span (seconds) that was subtracted."""
    runtime_hints: Annotated[bool, ALL] = False
    """Whether GC pauses, CPU time and threads were recorded (the fields below)."""
    wall_time: Annotated[float, SUM] = 0.0
    """Wall time the tracer has been recording (since creation or reset), seconds."""
    cpu_time: Annotated[float, SUM] = 0.0
    """Process CPU time (all threads) over that wall time, seconds."""
    cores: Annotated[int, MAX] = 0
    """CPUs the process may use (its affinity)."""
    max_threads: Annotated[int, MAX] = 0
    """Most OS threads seen in the process."""
    intra_op_threads: Annotated[int | None, MAX] = None
    """Threads one model call may use (torch's setting, or ``OMP_NUM_THREADS``), if known."""

    @property
    def busy_cores(self) -> float:
        """CPU time over wall time: how many cores' worth the process kept busy."""
        return self.cpu_time / self.wall_time if self.wall_time > 0 else 0.0

    @property
    def concurrency(self) -> float:
        """Mean requests in flight (request time over wall time, Little's law)."""
        return self.request_total / self.wall_time if self.wall_time > 0 else 0.0

    @property
    def gc_total(self) -> float:
        """Garbage-collection pauses inside requests, seconds."""
        return sum(s.gc_total for s in self.stages.values())

    @property
    def model_time(self) -> float:
        """Total self time in model stages, seconds."""
        return sum(s.total for name, s in self.stages.items() if name in self.model_stages)

    @property
    def attributed_total(self) -> float:
        """Sum of every stage's self time, seconds: the request time, attributed.

        Equal to :attr:`request_total` up to the overhead correction (a span's
        self time is never negative), so shares always add up to exactly 1.
        """
        return sum(s.total for s in self.stages.values())

    @property
    def model_share(self) -> float:
        """Share of request time spent in model stages (0 when nothing was recorded)."""
        total = self.attributed_total
        return self.model_time / total if total > 0 else 0.0

    def share(self, stage: str) -> float:
        """Share of request time spent in ``stage`` (self time)."""
        stats = self.stages.get(stage)
        total = self.attributed_total
        if stats is None or total <= 0:
            return 0.0
        return stats.total / total

    def per_request(self, stage: str) -> float:
        """Mean self time of ``stage`` per request, seconds (requests without it count 0)."""
        stats = self.stages.get(stage)
        return stats.total / self.requests if stats and self.requests else 0.0

    def merge(self, other: Breakdown) -> Breakdown:
        """A breakdown over the requests of both (e.g. two replicas), field by field as
        declared (sums, sketch merges, unions, the larger core count...).

        Raises:
            InputError: ``other`` is not a Breakdown.
        """
        if not isinstance(other, Breakdown):
            raise InputError(f"can only merge a Breakdown, got {type(other).__name__}")
        return merge(self, other)

    def table(self) -> list[dict[str, Any]]:
        """One row per stage: share, mean per request and p50/p95/p99 (seconds)."""
        rows = []
        for name, stats in sorted(self.stages.items(), key=lambda kv: -kv[1].total):
            rows.append(
                {
                    "stage": name,
                    "share": self.share(name),
                    "per_request": self.per_request(name),
                    "requests": stats.requests,
                    "spans": stats.spans,
                    **_quantiles(stats.sketch),
                }
            )
        return rows

    def quantiles(self, stage: str | None = None) -> dict[str, float]:
        """p50/p95/p99 of request time (``stage=None``) or of one stage's time per request."""
        if stage is None:
            return _quantiles(self.request_sketch)
        stats = self.stages.get(stage)
        return _quantiles(stats.sketch) if stats else {}

    @classmethod
    def merged(cls, breakdowns: list[Breakdown]) -> Self:
        """One breakdown over several."""
        if not breakdowns:
            raise InputError("breakdowns: need at least one")
        result = breakdowns[0]
        for other in breakdowns[1:]:
            result = result.merge(other)
        return result if isinstance(result, cls) else cls.model_validate(result.model_dump())

    def mean_ci(self, stage: str, z: float = 1.959963984540054) -> tuple[float, float] | None:
        """Normal-approximation CI for the mean stage time per request, seconds
        (None with fewer than 2 requests)."""
        stats = self.stages.get(stage)
        if stats is None or self.requests < 2:
            return None
        mean = stats.total / self.requests
        var = max(0.0, stats.total_sq / self.requests - mean * mean)
        half = z * math.sqrt(var / self.requests)
        return mean - half, mean + half
