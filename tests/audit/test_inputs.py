"""Model inputs from the user's data: by name, with the model's dtypes, never a target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from silenttax import Severity
from silenttax.audit import audit
from silenttax.audit._model import AuditModel, model_inputs
from silenttax.errors import InputError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _matmul(width: int) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(width * 2, dtype=np.float32).reshape(width, 2), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def _data(**columns: object) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in columns.items()}


def test_a_label_column_is_never_fed_and_position_is_a_named_warning() -> None:
    model = AuditModel(name="m", onnx=_matmul(3))
    current = _data(a=[1.0, 2.0], label=[9.0, 9.0], b=[3.0, 4.0], c=[5.0, 6.0])
    model_inputs(model, inputs=None, current=current, batch_size=2)
    np.testing.assert_array_equal(model.inputs[0], [[1, 3, 5], [2, 4, 6]])
    assert model.inputs_warn and "a, b, c" in model.notes[0] and "by position" in model.notes[0]
    assert "not fed: label (a target)" in model.inputs_from


def test_padded_numbers_are_parsed_for_a_float_input_and_a_custom_target_is_skipped() -> None:
    model = AuditModel(name="m", onnx=_matmul(2))
    current = _data(bmi=np.array(["  23.5 ", "30.1", None], dtype=object),
                    bp=[80.0, np.nan, 90.0], outcome2=[1.0, 0.0, 1.0])  # fmt: skip
    model_inputs(model, inputs=None, current=current, batch_size=3, target="outcome2")
    np.testing.assert_allclose(model.inputs[0], [[23.5, 80], [30.1, 85], [26.8, 90]], rtol=1e-6)
    assert model.inputs[0].dtype == np.float32


def test_more_usable_columns_than_the_input_takes_is_one_clear_error() -> None:
    model = AuditModel(name="m", onnx=_matmul(2))
    current = _data(a=[1.0], b=[2.0], c=[3.0], y=[0.0])
    with pytest.raises(InputError, match="--input-columns") as caught:
        model_inputs(model, inputs=None, current=current, batch_size=1)
    assert "could fill it (a, b, c);" in str(caught.value)  # y, a target, is not offered
    model_inputs(model, inputs=None, current=current, batch_size=1, input_columns=["c", "a"])
    np.testing.assert_array_equal(model.inputs[0], [[3, 1]])
    assert not model.inputs_warn and "(as given)" in model.inputs_from
    with pytest.raises(InputError, match="not in the current data"):
        model_inputs(model, inputs=None, current=current, batch_size=1, input_columns=["y", "a"])
    with pytest.raises(InputError, match="takes 2 columns, 3 were named"):
        model_inputs(
            model, inputs=None, current=current, batch_size=1, input_columns=["a", "b", "c"]
        )


def _sklearn_pipeline(path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 200
    frame = {
        "age": rng.normal(50, 10, n).astype(np.float32),
        "sex": rng.choice(["female", "male"], n).astype(object),
        "bmi": rng.normal(26, 4, n).astype(np.float32),
    }
    y = (frame["bmi"] + (frame["sex"] == "male") * 2 + rng.normal(0, 2, n) > 27).astype(int)
    import pandas as pd

    table = pd.DataFrame(frame)
    pipe = Pipeline([
        ("prep", ColumnTransformer([
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex"]),
            ("num", StandardScaler(), ["age", "bmi"]),
        ])),
        ("clf", LogisticRegression()),
    ]).fit(table, y)  # fmt: skip
    types = [("age", FloatTensorType([None, 1])), ("sex", StringTensorType([None, 1])),
             ("bmi", FloatTensorType([None, 1]))]  # fmt: skip
    path.write_bytes(to_onnx(pipe, initial_types=types, target_opset=17).SerializeToString())
    data = {**frame, "label": y}
    return path, data


def test_a_scikit_learn_pipeline_with_a_string_input_is_fed_by_name_end_to_end(
    tmp_path: Path,
) -> None:
    path, data = _sklearn_pipeline(tmp_path / "pipe.onnx")
    # reordered columns, a label, bmi padded in a third of production's rows: a CSV
    import csv

    rows = list(zip(data["label"], data["bmi"], data["sex"], data["age"], strict=True))
    for name, part in (("ref.csv", rows[:100]), ("cur.csv", rows[100:])):
        with open(tmp_path / name, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["label", "bmi", "sex", "age"])
            for i, (label, bmi, sex, age) in enumerate(part):
                padded = name == "cur.csv" and i % 3 == 0  # production pads bmi
                out.writerow(
                    [label, f"  {bmi:.2f} " if padded else f"{bmi:.2f}", sex, f"{age:.1f}"]
                )
    result = audit(
        path, reference=tmp_path / "ref.csv", current=tmp_path / "cur.csv",
        max_time=0.2, serve_seconds=0.3, index=False, methods=["ort_dynamic_int8"],
    )  # fmt: skip
    report = result.report
    (inputs,) = [f for f in report if f.code == "audit.inputs"]
    assert inputs.severity == Severity.INFO, inputs.message
    assert "by input name (age, sex, bmi)" in inputs.message and "not fed: label" in inputs.message
    failed = [f.message for f in report if f.code == "audit.skipped" and f.severity >= "warning"]
    assert failed == []
    assert {"trace", "latency", "run_0"} <= set(result.snapshots)  # served, timed in processes
    assert any(f.code == "feature.whitespace" and f.subject == "bmi" for f in report)
    # `silenttax report DIR` re-judges the saved snapshots into the same findings
    from collections import Counter

    from silenttax.audit import judge_directory

    def key(r: object) -> Counter[tuple[str, str, str]]:
        return Counter((f.code, f.subject, f.severity.value) for f in r)  # type: ignore[attr-defined]

    again = judge_directory(result.save(tmp_path / "audit"))
    assert key(again) == key(report)


def test_an_input_missing_from_the_data_is_synthesized_and_named(tmp_path: Path) -> None:
    path, data = _sklearn_pipeline(tmp_path / "pipe.onnx")
    model = AuditModel(name="m", onnx=path.read_bytes())
    current = {k: np.asarray(v) for k, v in data.items() if k != "sex"}
    model_inputs(model, inputs=None, current=current, batch_size=4)
    assert model.inputs_warn and "sex" in model.notes[0] and "synthesized" in model.notes[0]
    assert model.inputs[1].dtype == object and model.inputs[1].shape == (4, 1)
