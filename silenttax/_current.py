"""The tracer of the work in progress: what ``silenttax.stage(name)`` records into.

The serving middleware and the LitServe callback make their tracer current for each
request; ``with tracer.activate():`` does the same for a tracer of your own (a batch
job, a notebook, a custom server). The variable is a ``ContextVar``, so sync handlers
run in a thread pool and asyncio tasks started by a handler see their request's tracer.

Examples:
    >>> import silenttax
    >>> from silenttax.trace import Tracer
    >>> tracer = Tracer()
    >>> with silenttax.stage("preprocess"):  # nothing current: a no-op
    ...     pass
    >>> with tracer.activate(), tracer.span("request"):
    ...     with silenttax.stage("preprocess"):
    ...         pass
    >>> sorted(tracer.breakdown().stages)
    ['preprocess', 'request']
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol

__all__ = [
    "CURRENT",
    "HANDLER",
    "MIDDLEWARE",
    "activated",
    "observe",
    "observe_prediction",
    "stage",
]


class _Spans(Protocol):
    """What ``stage`` needs of a tracer (a :class:`~silenttax.trace.Tracer`)."""

    def span(self, name: str, *, stage: str | None = None, **attributes: Any) -> Any: ...


CURRENT: ContextVar[_Spans | None] = ContextVar("silenttax_current_tracer", default=None)
"""The tracer ``stage()`` records into (None: none; ``stage`` is then a no-op)."""


MIDDLEWARE: ContextVar[Any] = ContextVar("silenttax_current_middleware", default=None)
"""The serving middleware of the request in progress (what ``observe`` records into)."""
HANDLER: ContextVar[Any] = ContextVar("silenttax_handler", default=None)
"""The current request (its ``start``, perf_counter at arrival, and ``before``, seconds
until its first stage): the middleware sets it, the first ``stage()`` fills ``before``
(the time before the handler ran)."""


def observe(name: str, seconds: float) -> None:
    """Record a duration measured elsewhere (queue wait, GPU time from CUDA events, a
    model server's own timer) under ``name`` in the current request's middleware: a
    latency monitor per name, exported and merged like the routes (a no-op outside a
    request; never raises unless the middleware is ``strict``: a bad value is counted
    by the monitor).

    Examples:
        >>> import silenttax
        >>> silenttax.observe("queue", 0.002)  # outside a request: nothing happens
    """
    middleware = MIDDLEWARE.get()
    if middleware is None:
        return
    try:
        middleware.observed_monitor(name if isinstance(name, str) else str(name)).record(seconds)
    except Exception:
        if middleware.strict:
            raise
        middleware.internal_errors += 1


def observe_prediction(output: Any) -> None:
    """Record the model's output for the current request in the middleware's
    :class:`~silenttax.monitor.PredictionMonitor` (given with ``checks=[monitor]``):
    judged against its reference at ``/silenttax/check``, merged across a fleet's
    workers. A no-op outside a request or without such a monitor; never raises unless
    the middleware is ``strict`` (an unreadable output is counted by the monitor).

    Examples:
        >>> import silenttax
        >>> silenttax.observe_prediction(0.83)  # outside a request: nothing happens
    """
    middleware = MIDDLEWARE.get()
    if middleware is None:
        return
    monitor = middleware.components.get("silenttax.prediction_monitor")
    if monitor is None:
        return
    try:
        monitor.record(output)
    except Exception:
        if middleware.strict:
            raise
        middleware.internal_errors += 1


class _NoStage:
    __slots__ = ()

    def __enter__(self) -> _NoStage:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NO_STAGE = _NoStage()


def stage(name: str, **attributes: Any) -> Any:
    """A span for one stage of the current work (a no-op when no tracer is current).

    ``with silenttax.stage("preprocess"): ...`` inside a handler served through
    :class:`~silenttax.integrations.asgi.SilentTaxMiddleware` (or LitServe's callback,
    or under ``with tracer.activate():``) records the block as the stage
    ``preprocess`` of that request: sync and async handlers, thread-pool endpoints and
    the tasks a handler starts alike (context variables carry the request).
    """
    exchange = HANDLER.get()
    if exchange is not None and exchange.before is None:  # the first stage: its handler runs
        exchange.before = time.perf_counter() - exchange.start
    tracer = CURRENT.get()
    if tracer is None:
        return _NO_STAGE
    return tracer.span(name, stage=name, **attributes)


@contextlib.contextmanager
def activated(tracer: _Spans | None) -> Iterator[None]:
    """Make ``tracer`` current in this context for the block (what
    :meth:`Tracer.activate <silenttax.trace.Tracer.activate>` does)."""
    token = CURRENT.set(tracer)
    try:
        yield
    finally:
        CURRENT.reset(token)
