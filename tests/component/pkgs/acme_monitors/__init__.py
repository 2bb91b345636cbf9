"""A user's own monitors, written only against silenttax's public names (outside the
silenttax package: what a company's monitoring package looks like).

``QueueDepth`` records the request queue's depth per request; its check says when more
than ``budget`` of the requests waited behind more than ``limit`` others (an exact
binomial test, so a quiet queue raises nothing at the stated false-alarm rate).
``slow_routes`` is a check function over snapshots by name.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from scipy import stats

from silenttax.component import SAME, SUM, State, Stateful, merge_states, register, register_code
from silenttax.errors import InputError
from silenttax.report import Report, make_finding

register_code(
    "acme.queue_depth",
    "acme.capacity",
    "More requests waited behind a deep queue than the budget allows.",
    recommendation="Add a replica or shed load before the queue grows.",
)
register_code("acme.slow_route", "latency", "A route whose median is over 50 ms.")


class QueueDepthState(State):
    KIND: ClassVar[str] = "acme.queue_depth"

    params: Annotated[dict[str, float], SAME]
    requests: Annotated[int, SUM] = 0
    deep: Annotated[int, SUM] = 0
    invalid: Annotated[int, SUM] = 0


@register("acme.queue_depth")
class QueueDepth(Stateful[QueueDepthState]):
    """Queue depth seen by each request."""

    STATE: ClassVar[type[State]] = QueueDepthState

    def __init__(self, *, limit: int = 8, budget: float = 0.05, alpha: float = 0.01) -> None:
        if limit < 1 or not 0 < budget < 1 or not 0 < alpha < 1:
            raise InputError("limit >= 1, budget and alpha in (0, 1)")
        self.limit, self.budget, self.alpha = limit, budget, alpha
        self.requests = self.deep = self.invalid = 0
        self._lock = threading.Lock()

    def record(self, depth: Any) -> None:
        """One request's queue depth (never raises: a bad value is counted)."""
        try:
            value = float(depth)
        except (TypeError, ValueError):
            value = math.nan
        with self._lock:
            if not (value >= 0 and math.isfinite(value)):
                self.invalid += 1
                return
            self.requests += 1
            self.deep += value > self.limit

    def state(self) -> QueueDepthState:
        with self._lock:
            return QueueDepthState(
                params={"limit": self.limit, "budget": self.budget, "alpha": self.alpha},
                requests=self.requests,
                deep=self.deep,
                invalid=self.invalid,
            )

    @classmethod
    def from_state(cls, state: QueueDepthState) -> Self:
        queue = cls(limit=int(state.params["limit"]), budget=state.params["budget"],
                    alpha=state.params["alpha"])  # fmt: skip
        queue.requests, queue.deep, queue.invalid = state.requests, state.deep, state.invalid
        return queue

    def merge(self, other: QueueDepth | QueueDepthState) -> Self:
        theirs = other.state() if isinstance(other, QueueDepth) else other
        merged = merge_states(self.state(), theirs)
        with self._lock:
            self.requests, self.deep, self.invalid = merged.requests, merged.deep, merged.invalid
        return self

    def check(self) -> Report:
        state = self.state()
        n, k = state.requests, state.deep
        p = float(stats.binomtest(k, n, self.budget, alternative="greater").pvalue) if n else 1.0
        bad = p < self.alpha
        return Report(findings=[make_finding(
            "acme.queue_depth",
            severity="warning" if bad else "ok",
            subject="queue",
            message=f"{k} of {n} requests waited behind more than {self.limit} "
            f"(budget {self.budget:.0%}, p = {p:.2g})",
            metric="deep_share",
            value=k / n if n else 0.0,
            threshold=self.budget,
            p_value=p,
        )])  # fmt: skip

    def gauges(self) -> dict[str, float]:
        return {"requests": float(self.requests), "deep": float(self.deep)}


def slow_routes(snapshots: Mapping[str, Any]) -> Report:
    """A check function: routes whose median is over 50 ms, from the serving snapshot
    (a middleware) when there is one."""
    serving = snapshots.get("serving")
    findings = []
    if serving is not None:
        for route, monitor in sorted(serving.latency().items()):
            p50 = monitor.sketch.quantile(0.5) if monitor.sketch.count else 0.0
            findings.append(make_finding(
                "acme.slow_route", severity="warning" if p50 > 0.05 else "ok",
                subject=route, message=f"median {p50 * 1e3:.1f} ms", value=p50, threshold=0.05,
                unit="s",
            ))  # fmt: skip
    return Report(findings=findings)


def snapshot_count(snapshots: Mapping[str, Any]) -> Report:
    """A check function for an audit: says how many snapshots it was given."""
    return Report(findings=[make_finding(
        "acme.slow_route", severity="ok", subject="audit",
        message=f"{len(snapshots)} snapshots: {', '.join(sorted(snapshots))}",
        value=float(len(snapshots)),
    )])  # fmt: skip


def broken(snapshots: Mapping[str, Any]) -> Report:
    """A check with a bug of its own."""
    raise ZeroDivisionError("acme's bug")
