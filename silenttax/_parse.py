"""Parsing numbers that arrive as strings (shared by drift and feature health)."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["NOT_A_NUMBER", "NumberParse", "parse_numbers"]

_PLAIN = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")

#: ``form`` codes: how each value was read.
NOT_A_NUMBER, PLAIN, THOUSANDS, DECIMAL_COMMA, NUMBER = 0, 1, 2, 3, 4


class NumberParse:
    """Result of :func:`parse_numbers`: values, and how each one was read."""

    __slots__ = ("examples", "form", "padded_mask", "values")

    def __init__(self, size: int) -> None:
        self.values: npt.NDArray[np.float64] = np.full(size, np.nan)
        self.form: npt.NDArray[np.int8] = np.zeros(size, dtype=np.int8)
        self.padded_mask: npt.NDArray[np.bool_] = np.zeros(size, dtype=bool)
        self.examples: dict[str, str] = {}

    @property
    def parsed(self) -> int:
        """Values read as numbers."""
        return int(np.count_nonzero(self.form))

    @property
    def padded(self) -> int:
        """Numeric strings with surrounding whitespace."""
        return int(np.count_nonzero(self.padded_mask & (self.form > 0)))

    @property
    def decimal_comma(self) -> int:
        """Numeric strings with a decimal comma ("3,14")."""
        return int(np.count_nonzero(self.form == DECIMAL_COMMA))

    @property
    def thousands(self) -> int:
        """Numeric strings with thousands separators ("1,234.5")."""
        return int(np.count_nonzero(self.form == THOUSANDS))


def to_float(x: Any) -> float:
    """``float(x)``, with integers beyond the float range as +-inf (as numpy reads them)."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def parse_numbers(values: npt.NDArray[Any]) -> NumberParse:
    """Read strings as numbers where they are numbers; NaN elsewhere (and for None).

    Recognises plain numbers (``"12"``, ``"-3.5e2"``), padding whitespace
    (``" 12 "``), decimal commas (``"3,14"``) and thousands separators
    (``"1,234.5"``; a lone ``"1,234"`` is read as thousands), and says which
    form each value had, so callers can report it.

    Examples:
        >>> r = parse_numbers(np.array([" 12", "3,5", "1,234.5", "abc", None], dtype=object))
        >>> r.values.tolist()[:3], r.parsed, r.padded, r.decimal_comma, r.thousands
        ([12.0, 3.5, 1234.5], 3, 1, 1, 1)
    """
    out = NumberParse(values.size)
    for i, raw in enumerate(values.tolist()):
        if isinstance(raw, bool) or raw is None:
            continue
        if isinstance(raw, int | float):
            if raw == raw:  # NaN stays missing
                out.values[i], out.form[i] = to_float(raw), NUMBER
            continue
        text = str(raw)
        stripped = text.strip()
        if _PLAIN.match(stripped):
            number, form = float(stripped), PLAIN
        elif _THOUSANDS.match(stripped):
            number, form = float(stripped.replace(",", "")), THOUSANDS
            out.examples.setdefault("thousands", text)
        elif _DECIMAL_COMMA.match(stripped):
            number, form = float(stripped.replace(",", ".")), DECIMAL_COMMA
            out.examples.setdefault("decimal_comma", text)
        else:
            continue
        if stripped != text:
            out.padded_mask[i] = True
            out.examples.setdefault("padded", text)
        out.examples.setdefault("number", text)
        out.values[i], out.form[i] = number, form
    return out
