"""Request-path safety shared by every recorder: reading a value without raising, and
the ``stability.*`` findings for what was refused or failed instead of raising.

A recorder (sketch, monitor, tracer, canary, middleware) never raises into the code it
observes unless it was built with ``strict=True``: a bad value is counted and dropped,
a failure of silenttax's own is counted, and its check reports both here, in the same
words whichever component it was.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from silenttax.report import Finding, Severity
from silenttax.report._codes import make_finding

__all__ = [
    "MAX_COUNT",
    "check_failed_finding",
    "count_or_none",
    "internal_error_finding",
    "invalid_input_finding",
    "seconds_or_none",
]

#: The largest count one call may add (2**53: beyond it floats lose integers).
MAX_COUNT = 2**53


def count_or_none(value: Any) -> int | None:
    """``value`` as a count (an integer in ``[0, MAX_COUNT]``, NumPy's included), else None.

    Examples:
        >>> count_or_none(3), count_or_none(-1), count_or_none(True), count_or_none(2.0)
        (3, None, None, None)
    """
    if type(value) is int:  # the common case, without the ABC checks (~1 µs a call)
        return value if 0 <= value <= MAX_COUNT else None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    n = int(value)
    return n if 0 <= n <= MAX_COUNT else None


def seconds_or_none(value: Any) -> float | None:
    """``value`` as a finite, non-negative number of seconds, else None (never raises).

    Examples:
        >>> seconds_or_none(0.5), seconds_or_none(float("nan")), seconds_or_none("1")
        (0.5, None, None)
    """
    if type(value) is float:  # the common case, without the ABC checks
        return value if 0.0 <= value < math.inf else None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        x = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return x if 0.0 <= x < math.inf else None


def invalid_input_finding(
    subject: str,
    *,
    invalid: int,
    recorded: int,
    what: str,
    detector: str,
    outcome: str = "dropped",
    recommendation: str = "Fix the code that feeds the recorder; pass strict=True to raise.",
) -> Finding:
    """The ``stability.invalid_input`` WARNING: ``invalid`` values ``what`` were refused
    (counted and ``outcome``, never raised) beside ``recorded`` accepted ones."""
    return make_finding(
        "stability.invalid_input",
        severity=Severity.WARNING,
        subject=subject,
        message=(
            f"{invalid:,} invalid {what} were counted and {outcome} instead of raised, "
            f"beside {recorded:,} recorded"
        ),
        metric="invalid_count",
        value=float(invalid),
        evidence={"invalid": invalid, "recorded": recorded},
        recommendation=recommendation,
        detector=detector,
    )


def internal_error_finding(subject: str, *, errors: int, what: str, detector: str) -> Finding:
    """The ``stability.internal_error`` WARNING: ``errors`` failures of silenttax's own
    (``what``) were counted instead of raised into the host."""
    return make_finding(
        "stability.internal_error",
        severity=Severity.WARNING,
        subject=subject,
        message=f"{errors:,} {what} failed inside silenttax and were counted instead of raised",
        metric="errors",
        value=float(errors),
        recommendation="Pass strict=True to see the error; report it if it is silenttax's.",
        detector=detector,
    )


def check_failed_finding(check: str, exc: BaseException) -> Finding:
    """The ``stability.check_failed`` WARNING: a user's check raised (or gave no Report),
    so its findings are missing; the error is named, never raised into the host."""
    return make_finding(
        "stability.check_failed",
        severity=Severity.WARNING,
        subject=check,
        message=f"the check {check!r} failed ({type(exc).__name__}: {str(exc)[:200]}); "
        "its findings are missing",
        evidence={"error": type(exc).__name__, "detail": str(exc)[:500]},
        recommendation="Fix the check (strict=True raises the error where it happens).",
        detector="component.check",
    )


SELF_SHARE = 0.02
"""``stability.self_time`` WARNING above this share of one core held by silenttax's work."""
SELF_LONGEST = 0.010
"""... or when one slice of it ran this many seconds (a request could wait that long)."""


def self_time_finding(
    parts: Mapping[str, Mapping[str, float]], wall_seconds: float, *, detector: str
) -> Finding:
    """The ``stability.self_time`` finding: silenttax's own work in a serving process.

    ``parts`` maps what ran (``background``: the snapshot and live-feature threads;
    ``request_folds``: the tracer's folds inside the request that filled its buffer) to
    :meth:`silenttax._system.SelfTime.figures`. WARNING when their CPU time is over
    ``SELF_SHARE`` of ``wall_seconds`` (time they held the interpreter, taken from the
    requests) or one slice ran ``SELF_LONGEST`` or longer; OK with the figures otherwise.

    >>> part = {"slices": 40.0, "wall_seconds": 0.2, "cpu_seconds": 0.15,
    ...         "longest_seconds": 0.02, "requests_waiting": 120.0}
    >>> f = self_time_finding({"background": part}, 600.0, detector="doc")
    >>> f.severity.value, f.metric
    ('warning', 'self_cpu_share')
    """
    cpu = sum(p.get("cpu_seconds", 0.0) for p in parts.values())
    wall = sum(p.get("wall_seconds", 0.0) for p in parts.values())
    longest = max((p.get("longest_seconds", 0.0) for p in parts.values()), default=0.0)
    waiting = sum(p.get("requests_waiting", 0.0) for p in parts.values())
    share = cpu / wall_seconds if wall_seconds > 0 else 0.0
    each = "; ".join(
        f"{name}: {int(p.get('slices', 0))} slices, {p.get('cpu_seconds', 0.0) * 1e3:.3g} ms "
        f"CPU, longest {p.get('longest_seconds', 0.0) * 1e3:.3g} ms"
        for name, p in sorted(parts.items())
        if p.get("slices")
    )
    over = share > SELF_SHARE or longest >= SELF_LONGEST
    return make_finding(
        "stability.self_time",
        severity=Severity.WARNING if over else Severity.OK,
        subject="silenttax",
        message=(
            f"silenttax's own work held the interpreter {cpu * 1e3:.3g} ms in "
            f"{wall_seconds:.3g} s ({share:.2%} of a core; longest slice "
            f"{longest * 1e3:.3g} ms of CPU, {int(waiting):,} requests in flight or arriving "
            f"meanwhile)" + (f" — {each}" if each else "")
        ),
        metric="self_cpu_share",
        value=share,
        threshold=SELF_SHARE,
        evidence={
            "cpu_seconds": cpu,
            "wall_seconds": wall,
            "longest_seconds": longest,
            "requests_waiting": waiting,
            "observed_seconds": wall_seconds,
            "parts": {name: dict(p) for name, p in parts.items()},
        },
        recommendation=(
            "Lower the live features' sample_rate or max_samples, raise check_interval and "
            "snapshot_interval, or judge the fleet out of process (silenttax report on the "
            "snapshot directory)."
            if over
            else None
        ),
        detector=detector,
    )
