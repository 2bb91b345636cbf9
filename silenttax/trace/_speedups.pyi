# Type stub of the compiled recorder (silenttax/trace/_speedups.c).
from contextvars import ContextVar
from typing import Any

class Span:
    key: int
    seq: int
    start: int
    parent: Any
    def __enter__(self) -> Span: ...
    def __exit__(self, *exc: object) -> None: ...
    def set_attribute(self, key: str, value: Any) -> None: ...

class Recorder:
    def __init__(
        self,
        tracer: Any,
        var: ContextVar[Any],
        table: dict[str | None, dict[str, int]],
        attrs: dict[int, dict[str, Any]],
        errors: dict[int, str],
        root: object,
        fold_at: int,
        hard_at: int,
        /,
    ) -> None: ...
    def span(self, name: str, *, stage: str | None = None, **attributes: Any) -> Span: ...
    def take(self) -> bytes: ...
    def clear(self) -> None: ...
    def values(self) -> int: ...
