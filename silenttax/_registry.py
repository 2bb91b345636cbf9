"""Every saved kind, where its class lives, and :func:`load`, which reads any of them.

A state file names its ``kind``; :data:`KINDS` maps each built-in kind to the object
``load`` returns: the component that saved it (``DriftDetector``,
``LatencySketch``, ...) or the measurement itself (``BenchmarkResult``,
``Breakdown``, ...). Modules are imported only when a file of their kind is
read, so ``import silenttax`` stays light. A test keeps this table and the
:class:`~silenttax._state.State` subclasses in step.

Users' components join with :func:`register` (or an entry point in the
``silenttax.components`` group, name = kind, value = ``"pkg.module:Class"``, loaded
the first time a file of that kind is read): their kinds are namespaced
(``"mycompany.queue_depth"``) and the ``silenttax.`` namespace is reserved.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar, overload

from silenttax._state import State, read_state
from silenttax.errors import InputError, SilentTaxError, StateError

__all__ = ["ENTRY_POINTS", "KINDS", "KIND_PATTERN", "load", "merge", "register", "registered"]

ENTRY_POINTS = "silenttax.components"
"""The entry-point group users' packages declare their components in (name: the kind)."""
KIND_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$")
"""A user's kind: lower-case dotted, namespaced (``mycompany.queue_depth``)."""
_USER: dict[str, Any] = {}
_USER_LOCK = threading.Lock()
T = TypeVar("T", bound=type)

#: kind -> "module:attribute" of what :func:`load` returns for it.
KINDS: dict[str, str] = {
    "silenttax.benchmark_result": "silenttax.benchmark._harness:BenchmarkResult",
    "silenttax.canary": "silenttax.gate._canary:Canary",
    "silenttax.change_detector": "silenttax.monitor._detectors:ChangeDetector",
    "silenttax.comparison": "silenttax.benchmark._harness:Comparison",
    "silenttax.cost_comparison": "silenttax.cost._model:CostComparison",
    "silenttax.cost_model": "silenttax.cost._model:CostModel",
    "silenttax.cost_monitor": "silenttax.cost._monitor:CostMonitor",
    "silenttax.drift_detector": "silenttax.drift._detector:DriftDetector",
    "silenttax.drift_window": "silenttax.drift._detector:DriftWindow",
    "silenttax.environment": "silenttax.benchmark._environment:Environment",
    "silenttax.feature_health": "silenttax.features._health:FeatureHealth",
    "silenttax.latency_monitor": "silenttax.monitor._latency:LatencyMonitor",
    "silenttax.latency_sketch": "silenttax._sketch:LatencySketch",
    "silenttax.onnx_profile": "silenttax.profile._onnx:OnnxProfile",
    "silenttax.prediction_monitor": "silenttax.monitor._prediction:PredictionMonitor",
    "silenttax.quantization_study": "silenttax.quantize._study:QuantizationStudy",
    "silenttax.report": "silenttax.report._report:Report",
    "silenttax.resource_monitor": "silenttax.monitor._resource:ResourceMonitor",
    "silenttax.serving": "silenttax.integrations.asgi:SilentTaxMiddleware",
    "silenttax.stack_comparison": "silenttax.benchmark._stack:StackComparison",
    "silenttax.torch_profile": "silenttax.profile._torch:TorchProfile",
    "silenttax.trace_breakdown": "silenttax.trace._breakdown:Breakdown",
}


@overload
def register(kind: str) -> Callable[[T], T]: ...
@overload
def register(kind: str, cls: T) -> T: ...
def register(kind: str, cls: Any = None) -> Any:
    """Register a component (or measurement) class of your own under ``kind``, so
    :func:`silenttax.load`, :func:`silenttax.merge`, ``silenttax merge``, a fleet's
    snapshot directory and the Prometheus collector read it like a built-in one. Use it
    as a call or as a class decorator. Registering the same class again is a no-op.

    Args:
        kind: Namespaced, lower-case dotted (:data:`KIND_PATTERN`), equal to the class's
            ``STATE.KIND`` (a component) or ``KIND`` (a :class:`State` measurement);
            ``silenttax.*`` is reserved.
        cls: The class; omitted, ``register(kind)`` returns a decorator.

    Raises:
        InputError: a malformed or reserved kind, a class that is neither a
            ``Stateful`` component nor a ``State`` of that kind, or a kind taken by
            another class (each named).

    Examples:
        >>> from typing import ClassVar
        >>> from silenttax.component import State
        >>> @register("example.note")
        ... class Note(State):
        ...     KIND: ClassVar[str] = "example.note"
        ...     text: str = ""
        >>> load(Note(text="hi").to_json()).text
        'hi'
    """
    if cls is None:
        return lambda given: register(kind, given)
    if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
        raise InputError(
            f"kind: a namespaced lower-case dotted name like 'mycompany.queue_depth', got {kind!r}"
        )
    if kind.startswith("silenttax.") or kind in KINDS:
        raise InputError(f"kind: {kind!r} is in silenttax's own namespace (reserved)")
    if not isinstance(cls, type):
        raise InputError(f"cls: a class, got {type(cls).__name__}")
    state = cls if issubclass(cls, State) else getattr(cls, "STATE", None)
    if not (isinstance(state, type) and issubclass(state, State)):
        raise InputError(
            f"cls: {cls.__name__} is neither a State nor a component with a STATE class "
            "(see silenttax.component)"
        )
    if state.KIND != kind:
        raise InputError(f"kind: {kind!r} is not {cls.__name__}'s own kind {state.KIND!r}")
    if state is not cls:
        missing = [m for m in ("state", "from_state", "from_json") if not callable(
            getattr(cls, m, None))]  # fmt: skip
        if missing:
            raise InputError(f"cls: {cls.__name__} has no {', '.join(missing)} "
                             "(derive it from silenttax.component.Stateful)")  # fmt: skip
    with _USER_LOCK:
        known = _USER.get(kind)
        if (
            known is not None
            and known is not cls
            and ((known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__))
        ):
            raise InputError(
                f"kind: {kind!r} is already registered to {known.__module__}.{known.__qualname__}"
            )
        _USER[kind] = cls
    return cls


def registered() -> dict[str, Any]:
    """The kinds users registered (:func:`register`, entry points loaded so far) and
    their classes.

    Examples:
        >>> isinstance(registered(), dict)
        True
    """
    with _USER_LOCK:
        return dict(_USER)


def _from_entry_points(kind: str) -> Any:
    """The class an installed package declares for ``kind`` (None: none does)."""
    try:
        found = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)
                 if ep.name == kind]  # fmt: skip
    except Exception:  # a broken distribution's metadata never breaks loading
        return None
    for point in found:
        try:
            cls = point.load()
        except Exception as exc:
            raise StateError(
                f"kind {kind!r}: its entry point {point.value!r} cannot be imported: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            return register(kind, cls)
        except InputError as exc:
            raise StateError(f"kind {kind!r}: entry point {point.value!r}: {exc}") from exc
    return None


def target(kind: str) -> Any:
    """The class (or loader) that reads ``kind``; :class:`StateError` for an unknown kind."""
    where = KINDS.get(kind)
    if where is None:
        with _USER_LOCK:
            user = _USER.get(kind)
        namespaced = isinstance(kind, str) and KIND_PATTERN.match(kind) is not None
        if user is None and namespaced and not kind.startswith("silenttax."):
            user = _from_entry_points(kind)
        if user is not None:
            return user
        raise StateError(
            f"unknown state kind {kind!r}: this silenttax reads "
            f"{', '.join(sorted(KINDS))}, and the kinds registered here"
            f"{' (' + ', '.join(sorted(_USER)) + ')' if _USER else ' (none)'}; a component "
            "of your own is registered by importing its module (silenttax.component."
            "register; 'silenttax --import MODULE' on the command line) or by an entry "
            f"point in the {ENTRY_POINTS!r} group (a newer silenttax may know a "
            "silenttax.* kind)"
        )
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


def load(source: str | bytes | os.PathLike[str] | dict[str, Any] | State) -> Any:
    """Read any saved silenttax state: a path, JSON text or bytes, a parsed dict, or a
    snapshot already in memory (a component's ``state()``, e.g. after a merge).

    Returns what saved it: a component (``DriftDetector``, ``FeatureHealth``,
    ``LatencySketch``, ``LatencyMonitor``, change detectors,
    ``ResourceMonitor``, ``CostMonitor``) or a measurement (``Report``,
    ``BenchmarkResult``, ``Comparison``, ``StackComparison``, ``Environment``, profiles,
    ``QuantizationStudy``, ``Breakdown``, ``CostModel``).

    Raises:
        StateError: unreadable file or JSON, no ``kind``, an unknown kind, or a
            schema version newer than this silenttax reads (the message names
            kind and versions).

    Examples:
        >>> import silenttax
        >>> from silenttax.monitor import LatencySketch
        >>> sketch = LatencySketch()
        >>> sketch.add(0.012)
        >>> type(silenttax.load(sketch.to_json())).__name__
        'LatencySketch'
        >>> silenttax.load('{"kind": "silenttax.future_thing", "schema_version": 1}')
        Traceback (most recent call last):
        ...
        silenttax.errors.StateError: unknown state kind 'silenttax.future_thing': ...
    """
    text: str | bytes
    if isinstance(source, State):
        reader = target(source.kind)
        if isinstance(source, reader):
            return source  # a measurement is its own snapshot
        return getattr(reader, "rebuild", reader.from_state)(source)
    if isinstance(source, dict):
        data, text = source, json.dumps(source)
    else:
        text = _text(source)
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise StateError(f"not a silenttax state (invalid JSON): {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise StateError("not a silenttax state: the JSON has no 'kind'")
    reader = target(data["kind"])
    if (
        isinstance(source, str | os.PathLike)
        and not isinstance(text, str)
        and hasattr(reader, "load")
    ):
        return reader.load(source)  # a file: what it refers to is read beside it
    return reader.from_json(text) if hasattr(reader, "from_json") else reader(text)


def _text(source: str | bytes | os.PathLike[str]) -> str | bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return source
    return read_state(source)


Source = str | bytes | os.PathLike[str] | dict[str, Any] | State


def _is_dir(source: object) -> bool:
    if not isinstance(source, str | os.PathLike) or str(source).lstrip().startswith("{"):
        return False
    try:
        return Path(source).is_dir()
    except OSError:  # not a usable path (too long, bad characters)
        return False


def _sources(sources: Source | Iterable[Source]) -> list[tuple[str, Any]]:
    """(label, source) pairs: a directory's ``*.json`` files in name order, or each item."""
    if _is_dir(sources):
        assert isinstance(sources, str | os.PathLike)
        files = sorted(Path(sources).glob("*.json"))
        if not files:
            raise InputError(f"sources: {str(sources)!r} holds no .json snapshot")
        return [(str(f), f) for f in files]
    if isinstance(sources, str | bytes | os.PathLike | dict | State):
        sources = [sources]
    out = []
    for i, item in enumerate(sources):
        is_path = isinstance(item, os.PathLike) or (
            isinstance(item, str) and not item.lstrip().startswith("{")
        )
        label = str(item) if is_path else f"sources[{i}]"
        if _is_dir(item):
            out.extend(_sources(item))
        else:
            out.append((label, item))
    return out


def merge(sources: Source | Iterable[Source]) -> Any:
    """Merge saved snapshots of one kind (N replicas of a monitor, partitions of a
    reference) into one component, ready to check or report.

    ``sources`` is a directory (its ``*.json`` files), or a list of paths, JSON
    texts, parsed dicts, snapshots or components. Each is read with
    :func:`load` and merged with the component's own ``merge``, so counts add up
    exactly and settings must agree.

    Raises:
        InputError: nothing to merge, kinds that differ, a kind that does not
            merge, or different settings — naming the file.
        StateError: a file that is not a readable snapshot (named).

    Examples:
        >>> from silenttax.monitor import LatencySketch
        >>> replicas = []
        >>> for seconds in ([0.010, 0.012], [0.011, 0.300]):
        ...     sketch = LatencySketch()
        ...     sketch.add_many(seconds)
        ...     replicas.append(sketch.to_json())
        >>> merged = merge(replicas)
        >>> merged.count, round(merged.max, 3)
        (4, 0.3)
    """
    items = _sources(sources)
    if not items:
        raise InputError("sources: nothing to merge")
    merged: Any = None
    first = ""
    for label, item in items:
        try:
            component = (
                item if hasattr(item, "merge") and not isinstance(item, State) else load(item)
            )
        except StateError as exc:
            raise StateError(f"{label}: {exc}") from exc
        if merged is None:
            if not callable(getattr(component, "merge", None)):
                raise InputError(f"{label}: a {type(component).__name__} does not merge")
            merged, first = component, label
            continue
        if type(component) is not type(merged):
            raise InputError(
                f"{label}: a {type(component).__name__} cannot merge with {first}'s "
                f"{type(merged).__name__}"
            )
        try:
            merged.merge(component)
        except SilentTaxError as exc:
            raise InputError(f"{label}: cannot merge with {first}: {exc}") from exc
    return merged
