"""Pure-ASGI middleware: per-route latency, per-stage time, status classes, cost.

``SilentTaxMiddleware(app)`` wraps any ASGI application (FastAPI, Starlette,
Litestar, a bare ASGI callable) without ``BaseHTTPMiddleware``: it only
wraps ``send`` to watch the response, so streaming and background tasks keep
working and the added cost per request is a few microseconds.

Per request it records:

- the **duration** from the request's arrival to the *last* response body
  chunk (``more_body`` false), so a streamed response is measured for as long
  as it streams, and the **time to first byte** separately, per route;
- one request span in a :class:`~silenttax.trace.Tracer` (its own time, in no
  stage of yours, is the ``framework`` stage: routing, validation,
  serialization), with the stages the
  handler opens as children: ``with silenttax.integrations.asgi.stage("preprocess"):``
  works in sync and async handlers and in thread-pool endpoints (the span
  context travels in context variables). The request span closes when the
  application returns, so a Starlette background task counts in the stage
  shares but not in the route's duration;
- the status class (``2xx`` ... ``5xx``) and exceptions, per route;
- one inference per request in a ``CostMonitor``, with its service time.

The route label is the *template* (``/items/{item_id}``, from
``scope["route"].path``), ``"__unmatched__"`` when no route matched, and
``"__other__"`` past ``max_routes`` distinct templates, so URLs cannot
multiply the series. Errors inside silenttax are counted (``internal_errors``)
and never reach the request unless ``strict=True``; the application's own
exceptions propagate unchanged.

Examples:
    >>> import asyncio
    >>> async def app(scope, receive, send):
    ...     with stage("model"):
    ...         body = b"ok"
    ...     await send({"type": "http.response.start", "status": 200, "headers": []})
    ...     await send({"type": "http.response.body", "body": body})
    >>> wrapped = SilentTaxMiddleware(app)
    >>> async def call():
    ...     async def receive():
    ...         return {"type": "http.request", "body": b"", "more_body": False}
    ...     async def send(message):
    ...         pass
    ...     await wrapped({"type": "http", "path": "/predict", "method": "GET"}, receive, send)
    >>> asyncio.run(call())
    >>> wrapped.requests()
    {('__unmatched__', '2xx'): 1}
    >>> sorted(wrapped.tracer.breakdown().stages)  # framework: time in no stage of yours
    ['framework', 'model']
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from contextvars import ContextVar
from typing import Any

from silenttax.errors import InputError
from silenttax.monitor import LatencyMonitor, LatencySketch
from silenttax.report import Report
from silenttax.trace import Tracer

__all__ = ["OTHER", "UNMATCHED", "SilentTaxMiddleware", "stage"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "__unmatched__"
OTHER = "__other__"
_current: ContextVar[Tracer | None] = ContextVar("silenttax_asgi_tracer", default=None)


class _NoStage:
    __slots__ = ()

    def __enter__(self) -> _NoStage:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NO_STAGE = _NoStage()


def stage(name: str, **attributes: Any) -> Any:
    """A span for one stage of the current request (a no-op outside one).

    Use inside any handler served through :class:`SilentTaxMiddleware`:
    ``with stage("preprocess"): ...``. Sync handlers run in a thread pool by
    the framework see the request through context variables, as asyncio tasks
    started by the handler do.
    """
    tracer = _current.get()
    if tracer is None:
        return _NO_STAGE
    return tracer.span(name, stage=name, **attributes)


class SilentTaxMiddleware:
    """Wrap an ASGI ``app``; see the module docs for what is recorded.

    Args:
        app: The ASGI application.
        monitor: Template for the per-route latency monitors (its settings are
            copied: ``slo``, quantiles, accuracy); default ``LatencyMonitor()``.
        tracer: The tracer for request and stage spans (default: a new one).
        cost: A ``CostMonitor`` counting one inference per request.
        exclude_paths: Paths not recorded (scrapes, health checks).
        max_routes: Distinct route labels kept; later ones are ``"__other__"``.
        model_stages: Stages that are the model (the rest is the shadow pipeline).
        strict: Let silenttax's own errors raise (default: count them).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        monitor: LatencyMonitor | None = None,
        tracer: Tracer | None = None,
        cost: Any = None,
        exclude_paths: Sequence[str] = ("/metrics", "/health"),
        max_routes: int = 100,
        model_stages: Sequence[str] = ("model",),
        strict: bool = False,
    ) -> None:
        from silenttax.cost import CostMonitor

        if cost is not None and not isinstance(cost, CostMonitor):
            raise InputError(f"cost must be a CostMonitor, got {type(cost).__name__}")
        if max_routes < 1:
            raise InputError(f"max_routes must be >= 1, got {max_routes!r}")
        self.app = app
        self.template = monitor or LatencyMonitor()
        self.tracer = tracer or Tracer(model_stages=tuple(model_stages))
        self.cost = cost
        self.exclude_paths = frozenset(exclude_paths)
        self.max_routes = max_routes
        self.strict = strict
        self.internal_errors = 0
        """silenttax errors counted instead of raised."""
        self._latency: dict[str, LatencyMonitor] = {}
        self._ttfb: dict[str, LatencySketch] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reads
    def latency(self) -> dict[str, LatencyMonitor]:
        """Route -> latency monitor (request arrival to the last body chunk)."""
        with self._lock:
            return dict(self._latency)

    def ttfb(self) -> dict[str, LatencySketch]:
        """Route -> time-to-first-byte sketch."""
        with self._lock:
            return dict(self._ttfb)

    def requests(self) -> dict[tuple[str, str], int]:
        """(route, status class) -> requests; exceptions count as ``"error"``."""
        with self._lock:
            return dict(self._counts)

    def check(self) -> Report:
        """Findings over what was served: per-route latency and the shadow pipeline."""
        report = Report()
        for monitor in self.latency().values():
            report = report | monitor.check()
        if self.tracer.breakdown().requests:
            report = report | self.tracer.check()
        if self.cost is not None:
            report = report | self.cost.check()
        return report

    # ------------------------------------------------------------------ the path
    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        label = path if isinstance(path, str) and path else UNMATCHED
        if label in self._latency:
            return label
        with self._lock:
            if label not in self._latency:
                if len(self._latency) >= self.max_routes and label != UNMATCHED:
                    label = OTHER
                if label not in self._latency:
                    self._latency[label] = LatencyMonitor(
                        name=label,
                        slo=self.template.slo,
                        slo_quantile=self.template.slo_quantile,
                        quantiles=self.template.quantiles,
                        min_effect=self.template.min_effect,
                        critical_effect=self.template.critical_effect,
                        confidence=self.template.confidence,
                    )
                    self._ttfb[label] = LatencySketch()
        return label

    def _record(self, scope: Scope, start: float, first: float | None, end: float,
                status: int | None, failed: bool) -> None:  # fmt: skip
        route = self._route(scope)
        self._latency[route].record(end - start)
        if first is not None:
            self._ttfb[route].add(first - start)
        kind = "error" if failed or status is None else f"{status // 100}xx"
        key = (route, kind)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        if self.cost is not None:
            self.cost.record(1, busy_seconds=end - start)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("path") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        seen: dict[str, Any] = {"status": None, "first": None, "recorded": False}

        def record(end: float, failed: bool) -> None:
            """Once per request: at the last body chunk, or when the app returns without one."""
            if seen["recorded"]:
                return
            seen["recorded"] = True
            try:
                self._record(scope, start, seen["first"], end, seen["status"], failed)
            except Exception:
                self.internal_errors += 1
                if self.strict:
                    raise

        async def watched(message: Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                seen["status"] = message.get("status")
            elif kind == "http.response.body":
                now = time.perf_counter()
                if seen["first"] is None:
                    seen["first"] = now
                if not message.get("more_body", False):
                    await send(message)
                    record(now, failed=False)  # visible as soon as the response is complete
                    return
            await send(message)

        token = _current.set(self.tracer)
        failed = False
        try:
            with self.tracer.span("request", stage="framework", method=scope.get("method")):
                await self.app(scope, receive, watched)
        except BaseException:
            failed = True
            raise
        finally:
            _current.reset(token)
            record(time.perf_counter(), failed)
