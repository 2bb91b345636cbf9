"""Argument types shared by the subcommands: numbers checked where they are parsed.

A value out of range is a usage error naming the option (exit status 2), so no
command starts a long run on ``--max-time nan`` or ``--batch-size 0``.

Examples:
    >>> seconds = number(above=0)
    >>> seconds("1.5")
    1.5
    >>> seconds("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a finite number > 0, got 'nan'
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

__all__ = ["FRACTION", "count", "number", "seconds"]


def number(
    *, above: float | None = None, at_least: float | None = None, below: float | None = None
) -> Callable[[str], float]:
    """A float type: finite, ``> above``, ``>= at_least`` and ``< below`` where given."""
    bounds = [
        f"> {above:g}" if above is not None else "",
        f">= {at_least:g}" if at_least is not None else "",
        f"< {below:g}" if below is not None else "",
    ]
    wanted = "a finite number " + " and ".join(b for b in bounds if b)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if (
            not math.isfinite(value)
            or (above is not None and not value > above)
            or (at_least is not None and not value >= at_least)
            or (below is not None and not value < below)
        ):
            raise argparse.ArgumentTypeError(f"expected {wanted.rstrip()}, got {text!r}")
        return value

    return parse


def count(*, at_least: int = 1) -> Callable[[str], int]:
    """An int type: ``>= at_least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = at_least - 1
        if value < at_least:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {at_least}, got {text!r}")
        return value

    return parse


FRACTION = number(above=0, below=1)
"""A probability strictly between 0 and 1 (``--alpha``, ``--confidence``)."""


_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0}


def seconds(text: str) -> float:
    """``50ms``, ``0.05s``, ``2m``, ``10`` (seconds) -> seconds."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e-?\d+)?)\s*(us|µs|ms|s|m|min)?\s*", text)
    value = float(found.group(1)) * _UNITS[found.group(2) or "s"] if found else math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a duration like 50ms, 2s or 1m, got {text!r}")
    return value
