"""Every saved kind, where its class lives, and :func:`load`, which reads any of them.

A state file names its ``kind``; :data:`KINDS` maps each kind to the object
``load`` returns: the component that saved it (``DriftDetector``,
``LatencySketch``, ...) or the measurement itself (``BenchmarkResult``,
``Breakdown``, ...). Modules are imported only when a file of their kind is
read, so ``import silenttax`` stays light. A test keeps this table and the
:class:`~silenttax._state.State` subclasses in step.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from silenttax._state import State
from silenttax.errors import StateError

__all__ = ["KINDS", "load"]

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
    "silenttax.environment": "silenttax.benchmark._environment:Environment",
    "silenttax.feature_health": "silenttax.features._health:FeatureHealth",
    "silenttax.latency_monitor": "silenttax.monitor._latency:LatencyMonitor",
    "silenttax.latency_sketch": "silenttax._sketch:LatencySketch",
    "silenttax.onnx_profile": "silenttax.profile._onnx:OnnxProfile",
    "silenttax.quantization_study": "silenttax.quantize._study:QuantizationStudy",
    "silenttax.report": "silenttax.report._report:Report",
    "silenttax.resource_monitor": "silenttax.monitor._resource:ResourceMonitor",
    "silenttax.stack_comparison": "silenttax.benchmark._stack:StackComparison",
    "silenttax.torch_profile": "silenttax.profile._torch:TorchProfile",
    "silenttax.trace_breakdown": "silenttax.trace._breakdown:Breakdown",
}


def target(kind: str) -> Any:
    """The class (or loader) that reads ``kind``; :class:`StateError` for an unknown kind."""
    where = KINDS.get(kind)
    if where is None:
        raise StateError(
            f"unknown state kind {kind!r}: this silenttax reads "
            f"{', '.join(sorted(KINDS))} (a newer silenttax may know it)"
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
        return reader.from_state(source)
    if isinstance(source, dict):
        data, text = source, json.dumps(source)
    else:
        text = _text(source)
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(f"not a silenttax state (invalid JSON): {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise StateError("not a silenttax state: the JSON has no 'kind'")
    reader = target(data["kind"])
    return reader.from_json(text) if hasattr(reader, "from_json") else reader(text)


def _text(source: str | bytes | os.PathLike[str]) -> str | bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise StateError(f"cannot read a silenttax state from {str(source)!r}: {exc}") from exc
