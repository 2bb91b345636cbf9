"""LitServe: the HTTP side and the inference workers in one fleet view.

A `LitServe <https://lightning.ai/docs/litserve>`_ server runs in several
processes: API servers (FastAPI under uvicorn, forked) put each request on a
queue, and inference workers (spawned, one or more per device) decode, predict
and encode it. :func:`instrument` covers both with one call before
``server.run()``:

- on the HTTP side, :func:`silenttax.integrations.fastapi.instrument` on
  ``server.app``: per-route duration to the last body chunk, time to first byte,
  status classes, cost per request, live feature health of the request bodies,
  the Prometheus scrape (``/metrics``) and the check endpoint
  (``/silenttax/check``);
- in every inference worker, a :class:`SilentTaxCallback` (LitServe's callback
  hooks): one span per worker iteration, named by the API path, with the
  ``decode`` (``decode_request``), ``model`` (``predict``) and ``encode``
  (``encode_response``) stages as children, and the loop's own time between
  them as the ``worker`` stage. :func:`silenttax.stage` and
  :func:`silenttax.observe` work inside your ``LitAPI``
  methods, so ``with stage("tokenize"):`` in ``predict`` is a stage of its own.

Every process writes its snapshot into ``snapshot_dir`` (see
:mod:`silenttax.integrations.fleet`); the scrape and the check endpoint merge the
directory, so the model share and the ``pipeline.*`` findings come from the
workers while the request counts and latencies come from the HTTP side.

What a worker span covers: one loop iteration, that is one request, or one batch
when the ``LitAPI`` has ``max_batch_size > 1`` (LitServe's hooks do not say the
batch size); the time a request waits in LitServe's queue and crosses the process
boundary is in the route's duration, not in the breakdown. LitServe does not
call the "after" hooks when a method raises: such an iteration is closed, as an
error (``pipeline.span_errors``), when the next one begins. LitServe stops its
workers with SIGTERM, so a worker's last ``snapshot_interval`` seconds are not
written (the HTTP side writes at shutdown).

Examples:
    >>> import tempfile
    >>> import litserve as ls
    >>> class Echo(ls.LitAPI):
    ...     def setup(self, device): ...
    ...     def predict(self, x): return x
    >>> server = ls.LitServer(Echo(), accelerator="cpu")
    >>> middleware = instrument(server, snapshot_dir=tempfile.mkdtemp())
    >>> sorted(r.path for r in server.app.routes if r.path.startswith(("/metrics", "/silenttax")))
    ['/metrics', '/silenttax/check']
"""

from __future__ import annotations

import os
from contextvars import ContextVar, Token
from pathlib import Path
from typing import Any

from silenttax._current import CURRENT as _tracer_var
from silenttax._current import MIDDLEWARE as _middleware_var
from silenttax._deps import optional_import
from silenttax.errors import InputError
from silenttax.integrations.asgi import ServingState, SilentTaxMiddleware

_litserve: Any = optional_import("litserve", purpose="silenttax.integrations.litserve")

__all__ = ["SilentTaxCallback", "instrument"]

_STAGES = {"decode": "decode", "predict": "model", "encode": "encode"}


class _Iteration:
    """The spans of one worker iteration: the parent and the stage open in it."""

    __slots__ = ("child", "name", "request", "tokens")

    def __init__(self, request: Any, tokens: tuple[Token[Any], Token[Any]]) -> None:
        self.request = request
        self.tokens = tokens
        self.child: Any = None
        self.name = ""


_open: ContextVar[_Iteration | None] = ContextVar("silenttax_litserve_iteration", default=None)


class _Failed(Exception):
    """Marks an iteration whose method raised (LitServe skipped the after hooks)."""


class SilentTaxCallback(_litserve.Callback):  # type: ignore[misc]
    """LitServe callback tracing each inference worker iteration into the fleet view.

    Built from the HTTP side's middleware (its settings and references are copied,
    so the snapshots merge); pickled into each spawned worker, where it records into
    a middleware of its own and writes it into the same directory. Never raises into
    the loop (errors are counted as ``internal_errors``) unless the middleware is
    ``strict``.

    Args:
        middleware: The HTTP side's middleware; needs ``snapshot_dir``.
    """

    def __init__(self, middleware: SilentTaxMiddleware) -> None:
        if not isinstance(middleware, SilentTaxMiddleware):
            raise InputError(
                f"middleware must be a SilentTaxMiddleware, got {type(middleware).__name__}"
            )
        if middleware.writer is None:
            raise InputError(
                "middleware: needs snapshot_dir= (LitServe's workers are other processes)"
            )
        self.template: ServingState = middleware.state().model_copy(
            update={"workers": [], "internal_errors": 0}
        )
        self.folder: Path = middleware.writer.folder
        self.strict = middleware.strict
        self._recorder: SilentTaxMiddleware | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_recorder"] = None  # each process builds its own
        state["_pid"] = -1
        return state

    @property
    def recorder(self) -> SilentTaxMiddleware:
        """This process's middleware (built on first use in each process)."""
        recorder = self._recorder
        if recorder is None or self._pid != os.getpid():
            from silenttax.integrations.fleet import SnapshotWriter

            recorder = SilentTaxMiddleware.from_state(self.template)
            recorder.writer = SnapshotWriter(
                recorder, self.folder, interval=recorder.snapshot_interval
            )
            self._recorder, self._pid = recorder, os.getpid()
        return recorder

    # ------------------------------------------------------------------ spans
    def _guard(self, step: Any, *args: Any) -> None:
        try:
            step(*args)
        except Exception:
            recorder = self._recorder
            if recorder is not None:
                recorder.internal_errors += 1
            if self.strict:
                raise

    def _begin(self, lit_api: Any) -> _Iteration:
        stale = _open.get()
        if stale is not None:
            self._end(failed=True)
        recorder = self.recorder
        writer = recorder.writer
        if writer is not None and writer.thread is None:
            writer.start()
        name = str(getattr(lit_api, "api_path", None) or "inference")
        request = recorder.tracer.span(name, stage="worker")
        request.__enter__()
        tokens = (_tracer_var.set(recorder.tracer), _middleware_var.set(recorder))
        iteration = _Iteration(request, tokens)
        _open.set(iteration)
        return iteration

    def _close_child(self, iteration: _Iteration, failed: bool = False) -> None:
        child, iteration.child, iteration.name = iteration.child, None, ""
        if child is not None:
            if failed:
                child.__exit__(_Failed, _Failed(), None)
            else:
                child.__exit__(None, None, None)

    def _end(self, failed: bool = False) -> None:
        iteration = _open.get()
        if iteration is None:
            return
        _open.set(None)
        self._close_child(iteration, failed)
        current, middleware = iteration.tokens
        try:
            if failed:
                iteration.request.__exit__(_Failed, _Failed(), None)
            else:
                iteration.request.__exit__(None, None, None)
        finally:
            try:
                _tracer_var.reset(current)
                _middleware_var.reset(middleware)
            except ValueError:  # set in another context (an async loop's other task)
                _tracer_var.set(None)
                _middleware_var.set(None)

    def _enter(self, method: str, lit_api: Any) -> None:
        iteration = _open.get()
        if iteration is None or method == "decode":
            iteration = self._begin(lit_api)
        self._close_child(iteration)
        stage = _STAGES[method]
        child = self.recorder.tracer.span(method, stage=stage)
        child.__enter__()
        iteration.child, iteration.name = child, method

    def _leave(self, method: str, last: bool = False) -> None:
        iteration = _open.get()
        if iteration is None:
            return
        if iteration.name == method:
            self._close_child(iteration)
        if last:
            self._end()

    # ------------------------------------------------------------------ hooks
    def on_before_decode_request(self, *args: Any, lit_api: Any = None, **kwargs: Any) -> None:
        """Start an iteration and its ``decode`` stage."""
        self._guard(self._enter, "decode", lit_api)

    def on_after_decode_request(self, *args: Any, **kwargs: Any) -> None:
        """End the ``decode`` stage."""
        self._guard(self._leave, "decode")

    def on_before_predict(self, *args: Any, lit_api: Any = None, **kwargs: Any) -> None:
        """Start the ``model`` stage (and an iteration, if no decode began one)."""
        self._guard(self._enter, "predict", lit_api)

    def on_after_predict(self, *args: Any, **kwargs: Any) -> None:
        """End the ``model`` stage (a streaming loop calls this after encoding: ignored)."""
        self._guard(self._leave, "predict")

    def on_before_encode_response(self, *args: Any, lit_api: Any = None, **kwargs: Any) -> None:
        """Start the ``encode`` stage."""
        self._guard(self._enter, "encode", lit_api)

    def on_after_encode_response(self, *args: Any, **kwargs: Any) -> None:
        """End the ``encode`` stage and the iteration."""
        self._guard(self._leave, "encode", True)


def instrument(
    server: Any,
    *,
    snapshot_dir: str | os.PathLike[str],
    metrics_path: str | None = "/metrics",
    check_path: str | None = "/silenttax/check",
    registry: Any = None,
    name: str = "litserve",
    **options: Any,
) -> SilentTaxMiddleware:
    """Instrument a ``litserve.LitServer`` before ``run()``: the HTTP side's middleware and
    endpoints, and a :class:`SilentTaxCallback` in every inference worker (see the module
    docs). Returns the HTTP side's middleware.

    Args:
        server: The ``LitServer`` (not yet running).
        snapshot_dir: An existing directory every process writes its snapshot to; the
            scrape and the check endpoint merge it.
        metrics_path: Where to serve the Prometheus scrape (None: not mounted).
        check_path: Where to serve the JSON report (None: not mounted).
        registry: A prometheus_client registry (default: a new one).
        name: The ``monitor`` label of the exported series.
        options: Further :class:`~silenttax.integrations.asgi.SilentTaxMiddleware`
            options (``cost``, ``monitor``, ``feature_health``/``drift`` with
            ``features``, ``snapshot_interval``, ...).

    Raises:
        InputError: ``server`` is not a LitServer, or ``snapshot_dir`` is missing.
    """
    if not isinstance(server, _litserve.LitServer):
        raise InputError(f"server must be a litserve.LitServer, got {type(server).__name__}")
    runner = getattr(server, "_callback_runner", None)
    if runner is None or not hasattr(runner, "_add_callbacks"):
        raise InputError(
            "server: this LitServe version has no callback runner to add to; pass "
            "callbacks=[SilentTaxCallback(middleware)] to LitServer yourself"
        )
    if "trace" in options:
        raise InputError("trace: set by instrument (the stages are traced in the workers)")
    from silenttax.integrations.fastapi import instrument as instrument_app

    middleware = instrument_app(
        server.app,
        metrics_path=metrics_path,
        check_path=check_path,
        registry=registry,
        name=name,
        snapshot_dir=snapshot_dir,
        trace=False,
        **options,
    )
    runner._add_callbacks(SilentTaxCallback(middleware))
    return middleware
