"""Factories the stack-check tests run inside worker processes (imported there by path)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any


def spin(seconds: float = 2e-4) -> Callable[[Any], Any]:
    """A model whose call busy-waits ``seconds`` of wall time: a known, exact latency."""

    def call(x: Any) -> Any:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        return x * 2

    return call


def spin_by_package(seconds: float = 2e-4) -> Callable[[Any], Any]:
    """Like :func:`spin`, scaled by ``spinlib.FACTOR`` of the environment it runs in:
    the same model, slower or faster on another "stack"."""
    import spinlib  # type: ignore[import-not-found]

    return spin(seconds * spinlib.FACTOR)


def fail_on_call(how: str = "crash") -> Callable[[Any], Any]:
    """Loads, then on the second call kills its own process (``"crash"``: a segfaulting
    kernel) or hangs (``"hang"``)."""
    calls = 0

    def call(x: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            if how == "crash":
                os._exit(3)
            time.sleep(3600)
        return x

    return call


def chatty() -> Callable[[Any], Any]:
    """Prints to stdout on every call: the protocol must survive it."""

    def call(x: Any) -> Any:
        print("hello from the model")
        sys.stdout.flush()
        return x

    return call


def scaled_by_package() -> Callable[[Any], Any]:
    """Returns its input times ``spinlib.FACTOR``: outputs that differ between stacks."""
    import spinlib  # type: ignore[import-not-found]

    return lambda x: x * spinlib.FACTOR


def matmul_by_package(size: int = 96, repeats: int = 10) -> Callable[[Any], Any]:
    """``round(repeats * spinlib.FACTOR)`` float64 matmuls: CPU-bound work scaled by the
    environment (about FACTOR times slower, plus a small fixed call overhead)."""
    import numpy as np
    import spinlib  # type: ignore[import-not-found]

    a = np.random.default_rng(0).normal(size=(size, size))
    n = round(repeats * spinlib.FACTOR)

    def call(x: Any) -> Any:
        out = a
        for _ in range(n):
            out = a @ out
            out /= np.abs(out).max()
        return out[0, 0] + x

    return call
