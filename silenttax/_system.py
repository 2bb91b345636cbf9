"""What the process may use: cores, thread settings, background threads, quiet libraries.

Shared by the monitors, the tracer, the benchmark harness and the quantization
study; imports nothing heavy (torch only when it is already imported).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

import psutil

from silenttax._deps import imported

__all__ = [
    "SelfTime",
    "background",
    "captured",
    "intra_op_threads",
    "quiet_stderr",
    "torch_threads",
    "usable_cores",
]

_Owner = TypeVar("_Owner")


def usable_cores() -> int:
    """CPUs this process may run on (its affinity where the OS tells; at least 1).

    Examples:
        >>> usable_cores() >= 1
        True
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, psutil.cpu_count() or 1)


def intra_op_threads() -> int | None:
    """Threads one model call may use: torch's intra-op setting when torch is loaded,
    else ``OMP_NUM_THREADS`` (never imports torch)."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return int(torch.get_num_threads())
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count inside the block and restore it after (a no-op
    when ``threads`` is None or torch is not imported)."""
    torch = imported("torch")
    if threads is None or torch is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def quiet_stderr(drop: Callable[[str], bool] | None = None) -> Iterator[None]:
    """Keep native libraries' noise (written to fd 2 by C++) out of the user's stderr.

    By default drops Kineto's ``USDT:`` lines; ``drop`` decides per line
    otherwise. Everything kept is passed through afterwards.
    """
    unwanted = drop or (lambda line: line.startswith("USDT:"))
    fd = 2  # Kineto writes to the process's stderr, whatever sys.stderr is now
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            kept = [
                line
                for line in sink.read().decode(errors="replace").splitlines(keepends=True)
                if not unwanted(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))


@contextlib.contextmanager
def captured(notes: list[str]) -> Iterator[None]:
    """Collect warnings and root-logger records into ``notes`` instead of printing them."""

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if "Failed to load" in message:  # torchao's optional CUDA kernels on a CPU box
                return
            notes.append(f"{record.levelname.lower()}: {message[:300]}")

    handler = Handler(level=logging.WARNING)
    # the root logger, and torch's own: torch gives many of its loggers a stderr handler
    # that does not propagate (the ONNX exporter's "torchvision is not installed" lines)
    loggers = [logging.getLogger()] + [
        logger
        for name, logger in list(logging.Logger.manager.loggerDict.items())
        if isinstance(logger, logging.Logger)
        and logger.handlers
        and name.partition(".")[0] in ("torch", "onnxscript")
    ]
    saved = [logger.handlers[:] for logger in loggers]
    for logger in loggers:
        logger.handlers = [handler]
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("always")
            with quiet_stderr(drop=lambda line: True):
                yield
        seen = set()
        for w in caught:
            text = f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}"
            if text not in seen:
                seen.add(text)
                notes.append(text)
    finally:
        for logger, handlers in zip(loggers, saved, strict=True):
            logger.handlers = handlers


class SelfTime:
    """silenttax's own work in a serving process, in slices (a background tick, a fold
    inside a request): how many, their wall and thread CPU time (the time the slice held
    the interpreter, near enough: pure-Python work), the longest slice's CPU time (its
    wall time also counts the time it was itself waiting, for the requests it let run or
    for I/O), and the requests that were in flight or arrived while one ran (they may
    have waited for it).

    ``probe`` (the serving middleware's) returns (requests in flight, requests arrived
    so far); without it no request is counted. A bound method is held weakly, so the
    timing a background thread holds never keeps its owner alive.

    >>> timing = SelfTime(probe=lambda: (3, 10))
    >>> with timing.timed():
    ...     _ = sum(range(1000))
    >>> figures = timing.figures()
    >>> figures["slices"], figures["requests_waiting"]
    (1.0, 3.0)
    >>> figures["longest_seconds"] == figures["cpu_seconds"] > 0  # one slice: its CPU time
    True
    """

    FIELDS = ("slices", "wall_seconds", "cpu_seconds", "longest_seconds", "requests_waiting")
    """The keys of :meth:`figures` (``longest_seconds`` merges by max, the rest add up)."""

    def __init__(self, probe: Callable[[], tuple[int, int]] | None = None) -> None:
        self._probe: Callable[[], Callable[[], tuple[int, int]] | None] = lambda: None
        if probe is not None:
            self.watch(probe)
        self._lock = threading.Lock()
        self._figures = dict.fromkeys(self.FIELDS, 0.0)

    def watch(self, probe: Callable[[], tuple[int, int]]) -> None:
        """Count the requests ``probe`` says were in flight or arrived during each slice."""
        self._probe = weakref.WeakMethod(probe) if hasattr(probe, "__self__") else (lambda: probe)

    def add(self, wall: float, cpu: float, waiting: int = 0) -> None:
        """One slice of ``wall`` seconds, ``cpu`` of them on the CPU, ``waiting`` requests."""
        with self._lock:
            f = self._figures
            f["slices"] += 1
            f["wall_seconds"] += wall
            f["cpu_seconds"] += cpu
            f["longest_seconds"] = max(f["longest_seconds"], cpu)
            f["requests_waiting"] += waiting

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Time the block as one slice."""
        probe = self._probe()
        before = probe() if probe is not None else None
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
            waiting = 0
            if before is not None and probe is not None:
                with contextlib.suppress(Exception):
                    waiting = before[0] + max(0, probe()[1] - before[1])
            self.add(wall, cpu, waiting)

    def figures(self) -> dict[str, float]:
        """The totals so far (a copy)."""
        with self._lock:
            return dict(self._figures)

    @staticmethod
    def merged(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        """Two :meth:`figures` of separate processes together."""
        return {
            k: (max if k == "longest_seconds" else float.__add__)(a.get(k, 0.0), b.get(k, 0.0))
            for k in SelfTime.FIELDS
        }


def let_others_run() -> None:
    """Hand the interpreter to a thread waiting for it (a request) now, rather than after
    Python's 5 ms switch interval: background work calls this between its steps, so no
    step holds requests up for longer than itself.

    >>> let_others_run()
    """
    time.sleep(0)


def background(
    owner: _Owner, tick: Callable[[_Owner], object], interval: float, stop: threading.Event,
    name: str, failed: Callable[[_Owner, Exception], object] | None = None,
    timing: SelfTime | None = None,
) -> threading.Thread:  # fmt: skip
    """Start a daemon thread calling ``tick(owner)`` every ``interval`` seconds until
    ``stop`` is set or ``owner`` is garbage-collected (which sets ``stop``).

    The thread holds ``owner`` only weakly between ticks, so an object dropped
    without being closed does not keep its thread (or itself) alive. It never dies of
    an exception: one raised by ``tick`` goes to ``failed(owner, exc)`` (the owner
    counts it and reports ``stability.internal_error``) and the next tick runs as
    usual; an exception of ``failed`` itself is dropped. Each tick is a slice of
    ``timing`` when given.

    >>> import threading
    >>> class Counter:
    ...     n = 0
    ...     def tick(self) -> None:
    ...         self.n += 1
    >>> counter, stop = Counter(), threading.Event()
    >>> thread = background(counter, Counter.tick, 3600.0, stop, "counter")
    >>> del counter  # nothing else holds it: the thread ends by itself
    >>> thread.join(timeout=5)
    >>> thread.is_alive()
    False
    """
    ref = weakref.ref(owner)
    weakref.finalize(owner, stop.set)  # collected: wake the thread now, not a tick later

    def run() -> None:
        while not stop.wait(interval):
            alive = ref()
            if alive is None:
                return
            try:
                if timing is None:
                    tick(alive)
                else:
                    with timing.timed():
                        tick(alive)
            except Exception as exc:
                if failed is not None:
                    with contextlib.suppress(Exception):
                        failed(alive, exc)
            del alive

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
