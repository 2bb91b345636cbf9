"""What a load run drives: an in-process callable, a :class:`ModelSpec`, or an HTTP URL.

Every target becomes a :class:`Target`: a name, a kind and, for in-process ones, a
synchronous ``call(item)`` run on the generator's thread pool (an ``async`` callable
runs on one event loop of its own; a ModelSpec is loaded once, in this process, as the
stack check's worker loads it). HTTP targets are driven by the generator's own
keep-alive client (see :mod:`silenttax.load._http`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from silenttax.errors import InputError

_NONE = object()


@dataclass
class Target:
    """A load target, normalised (see :func:`as_target`)."""

    name: str
    kind: str  # "callable" | "process" | "model" | "http"
    call: Callable[[Any], Any] | None = None  # in process: one request, one payload item
    url: str | None = None
    payloads: list[Any] = field(default_factory=list)  # cycled; [_NONE]: no argument
    close: Callable[[], None] | None = None

    def item(self, i: int) -> Any:
        """The payload of request ``i`` (the same order in every run: common random numbers)."""
        return self.payloads[i % len(self.payloads)]

    def release(self, given: Any) -> None:
        """Close this target if it was built here from ``given`` (a run never closes a
        :class:`Target` it was handed: its owner does)."""
        if self.close is not None and not isinstance(given, Target):
            self.close()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.close is not None:
            self.close()


def _payloads(payloads: Any, *, argument: str = "payloads") -> list[Any]:
    if payloads is None:
        return [_NONE]
    if isinstance(payloads, str | bytes | dict):
        raise InputError(
            f"{argument}: give a list of payloads (one per request, cycled), not a single "
            f"{type(payloads).__name__}"
        )
    try:
        items = list(payloads)
    except TypeError:
        raise InputError(
            f"{argument}: must be a list of payloads, got {type(payloads).__name__}"
        ) from None
    if not items:
        raise InputError(f"{argument}: is empty (give at least one payload)")
    return items


def _async_runner(fn: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[[], None]]:
    """A sync wrapper running an ``async def`` on one private event loop (its own thread)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="silenttax-load-async", daemon=True)
    thread.start()

    def call(*args: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(*args), loop).result()

    def close() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)

    return call, close


def _from_spec(spec: Any) -> tuple[Callable[[Any], Any], str]:
    call = spec.predictor()
    return (lambda _item: call()), f"{spec.kind} model"


def as_target(
    target: Any, payloads: Sequence[Any] | None = None, *, name: str | None = None
) -> Target:
    """Normalise what the user gave: a callable (called with no argument, or with one
    item of ``payloads`` per request, cycled), a :class:`~silenttax.benchmark.ModelSpec`,
    or an ``http://`` URL string (a ``POST`` of each payload: JSON for dicts and lists,
    raw for bytes and str; a ``GET`` without payloads).

    Raises:
        InputError: anything else, or payloads that are not a non-empty list.
    """
    items = _payloads(payloads)
    if isinstance(target, Target):
        if payloads is None:
            return target
        if target.kind == "model":
            raise InputError("payloads: a ModelSpec carries its own inputs (give none)")
        return dataclasses.replace(target, payloads=items)
    if isinstance(target, str):
        if not target.startswith(("http://", "https://")):
            raise InputError(
                f"target: a string must be an http:// URL, got {target!r} (an in-process "
                "model is given as a callable or a ModelSpec)"
            )
        if target.startswith("https://"):
            raise InputError("target: https is not supported by the load generator; use http://")
        return Target(name or target, "http", url=target, payloads=items)
    from silenttax.benchmark import ModelSpec

    if isinstance(target, ModelSpec):
        if payloads is not None:
            raise InputError("payloads: a ModelSpec carries its own inputs (give none)")
        call, label = _from_spec(target)
        return Target(name or label, "model", call=call, payloads=items)
    if not callable(target):
        raise InputError(
            "target: must be a callable, a ModelSpec or an http:// URL, got "
            f"{type(target).__name__}"
        )
    close = None
    fn: Callable[..., Any] = target
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(target).__call__):
        fn, close = _async_runner(target)
    label = name or getattr(target, "__qualname__", None) or type(target).__name__
    if items[0] is _NONE:
        return Target(label, "callable", call=lambda _item: fn(), payloads=items, close=close)
    return Target(label, "callable", call=fn, payloads=items, close=close)
