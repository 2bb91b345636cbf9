"""Column profiles: the schema FeatureHealth learns, as mergeable JSON."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from silenttax._input import NUMERIC_KINDS, TEXT_KINDS
from silenttax._parse import DECIMAL_COMMA, THOUSANDS, parse_numbers
from silenttax._summary import (
    K_MAX,
    NumericSummary,
    blocks,
    level_key,
    merge_summaries,
    summarize_numbers,
)

__all__ = ["ColumnProfile", "merge_profiles", "profile_column"]

#: Values that stand for "missing" in the wild.
TEXT_SENTINELS = frozenset(
    {"", "na", "n/a", "nan", "null", "none", "nil", "-", "?", "missing", "undefined", "#n/a"}
)
NUMBER_SENTINELS = (-1.0, -9.0, -99.0, -999.0, -9999.0, 999.0, 9999.0, 99999.0, 999999.0)
_MAX_DECIMALS = 16
_PRECISION_SAMPLE = 20_000
_MAX_DISTINCT_PARSED = 50_000
_EPS = float(np.finfo(np.float64).eps)


def decimals(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Decimal places each value needs (0 for integers; 15-16: all that float64 holds).

    Examples:
        >>> decimals(np.array([3.0, 2.5, 0.125, 0.1 + 0.2, 1 / 3])).tolist()
        [0, 1, 3, 1, 15]
    """
    out = np.full(values.size, _MAX_DECIMALS, dtype=np.int64)
    todo = np.arange(values.size)
    x = values.astype(np.float64)
    for d in range(_MAX_DECIMALS):
        if not todo.size:
            break
        scaled = x[todo] * 10.0**d
        exact = np.abs(scaled - np.round(scaled)) <= 8 * _EPS * np.maximum(1.0, np.abs(scaled))
        out[todo[exact]] = d
        todo = todo[~exact]
    return out


class ColumnProfile(BaseModel):
    """What one column looked like: type, missingness, range, levels, precision, patterns."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    kind: str
    """Logical kind (``int``, ``float``, ``bool``, ``string``, ``categorical``, ...)."""
    rows: int = 0
    """Rows seen."""
    nulls: int = 0
    """None/NaN values."""
    empty: int = 0
    """Empty or blank strings."""
    sentinels: dict[str, int] = Field(default_factory=dict)
    """Counts of sentinel values ("N/A", "null", -999, ...)."""
    non_finite: int = 0
    """+-inf values."""
    numbers: NumericSummary | None = None
    """Numeric values (numeric columns, or numeric-looking strings of text columns)."""
    decimals: list[int] = Field(default_factory=lambda: [0] * (_MAX_DECIMALS + 1))
    """Counts of values by decimal places needed (0..16), on a sample."""
    levels: dict[str, int] = Field(default_factory=dict)
    """Counts per level (text columns and few-valued numbers), up to ``max_levels``."""
    other_levels: int = 0
    """Values in levels beyond the ``max_levels`` cap."""
    distinct: int = 0
    """Distinct values seen (capped at ``max_levels`` + 1 when exceeded)."""
    numeric_strings: int = 0
    """Text values that read as numbers."""
    padded: int = 0
    """Text values with leading or trailing whitespace."""
    decimal_comma: int = 0
    """Numeric strings with a decimal comma ("3,14")."""
    thousands: int = 0
    """Numeric strings with thousands separators ("1,234.5")."""
    examples: dict[str, str] = Field(default_factory=dict)
    """One example value per pattern."""

    @property
    def present(self) -> int:
        """Rows that are not None/NaN."""
        return self.rows - self.nulls

    @property
    def missing_like(self) -> int:
        """None/NaN, empty strings and sentinel values together."""
        return self.nulls + self.empty + sum(self.sentinels.values())


def _sentinel_counts(levels: Counter[Any]) -> dict[str, int]:
    return {
        str(v): n
        for v, n in levels.items()
        if isinstance(v, str) and v.strip().lower() in TEXT_SENTINELS and v.strip()
    }


def profile_column(
    values: npt.NDArray[Any] | Counter[Any], kind: str, *, max_levels: int = 1000
) -> ColumnProfile:
    """Profile one column as converted by the input adapter (a text column may come
    as its counts: :meth:`silenttax._input.Table.level_counts`)."""
    if isinstance(values, Counter):
        return _profile_text(values, kind, max_levels)
    if kind in NUMERIC_KINDS:
        return _profile_numbers(values.astype(np.float64, copy=False), kind, max_levels)
    if kind in TEXT_KINDS or kind == "object":
        return _profile_text(values, kind, max_levels)
    nulls = int(np.isnat(values).sum()) if kind == "datetime" else 0
    return ColumnProfile(kind=kind, rows=int(values.size), nulls=nulls)


def _sentinel_hits(values: npt.NDArray[np.float64]) -> dict[str, int]:
    """Rows per sentinel value, block by block (one read of the column, not one per
    sentinel: the comparisons stay in cache)."""
    found = [
        hit for block in blocks(values) if (hit := block[np.isin(block, NUMBER_SENTINELS)]).size
    ]
    if not found:
        return {}
    uniq, counts = np.unique(np.concatenate(found), return_counts=True)
    by_value = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    return {f"{s:g}": by_value[s] for s in NUMBER_SENTINELS if s in by_value}


def _profile_numbers(values: npt.NDArray[np.float64], kind: str, max_levels: int) -> ColumnProfile:
    finite = values[np.isfinite(values)]
    summary = summarize_numbers(values)
    nulls = summary.nulls
    sentinel_hits = _sentinel_hits(values)
    step = max(1, finite.size // _PRECISION_SAMPLE)
    sample = finite[::step]
    sample_places = decimals(sample)
    places = np.bincount(sample_places, minlength=_MAX_DECIMALS + 1)
    levels: dict[str, int] = {}
    distinct = summary.distinct if summary.scale == K_MAX else max_levels + 1
    if summary.scale == K_MAX and distinct <= max_levels:
        uniq, counts = np.unique(finite, return_counts=True)
        levels = {f"{u:g}": int(c) for u, c in zip(uniq.tolist(), counts.tolist(), strict=True)}
    examples = {"value": f"{finite[0]:g}"} if finite.size else {}
    if sample.size:
        examples["precise"] = repr(float(sample[int(np.argmax(sample_places))]))
    return ColumnProfile(
        kind=kind,
        rows=int(values.size),
        nulls=nulls,
        sentinels=sentinel_hits,
        non_finite=int(values.size - finite.size - nulls),
        numbers=summary,
        decimals=places.tolist(),
        levels=levels,
        distinct=distinct,
        examples=examples,
    )


def _profile_text(
    values: npt.NDArray[Any] | Counter[Any], kind: str, max_levels: int
) -> ColumnProfile:
    counts = Counter(values) if isinstance(values, Counter) else Counter(values.tolist())
    rows = sum(counts.values())
    nulls = counts.pop(None, 0)
    distinct_values = list(counts)
    # Analyse each distinct value once, weighted by its count.
    ranked_values = sorted(distinct_values, key=lambda v: -counts[v])
    analysed = ranked_values[:_MAX_DISTINCT_PARSED]
    texts = np.array([v if isinstance(v, str) else str(v) for v in analysed], dtype=object)
    weights = np.array([counts[v] for v in analysed], dtype=np.int64)
    parsed = parse_numbers(texts)
    is_number = ~np.isnan(parsed.values)
    stripped = np.array([t.strip() for t in texts.tolist()], dtype=object)
    padded = np.array(
        [t != s for t, s in zip(texts.tolist(), stripped.tolist(), strict=True)], dtype=bool
    )
    empty = np.array([s == "" for s in stripped.tolist()], dtype=bool)
    numbers = None
    if is_number.any():
        numbers = summarize_numbers(np.repeat(parsed.values[is_number], weights[is_number]))
    sentinels = _sentinel_counts(counts)
    examples = {k: level_key(v) for k, v in parsed.examples.items()}
    if padded.any():
        examples.setdefault("padded", level_key(str(texts[np.flatnonzero(padded)[0]])))
    if texts.size:
        examples["value"] = level_key(str(texts[0]))
    levels: dict[str, int] = {}
    for v, text in zip(analysed, texts.tolist(), strict=True):  # long values: bounded keys
        key = level_key(text)
        levels[key] = levels.get(key, 0) + counts[v]
    other = 0
    if len(levels) > max_levels:
        ranked = sorted(levels.items(), key=lambda kv: (-kv[1], kv[0]))
        levels = dict(ranked[:max_levels])
        other = sum(n for _, n in ranked[max_levels:])
    return ColumnProfile(
        kind=kind,
        rows=int(rows),
        nulls=nulls,
        empty=int(weights[empty].sum()),
        sentinels=sentinels,
        numbers=numbers,
        levels=levels,
        other_levels=other + sum(counts[v] for v in ranked_values[_MAX_DISTINCT_PARSED:]),
        distinct=len(distinct_values),
        numeric_strings=int(weights[is_number].sum()),
        padded=int(weights[padded].sum()),
        decimal_comma=int(weights[parsed.form == DECIMAL_COMMA].sum()),
        thousands=int(weights[parsed.form == THOUSANDS].sum()),
        examples=examples,
    )


def merge_profiles(a: ColumnProfile, b: ColumnProfile, *, max_levels: int = 1000) -> ColumnProfile:
    """The profile of both sets of rows (levels exact within ``max_levels``)."""
    levels = dict(a.levels)
    for level, n in b.levels.items():
        levels[level] = levels.get(level, 0) + n
    other = a.other_levels + b.other_levels
    if len(levels) > max_levels:
        ranked = sorted(levels.items(), key=lambda kv: (-kv[1], kv[0]))
        levels = dict(ranked[:max_levels])
        other += sum(n for _, n in ranked[max_levels:])
    sentinels = dict(a.sentinels)
    for key, n in b.sentinels.items():
        sentinels[key] = sentinels.get(key, 0) + n
    numbers: NumericSummary | None
    if a.numbers is not None and b.numbers is not None:
        merged = merge_summaries(a.numbers, b.numbers)
        assert isinstance(merged, NumericSummary)
        numbers = merged
    else:
        numbers = a.numbers or b.numbers
    distinct = (
        max(a.distinct, b.distinct, len(levels))
        if not (other or a.distinct > max_levels)
        else max_levels + 1
    )
    if a.kind in NUMERIC_KINDS and numbers is not None:
        # As one pass over all rows would: levels only while every value is exact and
        # they are few (a partition over the cap kept none, so a union would be partial).
        distinct = numbers.distinct if numbers.scale == K_MAX else max_levels + 1
        if distinct > max_levels:
            levels, other = {}, 0
    return ColumnProfile(
        kind=a.kind,
        rows=a.rows + b.rows,
        nulls=a.nulls + b.nulls,
        empty=a.empty + b.empty,
        sentinels=sentinels,
        non_finite=a.non_finite + b.non_finite,
        numbers=numbers,
        decimals=[x + y for x, y in zip(a.decimals, b.decimals, strict=True)],
        levels=levels,
        other_levels=other,
        distinct=distinct,
        numeric_strings=a.numeric_strings + b.numeric_strings,
        padded=a.padded + b.padded,
        decimal_comma=a.decimal_comma + b.decimal_comma,
        thousands=a.thousands + b.thousands,
        examples={**b.examples, **a.examples},
    )


def quantile(summary: NumericSummary, q: float) -> float:
    """Approximate q-quantile of a numeric summary (bucket midpoint; min/max at the ends)."""
    from silenttax._summary import from_t

    index, counts = summary.buckets()
    if not counts.size:
        return math.nan
    cum = np.cumsum(counts)
    pos = int(np.searchsorted(cum, q * (summary.count - 1), side="right"))
    pos = min(pos, counts.size - 1)
    value = float(from_t((index[pos] + 0.5) / 2.0**summary.scale)[()])
    return min(max(value, summary.min), summary.max)
