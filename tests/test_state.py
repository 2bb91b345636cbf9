from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import Field

from silenttax._state import State
from silenttax.errors import StateError


class Sketch(State):
    KIND: ClassVar[str] = "test.sketch"
    SCHEMA_VERSION: ClassVar[int] = 2
    counts: list[int] = Field(default_factory=list)
    total: float = 0.0


class Other(State):
    KIND: ClassVar[str] = "test.other"


class MigratingSketch(Sketch):
    @classmethod
    def _migrate(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        assert version == 1
        data["total"] = float(data.pop("sum"))
        return data


def test_header_is_written_and_round_trips(tmp_path: Path) -> None:
    s = Sketch(counts=[1, 2], total=math.inf)
    doc = json.loads(s.to_json())
    assert doc["kind"] == "test.sketch" and doc["schema_version"] == 2
    path = s.save(tmp_path / "s.json")
    assert Sketch.load(path) == s
    assert Sketch.load(str(path)).total == math.inf
    assert not list(tmp_path.glob(".s.json.*"))  # no temp file left behind


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    Sketch(counts=[1]).save(path)
    Sketch(counts=[2]).save(path)
    assert Sketch.load(path).counts == [2]


def test_truncated_file(tmp_path: Path) -> None:
    path = Sketch(counts=[1, 2, 3]).save(tmp_path / "s.json")
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(StateError, match=r"test\.sketch"):
        Sketch.load(path)


def test_wrong_kind(tmp_path: Path) -> None:
    path = Other().save(tmp_path / "o.json")
    with pytest.raises(
        StateError, match=r"expected a 'test\.sketch' state, got one of kind 'test\.other'"
    ):
        Sketch.load(path)


def test_future_version() -> None:
    text = json.dumps({"kind": "test.sketch", "schema_version": 3, "counts": []})
    with pytest.raises(StateError, match="newer than the 2"):
        Sketch.from_json(text)


@pytest.mark.parametrize("version", ["2", -1, 1.5, True])
def test_invalid_version(version: object) -> None:
    text = json.dumps({"kind": "test.sketch", "schema_version": version})
    with pytest.raises(StateError, match="schema_version"):
        Sketch.from_json(text)


def test_older_version_needs_a_migration() -> None:
    text = json.dumps({"kind": "test.sketch", "schema_version": 1, "counts": [1], "sum": 4})
    with pytest.raises(StateError, match="reads only version 2"):
        Sketch.from_json(text)
    migrated = MigratingSketch.from_json(text)
    assert migrated.total == 4.0 and migrated.schema_version == 2


@pytest.mark.parametrize(
    "text", ["", "[]", "null", "{", '{"kind": "test.sketch", "counts": "many"}', '{"extra": 1}']
)
def test_garbage(text: str) -> None:
    with pytest.raises(StateError):
        Sketch.from_json(text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="cannot read"):
        Sketch.load(tmp_path / "absent.json")


def test_frozen() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Sketch().total = 1.0  # type: ignore[misc]
