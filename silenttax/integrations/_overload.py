"""Overload: requests pile up while throughput stalls (the seed's "stability loss under
load"), judged on the middleware's latest window against its baseline window.

Little's law ties three figures of a window together: requests in flight ``L`` (request
time over wall time), throughput ``λ`` (requests over wall time) and time per request
``W = L / λ``. When traffic grows and the server keeps up, ``λ`` grows with ``L`` and
``W`` stays put. A server past its capacity cannot raise ``λ``: the extra requests wait,
so ``L`` and ``W`` grow together. The rule (``stability.overload``, WARNING):

- at least 2 requests in flight on average in the latest window (someone to wait
  behind), and at least ``factor`` (2) times the baseline's;
- and each request took at least ``factor`` times as long as in the baseline (so the
  throughput rose by at most half the rise in requests in flight).

The message splits the added time per request: outside the marked stages
(``framework``: waiting for a thread, the event loop, the GIL) and inside them (stages
slowed by contention for the cores and the GIL — or by a change of their own, which
``pipeline.stage_time`` names). A code path that got slower under closed-loop clients
keeps ``L`` where it was (the clients wait instead): that is ``pipeline.stage_time``'s
finding, not overload.

Both windows hold thousands of requests (at least ``min_requests``): a factor of 2 in
their means is far outside the few per cent they move between windows of a steady server
(the real-server test holds a steady server to OK). Figures are per worker (a fleet's
merged windows add request and wall time over its workers).

Examples:
    >>> from silenttax.trace import Breakdown
    >>> def window(requests, seconds, per_request, framework):
    ...     stages = {"framework": {"total": requests * framework},
    ...               "model": {"total": requests * (per_request - framework)}}
    ...     return Breakdown.model_validate({"requests": requests, "wall_time": seconds,
    ...         "request_total": requests * per_request, "stages": stages})
    >>> baseline = window(8_000, 10.0, 0.004, 0.001)  # 800 req/s, 3.2 in flight, 4 ms
    >>> busy = window(8_200, 10.0, 0.016, 0.013)  # 820 req/s, 13 in flight, 16 ms each
    >>> [(f.code, f.severity.value) for f in check_overload(busy, baseline)]
    [('stability.overload', 'warning')]
    >>> more = window(16_000, 10.0, 0.004, 0.001)  # twice the traffic, kept up with
    >>> check_overload(more, baseline).findings[0].severity.value
    'ok'
"""

from __future__ import annotations

import math

from silenttax.errors import InputError
from silenttax.report import Report, Severity
from silenttax.report._codes import make_finding
from silenttax.trace import Breakdown

__all__ = ["FRAMEWORK", "check_overload"]

FRAMEWORK = "framework"
"""The request span's own stage: request time outside the marked stages."""


def _figures(b: Breakdown) -> tuple[float, float, float, float]:
    """(in flight, requests/s, seconds per request, seconds outside the stages per request)."""
    framework = b.stages.get(FRAMEWORK)
    outside = framework.total / b.requests if framework is not None else 0.0
    return b.concurrency, b.requests / b.wall_time, b.request_total / b.requests, outside


def check_overload(
    latest: Breakdown,
    baseline: Breakdown,
    *,
    factor: float = 2.0,
    min_requests: int = 100,
    window: str = "the latest window",
) -> Report:
    """``stability.overload`` for the ``latest`` window against the ``baseline`` window.

    Args:
        latest: The latest window's breakdown (with wall time: runtime hints on).
        baseline: The baseline window's.
        factor: Growth of requests in flight and of time per request that is overload.
        min_requests: Fewer requests in either window: nothing is judged (no finding).
        window: What ``latest`` covers, for the message.

    Raises:
        InputError: ``factor`` below 1 or ``min_requests`` below 1.
    """
    if not (factor > 1 and math.isfinite(factor)):
        raise InputError(f"factor must be > 1, got {factor!r}")
    if min_requests < 1:
        raise InputError(f"min_requests must be >= 1, got {min_requests!r}")
    if any(b.requests < min_requests or b.wall_time <= 0 for b in (latest, baseline)):
        return Report()
    in_flight, rate, per_request, outside = _figures(latest)
    in_flight0, rate0, per_request0, outside0 = _figures(baseline)
    added = per_request - per_request0
    figures = (
        f"~{in_flight:.1f} requests in flight (baseline {in_flight0:.1f}), "
        f"{per_request * 1e3:.3g} ms each (baseline {per_request0 * 1e3:.3g} ms), "
        f"{rate:.4g} requests/s (baseline {rate0:.4g}) in {window}"
    )
    overloaded = (
        in_flight >= 2.0
        and in_flight >= factor * in_flight0
        and per_request >= factor * per_request0
    )
    waiting = min(max((outside - outside0) / added, 0.0), 1.0) if added > 0 else 0.0
    return Report(
        findings=[
            make_finding(
                "stability.overload",
                severity=Severity.WARNING if overloaded else Severity.OK,
                subject="serving",
                message=(
                    f"overloaded: {figures} — requests piled up while throughput stalled; "
                    f"of the added time, {waiting:.0%} was outside the stages (waiting for "
                    f"a thread, the event loop, the GIL) and {1 - waiting:.0%} inside them "
                    "(contention for the cores and the GIL)"
                    if overloaded
                    else figures
                ),
                metric="time_per_request_ratio",
                value=per_request / per_request0 if per_request0 > 0 else None,
                threshold=factor,
                evidence={
                    "in_flight": in_flight,
                    "baseline_in_flight": in_flight0,
                    "requests_per_second": rate,
                    "baseline_requests_per_second": rate0,
                    "seconds_per_request": per_request,
                    "baseline_seconds_per_request": per_request0,
                    "outside_stages_per_request": outside,
                    "baseline_outside_stages_per_request": outside0,
                    "added_share_outside_stages": waiting,
                    "requests": latest.requests,
                    "baseline_requests": baseline.requests,
                },
                recommendation=(
                    "Add workers or replicas, or cap concurrency (a limit that answers 503 "
                    "at once beats a queue every client times out in); for sync endpoints "
                    "size the thread pool to the cores."
                    if overloaded
                    else None
                ),
                detector="integrations.check_overload",
            )
        ]
    )
