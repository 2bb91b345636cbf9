"""The tracer's hot path: span classes and the layout of the span buffer.

Entering a span reads the monotonic clock and sets a ``ContextVar``; leaving
it reads the clock again, restores the variable and appends five integers to
a flat buffer (see ``_FIELDS``). Nothing here allocates beyond the span
object, which is freed as soon as the ``with`` block ends. ``_speedups.c`` is
the same recorder compiled.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from silenttax.trace._tracer import Tracer

_FOLD_AT = 4096  # spans buffered before a batch is aggregated (when a request ends)
_HARD_AT = 16 * _FOLD_AT  # ... and regardless, so no single long request can grow the buffer
_FIELDS = 5  # per span in the buffer: key, start, end, seq, parent seq
_KEY, _START, _END, _SEQ, _PARENT = range(_FIELDS)
_perf_ns = time.perf_counter_ns


class _Root:
    """The context value outside any span: the parent of every request."""

    __slots__ = ()
    seq: ClassVar[int] = -1


_ROOT = _Root()


class _NoopSpan:
    """Returned when the tracer is disabled or the request is not sampled."""

    __slots__ = ()
    seq: ClassVar[int] = -1  # a span opened under it (recording switched on) is a request

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        """Ignored."""


_NOOP = _NoopSpan()


class _SkipRoot:
    """An unsampled request: marks the context so its children cost nothing."""

    __slots__ = ("_token", "_var")

    def __init__(self, var: ContextVar[Any]) -> None:
        self._var = var
        self._token: Token[Any] | None = None

    def __enter__(self) -> _SkipRoot:
        self._token = self._var.set(_NOOP)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            try:
                self._var.reset(self._token)
            except ValueError:  # left in another context than it was entered in
                self._var.set(_ROOT)

    def set_attribute(self, key: str, value: Any) -> None:
        """Ignored."""


class _Span:
    """A span being recorded; use it as a context manager (``with tracer.span(...)``).

    Each tracer makes its own subclass whose methods close over the tracer's
    context variable and buffer, so the hot path does no attribute lookups
    beyond its own four slots.
    """

    __slots__ = ("key", "parent", "seq", "start")
    key: int
    parent: Any
    seq: int
    start: int

    def __init__(self, name: str, *, stage: str | None = None, **attributes: Any) -> None:
        raise NotImplementedError  # pragma: no cover - the tracer's subclass implements it

    def __enter__(self) -> _Span:
        raise NotImplementedError  # pragma: no cover

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise NotImplementedError  # pragma: no cover

    def set_attribute(self, key: str, value: Any) -> None:
        """Attach an attribute to the span (kept on retained traces and replayed to OTel)."""
        raise NotImplementedError  # pragma: no cover


def _span_class(tracer: Tracer) -> type[_Span]:
    """The tracer's pure-Python span class: every name it needs is a closure variable."""
    get = tracer._var.get
    set_ = tracer._var.set
    buf = tracer._buf
    extend = buf.extend
    table = tracer._table
    attrs = tracer._attrs
    errors = tracer._errors
    next_seq = tracer._seqs.__next__
    new_key = tracer._new_key
    fold_at = _FOLD_AT * _FIELDS
    hard_at = _HARD_AT * _FIELDS
    root = _ROOT
    clock = _perf_ns

    class _TracerSpan(_Span):
        __slots__ = ()

        def __init__(self, name: str, *, stage: str | None = None, **attributes: Any) -> None:
            try:
                self.key = table[stage][name]
            except (KeyError, TypeError):
                self.key = new_key(name, stage)
            self.seq = seq = next_seq()
            if attributes:
                attrs[seq] = attributes

        def __enter__(self) -> _Span:
            parent = get()
            if parent is not self:  # entered again inside itself: keep the first parent
                self.parent = parent
            set_(self)
            self.start = clock()
            return self

        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None:
            end = clock()
            parent = self.parent
            set_(parent)
            extend((self.key, self.start, end, self.seq, parent.seq))
            if exc_type is not None:
                errors[self.seq] = exc_type.__name__
            if len(buf) >= fold_at and (parent is root or len(buf) >= hard_at):
                tracer._fold_quietly()

        def set_attribute(self, key: str, value: Any) -> None:
            """Attach an attribute to the span (kept on retained traces and replayed to OTel).

            Only while the span is open in this context (or an enclosing one);
            otherwise the attribute is ignored.
            """
            span = get()
            while span is not self:  # walk the open spans: cheap, and rarely called
                span = getattr(span, "parent", None)
                if span is None:
                    return
            attrs.setdefault(self.seq, {})[key] = value

    return _TracerSpan
