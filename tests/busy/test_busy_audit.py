"""The audit on the models users have, quiet and beside a CPU hog: healthy models raise no
performance warning, thread oversubscription is measured, a busy machine is said as such."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from silenttax import Severity
from silenttax._system import usable_cores
from silenttax.audit import audit
from silenttax.testing import CpuHog

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

#: Categories whose WARNINGs would fail a healthy model's pipeline on performance.
PERFORMANCE = {"latency", "cost", "pipeline", "model_bloat", "resource"}


def _sklearn_onnx(kind: str, path: Path) -> Path:
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression

    x, y = load_diabetes(return_X_y=True)
    x = x.astype(np.float32)
    labels = (y > np.median(y)).astype(np.int64)  # int64 labels, ZipMap probabilities
    model: Any
    if kind == "forest":
        model = RandomForestRegressor(n_estimators=30, max_depth=6, random_state=0).fit(x, y)
    elif kind == "forest_classifier":
        model = RandomForestClassifier(n_estimators=30, random_state=0).fit(x, labels)
    elif kind == "boosting":
        model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(x, labels)
    else:
        model = LogisticRegression(max_iter=500).fit(x, labels)
    path.write_bytes(to_onnx(model, x[:1], target_opset=17).SerializeToString())
    return path


def _problems(report, categories=PERFORMANCE):  # type: ignore[no-untyped-def]
    return [
        f"{f.code}: {f.message}"
        for f in report
        if f.severity >= Severity.WARNING and f.category.value in categories
    ]


@pytest.mark.parametrize("kind", ["forest", "forest_classifier", "boosting", "logistic"])
def test_healthy_scikit_learn_models_raise_no_performance_warning(
    kind: str, tmp_path: Path
) -> None:
    model = _sklearn_onnx(kind, tmp_path / f"{kind}.onnx")
    result = audit(model, batch_size=8, max_time=0.3, serve_seconds=0.5, index=False)
    report = result.report
    assert _problems(report) == []
    codes = {f.code for f in report}
    assert "quantize.no_op" not in codes
    skipped = {f.subject: f for f in report if f.code == "quantize.skipped"}
    assert "nothing to quantize" in skipped["ort_dynamic_int8"].message
    assert all(f.severity == Severity.INFO for f in skipped.values())
    assert "latency.creep" not in codes  # never judged inside a short serve


def test_oversubscribed_default_threads_are_measured_beside_a_hog(tmp_path: Path) -> None:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))
    saved = torch.get_num_threads()
    torch.set_num_threads(max(2, usable_cores()))  # the framework default: every core
    try:
        with CpuHog(processes=usable_cores()):
            result = audit(
                mlp.eval(),
                inputs=[np.ones((64, 64), np.float32)],
                max_time=0.2,
                serve_seconds=0.5,
                methods=["torch_dynamic_int8"],
                index=False,
            )
    finally:
        torch.set_num_threads(saved)
    (finding,) = [f for f in result.report if f.code == "dependency.threads"]
    figures = result.report.context["threads"]
    assert figures["default_threads"] == max(2, usable_cores())
    assert figures["other_cores"] > 0.3, figures  # the hog was seen
    assert figures["fitting_threads"] < figures["default_threads"]
    # measured, with a consistent interval, whichever way it went on this machine
    lo, hi = finding.evidence["ci"]
    assert finding.value is not None and lo <= finding.value <= hi and math.isfinite(hi)
    assert finding.severity in (Severity.INFO, Severity.WARNING)
    if finding.severity == Severity.WARNING:
        assert lo >= 1.2 and "set_num_threads" in (finding.recommendation or "")
    assert result.snapshots["threads"].findings[0] == finding  # re-judged from the snapshot


def test_threads_that_fit_the_free_cores_are_one_ok_line() -> None:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 8)).eval()
    result = audit(
        mlp, inputs=[np.ones((1, 8), np.float32)], max_time=0.2, serve_seconds=0.3,
        methods=["torch_dynamic_int8"], index=False, threads=1,
    )  # fmt: skip
    (finding,) = [f for f in result.report if f.code == "dependency.threads"]
    assert result.report.context["pinned_threads"] == 1
    if result.report.context["threads"]["fitting_threads"] >= 1:
        assert finding.severity == Severity.OK and "fit" in finding.message
