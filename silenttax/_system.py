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
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

import psutil

from silenttax._deps import imported

__all__ = [
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


def background(
    owner: _Owner, tick: Callable[[_Owner], object], interval: float, stop: threading.Event,
    name: str, failed: Callable[[_Owner, Exception], object] | None = None,
) -> threading.Thread:  # fmt: skip
    """Start a daemon thread calling ``tick(owner)`` every ``interval`` seconds until
    ``stop`` is set or ``owner`` is garbage-collected (which sets ``stop``).

    The thread holds ``owner`` only weakly between ticks, so an object dropped
    without being closed does not keep its thread (or itself) alive. It never dies of
    an exception: one raised by ``tick`` goes to ``failed(owner, exc)`` (the owner
    counts it and reports ``stability.internal_error``) and the next tick runs as
    usual; an exception of ``failed`` itself is dropped.

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
                tick(alive)
            except Exception as exc:
                if failed is not None:
                    with contextlib.suppress(Exception):
                        failed(alive, exc)
            del alive

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
