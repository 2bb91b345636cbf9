"""Hostile command lines and files: every command ends in an exit status, never a traceback.

The rule (issue "Reliability"): ``silenttax COMMAND ...`` returns 0, 1 or 3 (a verdict)
or 2 with one printable line on stderr that starts with the program's name; nothing
escapes ``main``, no warning leaks, and no command starts a long run on a value such
as ``--max-time nan``.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from silenttax.cli import main
from silenttax.cli._main import build_parser
from silenttax.drift import DriftDetector
from silenttax.monitor import LatencySketch

HOSTILE: dict[str, bytes | str] = {
    "empty.csv": b"",
    "header-only.csv": "a,b\n",
    "duplicated.csv": "a,a\n1,2\n3,4\n",
    "ragged.csv": "a,b\n1\n1,2,3\n",
    "nul.csv": b"a,b\n1,\x00\n2,3\n",
    "latin1.csv": b"a,b\n\xe9,1\n\xff,2\n",
    "binary.csv": bytes(range(256)) * 8,
    "unterminated.csv": 'a,b\n"unterminated,1\n',
    "unicode.csv": "é,列, \n1,2,3\n",
    "no-name.csv": ",b\n1,2\n",
    "garbage.parquet": b"PAR1garbage",
    "text.parquet": "a,b\n1,2\n",
    "not-gzip.csv.gz": b"\x1f\x8bnotgzip",
    "empty.json": b"",
    "null.json": "null",
    "list.json": "[]",
    "object.json": "{}",
    "string.json": '"x"',
    "deep.json": "[" * 100_000 + "]" * 100_000,
    "nan-samples.json": '{"samples": [NaN, Infinity, -1]}',
    "no-samples.json": '{"samples": []}',
    "text-samples.json": '{"samples": ["a", null]}',
    "bad-blocks.json": '{"blocks": [[1, 2], "x", []]}',
    "unknown-kind.json": '{"kind": "silenttax.nope", "schema_version": 1}',
    "future.json": '{"kind": "silenttax.latency_sketch", "schema_version": 999}',
    "lines.txt": "0.1\nabc\n-5\nnan\n\n1e400\n",
    "empty.txt": "",
    "garbage.onnx": bytes(range(97, 123)) * 20,
    "empty.onnx": b"",
    "garbage.npy": b"\x93NUMPY garbage",
    "empty.npy": b"",
}

READABLE = {"latin1.csv", "nul.csv", "unicode.csv", "no-name.csv"}
NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e400", "abc", "", "1e-400", "9" * 30]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hostile")
    paths: dict[str, str] = {}
    for name, data in HOSTILE.items():
        path = root / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        paths[name] = str(path)
    good = root / "good.csv"
    good.write_text("a,b\n" + "".join(f"{i},{'xy'[i % 2]}\n" for i in range(200)))
    paths["good.csv"] = str(good)
    np.save(root / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    paths["pickled.npy"] = str(root / "pickled.npy")
    paths["drift.json"] = str(DriftDetector().fit({"a": np.arange(100.0)}).save(root / "d.json"))
    sketch = LatencySketch()
    sketch.add_many(np.full(100, 0.01))
    paths["sketch.json"] = str(sketch.save(root / "sketch.json"))
    paths["truncated.json"] = str(root / "truncated.json")
    Path(paths["truncated.json"]).write_text(Path(paths["drift.json"]).read_text()[:200])
    paths["missing"] = str(root / "does-not-exist.csv")
    paths["directory"] = str(root)
    paths["out-dir"] = str(root / "outputs")
    os.makedirs(paths["out-dir"])
    return paths


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status = main(args)
    err = capsys.readouterr().err
    assert status in (0, 1, 2, 3), (args, status)
    assert "Traceback" not in err, err
    if status == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("silenttax"), (args, err)
        assert lines[0].isprintable() and len(lines[0]) <= 1000
    return status, err


FILES = sorted([*HOSTILE, "pickled.npy", "truncated.json", "missing", "directory"])


@pytest.mark.parametrize("name", FILES)
def test_hostile_data_files(name: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]):
    good, bad = files["good.csv"], files[name]
    for args in (["drift", bad, good], ["drift", good, bad]):
        status, err = _run(args, capsys)
        # odd but readable tables are judged (0, or 1 for findings); anything else is a
        # usage error
        assert (status == 2) == (name not in READABLE) and status in (0, 1, 2), (args, err)
    _run(["report", bad], capsys)


@pytest.mark.parametrize("name", FILES)
def test_hostile_state_files(name: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]):
    assert _run(["merge", files[name]], capsys)[0] == 2
    assert _run(["merge", files[name], files["drift.json"]], capsys)[0] == 2
    _run(["gate", files[name], files["sketch.json"]], capsys)
    _run(["gate", files[name]], capsys)
    _run(["gate", files["sketch.json"], files["sketch.json"], "--policy", files[name]], capsys)


def _valid(value: str, rule: str) -> bool:
    """What each option accepts: finite numbers in range, whole numbers for counts."""
    if rule.startswith("count"):
        return value.isdigit() and int(value) >= (2 if rule == "count2" else 1)
    try:
        number = float(value)
    except ValueError:
        return False
    if not math.isfinite(number):
        return False
    return {
        "fraction": 0 < number < 1,
        "positive": number > 0,
        "non_negative": number >= 0,
    }[rule]


@pytest.mark.parametrize("value", NUMBERS)
def test_hostile_numbers(value: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]):
    sketch, good, out = files["sketch.json"], files["good.csv"], files["out-dir"]
    onnx = files["garbage.onnx"]
    options = [
        (["drift", good, good], "--alpha", "fraction"),
        (["gate", sketch, sketch], "--alpha", "fraction"),
        (["bench", onnx, "--out", f"{out}/b.json"], "--threads", "count"),
        (["bench", onnx, "--out", f"{out}/b.json"], "--min-time", "positive"),
        (["bench", onnx, "--out", f"{out}/b.json"], "--max-time", "positive"),
        (["audit", "--demo", "--out", f"{out}/a"], "--max-time", "positive"),
        (["audit", "--demo", "--out", f"{out}/a"], "--batch-size", "count"),
        (["audit", "--demo", "--out", f"{out}/a"], "--price-per-hour", "non_negative"),
        (["stack-check", "m:f", "--aa", "--no-lag"], "--pairs", "count2"),
        (["stack-check", "m:f", "--aa", "--no-lag"], "--rounds", "count"),
        (["stack-check", "m:f", "--aa", "--no-lag"], "--max-time", "positive"),
        (["stack-check", "m:f", "--aa", "--no-lag"], "--confidence", "fraction"),
        (["stack-check", "m:f", "--aa", "--no-lag"], "--equivalence", "positive"),
    ]
    options += [
        (["gate", sketch, sketch], f"--max-{kind}-regression", "non_negative")
        for kind in ("p50", "p99", "memory", "cost")
    ]
    for command, option, rule in options:
        args = [*command, option, value]
        if _valid(value, rule):
            build_parser().parse_args(args)  # accepted (not run: an audit takes minutes)
        else:
            status, err = _run(args, capsys)
            assert status == 2 and option in err, (args, err)


def test_hostile_models_and_inputs(files: dict[str, str], capsys: pytest.CaptureFixture[str]):
    out = f"{files['out-dir']}/b.json"
    for model in ("garbage.onnx", "empty.onnx", "missing"):
        assert _run(["bench", files[model], "--out", out, "--max-time", "0.1"], capsys)[0] == 2
    for model in ("os:nope", "no.such.module:x", ":", "a:b:c", ""):
        assert _run(["bench", model, "--out", out, "--max-time", "0.1"], capsys)[0] == 2
    for name in ("garbage.npy", "empty.npy", "pickled.npy", "empty.csv", "missing"):
        args = ["bench", "silenttax.audit._demo:nope", "--input", files[name], "--out", out]
        status, err = _run(args, capsys)
        assert status == 2 and "--input" in err
    audit = ["audit", files["garbage.onnx"], "--offline", "--out", f"{files['out-dir']}/a"]
    for name in ("empty.csv", "binary.csv", "garbage.parquet", "duplicated.csv"):
        args = [*audit, "--reference", files[name], "--current", files["good.csv"]]
        status, err = _run(args, capsys)
        assert status == 2, err


@pytest.mark.parametrize("target", ["directory", "/proc/self/mem", "nested"])
def test_unwritable_outputs(target: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]):
    path = files.get(target, target)
    if target == "nested":
        path = f"{files['out-dir']}/x/y/z.json"
    good = files["good.csv"]
    for option in ("--out", "--html"):
        assert _run(["drift", good, good, option, path], capsys)[0] == 2
    assert _run(["merge", files["drift.json"], "--out", path], capsys)[0] == 2
    assert _run(["gate", files["sketch.json"], files["sketch.json"], "--out", path], capsys)[0] == 2


def test_an_unreadable_file_is_named_in_one_line(files: dict[str, str], capsys):
    status, err = _run(["drift", files["binary.csv"], files["good.csv"]], capsys)
    assert status == 2 and "binary.csv" in err and "cannot read" in err
    status, err = _run(["drift", files["duplicated.csv"], files["good.csv"]], capsys)
    assert status == 2 and "duplicated column names ['a']" in err
