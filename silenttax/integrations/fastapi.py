"""The one line for FastAPI (and Starlette): middleware, a Prometheus scrape, a check endpoint.

Examples:
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> @app.get("/predict")
    ... def predict() -> dict[str, float]:
    ...     return {"score": 0.5}
    >>> middleware = instrument(app)
    >>> sorted(r.path for r in app.routes if r.path.startswith(("/metrics", "/silenttax")))
    ['/metrics', '/silenttax/check']
"""

from __future__ import annotations

from typing import Any

from silenttax._deps import optional_import
from silenttax.integrations.asgi import Receive, Scope, Send, SilentTaxMiddleware

__all__ = ["instrument"]


async def _unbound(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("silenttax middleware used before the application was built")


def instrument(
    app: Any,
    *,
    metrics_path: str | None = "/metrics",
    check_path: str | None = "/silenttax/check",
    registry: Any = None,
    name: str = "app",
    findings: bool = False,
    **options: Any,
) -> SilentTaxMiddleware:
    """Add :class:`~silenttax.integrations.asgi.SilentTaxMiddleware` to ``app`` and mount
    the Prometheus scrape (``metrics_path``) and a JSON check endpoint (``check_path``,
    the current :class:`~silenttax.Report` as JSON); returns the middleware, whose
    monitors live as long as the app (Starlette may rebuild its middleware stack: the
    recording state is kept).

    Args:
        app: A FastAPI or Starlette application.
        metrics_path: Where to serve the scrape (None: not mounted; register the
            middleware with :func:`silenttax.integrations.prometheus.register` yourself).
        check_path: Where to serve the report (None: not mounted).
        registry: A prometheus_client registry (default: a new one, served at
            ``metrics_path`` only).
        name: The ``monitor`` label of the exported series.
        findings: Also export ``silenttax_findings{code, severity}``: the active
            findings of the check (of the fleet, with ``snapshot_dir``) at each scrape,
            what the alerting rules of ``silenttax serving rules`` read.
        options: :class:`SilentTaxMiddleware` options (``cost``, ``monitor``,
            ``max_routes``, ``exclude_paths``, ``feature_health``/``drift`` with
            ``features``, ``snapshot_dir``, ...). With ``snapshot_dir`` (several
            workers), the scrape and the check endpoint answer for the whole fleet:
            every worker's snapshot in that directory, merged.
    """
    excluded = tuple(p for p in (metrics_path, check_path) if p)
    options["exclude_paths"] = (*options.get("exclude_paths", ("/health",)), *excluded)
    middleware = SilentTaxMiddleware(_unbound, **options)

    class _Bind:
        """What Starlette builds into its stack: the one recorder, rebound to the inner app
        (no layer of its own: building it returns the middleware)."""

        def __new__(cls, inner: Any) -> Any:
            middleware.app = inner
            return middleware

    app.add_middleware(_Bind)
    responses: Any = optional_import(
        "starlette.responses", purpose="silenttax.integrations.fastapi"
    )
    if metrics_path:
        prometheus: Any = optional_import("prometheus_client", purpose="the /metrics endpoint")
        from silenttax.integrations.prometheus import SilentTaxCollector

        reg = registry if registry is not None else prometheus.CollectorRegistry()
        if middleware.writer is not None:
            reg.register(
                SilentTaxCollector.from_directory(
                    middleware.writer.folder, name=name, own=middleware, findings=findings
                )
            )
        else:
            reg.register(SilentTaxCollector({name: middleware}, findings=findings))

        def metrics(request: Any) -> Any:
            return responses.Response(
                prometheus.generate_latest(reg), media_type=prometheus.CONTENT_TYPE_LATEST
            )

        app.add_route(metrics_path, metrics, include_in_schema=False)
    if check_path:

        def check(request: Any) -> Any:
            served = middleware
            if middleware.writer is not None:
                from silenttax.integrations.fleet import read_directory

                served = read_directory(middleware.writer.folder, own=middleware)
            return responses.Response(served.check().to_json(), media_type="application/json")

        app.add_route(check_path, check, include_in_schema=False)
    return middleware
