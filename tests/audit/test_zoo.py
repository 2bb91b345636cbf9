"""The model zoo: the models users have, each audited end to end on a decayed CSV.

Every model gets the same data as a user has it: reference and production CSV files
with the columns in another order than the model's, a ``label`` column, and production
decayed (``bmi`` shifted and written as padded text in every third row). Each audit must
feed the right columns by name (or as declared), never the label, run every part (no
failed step), name the padded numbers, and judge the model's own outputs.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from silenttax import Severity
from silenttax.audit import audit, judge_directory

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

NUMERIC = ["age", "bmi", "bp", "s1", "s2"]
ORDER = ["label", "s2", "bmi", "sex", "age", "bp", "s1"]  # not the models' order


def _frame(seed: int, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame: dict[str, np.ndarray] = {
        "age": rng.normal(50, 10, n),
        "sex": rng.choice(["female", "male"], n).astype(object),
        "bmi": rng.normal(26 + shift, 4, n),
        "bp": rng.normal(90, 12, n),
        "s1": rng.normal(0, 1, n),
        "s2": rng.normal(0, 1, n),
    }
    score = (frame["bmi"] - 26) / 4 + (frame["sex"] == "male") + 0.5 * frame["s1"]
    frame["label"] = (score + rng.normal(0, 1, n) > 0.5).astype(int)
    return frame


TRAIN = _frame(0, 400)


def _csv(path: Path, frame: dict[str, np.ndarray], *, padded: bool) -> Path:
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(ORDER)
        for i in range(len(frame["age"])):
            row = []
            for c in ORDER:
                v = frame[c][i]
                if c == "bmi" and padded and i % 3 == 0:
                    row.append(f"  {v:.2f} ")  # production pads bmi in a third of its rows
                elif isinstance(v, float | np.floating):
                    row.append(f"{v:.3f}")
                else:
                    row.append(str(v))
            out.writerow(row)
    return path


def _x() -> np.ndarray:
    return np.column_stack([TRAIN[c] for c in NUMERIC]).astype(np.float32)


def _per_column(estimator: Any) -> bytes:
    """A scikit-learn estimator behind a ColumnTransformer: one ONNX input per column."""
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    table = pd.DataFrame({c: TRAIN[c].astype(np.float32) for c in NUMERIC})
    pipe = Pipeline([("cols", ColumnTransformer([("num", "passthrough", NUMERIC)])),
                     ("model", estimator)]).fit(table, TRAIN["label"])  # fmt: skip
    types = [(c, FloatTensorType([None, 1])) for c in NUMERIC]
    return bytes(to_onnx(pipe, initial_types=types, target_opset=17).SerializeToString())


def random_forest() -> tuple[bytes, dict[str, Any]]:
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0)
    return _per_column(model), {}


def logistic_regression() -> tuple[bytes, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression

    return _per_column(LogisticRegression(max_iter=500)), {}


def gradient_boosting() -> tuple[bytes, dict[str, Any]]:
    """One 2-D input: the columns are named with input_columns (as --input-columns)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(n_estimators=20, max_depth=3).fit(_x(), TRAIN["label"])
    onnx = to_onnx(model, initial_types=[("X", FloatTensorType([None, 5]))], target_opset=17)
    return bytes(onnx.SerializeToString()), {"input_columns": NUMERIC}


def string_pipeline() -> tuple[bytes, dict[str, Any]]:
    """A string input beside numeric ones, one-hot encoded inside the model."""
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    table = pd.DataFrame({"age": TRAIN["age"].astype(np.float32), "sex": TRAIN["sex"],
                          "bmi": TRAIN["bmi"].astype(np.float32)})  # fmt: skip
    pipe = Pipeline([
        ("prep", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["sex"]),
                                    ("num", StandardScaler(), ["age", "bmi"])])),
        ("clf", LogisticRegression()),
    ]).fit(table, TRAIN["label"])  # fmt: skip
    types = [("age", FloatTensorType([None, 1])), ("sex", StringTensorType([None, 1])),
             ("bmi", FloatTensorType([None, 1]))]  # fmt: skip
    return bytes(to_onnx(pipe, initial_types=types, target_opset=17).SerializeToString()), {}


def lightgbm() -> tuple[bytes, dict[str, Any]]:
    try:
        import lightgbm as lgb  # OSError without OpenMP's runtime (libgomp)
    except (ImportError, OSError) as exc:
        pytest.skip(f"lightgbm cannot be imported here: {exc}")
    onnxmltools = pytest.importorskip("onnxmltools")
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1)
    model.fit(_x(), TRAIN["label"])
    onnx = onnxmltools.convert_lightgbm(
        model, initial_types=[("input", FloatTensorType([None, 5]))], target_opset=15,
        zipmap=False,
    )  # fmt: skip
    return bytes(onnx.SerializeToString()), {"input_columns": NUMERIC}


def two_inputs() -> tuple[bytes, dict[str, Any]]:
    """Two named ONNX inputs (bmi, bp), concatenated inside the graph."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[0.2, -0.2], [0.01, -0.01]], np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Concat", ["bmi", "bp"], ["x"], axis=1),
         helper.make_node("MatMul", ["x", "w"], ["logits"])],
        "two_inputs",
        [helper.make_tensor_value_info("bmi", TensorProto.FLOAT, [None, 1]),
         helper.make_tensor_value_info("bp", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])], [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return bytes(model.SerializeToString()), {}


def torch_mlp() -> tuple[Any, dict[str, Any]]:
    """A torch factory's MLP that declares the columns it takes (``input_names``)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    model.input_names = ["s1", "bmi", "age", "bp", "s2"]  # the order it was trained on
    return model.eval(), {}


def torch_cnn() -> tuple[Any, dict[str, Any]]:
    """An image model: its input is not in the tabular data, so it is synthesized (said)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 2),
    )  # fmt: skip
    return model.eval(), {"inputs": [np.random.default_rng(0).normal(size=(4, 1, 8, 8))
                                     .astype(np.float32)]}  # fmt: skip


ZOO: dict[str, tuple[Callable[[], tuple[Any, dict[str, Any]]], str]] = {
    "random_forest": (random_forest, "by input name (age, bmi, bp, s1, s2)"),
    "logistic_regression": (logistic_regression, "by input name (age, bmi, bp, s1, s2)"),
    "gradient_boosting": (gradient_boosting, "age, bmi, bp, s1, s2 (as given)"),
    "string_pipeline": (string_pipeline, "by input name (age, sex, bmi)"),
    "lightgbm": (lightgbm, "age, bmi, bp, s1, s2 (as given)"),
    "two_inputs": (two_inputs, "by input name (bmi, bp)"),
    "torch_mlp": (torch_mlp, "s1, bmi, age, bp, s2 (the model's input_names)"),
    "torch_cnn": (torch_cnn, "given (1 array(s))"),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_model_in_the_zoo_audits_with_the_right_inputs(name: str, tmp_path: Path) -> None:
    build, fed = ZOO[name]
    model, options = build()
    if isinstance(model, bytes):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(model)
        model = path
    reference = _csv(tmp_path / "ref.csv", _frame(1, 300), padded=False)
    current = _csv(tmp_path / "cur.csv", _frame(2, 300, shift=3.0), padded=True)
    result = audit(
        model, reference=reference, current=current, max_time=0.2, serve_seconds=0.3,
        index=False, methods=["ort_dynamic_int8"] if isinstance(model, Path) else None,
        **options,
    )  # fmt: skip
    report = result.report
    (inputs,) = report.filter(code="audit.inputs")
    assert fed in inputs.message, inputs.message
    if "inputs" not in options:
        assert "not fed: label" in inputs.message and inputs.severity == Severity.INFO
    failed = [f.message for f in report if f.code == "audit.skipped" and f.severity >= "warning"]
    assert failed == [], failed
    assert {"trace", "latency"} <= set(result.snapshots)  # served
    # the padded numbers are named, and bmi's shift is drift
    assert any(f.code == "feature.whitespace" and f.subject == "bmi" for f in report)
    assert any(f.code == "drift.numeric" and f.subject == "bmi" and f.severity >= "warning"
               for f in report)  # fmt: skip
    # the model's own outputs on both sides are judged (a synthesized input: not scored)
    if "inputs" not in options:
        assert "predictions" in result.snapshots
        assert report.filter(code="prediction"), [f.code for f in report]
    # `silenttax report DIR` re-judges the saved snapshots into the same findings
    again = judge_directory(result.save(tmp_path / "audit"))
    key = sorted((f.code, f.subject, f.severity.value) for f in report)
    assert sorted((f.code, f.subject, f.severity.value) for f in again) == key
