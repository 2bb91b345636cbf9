"""Severity (ordered) and Category: the two enums every finding carries."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, TypeVar

__all__ = ["CATEGORY_PATTERN", "Category", "Severity", "category"]

#: A user's own category: a lower-case identifier, dotted to namespace it
#: (``business``, ``mycompany.queues``).
CATEGORY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")

_E = TypeVar("_E", bound=StrEnum)


def _lookup(cls: type[_E], value: object) -> _E | None:
    """Case- and space-insensitive lookup by value (``"Warning "`` -> WARNING)."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        for member in cls:
            if member.value == lowered:
                return member
    return None


class Severity(StrEnum):
    """How bad a finding is. Ordered: ``OK < INFO < WARNING < CRITICAL``.

    Members compare by rank, not alphabetically, and compare with their string
    values too, so ``max()`` over severities and ``Severity.WARNING >= "info"``
    both work. Parsing is case-insensitive.

    Examples:
        >>> Severity.WARNING == "warning"
        True
        >>> Severity.OK < Severity.INFO < Severity.WARNING < Severity.CRITICAL
        True
        >>> max([Severity.INFO, Severity.CRITICAL, Severity.WARNING])
        <Severity.CRITICAL: 'critical'>
        >>> Severity("Warning") >= "info"
        True
    """

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @classmethod
    def _missing_(cls, value: object) -> Severity | None:
        return _lookup(cls, value)

    @property
    def rank(self) -> int:
        """0 for ``OK`` up to 3 for ``CRITICAL``."""
        return _RANK[self]

    def _other_rank(self, other: Any) -> int:
        if isinstance(other, Severity):
            return other.rank
        if isinstance(other, str):
            try:
                return Severity(other).rank
            except ValueError:
                pass
        raise TypeError(f"cannot compare Severity with {other!r}")

    def __lt__(self, other: Any) -> bool:
        return self.rank < self._other_rank(other)

    def __le__(self, other: Any) -> bool:
        return self.rank <= self._other_rank(other)

    def __gt__(self, other: Any) -> bool:
        return self.rank > self._other_rank(other)

    def __ge__(self, other: Any) -> bool:
        return self.rank >= self._other_rank(other)


_RANK = {member: rank for rank, member in enumerate(Severity)}


class Category(StrEnum):
    """What kind of decay a finding is about.

    Examples:
        >>> Category("latency") is Category.LATENCY
        True
        >>> [c.value for c in Category][:3]
        ['data_drift', 'feature_health', 'latency']
    """

    DATA_DRIFT = "data_drift"
    FEATURE_HEALTH = "feature_health"
    LATENCY = "latency"
    RESOURCE = "resource"
    COST = "cost"
    MODEL_BLOAT = "model_bloat"
    DEPENDENCY = "dependency"
    PIPELINE = "pipeline"
    STABILITY = "stability"
    HISTORY = "history"

    @classmethod
    def _missing_(cls, value: object) -> Category | None:
        return _lookup(cls, value)


def category(value: object) -> Category | str:
    """A finding's category: a built-in :class:`Category` where ``value`` names one
    (case-insensitive), else a user's own category (:data:`CATEGORY_PATTERN`).

    Raises:
        ValueError: not a string, or not a lower-case (dotted) identifier.

    Examples:
        >>> category("Latency"), category("mycompany.queues")
        (<Category.LATENCY: 'latency'>, 'mycompany.queues')
    """
    if isinstance(value, Category):
        return value
    builtin = _lookup(Category, value)
    if builtin is not None:
        return builtin
    if not isinstance(value, str) or not CATEGORY_PATTERN.match(value):
        raise ValueError(
            f"category must be one of {', '.join(c.value for c in Category)} or a lower-case "
            f"identifier of your own (dotted to namespace it), got {value!r}"
        )
    return value
