"""The open-loop generator: a seeded schedule, every due request sent, each timed three ways.

Closed-loop tools (wrk, hey, locust, a ``for`` loop) send the next request when the last
one returns, so a stalled server is asked less and its stall hides in a handful of slow
samples: *coordinated omission*. Here the schedule is fixed before the run (Poisson or
constant gaps from a seed), a dispatcher sleeps to the next arrival and sends every
request that is due — never waiting for a response — and each request is timed from
its **intended** send:

- intended -> start: the generator's own lag (sleep overshoot, thread hand-off);
- start -> end: the service time;
- intended -> end: what a client sees — the latency every verdict uses.

The generator times its own lateness and declares a run **invalid** (generator-bound)
when that lag is a material share of what is measured, instead of charging it to the
model.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from silenttax._contention import Load, Sensor
from silenttax.errors import InputError
from silenttax.load._target import _NONE, Target, as_target

OK, ERROR, CLIENT_ERROR, TIMEOUT, OVERFLOW = 0, 1, 2, 3, 4
OUTCOMES = ("ok", "error", "client_error", "timeout", "overflow")
_LEAD = 0.05  # seconds between starting the dispatcher and the first intended send

Array = np.ndarray[Any, Any]


def schedule(rate: float, duration: float, *, arrival: str = "poisson", seed: int = 0) -> Array:
    """Intended send times (seconds from the start) of a run: ``rate`` per second for
    ``duration`` seconds, Poisson (exponential gaps) or constant, from ``seed``.

    >>> schedule(100, 1, arrival="constant")[:3]
    array([0.  , 0.01, 0.02])
    >>> len(schedule(1000, 2, seed=1)) in range(1800, 2200)
    True
    """
    if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
        raise InputError(f"rate must be a positive number of requests per second, got {rate!r}")
    if not (isinstance(duration, int | float) and math.isfinite(duration) and duration > 0):
        raise InputError(f"duration must be positive seconds, got {duration!r}")
    if arrival == "constant":
        return np.arange(int(rate * duration)) / rate
    if arrival != "poisson":
        raise InputError(f"arrival must be 'poisson' or 'constant', got {arrival!r}")
    rng = np.random.default_rng(seed)
    n = int(rate * duration * 1.2 + 10 * math.sqrt(rate * duration) + 10)
    times = np.cumsum(rng.exponential(1.0 / rate, n))
    times -= times[0]  # the first request goes at once
    return times[times < duration]


@dataclass
class _Timings:
    start: Array
    end: Array
    outcome: Array
    empty: Array  # nothing in flight when the request was sent: a regeneration point
    generator_cpu: float


def _blank(n: int) -> _Timings:
    return _Timings(np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, np.int8),
                    np.zeros(n, bool), 0.0)  # fmt: skip


def _timer_slack(nanoseconds: int | None) -> int | None:
    """Set this thread's Linux timer slack (``prctl(PR_SET_TIMERSLACK)``); returns the
    previous one, or None where it cannot be set. The default 50 µs slack is how late a
    sleeping dispatcher may be woken: 1 ns took the median sleep overshoot from ~74 to
    ~43 µs here."""
    import sys

    if nanoseconds is None or not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        before = int(libc.prctl(30, 0, 0, 0, 0))  # PR_GET_TIMERSLACK
        if before < 0 or libc.prctl(29, nanoseconds, 0, 0, 0) != 0:  # PR_SET_TIMERSLACK
            return None
        return before
    except (OSError, AttributeError, ValueError):
        return None


def _drive_threads(
    call: Callable[[int], Any], offsets: Array, timeout: float, max_in_flight: int
) -> _Timings:
    """Send every request on a thread pool from a sleeping dispatcher (this thread)."""
    n = len(offsets)
    t = _blank(n)
    lock = threading.Lock()
    in_flight = [0]
    base = [0.0]

    def one(i: int) -> None:
        s = time.perf_counter()
        t.start[i] = s - base[0]
        try:
            call(i)
            outcome = OK
        except Exception:
            outcome = ERROR
        t.end[i] = time.perf_counter() - base[0]
        t.outcome[i] = outcome
        with lock:
            in_flight[0] -= 1

    pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="silenttax-load")
    slack = _timer_slack(1)  # the caller's thread dispatches: its slack is restored below
    try:
        cpu = time.thread_time()
        base[0] = time.perf_counter() + _LEAD
        for i in range(n):
            delay = base[0] + offsets[i] - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with lock:
                if in_flight[0] >= max_in_flight:
                    t.outcome[i] = OVERFLOW
                    continue
                t.empty[i] = in_flight[0] == 0
                in_flight[0] += 1
            pool.submit(one, i)
        t.generator_cpu = time.thread_time() - cpu
        # the requests still running count as timed out after ``timeout``, but they still
        # occupy the target: wait up to another ``timeout`` for them to drain, so the
        # next run (a probe, the other arm of a comparison) does not start on a backlog
        deadline = base[0] + (offsets[-1] if n else 0.0) + 2 * timeout
        while in_flight[0] > 0 and time.perf_counter() < deadline:
            time.sleep(0.005)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        _timer_slack(slack)
    return t


def _drive_async(
    request: Callable[[int], Coroutine[Any, Any, int]], offsets: Array, timeout: float,
    max_in_flight: int, setup: Callable[[], Any] | None = None,
) -> _Timings:  # fmt: skip
    """Send every request as a task of an event loop on its own thread (uvloop if
    installed); ``request(i)`` returns a status (>= 500: error, >= 400: client error)."""
    n = len(offsets)
    t = _blank(n)
    failure: list[BaseException] = []

    async def main() -> None:
        closing = setup() if setup is not None else None
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        in_flight = 0

        async def one(i: int, due: float) -> None:
            nonlocal in_flight
            s = time.perf_counter()
            t.start[i] = s - base
            try:
                status = await asyncio.wait_for(request(i), max(1e-3, timeout - (s - due)))
                outcome = OK if status < 400 else CLIENT_ERROR if status < 500 else ERROR
            except TimeoutError:
                outcome = TIMEOUT
            except Exception:
                outcome = ERROR
            t.end[i] = time.perf_counter() - base
            t.outcome[i] = outcome
            in_flight -= 1

        def launch(i: int) -> None:  # on the loop: one request due now
            nonlocal in_flight
            if in_flight >= max_in_flight:
                t.outcome[i] = OVERFLOW
                return
            t.empty[i] = in_flight == 0
            in_flight += 1
            task = loop.create_task(one(i, base + offsets[i]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        finished = asyncio.Event()
        cpu = [0.0]

        def dispatcher() -> None:
            # a sleeping thread keeps the schedule (the loop's own timers round up to
            # whole milliseconds) and hands each due request to the loop at once
            _timer_slack(1)
            start_cpu = time.thread_time()
            for i in range(n):
                delay = base + offsets[i] - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                loop.call_soon_threadsafe(launch, i)
            cpu[0] = time.thread_time() - start_cpu
            loop.call_soon_threadsafe(finished.set)

        base = time.perf_counter() + _LEAD
        sender = threading.Thread(target=dispatcher, name="silenttax-load-dispatch", daemon=True)
        sender.start()
        await finished.wait()
        sender.join()
        if tasks:
            await asyncio.wait(set(tasks), timeout=timeout + 1.0)
        for task in list(tasks):
            task.cancel()
        t.generator_cpu = cpu[0]
        if closing is not None:
            closing()

    def thread() -> None:
        try:
            try:
                import uvloop  # type: ignore[import-not-found,unused-ignore]

                uvloop.run(main())
            except ImportError:
                asyncio.run(main())
        except BaseException as exc:  # reported in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=thread, name="silenttax-load-http", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return t


def _drive(target: Target, offsets: Array, timeout: float, max_in_flight: int) -> _Timings:
    if target.kind == "http":
        from silenttax.load._http import Client, encode

        assert target.url is not None
        bodies = [encode(None if item is _NONE else item) for item in target.payloads]
        client = Client(target.url)

        async def request(i: int) -> int:
            return await client.request(*bodies[i % len(bodies)])

        return _drive_async(request, offsets, timeout, max_in_flight,
                            setup=lambda: client.close)  # fmt: skip
    call = target.call
    assert call is not None
    return _drive_threads(lambda i: call(target.item(i)), offsets, timeout, max_in_flight)


def _null_lag(kind: str, rate: float, seconds: float, max_in_flight: int) -> Array:
    """The generator's lag alone at ``rate`` (a target that does nothing): its floor here."""
    offsets = schedule(rate, seconds, seed=12345)
    if kind == "http":

        async def nothing(_i: int) -> int:
            return 200

        t = _drive_async(nothing, offsets, 1.0, max_in_flight)
    else:
        t = _drive_threads(lambda _i: None, offsets, 1.0, max_in_flight)
    return np.asarray(t.start - offsets)


def warmup_end(values: Array, *, batch: int = 5) -> int:
    """Where a warm-up ends in a series: MSER-5 (White, 1997), the truncation that
    minimises the squared standard error of the mean of what is left.

    The series is cut into batch means of ``batch``; the first ``d`` batches are dropped
    where ``sum((z[d:] - mean(z[d:]))**2) / (m - d)**2`` is least, searched over the first
    half only (MSER's end effect). On simulated M/M/1 at utilisation 0.3-0.85 (3,000
    requests, log latencies) it cut a median of 0-5 requests from a stationary run (90th
    percentile 15-36) and every request of a 200-request 5x-slow start at utilisation
    0.3-0.6. Returns the number of leading values to drop (0 for fewer than 10 batches).

    >>> x = np.r_[np.full(100, 10.0), np.random.default_rng(0).normal(1, 0.1, 900)]
    >>> warmup_end(x)
    100
    """
    x = np.asarray(values, float)
    m = x.size // batch
    if m < 10:
        return 0
    z = x[: m * batch].reshape(m, batch).mean(axis=1)
    tail = z[::-1]
    s1 = np.cumsum(tail)[::-1]
    s2 = np.cumsum(tail * tail)[::-1]
    k = np.arange(m, 0, -1, dtype=float)
    stat = (s2 - s1 * s1 / k) / (k * k)
    return int(np.argmin(stat[: m // 2 + 1])) * batch


def _auto_warmup(intended: Array, timings: _Timings, timeout: float) -> float:
    """Seconds of schedule before the warm-up ends (MSER-5 on log latencies; a request
    that did not end counts at the timeout)."""
    lat = np.where(np.isfinite(timings.end), timings.end - intended, timeout)
    lat = np.clip(lat, 1e-7, timeout)
    cut = warmup_end(np.log(lat))
    return float(intended[cut]) if cut else 0.0


@dataclass(frozen=True)
class Exceedance:
    """A bound on the share of requests over a latency limit (failures count as over).

    ``clusters``: the regeneration cycles (from a request sent to an empty system to the
    next) that held at least one exceedance — slow requests come in clumps, and the
    information is in the number of clumps, not of requests.
    """

    share: float
    low: float
    high: float
    requests: int
    exceeding: int
    clusters: int


MIN_CLUSTERS = 10  # fewer clusters: the mean cluster size is not estimated, its worst is used


def exceedance_bound(over: Array, empty: Array, *, alpha: float = 0.05) -> Exceedance:
    """One-sided ``1 - alpha`` bounds on P(a request exceeds), cluster-aware.

    The requests are cut into regeneration cycles at every request sent while nothing
    was in flight (the system is then empty: what follows does not depend on what came
    before). Exceedances come in clusters (the cycles holding any); their number is
    Poisson and their sizes i.i.d., so the bound is the product of an exact Poisson bound
    on the number of clusters and a Student-t bound on their mean size, each at
    ``alpha / 2``. With fewer than ``MIN_CLUSTERS`` clusters the mean size is not
    estimated: the largest cluster, or the size of the cycle a random request falls in
    (the size-biased mean cycle size) if larger, stands in; with none, the rule of three
    times that size. On simulated M/M/1 at utilisation 0.3-0.7 (3,000-10,000 requests,
    truths 0.2-2%) the upper bound covered the truth in 98-100% of runs, where the i.i.d.
    binomial bound covers 58-82% (the tests hold it to >= 93%).

    >>> over = np.array([0, 0, 1, 1, 0, 0, 0, 0] * 50, bool)
    >>> empty = np.array([1, 0, 0, 0, 1, 0, 1, 0] * 50, bool)
    >>> b = exceedance_bound(over, empty)
    >>> b.share, b.clusters, b.low < b.share < b.high
    (0.25, 50, True)
    """
    from scipy.special import gammaincinv
    from scipy.stats import t as student

    over = np.asarray(over, bool)
    n = int(over.size)
    if n == 0:
        return Exceedance(math.nan, 0.0, 1.0, 0, 0, 0)
    cycle = np.cumsum(np.asarray(empty, bool))
    cycle -= cycle[0] - 1 if cycle[0] == 0 else 0
    sizes = np.bincount(cycle)
    sizes = sizes[sizes > 0]
    per = np.bincount(cycle, weights=over.astype(float))
    per = per[per > 0]
    total, clusters = float(over.sum()), int(per.size)
    # the cycle a random request falls in (size-biased mean): where a cluster would be
    typical = float((sizes.astype(float) ** 2).sum() / sizes.sum())
    worst = max(typical, float(per.max()) if clusters else 1.0)
    half = alpha / 2
    if clusters >= MIN_CLUSTERS:
        mean, spread = float(per.mean()), float(per.std(ddof=1)) / math.sqrt(clusters)
        t = float(student.ppf(1 - half, clusters - 1))
        high = float(gammaincinv(clusters + 1, 1 - half)) * (mean + t * spread)
        low = float(gammaincinv(clusters, half)) * max(1.0, mean - t * spread)
    elif clusters:
        high = float(gammaincinv(clusters + 1, 1 - half)) * worst
        low = float(gammaincinv(clusters, half))
    else:
        high = -math.log(alpha) * worst
        low = 0.0
    return Exceedance(total / n, min(low, total) / n, min(1.0, max(high, total) / n), n,
                      int(total), clusters)  # fmt: skip


class LoadRun:
    """One open-loop run: every request's three timings and outcome, and the verdict
    on the generator itself.

    Times are seconds from the run's start; ``latencies`` (intended send -> end, what
    a client sees) holds every request after the warm-up: a timeout or a request the
    generator could not send (over ``max_in_flight``) is ``inf`` — failures never leave
    the percentiles.
    """

    def __init__(self, *, target: str, kind: str, rate: float, duration: float,
                 arrival: str, seed: int, timeout: float, warmup: float, intended: Array,
                 timings: _Timings, null_lag: Array | None, load: Load | None,
                 max_lag: float | None) -> None:  # fmt: skip
        self.target = target
        self.kind = kind
        self.rate = float(rate)
        self.duration = float(duration)
        self.arrival = arrival
        self.seed = seed
        self.timeout = float(timeout)
        self.warmup = float(warmup)
        self.load = load
        keep = intended >= warmup
        self.intended = intended[keep]
        self.start = timings.start[keep]
        self.end = timings.end[keep]
        self.outcome = timings.outcome[keep]
        self.empty = timings.empty[keep]
        late = ~np.isfinite(self.end) | (self.end - self.intended > self.timeout)
        self.outcome[late & (self.outcome != OVERFLOW)] = TIMEOUT
        self.generator_cpu = timings.generator_cpu
        self.null_lag = null_lag
        self._max_lag = max_lag

    # ------------------------------------------------------------------ figures
    @property
    def latencies(self) -> Array:
        """Intended send -> end, seconds, per request (``inf``: timed out or not sent)."""
        out = self.end - self.intended
        out[(self.outcome == TIMEOUT) | (self.outcome == OVERFLOW)] = math.inf
        return out

    @property
    def service(self) -> Array:
        """Start -> end, seconds, of the requests that ended."""
        done = np.isfinite(self.end) & np.isfinite(self.start)
        return (self.end - self.start)[done]

    @property
    def lag(self) -> Array:
        """Intended -> start, seconds: the generator's lateness, per request sent."""
        sent = np.isfinite(self.start)
        return (self.start - self.intended)[sent]

    def quantile(self, q: float) -> float:
        """A quantile of :attr:`latencies` (``inf`` when failures reach it)."""
        lat = self.latencies
        if not lat.size:
            return math.nan
        return float(np.quantile(lat, q, method="higher"))

    @property
    def p50(self) -> float:
        return self.quantile(0.5)

    @property
    def p99(self) -> float:
        """The 99th percentile of what clients saw (seconds; ``inf`` if failures reach it)."""
        return self.quantile(0.99)

    @property
    def requests(self) -> int:
        return int(self.intended.size)

    def counts(self) -> dict[str, int]:
        """Requests by outcome (``ok``, ``error``, ``client_error``, ``timeout``, ``overflow``)."""
        found = np.bincount(self.outcome.astype(np.int64), minlength=len(OUTCOMES))
        return {name: int(found[i]) for i, name in enumerate(OUTCOMES)}

    @property
    def failures(self) -> int:
        """Requests that did not succeed (errors, 4xx, timeouts, not sent)."""
        return int((self.outcome != OK).sum())

    @property
    def achieved(self) -> float:
        """Requests completed per second over the measured span."""
        span = self.duration - self.warmup
        ended = np.isfinite(self.end) & (self.end <= self.duration + self.timeout)
        return float(ended.sum() / span) if span > 0 else math.nan

    @property
    def offered(self) -> float:
        """Requests scheduled per second over the measured span."""
        span = self.duration - self.warmup
        return self.requests / span if span > 0 else math.nan

    @property
    def longest_busy(self) -> float:
        """Seconds of the longest regeneration cycle (from a request sent to an empty
        system to the last end before the next such request): a queue that never
        empties across a large share of the run is not stable at this rate."""
        if not self.requests:
            return 0.0
        cycle = np.cumsum(self.empty)
        ends = np.where(np.isfinite(self.end), self.end, self.intended + self.timeout)
        first = np.full(int(cycle.max()) + 1, np.inf)
        last = np.full(int(cycle.max()) + 1, -np.inf)
        np.minimum.at(first, cycle, self.intended)
        np.maximum.at(last, cycle, ends)
        spans = last - first
        return float(spans[np.isfinite(spans)].max(initial=0.0))

    def exceedance(self, limit: float, *, alpha: float = 0.05) -> Exceedance:
        """Cluster-aware bounds on P(latency > ``limit``) (see :func:`exceedance_bound`)."""
        return exceedance_bound(~(self.latencies <= limit), self.empty, alpha=alpha)

    # ------------------------------------------------------------------ validity
    @property
    def max_lag(self) -> float:
        """The generator lag (p99) above which this run is invalid: the one given, else
        10% of the run's p99 latency and at least 1 ms."""
        if self._max_lag is not None:
            return self._max_lag
        p99 = self.quantile(0.99)
        return max(1e-3, 0.1 * p99) if math.isfinite(p99) else 1e-3

    @property
    def lag_p99(self) -> float:
        lag = self.lag
        return float(np.quantile(lag, 0.99)) if lag.size else math.nan

    @property
    def valid(self) -> bool:
        """False when the generator could not keep its own schedule (generator-bound)."""
        return not (self.lag_p99 > self.max_lag)

    def figures(self) -> dict[str, Any]:
        """Plain figures (for JSON, a finding's evidence, the CLI)."""
        lag = self.lag
        service = self.service
        null = self.null_lag

        def q(a: Array, p: float) -> float | None:
            return float(np.quantile(a, p)) if a.size else None

        return {
            "target": self.target,
            "kind": self.kind,
            "rate": self.rate,
            "offered": self.offered,
            "achieved": self.achieved,
            "duration": self.duration,
            "warmup": self.warmup,
            "requests": self.requests,
            "outcomes": self.counts(),
            "p50": _finite(self.p50),
            "p99": _finite(self.p99),
            "service_p50": q(service, 0.5),
            "service_p99": q(service, 0.99),
            "lag_p50": q(lag, 0.5),
            "lag_p99": q(lag, 0.99),
            "null_lag_p99": q(null, 0.99) if null is not None else None,
            "max_lag": self.max_lag,
            "valid": self.valid,
            "generator_cpu_per_request": self.generator_cpu / max(1, self.requests),
            "machine": None if self.load is None else self.load.as_dict(),
        }

    def report(self, *, slo_p99: float | None = None) -> Any:
        """Findings on this run (see :func:`silenttax.load.run_findings`)."""
        from silenttax.load._findings import run_findings

        return run_findings(self, slo_p99=slo_p99)

    def __repr__(self) -> str:
        return (
            f"LoadRun({self.target!r}, rate={self.rate:g}/s, requests={self.requests}, "
            f"p99={self.p99 * 1e3:.3g} ms, failures={self.failures}, valid={self.valid})"
        )


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def run(
    target: Any,
    *,
    rate: float,
    duration: float,
    payloads: Any = None,
    arrival: str = "poisson",
    seed: int = 0,
    timeout: float = 10.0,
    warmup: float | Literal["auto"] = 0.0,
    max_in_flight: int = 256,
    max_lag: float | None = None,
    calibrate: bool = True,
) -> LoadRun:
    """Drive ``target`` open-loop at ``rate`` requests per second for ``duration`` seconds.

    Args:
        target: A callable (no argument, or one item of ``payloads`` per request), a
            :class:`~silenttax.benchmark.ModelSpec`, or an ``http://`` URL.
        rate: Requests per second offered (the schedule does not wait for responses).
        duration: Seconds of schedule.
        payloads: Items sent in turn (cycled, the same order in every run).
        arrival: ``"poisson"`` (exponential gaps) or ``"constant"``.
        seed: The schedule's seed (the same seed: the same arrivals).
        timeout: Seconds from the intended send after which a request counts as timed out
            (an in-process run then waits up to another ``timeout`` for the requests
            still running, so the next run does not start on their backlog).
        warmup: Leading seconds of schedule left out of every figure, or ``"auto"``:
            where the latencies settle, found by :func:`warmup_end` (at most half the run).
        max_in_flight: Requests in flight at most (threads, connections); a request due
            beyond it is not sent and counts as ``overflow``.
        max_lag: Generator lag (p99, seconds) above which the run is invalid (default:
            10% of the run's p99, at least 1 ms).
        calibrate: First drive a target that does nothing at the same rate for up to a
            second: the generator's own floor, reported beside the run.

    Raises:
        InputError: a bad target, rate, duration, payloads or option.

    Examples:
        >>> import time
        >>> done = run(lambda: time.sleep(0.001), rate=200, duration=0.5, calibrate=False)
        >>> done.requests > 50 and done.p99 >= 0.001 and done.failures == 0
        True
    """
    if not (isinstance(timeout, int | float) and timeout > 0):
        raise InputError(f"timeout must be positive seconds, got {timeout!r}")
    if not (isinstance(max_in_flight, int) and max_in_flight >= 1):
        raise InputError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
    if warmup != "auto" and not (isinstance(warmup, int | float) and 0 <= warmup < duration):
        raise InputError(f"warmup must be 'auto' or seconds in [0, duration), got {warmup!r}")
    if arrival not in ("poisson", "constant"):
        raise InputError(f"arrival must be 'poisson' or 'constant', got {arrival!r}")
    intended = schedule(rate, duration, arrival=arrival, seed=seed)
    t = as_target(target, payloads)
    null = _null_lag(t.kind, rate, min(1.0, duration), max_in_flight) if calibrate else None
    sensor = Sensor(needed=1.0)
    mark = sensor.mark()
    try:
        timings = _drive(t, intended, float(timeout), max_in_flight)
    finally:
        t.release(target)
    load = sensor.since(mark)
    if warmup == "auto":
        warmup = _auto_warmup(intended, timings, float(timeout))
    return LoadRun(target=t.name, kind=t.kind, rate=rate, duration=duration, arrival=arrival,
                   seed=seed, timeout=timeout, warmup=warmup, intended=intended,
                   timings=timings, null_lag=null, load=load, max_lag=max_lag)  # fmt: skip
