"""Declared merge rules: each field of a snapshot says how two partitions combine.

As torchmetrics declares a reduction per state (``dist_reduce_fx``), a
snapshot field declares its rule in its annotation, and :func:`merge` applies
them all. A new field cannot be forgotten in a hand-written merge: a field
without a rule makes :func:`merge` fail, and the conformance suite checks
every mergeable snapshot for it. Settings use :data:`SAME`, so merging two
snapshots made with different settings raises an error naming the setting.

Examples:
    >>> from typing import Annotated
    >>> from pydantic import BaseModel
    >>> class Counts(BaseModel):
    ...     n: Annotated[int, SUM] = 0
    ...     top: Annotated[float, MAX] = 0.0
    ...     unit: Annotated[str, SAME] = "s"
    >>> merge(Counts(n=2, top=1.0), Counts(n=3, top=4.0))
    Counts(n=5, top=4.0, unit='s')
    >>> merge(Counts(unit="s"), Counts(unit="ms"))
    Traceback (most recent call last):
    ...
    silenttax.errors.InputError: cannot merge Counts: setting 'unit' differs ('s' vs 'ms')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from silenttax.errors import InputError

__all__ = [
    "ALL",
    "EACH",
    "FIRST",
    "MAX",
    "MIN",
    "SAME",
    "SKETCH",
    "SUM",
    "UNION",
    "Rule",
    "WeightedMean",
    "merge",
    "rule_of",
    "same_settings",
    "since",
]

M = TypeVar("M", bound=BaseModel)
_HEADER = frozenset({"kind", "schema_version"})


@dataclass(frozen=True)
class Rule:
    """How one field of two partitions combines."""

    name: str


SUM = Rule("sum")
"""Add (numbers; dicts of numbers key by key)."""
MIN = Rule("min")
"""The smaller (None is ignored)."""
MAX = Rule("max")
"""The larger (None is ignored)."""
UNION = Rule("union")
"""Sorted union of two lists."""
SAME = Rule("same")
"""A setting: both must be equal."""
SKETCH = Rule("sketch")
"""A :class:`~silenttax._sketch.LatencySketchState`: merged as sketches."""
EACH = Rule("each")
"""A dict of mergeable models: merged key by key, keys of either side kept."""
FIRST = Rule("first")
"""The first side's value unless it is None (e.g. the first call seen)."""
ALL = Rule("all")
"""Logical and (a property both partitions must have)."""


@dataclass(frozen=True)
class WeightedMean(Rule):
    """The mean of both values weighted by another field (e.g. per-span overhead by requests)."""

    weight: str = ""


def rule_of(model: type[BaseModel], field: str) -> Rule | None:
    """The rule declared on ``model.field``, or None."""
    info = model.model_fields[field]
    return next((m for m in info.metadata if isinstance(m, Rule)), None)


def merge(a: M, b: M) -> M:
    """A model over both partitions, by each field's declared rule.

    Raises:
        InputError: ``b`` is not of ``a``'s type, or a :data:`SAME` setting differs
            (the message names it).
        TypeError: a field declares no rule (a bug in the model, not in the input).
    """
    if type(b) is not type(a):
        raise InputError(
            f"can only merge a {type(a).__name__} with another, got {type(b).__name__}"
        )
    return _by_rule(a, b, _apply)


def _by_rule(a: M, b: M, combine: Callable[[Rule, str, BaseModel, BaseModel], Any]) -> M:
    """A model whose every field is ``combine(rule, name, a, b)`` (headers kept from ``a``)."""
    cls = type(a)
    values: dict[str, Any] = {}
    for name in cls.model_fields:
        if name in _HEADER:
            continue
        rule = rule_of(cls, name)
        if rule is None:
            raise TypeError(f"{cls.__name__}.{name} declares no merge rule")
        values[name] = combine(rule, name, a, b)
    return cls.model_validate(
        {**a.model_dump(include=set(_HEADER) & set(cls.model_fields)), **values}
    )


def _apply(rule: Rule, name: str, a: BaseModel, b: BaseModel) -> Any:
    x, y = getattr(a, name), getattr(b, name)
    if isinstance(rule, WeightedMean):
        wx, wy = getattr(a, rule.weight), getattr(b, rule.weight)
        return (x * wx + y * wy) / (wx + wy) if wx + wy else x
    if rule is SUM:
        if isinstance(x, dict):
            return {k: x.get(k, 0) + y.get(k, 0) for k in {**x, **y}}
        return x + y
    if rule in (MIN, MAX):
        present = [v for v in (x, y) if v is not None]
        if not present:
            return None
        return min(present) if rule is MIN else max(present)
    if rule is UNION:
        return sorted(set(x) | set(y))
    if rule is SAME:
        if x != y:
            raise InputError(
                f"cannot merge {type(a).__name__}: setting {name!r} differs ({x!r} vs {y!r})"
            )
        return x
    if rule is SKETCH:
        from silenttax._sketch import LatencySketch

        return LatencySketch.from_state(x).merge(LatencySketch.from_state(y)).state()
    if rule is EACH:
        out = dict(x)
        for key, value in y.items():
            out[key] = merge(out[key], value) if key in out else value
        return out
    if rule is FIRST:
        return x if x is not None else y
    if rule is ALL:
        return bool(x and y)
    raise TypeError(f"unknown merge rule {rule!r}")


def since(later: M, earlier: M) -> M:
    """What a cumulative snapshot recorded after an earlier snapshot of the same stream
    (a window: the last five minutes of a monitor that counts since start), by each
    field's declared rule: ``SUM`` subtracts, ``SKETCH`` subtracts bucket counts (exact at
    the later scale), ``EACH`` goes key by key (a key new since ``earlier`` is kept whole),
    ``WeightedMean`` solves for the window's mean; ``MIN``, ``MAX``, ``FIRST``, ``UNION``,
    ``ALL`` and ``SAME`` keep the later value (a running extreme cannot be windowed).

    Raises:
        InputError: ``earlier`` is of another type, or holds more than ``later`` (not an
            earlier snapshot of the same stream).
        TypeError: a field declares no rule.

    Examples:
        >>> from typing import Annotated
        >>> from pydantic import BaseModel
        >>> class Counts(BaseModel):
        ...     n: Annotated[int, SUM] = 0
        ...     top: Annotated[float, MAX] = 0.0
        >>> since(Counts(n=12, top=4.0), Counts(n=5, top=3.0))
        Counts(n=7, top=4.0)
    """
    if type(earlier) is not type(later):
        raise InputError(
            f"since: a {type(later).__name__} is not windowed by a {type(earlier).__name__}"
        )
    return _by_rule(later, earlier, _difference)


def _difference(rule: Rule, name: str, later: BaseModel, earlier: BaseModel) -> Any:
    x, y = getattr(later, name), getattr(earlier, name)
    if isinstance(rule, WeightedMean):
        wx, wy = getattr(later, rule.weight), getattr(earlier, rule.weight)
        return (x * wx - y * wy) / (wx - wy) if wx > wy else x
    if rule is SUM:
        out = {k: x.get(k, 0) - y.get(k, 0) for k in x} if isinstance(x, dict) else x - y
        low = min(out.values(), default=0) if isinstance(out, dict) else out
        if isinstance(low, int) and low < 0:
            raise InputError(f"since: {type(later).__name__}.{name} is smaller than before")
        return out
    if rule is SKETCH:
        from silenttax._sketch import LatencySketch

        return LatencySketch.from_state(x).since(y)
    if rule is EACH:
        return {key: since(value, y[key]) if key in y else value for key, value in x.items()}
    return x


def same_settings(owner: str, mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Raise :class:`InputError` naming the first setting that differs between two components
    about to be merged (partitions and replicas must be configured alike)."""
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            raise InputError(
                f"cannot merge {owner}s with different settings: {key!r} is "
                f"{mine.get(key)!r} here and {theirs.get(key)!r} in the other"
            )
