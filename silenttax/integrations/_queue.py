"""Queueing, told apart from framework work: how long requests wait before their handler.

The middleware notes, per request, the seconds from its arrival to the handler's first
``silenttax.stage()`` (``HANDLER`` in :mod:`silenttax._current`). That time is the
framework's own work before the handler (routing, reading and validating the body) plus
waiting: for a thread-pool thread (sync endpoints), for the event loop, for the GIL.
The framework's own part is what a request that arrived alone needed (the median over
those; the fastest 5% of all requests when too few arrived alone); the rest of the
mean is queueing. Under 1 connection it is about zero; under 16 on 2 cores with a
CPU-bound handler it is most of the request.
"""

from __future__ import annotations

from silenttax._sketch import LatencySketch
from silenttax.report import Report, Severity
from silenttax.report._codes import make_finding
from silenttax.report._render import format_duration
from silenttax.trace import Breakdown

__all__ = ["MIN_REQUESTS", "check_queueing"]

MIN_REQUESTS = 50
"""Requests with a marked stage before queueing is judged."""
MIN_ALONE = 20
"""Requests that arrived alone before their median stands for the framework's own part."""


def check_queueing(
    before: LatencySketch,
    alone: LatencySketch,
    breakdown: Breakdown,
    *,
    max_share: float = 0.2,
    min_seconds: float = 0.5e-3,
) -> Report:
    """``pipeline.queueing``: the share of request time spent waiting before the handler.

    WARNING when the mean wait is at least ``min_seconds`` and ``max_share`` of request
    time or more; otherwise OK. Nothing before :data:`MIN_REQUESTS` requests with a
    marked stage (the middleware cannot see where a handler without one starts).
    """
    n = before.count
    if n < MIN_REQUESTS or breakdown.request_total <= 0:
        return Report()
    if alone.count >= MIN_ALONE:
        own, basis = alone.quantile(0.5), f"{alone.count:,} requests that arrived alone"
    else:
        own, basis = before.quantile(0.05), "the fastest 5% of requests"
    wait = max(0.0, before.mean - own)
    share = min(1.0, wait * n / breakdown.request_total)
    bad = share >= max_share and wait >= min_seconds
    return Report(
        findings=[
            make_finding(
                "pipeline.queueing",
                severity=Severity.WARNING if bad else Severity.OK,
                subject="request",
                message=(
                    f"requests waited {format_duration(wait)} on average before their handler "
                    f"started, beyond the framework's own {format_duration(own)} (the median "
                    f"of {basis}): {share:.0%} of request time is queueing — for a worker "
                    "thread, the event loop or the GIL — not framework work"
                ),
                metric="queue_share",
                value=share,
                threshold=max_share,
                evidence={
                    "mean_wait_seconds": wait,
                    "framework_seconds": own,
                    "requests": n,
                    "requests_alone": alone.count,
                    "p50_before_handler_seconds": before.quantile(0.5),
                },
                recommendation=(
                    "Requests queue for the process: add worker processes, lower the "
                    "concurrency each worker accepts (a limit in the server or proxy), or "
                    "move CPU-bound work out of the GIL (a model runtime that releases it, "
                    "a process pool)."
                    if bad
                    else None
                ),
                detector="integrations.SilentTaxMiddleware",
            )
        ]
    )
