"""Hostile state files: truncated, mutated, deep, huge, lying about their counts.

``silenttax.load`` reads JSON only (never pickle) and either returns the component
or raises ``StateError`` naming what is wrong; nothing else escapes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import silenttax
from silenttax._state import MAX_STATE_BYTES, read_state
from silenttax.drift import DriftDetector
from silenttax.errors import StateError
from silenttax.monitor import LatencySketch
from tests.conformance.components import EXAMPLES


def _saved() -> list[str]:
    """One saved state of every registered kind (the conformance suite's examples)."""
    return [example.make().to_json() for example in EXAMPLES.values()]


SAVED = _saved()


def _load_or_state_error(text: str | bytes) -> None:
    message = "loaded"
    try:
        silenttax.load(text)
    except StateError as e:
        message = str(e)
    assert message


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(which=st.integers(0, len(SAVED) - 1), cut=st.floats(0, 1))
def test_truncated_states(which: int, cut: float) -> None:
    text = SAVED[which]
    _load_or_state_error(text[: int(len(text) * cut)])


REPLACEMENTS = ["-1", "1e400", "NaN", "-Infinity", "9" * 5000, "null", "true", '"x"', "[]", "{}"]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(which=st.integers(0, len(SAVED) - 1), at=st.floats(0, 1),
       value=st.sampled_from(REPLACEMENTS))  # fmt: skip
def test_mutated_values(which: int, at: float, value: str) -> None:
    """One JSON value (a number, string or literal) replaced by a hostile one."""
    text = SAVED[which]
    data = json.loads(text)
    leaves: list[tuple[object, object]] = []

    def walk(node: object) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)  # type: ignore[attr-defined]
        for key, child in list(items):
            if isinstance(child, dict | list):
                walk(child)
            elif key not in ("kind", "schema_version"):
                leaves.append((node, key))

    walk(data)
    if not leaves:
        return
    node, key = leaves[min(int(at * len(leaves)), len(leaves) - 1)]
    node[key] = "__HOSTILE__"  # type: ignore[index]
    _load_or_state_error(json.dumps(data).replace('"__HOSTILE__"', value))


def test_every_key_removed_in_turn() -> None:
    """A saved state missing any one key (top level, or one level down) loads or is a
    StateError (atheris found a missing required setting raising TypeError)."""
    tried = 0
    for text in SAVED:
        data = json.loads(text)
        paths = [(key,) for key in data if key != "kind"]
        paths += [
            (key, inner)
            for key, value in data.items()
            if isinstance(value, dict)
            for inner in value
        ][:200]
        for path in paths:
            copy = json.loads(text)
            node = copy
            for key in path[:-1]:
                node = node[key]
            del node[path[-1]]
            _load_or_state_error(json.dumps(copy))
            tried += 1
    assert tried > 100


def test_deep_nesting_wrong_kind_and_future_schema() -> None:
    with pytest.raises(StateError, match="invalid JSON"):
        silenttax.load(
            '{"kind": "silenttax.latency_sketch", "x": ' + "[" * 50000 + "]" * 50000 + "}"
        )
    with pytest.raises(StateError, match="unknown state kind"):
        silenttax.load('{"kind": "os.system", "schema_version": 1}')
    good = json.loads(LatencySketch().to_json())
    with pytest.raises(StateError, match=r"schema_version 99, newer than the 1"):
        silenttax.load(json.dumps({**good, "schema_version": 99}))
    with pytest.raises(StateError):
        LatencySketch.from_json(DriftDetector().fit({"x": [1.0, 2.0]}).to_json())


def test_counts_that_do_not_add_up_are_refused() -> None:
    sketch = LatencySketch()
    for x in (0.01, 0.02, 0.5):
        sketch.add(x)
    data = json.loads(sketch.to_json())
    for lie in ({"count": -3}, {"count": 10**6}, {"counts": [-1, *data["counts"][1:]]}):
        with pytest.raises(StateError, match="count"):
            silenttax.load(json.dumps({**data, **lie}))
    detector = json.loads(DriftDetector().fit({"x": [1.0, 2.0, 3.0]}).to_json())
    detector["reference"]["x"]["runs"][0][1] = 10**12  # a claim of a trillion rows
    with pytest.raises(StateError, match="runs"):
        silenttax.load(json.dumps(detector))


def test_a_state_file_is_size_bounded_and_never_unpickled(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:  # sparse: claims more than the bound, costs nothing
        handle.truncate(MAX_STATE_BYTES + 1)
    with pytest.raises(StateError, match="bytes"):
        silenttax.load(big)
    with pytest.raises(StateError, match="bytes"):
        LatencySketch.load(big)
    pickled = tmp_path / "state.pkl"
    import pickle

    pickled.write_bytes(pickle.dumps(LatencySketch().state()))
    with pytest.raises(StateError):
        silenttax.load(pickled)
    with pytest.raises(StateError, match="cannot read"):
        read_state(tmp_path / "missing.json")
    with pytest.raises(StateError, match="cannot read"):
        read_state(tmp_path)  # a directory
    assert os.path.getsize(big) > MAX_STATE_BYTES
