"""GIL-holding callables driven in worker processes.

A callable that holds the GIL (pure-Python pre- or post-processing, a tokenizer
written in Python) shares it with the generator when driven on the generator's thread
pool: the dispatcher then wakes late and its lateness would be charged to the target
(the run is declared generator-bound instead). :func:`worker_process` runs the callable
in ``processes`` worker processes, one request at a time each, so the GIL
held is theirs: the generator's threads only wait on a pipe (which releases it).

Each process is one replica slot: a request that finds every process busy waits for
one (that wait is service time, as on a server with that many workers).
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from silenttax.errors import InputError
from silenttax.load._target import _NONE, Target

_STOP = ("stop", None)
_ENTRY = (
    "import sys; from multiprocessing.connection import Connection; "
    "from silenttax.load._worker import _serve; _serve(Connection(int(sys.argv[1])))"
)


def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the worker
    path, blob = conn.recv()
    sys.path[:] = path
    try:
        fn = pickle.loads(blob)
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            kind, item = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if kind == "stop":
            return
        try:
            fn() if kind == "none" else fn(item)
            conn.send(("ok", None))
        except Exception as exc:  # the request failed, the worker lives on
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Pool:
    """Worker processes started as a fresh ``python`` (an interpreter that never
    re-runs the caller's ``__main__``), one pipe each."""

    def __init__(self, blob: bytes, processes: int, start_timeout: float) -> None:
        self._blob = blob
        self._timeout = start_timeout
        self._idle: queue.SimpleQueue[tuple[Connection, subprocess.Popen[bytes]]] = (
            queue.SimpleQueue()
        )
        self._all: list[tuple[Connection, subprocess.Popen[bytes]]] = []
        self._lock = threading.Lock()
        self._closed = False
        weakref.finalize(self, _stop, self._all, self._lock)
        started = [self._spawn() for _ in range(processes)]
        for worker in started:
            self._ready(worker)
            self._idle.put(worker)

    def _spawn(self) -> tuple[Connection, subprocess.Popen[bytes]]:
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        conn = Connection(ours.detach())
        conn.send((list(sys.path), self._blob))
        with self._lock:
            self._all.append((conn, process))
        return conn, process

    def _ready(self, worker: tuple[Connection, subprocess.Popen[bytes]]) -> None:
        conn, process = worker
        status, detail = "failed", f"no answer within {self._timeout:g} s"
        try:
            if conn.poll(self._timeout):
                status, detail = conn.recv()
        except (EOFError, OSError):
            status, detail = "failed", f"it exited (code {process.poll()})"
        if status != "ready":
            self.close()
            raise InputError(
                f"target: a worker process could not load the callable ({detail}); it must "
                "be importable in a fresh interpreter (defined in a module, not in a "
                "notebook or the script being run)"
            )

    def call(self, item: Any) -> None:
        conn, process = worker = self._idle.get()
        try:
            conn.send(("none", None) if item is _NONE else ("item", item))
            status, detail = conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            # the worker died with the request (a crash is a failed request); replace it
            process.wait(timeout=1)
            if not self._closed:
                replacement = self._spawn()
                self._ready(replacement)
                self._idle.put(replacement)
            raise RuntimeError(
                f"a worker process died during a request (exit code {process.poll()})"
            ) from None
        self._idle.put(worker)
        if status != "ok":
            raise RuntimeError(detail)

    def close(self) -> None:
        self._closed = True
        _stop(self._all, self._lock)


def _stop(running: list[tuple[Connection, subprocess.Popen[bytes]]], lock: threading.Lock) -> None:
    """Stop the workers (also when a pool nobody closed is collected, or at exit)."""
    with lock:
        workers = running[:]
        running.clear()
    for conn, _ in workers:
        with contextlib.suppress(OSError):
            conn.send(_STOP)
    for conn, process in workers:
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=2)
        conn.close()


def worker_process(
    fn: Callable[..., Any],
    *,
    processes: int = 1,
    name: str | None = None,
    start_timeout: float = 60.0,
) -> Target:
    """A load target that runs ``fn`` in ``processes`` worker processes.

    Use it for a callable that holds the GIL; give it to :func:`run`, :func:`capacity`,
    :func:`compare_capacity` or :func:`soak` like any target (with ``payloads=`` there:
    each item is pickled to the worker). ``fn`` must be picklable and importable in a
    fresh interpreter: a function defined in a module (not in a notebook or the script
    being run), a ``functools.partial`` of one, or a picklable object. A worker that
    dies with a request fails that request and is replaced. Close the target
    when done (``with worker_process(fn) as t: ...``); a run never closes a target it
    was given.

    Raises:
        InputError: ``fn`` is not callable or cannot be sent to a process, a bad
            ``processes``, or a worker that does not start.

    Examples:
        >>> from silenttax.load import run, worker_process
        >>> with worker_process(sum, processes=1) as target:
        ...     done = run(target, rate=50, duration=0.5, payloads=[[1, 2, 3]])
        >>> done.failures
        0
    """
    if not callable(fn):
        raise InputError(f"fn: must be a callable, got {type(fn).__name__}")
    if not (isinstance(processes, int) and not isinstance(processes, bool) and processes >= 1):
        raise InputError(f"processes must be an int >= 1, got {processes!r}")
    try:
        blob = pickle.dumps(fn)
    except Exception as exc:
        raise InputError(
            f"fn: cannot be sent to a worker process ({type(exc).__name__}: {exc}); define "
            "it at module level (a lambda or a local function cannot be pickled)"
        ) from None
    pool = _Pool(blob, processes, start_timeout)
    label = name or getattr(fn, "__qualname__", None) or type(fn).__name__
    return Target(f"{label} ({processes} process{'es' if processes > 1 else ''})", "process",
                  call=pool.call, payloads=[_NONE], close=pool.close)  # fmt: skip
