"""Parsing numbers that arrive as strings (shared by drift and feature health)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["NumberParse", "parse_numbers"]

_PLAIN = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


class NumberParse:
    """Result of :func:`parse_numbers`: values and how each string had to be read."""

    __slots__ = ("decimal_comma", "examples", "padded", "parsed", "thousands", "values")

    def __init__(self) -> None:
        self.values: npt.NDArray[np.float64] = np.zeros(0)
        self.parsed = 0  # strings read as numbers
        self.padded = 0  # ... of which had surrounding whitespace
        self.decimal_comma = 0  # "3,14"
        self.thousands = 0  # "1,234,567.8"
        self.examples: dict[str, str] = {}


def parse_numbers(values: npt.NDArray[Any]) -> NumberParse:
    """Read strings as numbers where they are numbers; NaN elsewhere (and for None).

    Recognises plain numbers (``"12"``, ``"-3.5e2"``), padding whitespace
    (``" 12 "``), decimal commas (``"3,14"``) and thousands separators
    (``"1,234.5"``), and counts each so callers can say which it was.

    Examples:
        >>> r = parse_numbers(np.array([" 12", "3,5", "1,234.5", "abc", None], dtype=object))
        >>> r.values.tolist()[:3], r.parsed, r.padded, r.decimal_comma, r.thousands
        ([12.0, 3.5, 1234.5], 3, 1, 1, 1)
    """
    out = NumberParse()
    result = np.full(values.size, np.nan)
    for i, raw in enumerate(values.tolist()):
        if isinstance(raw, bool) or raw is None:
            continue
        if isinstance(raw, int | float):
            result[i] = float(raw)
            continue
        text = str(raw)
        stripped = text.strip()
        if _PLAIN.match(stripped):
            number = float(stripped)
        elif _THOUSANDS.match(stripped):
            number = float(stripped.replace(",", ""))
            out.thousands += 1
            out.examples.setdefault("thousands", text)
        elif _DECIMAL_COMMA.match(stripped):
            number = float(stripped.replace(",", "."))
            out.decimal_comma += 1
            out.examples.setdefault("decimal_comma", text)
        else:
            continue
        if stripped != text:
            out.padded += 1
            out.examples.setdefault("padded", text)
        out.examples.setdefault("number", text)
        result[i] = number
        out.parsed += 1
    out.values = result
    return out
