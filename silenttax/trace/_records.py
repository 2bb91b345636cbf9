"""Retained spans as JSON-able records (what :meth:`Tracer.traces` returns)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = ["SpanRecord"]


class SpanRecord(BaseModel):
    """One retained span and its children (from :meth:`Tracer.traces`).

    Durations are corrected for the tracer's own measured overhead.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    name: str
    """Span name."""
    stage: str
    """What the span is (``model``, ``preprocess``, ``serialize``, ...)."""
    start: float
    """Start, seconds since the epoch (monotonic clock mapped to wall time once)."""
    start_ns: int
    """Start, nanoseconds since the epoch."""
    duration: float
    """Wall time from start to end, seconds."""
    self_time: float
    """Duration minus the children's durations, seconds (0 if children overlap it)."""
    gc_time: float = 0.0
    """Garbage-collection pauses inside the span's self time, seconds (runtime hints)."""
    attributes: dict[str, JsonValue] = Field(default_factory=dict)
    """Attributes given to ``span()`` or set on it."""
    error: str | None = None
    """Exception type name if the span ended with an exception."""
    children: list[SpanRecord] = Field(default_factory=list)
    """Child spans in the order they ended."""

    def walk(self) -> list[SpanRecord]:
        """This span and all its descendants, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


#: Longest attribute text kept in a trace (longer text is cut, with its length).
MAX_ATTRIBUTE_CHARS = 1000
#: Most items of a list attribute kept in a trace.
MAX_ATTRIBUTE_ITEMS = 100


def _jsonable(value: Any) -> JsonValue:
    """A span attribute as bounded JSON: any object, even one whose ``str`` raises."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value[:MAX_ATTRIBUTE_ITEMS]]
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # a user's object whose __str__ fails: name its type
        text = f"<{type(value).__name__}: unprintable>"
    if len(text) > MAX_ATTRIBUTE_CHARS:
        text = f"{text[: MAX_ATTRIBUTE_CHARS - 30]}... ({len(text)} characters)"
    return text
