"""Failed requests per route, judged against an error budget over the recent windows.

The middleware counts every request by route and outcome — ``2xx`` … ``5xx``,
``error`` (the application raised, or returned without a response), ``timeout`` (it
raised ``TimeoutError``: counted apart, judged as a failure) and ``cancelled`` (the
client went away: ``asyncio.CancelledError``) — in total and in
wall-clock windows (``window`` seconds, aligned across workers). The check reads
the previous and the current window, so it describes the last 5-10 minutes (by
default), not the process's life: a route that starts failing after a million clean
requests is named within a window, and one that recovered stops being named.

**The test.** Per route, the server failures (``5xx``, ``error``, ``timeout``) among the
requests served (cancelled ones left out: a client that gave up says nothing about the
service) are tested against ``budget`` with the one-sided beta-binomial mixture
e-value the canary uses (:func:`silenttax.gate.log_e_above`): under a failure rate at or
below the budget it reaches ``routes / alpha`` with probability at most
``alpha / routes``, however often the check is read within a window. A route is named
(``stability.error_rate``, WARNING) when it does **and** its observed rate is over the
budget; CRITICAL when the same test also rejects ten times the budget. So one error in
20 requests is not a verdict (the evidence is too thin: 5 in 100 against a 1% budget
is), and a rate exactly at the budget is named in at most ``alpha`` of windows. Client
errors (``4xx``) are judged the same way against their own budget and reported apart
(``stability.client_errors``, INFO): not the model's fault, but a jump in 422s is a
schema problem upstream. The interval in each message is Clopper-Pearson's at
``1 - alpha``.

**A rise against the baseline window** (:func:`check_error_rise`): a route whose failures
stay under the budget can still have risen tenfold since the process's first hour (0.05%
-> 0.5% is a new bug, not noise). Per route, the baseline's rate ``p0`` is bounded from
above by Clopper-Pearson at ``alpha / 2`` (``u``), and the recent windows are tested
against ``u`` with the same e-value at ``alpha / 2``: by the union bound a route whose
rate did not rise is named in at most ``alpha`` of windows (Bonferroni over the routes),
read as often as you like. It is named (``stability.error_rise``, WARNING) when the test
rejects **and** the observed recent rate is at least ``factor`` (2) times the baseline's,
so a rise too small to matter is not a finding however many requests show it.

Examples:
    >>> report = check_errors({"/predict": {"2xx": 950, "5xx": 50}, "/health": {"2xx": 10}})
    >>> [(f.code, f.severity.value, f.subject) for f in report]
    [('stability.error_rate', 'warning', '/predict')]
    >>> [f.code for f in check_errors({"/predict": {"2xx": 19, "5xx": 1}})]
    ['stability.error_rate']
    >>> check_errors({"/predict": {"2xx": 19, "5xx": 1}}).findings[0].severity.value
    'ok'
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from silenttax.errors import InputError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding

__all__ = [
    "CANCELLED",
    "CLIENT",
    "SERVER",
    "TIMEOUT",
    "add_counts",
    "check_error_rise",
    "check_errors",
    "roll_windows",
]

SERVER = ("5xx", "error", "timeout")
"""Outcomes that are the service's failures."""
TIMEOUT = "timeout"
"""The application raised ``TimeoutError`` (a model or a dependency that timed out)."""
CLIENT = ("4xx",)
"""Outcomes that are the client's (a bad request)."""
CANCELLED = "cancelled"
"""The client went away before the response (left out of the denominator)."""
CRITICAL_FACTOR = 10.0
"""CRITICAL when the test also rejects this many times the budget."""

Counts = dict[str, dict[str, int]]


def roll_windows(
    slot: int | None, current: Counts, previous: Counts, to: int
) -> tuple[int, Counts, Counts]:
    """The windows moved on to wall-clock slot ``to``: (slot, current, previous)."""
    if slot is None or to <= slot:
        return (to if slot is None else slot), current, previous
    return to, {}, (current if to == slot + 1 else {})


def add_counts(a: Mapping[str, Mapping[str, int]], b: Mapping[str, Mapping[str, int]]) -> Counts:
    """Route -> outcome -> count, summed."""
    out: Counts = {route: dict(outcomes) for route, outcomes in a.items()}
    for route, outcomes in b.items():
        mine = out.setdefault(route, {})
        for outcome, n in outcomes.items():
            mine[outcome] = mine.get(outcome, 0) + n
    return out


def _interval(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson interval of a binomial share at ``1 - alpha``."""
    from scipy.special import betaincinv

    low = float(betaincinv(k, n - k + 1, alpha / 2)) if k > 0 else 0.0
    high = float(betaincinv(k + 1, n - k, 1 - alpha / 2)) if k < n else 1.0
    return low, high


def _rejects(k: int, n: int, share: float, bar: float) -> bool:
    from silenttax.gate import log_e_above

    return 0 < share < 1 and float(log_e_above(k, n, share)) >= bar


def _over(
    code: str,
    severity: Severity,
    route: str,
    k: int,
    n: int,
    alpha: float,
    evidence: dict[str, object],
    *,
    what: str,
    window: str,
    bar_text: str,
    metric: str,
    threshold: float,
    recommendation: str,
) -> Finding:
    """A route whose ``k`` of ``n`` requests ``what``, over its budget, with the interval."""
    low, high = _interval(k, n, alpha)
    return make_finding(
        code,
        severity=severity,
        subject=route,
        message=(
            f"{route}: {k} of {n} requests {what} in {window}: {k / n:.2%} "
            f"[{low:.2%}, {high:.2%}], {bar_text}"
        ),
        metric=metric,
        value=k / n,
        threshold=threshold,
        evidence={**evidence, "interval": [low, high]},
        recommendation=recommendation,
        detector="integrations.check_errors",
    )


def check_errors(
    recent: Mapping[str, Mapping[str, int]],
    *,
    budget: float = 0.01,
    client_budget: float = 0.05,
    alpha: float = 0.05,
    window: str = "the recent windows",
) -> Report:
    """Judge route -> outcome -> requests (the recent windows) against the error budgets.

    Args:
        recent: Route -> outcome (``2xx`` … ``5xx``, ``error``, ``cancelled``) -> requests.
        budget: Share of server failures (``5xx``, ``error``) a route may have.
        client_budget: Share of client errors (``4xx``) before they are reported.
        alpha: False-alarm rate per window over all routes together.
        window: What ``recent`` covers, for the messages.

    Raises:
        InputError: a budget or ``alpha`` out of (0, 1).
    """
    for name, value in (("budget", budget), ("client_budget", client_budget), ("alpha", alpha)):
        if not 0 < value < 1:
            raise InputError(f"{name} must be in (0, 1), got {value!r}")
    served = {
        route: (sum(n for o, n in outcomes.items() if o != CANCELLED), outcomes)
        for route, outcomes in recent.items()
    }
    served = {route: v for route, v in served.items() if v[0] > 0}
    if not served:
        return Report()
    bar = math.log(len(served) / alpha)  # Bonferroni over the routes judged
    findings: list[Finding] = []
    failed_total = 0
    for route, (n, outcomes) in sorted(served.items()):
        failed = sum(outcomes.get(o, 0) for o in SERVER)
        client = sum(outcomes.get(o, 0) for o in CLIENT)
        failed_total += failed
        evidence = {
            "requests": n,
            "failed": failed,
            "timeouts": outcomes.get(TIMEOUT, 0),
            "client_errors": client,
            "cancelled": outcomes.get(CANCELLED, 0),
            "outcomes": dict(sorted(outcomes.items())),
            "alpha": alpha,
        }
        if failed / n > budget and _rejects(failed, n, budget, bar):
            critical = _rejects(failed, n, budget * CRITICAL_FACTOR, bar)
            findings.append(
                _over(
                    "stability.error_rate",
                    Severity.CRITICAL if critical else Severity.WARNING,
                    route,
                    failed,
                    n,
                    alpha,
                    evidence,
                    what="failed (5xx or an exception)",
                    window=window,
                    bar_text=f"over the {budget:.2%} error budget",
                    metric="error_rate",
                    threshold=budget,
                    recommendation=(
                        "Read the route's 5xx responses and exceptions in the server log; "
                        "a rise right after a deploy points at it (roll back first)."
                    ),
                )
            )
        if client / n > client_budget and _rejects(client, n, client_budget, bar):
            findings.append(
                _over(
                    "stability.client_errors",
                    Severity.INFO,
                    route,
                    client,
                    n,
                    alpha,
                    evidence,
                    what="were client errors (4xx)",
                    window=window,
                    bar_text=f"over {client_budget:.0%}",
                    metric="client_error_rate",
                    threshold=client_budget,
                    recommendation=(
                        "Not the model's fault, but many 422s mean callers send another "
                        "schema than the one served: check the upstream payloads."
                    ),
                )
            )
    if not any(f.code == "stability.error_rate" for f in findings):
        total = sum(n for n, _ in served.values())
        findings.append(
            make_finding(
                "stability.error_rate",
                severity=Severity.OK,
                subject="serving",
                message=(
                    f"{failed_total} of {total} requests failed in {window} on "
                    f"{len(served)} route(s): no route shows a failure rate over the "
                    f"{budget:.2%} budget"
                ),
                metric="error_rate",
                value=failed_total / total,
                threshold=budget,
                evidence={"requests": total, "failed": failed_total, "routes": len(served)},
                detector="integrations.check_errors",
            )
        )
    return Report(findings=findings)


def _rise(
    code: str,
    severity: Severity,
    route: str,
    recent: tuple[int, int],
    baseline: tuple[int, int],
    bars: tuple[float, float],
    factor: float,
    alpha: float,
    *,
    what: str,
    window: str,
    recommendation: str,
) -> Finding | None:
    """``route``'s recent ``k`` of ``n`` against the baseline's, or None when no rise."""
    (k, n), (k0, n0) = recent, baseline
    if n == 0 or n0 == 0 or k == 0:
        return None
    rate, rate0 = k / n, k0 / n0
    upper = _interval(k0, n0, bars[1])[1]  # one-sided: the two-sided bound at twice the level
    if rate < factor * rate0 or upper >= 1 or not _rejects(k, n, upper, bars[0]):
        return None
    low, high = _interval(k, n, alpha)
    base = f"{rate0:.3%} ({k0} of {n0})"
    return make_finding(
        code,
        severity=severity,
        subject=route,
        message=(
            f"{route}: {k} of {n} requests {what} in {window}: {rate:.3%} "
            f"[{low:.3%}, {high:.3%}], up from {base} in the baseline window"
        ),
        metric="error_rate_ratio" if code == "stability.error_rise" else "client_error_ratio",
        value=rate / rate0 if rate0 > 0 else None,
        threshold=factor,
        evidence={
            "requests": n,
            "failed": k,
            "interval": [low, high],
            "baseline_requests": n0,
            "baseline_failed": k0,
            "baseline_upper": upper,
            "alpha": alpha,
        },
        recommendation=recommendation,
        detector="integrations.check_error_rise",
    )


def check_error_rise(
    recent: Mapping[str, Mapping[str, int]],
    baseline: Mapping[str, Mapping[str, int]],
    *,
    factor: float = 2.0,
    alpha: float = 0.05,
    window: str = "the recent windows",
) -> Report:
    """Routes whose failures (and, apart, client errors) rose against the baseline window.

    Args:
        recent: Route -> outcome -> requests in the recent windows.
        baseline: The same over the baseline window (e.g. the process's first hour).
        factor: Smallest rise worth naming: the recent rate over the baseline's.
        alpha: False-alarm rate per window over all routes together.
        window: What ``recent`` covers, for the messages.

    Raises:
        InputError: ``alpha`` out of (0, 1) or ``factor`` below 1.

    Examples:
        >>> base = {"/predict": {"2xx": 99_950, "5xx": 50}}  # 0.05% in the first hour
        >>> now = {"/predict": {"2xx": 9_950, "5xx": 50}}  # 0.5%: under a 1% budget
        >>> [(f.code, f.subject) for f in check_error_rise(now, base)]
        [('stability.error_rise', '/predict')]
        >>> check_error_rise({"/predict": {"2xx": 9_995, "5xx": 5}}, base).findings
        ()
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
    if not (factor >= 1 and math.isfinite(factor)):
        raise InputError(f"factor must be >= 1, got {factor!r}")

    def split(outcomes: Mapping[str, int]) -> tuple[int, int, int]:
        n = sum(v for o, v in outcomes.items() if o != CANCELLED)
        return n, sum(outcomes.get(o, 0) for o in SERVER), sum(outcomes.get(o, 0) for o in CLIENT)

    routes = sorted(
        r for r in recent if r in baseline and split(baseline[r])[0] and split(recent[r])[0]
    )
    if not routes:
        return Report()
    level = alpha / (2 * len(routes))  # half for the baseline's bound, half for the test
    bars = (math.log(1 / level), 2 * level)
    findings: list[Finding | None] = []
    for route in routes:
        n, failed, client = split(recent[route])
        n0, failed0, client0 = split(baseline[route])
        findings += (
            _rise(
                "stability.error_rise", Severity.WARNING, route, (failed, n), (failed0, n0),
                bars, factor, alpha, what="failed (5xx or an exception)", window=window,
                recommendation=(
                    "Under the error budget but well above this route's own baseline: read "
                    "its recent 5xx and exceptions; a rise right after a deploy points at it."
                ),
            ),
            _rise(
                "stability.client_errors", Severity.INFO, route, (client, n), (client0, n0),
                bars, factor, alpha, what="were client errors (4xx)", window=window,
                recommendation=(
                    "Callers changed what they send (a jump in 422s is a schema change "
                    "upstream): compare recent payloads with the served schema."
                ),
            ),
        )  # fmt: skip
    return Report(findings=[f for f in findings if f is not None])
