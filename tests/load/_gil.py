"""Callables for the worker-process tests (a module: a worker imports them afresh)."""

from __future__ import annotations

import os


def spin(n: int) -> int:
    """Pure-Python work that holds the GIL for ``n`` thousand additions."""
    total = 0
    for i in range(n * 1000):
        total += i
    return total


def checked(item: int) -> int:
    """Fails on negative items; exits the process (a crash) on ``-99``."""
    if item == -99:
        os._exit(3)
    if item < 0:
        raise ValueError(f"bad item {item}")
    return os.getpid()
