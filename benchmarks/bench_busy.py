"""Busy machines: the audit and the gate, quiet and beside a CPU hog started mid-run.

Four calibration cases (issue "Busy machines"), each run ``--runs`` times:

1. **Demo audit**, quiet and with a hog of ``--hog`` busy processes started
   ``--serve-delay`` seconds into the two deployments' 2 s serve (it stays for
   the rest of the audit): the performance findings at WARNING or
   above must be only the designed ones (the production deployment's ``audit_log``
   stage and what follows from it: ``latency.regression``, the deployment gate,
   ``cost.per_1k_increase``, ``pipeline.*``), the production/reference p50 ratio
   within 2x of the quiet runs' median, or "inconclusive: machine busy"; a CRITICAL
   on anything else is a phantom.
2. **Healthy scikit-learn models** (random forest, logistic regression through
   skl2onnx): WARNING-or-above performance findings in quiet audits (target 0).
3. **``silenttax bench A A`` + gate** on the same ONNX model: pass / regression /
   inconclusive counts quiet and with the hog (targets: pass >= 90% quiet,
   regression <= 5%, never regression with the hog).
4. **A 1.3x slower B** (13 vs 10 chained MatMuls): regression >= 95% quiet.
5. **``--baseline``**: two quiet audits of the same model a few seconds apart, the
   second gated against the first across runs: pairs with a WARNING-or-above
   latency finding (target <= 5%).

Run: python benchmarks/bench_busy.py [--runs 10] [--hog 2] [--only demo,sklearn,aa,ab,baseline]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

PERFORMANCE = {"latency", "cost", "pipeline", "model_bloat", "resource"}
#: What the demo's designed change (the audit_log stage) makes the audit say.
DESIGNED = {
    "latency.regression",
    "gate.verdict",
    "gate.latency",
    "cost.per_1k_increase",
    "pipeline.new_stage",
    "pipeline.request_time",
    "pipeline.shadow_overhead",
    "pipeline.stage_time",
}


def _chain(path: Path, matmuls: int, width: int = 64) -> Path:
    from onnx import TensorProto, helper, numpy_helper, save

    w = numpy_helper.from_array(
        (np.eye(width) * 0.5 + 0.01).astype(np.float32), "w"
    )  # bounded values through the chain
    nodes = [
        helper.make_node("MatMul", ["x" if i == 0 else f"h{i}", "w"], [f"h{i + 1}"])
        for i in range(matmuls)
    ]
    nodes.append(helper.make_node("Identity", [f"h{matmuls}"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
        [w],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _hog(processes: int, delay: float) -> Any:
    from silenttax.testing import CpuHog

    return CpuHog(processes, delay=delay)


def demo(runs: int, hog: int, delay: float, labels: tuple[str, ...]) -> dict[str, Any]:
    from silenttax.audit import demo_audit

    out: dict[str, Any] = {}
    for label in labels:
        rows = []
        for i in range(runs):
            began = time.perf_counter()
            hogs: list[Any] = []

            def arrive(
                step: str, done: int, total: int, label: str = label, hogs: list[Any] = hogs
            ) -> None:
                # the neighbour arrives mid-serve (and stays for the rest of the audit)
                if label == "hog" and step.startswith("serve") and not hogs:
                    hogs.append(_hog(hog, delay).start())

            try:
                result = demo_audit(index=False, progress=arrive)
            finally:
                for h in hogs:
                    h.stop()
            report = result.report
            comparison = result.snapshots.get("serve_comparison")
            loud = [
                f
                for f in report
                if f.severity >= "warning"
                and (f.category.value in PERFORMANCE or f.code.startswith("gate."))
            ]
            phantoms = [
                f"{f.code} {f.subject}: {f.message[:90]}"
                for f in loud
                if f.code not in DESIGNED
                or (
                    f.code.startswith("gate.") and f.subject != "production vs reference deployment"
                )
            ]
            busy = [f for f in report if f.evidence.get("reason") == "machine busy"]
            rows.append(
                {
                    "ratio": getattr(comparison, "ratio", None),
                    "busy": bool(getattr(comparison, "busy", False)),
                    "contended_share": (getattr(comparison, "contention", None) or {}).get(
                        "contended_share"
                    ),
                    "loud": len(loud),
                    "phantoms": phantoms,
                    "phantom_critical": sum(1 for f in loud if f.severity == "critical")
                    - sum(1 for f in loud if f.severity == "critical" and f.code in DESIGNED),
                    "inconclusive_busy": len(busy),
                    "threads": report.context.get("threads"),
                    "seconds": round(time.perf_counter() - began, 1),
                }
            )
            print(f"demo {label} {i + 1}/{runs}: {rows[-1]}", file=sys.stderr, flush=True)
        out[label] = rows
    quiet = [r["ratio"] for r in out.get("quiet", []) if r["ratio"]]
    median = float(np.median(quiet)) if quiet else None
    out["quiet_median_ratio"] = median
    for label in labels:
        rows = out[label]
        out[f"{label}_summary"] = {
            "runs": len(rows),
            "phantom_critical": sum(r["phantom_critical"] for r in rows),
            "runs_with_phantoms": sum(bool(r["phantoms"]) for r in rows),
            "busy_runs": sum(r["busy"] for r in rows),
            "ratio_within_2x_or_busy": sum(
                r["busy"] or (median is not None and r["ratio"] and 0.5 <= r["ratio"] / median <= 2)
                for r in rows
            ),
            "ratios": [round(r["ratio"], 3) if r["ratio"] else None for r in rows],
        }
    return out


def sklearn(runs: int) -> dict[str, Any]:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression

    from silenttax.audit import audit

    x, y = load_diabetes(return_X_y=True)
    x = x.astype(np.float32)
    models = {
        "random_forest": RandomForestRegressor(n_estimators=100, random_state=0).fit(x, y),
        "logistic_regression": LogisticRegression(max_iter=500).fit(x, y > np.median(y)),
    }
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, model in models.items():
            path = Path(folder) / f"{name}.onnx"
            path.write_bytes(to_onnx(model, x[:1], target_opset=17).SerializeToString())
            loud: Counter[str] = Counter()
            for i in range(runs):
                report = audit(path, batch_size=8, index=False).report
                for f in report:
                    if f.severity >= "warning" and f.category.value in PERFORMANCE:
                        loud[f.code] += 1
                print(f"sklearn {name} {i + 1}/{runs}: {dict(loud)}", file=sys.stderr, flush=True)
            out[name] = {"runs": runs, "warnings_or_above": dict(loud)}
    return out


def baseline_pairs(runs: int) -> dict[str, Any]:
    """Two quiet audits of the same model at different times, the second ``--baseline``
    the first: WARNING-or-above latency findings (gate across runs) per pair."""
    from silenttax.audit import audit

    loud, verdicts = 0, Counter()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        model = _chain(folder / "m.onnx", 10)
        inputs = [np.ones((16, 64), np.float32)]
        for i in range(runs):
            first = audit(
                model, inputs=inputs, max_time=0.2, index=False, methods=["ort_dynamic_int8"]
            )
            first.save(folder / "first")
            time.sleep(2.0)
            second = audit(
                model,
                inputs=inputs,
                max_time=0.2,
                index=False,
                methods=["ort_dynamic_int8"],
                baseline=folder / "first",
            )
            across = [f for f in second.report if "across runs" in f.subject]
            bad = [f for f in across if f.severity >= "warning"]
            verdicts[
                str(next((f.evidence["verdict"] for f in across if f.code == "gate.verdict"), None))
            ] += 1
            loud += bool(bad)
            print(
                f"baseline pair {i + 1}/{runs}: {[f.message[:80] for f in across]}",
                file=sys.stderr,
                flush=True,
            )
    return {"pairs": runs, "pairs_with_warning_or_above": loud, "verdicts": dict(verdicts)}


def _bench(a: Path, b: Path, x: Path, folder: Path, hog: int, delay: float) -> dict[str, Any]:
    out = folder / "ab.json"
    command = [sys.executable, "-m", "silenttax", "bench", str(a), str(b), "--input", str(x)]
    began = time.perf_counter()
    if hog:
        with _hog(hog, delay):
            subprocess.run([*command, "--out", str(out)], capture_output=True, check=True)
    else:
        subprocess.run([*command, "--out", str(out)], capture_output=True, check=True)
    seconds = time.perf_counter() - began
    gate = subprocess.run(
        [sys.executable, "-m", "silenttax", "gate", str(out), "--out", str(folder / "g.json")],
        capture_output=True,
        text=True,
    )
    verdict = {0: "pass", 1: "regression", 3: "inconclusive"}.get(gate.returncode, "error")
    report = json.loads((folder / "g.json").read_text())
    p50 = next(f for f in report["findings"] if f.get("metric") == "p50_ratio")
    return {
        "verdict": verdict,
        "seconds": round(seconds, 1),
        "p50_ratio": p50.get("value"),
        "busy": p50["evidence"].get("reason") == "machine busy",
    }


def bench_cases(runs: int, hog: int, delay: float, cases: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        a = _chain(folder / "a.onnx", 10)
        a2 = _chain(folder / "a2.onnx", 10)
        b = _chain(folder / "b.onnx", 13)
        np.save(folder / "x.npy", np.ones((16, 64), np.float32))
        plan = []
        if "aa" in cases:
            plan += [("aa_quiet", a, a2, 0), ("aa_hog", a, a2, hog)]
        if "ab" in cases:
            plan += [("ab_quiet", a, b, 0)]
        for label, first, second, processes in plan:
            rows = []
            for i in range(runs):
                rows.append(_bench(first, second, folder / "x.npy", folder, processes, delay))
                print(f"{label} {i + 1}/{runs}: {rows[-1]}", file=sys.stderr, flush=True)
            counts = Counter(r["verdict"] for r in rows)
            out[label] = {
                "runs": runs,
                "verdicts": dict(counts),
                "busy": sum(r["busy"] for r in rows),
                "median_seconds": float(np.median([r["seconds"] for r in rows])),
                "p50_ratios": [r["p50_ratio"] for r in rows],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--hog", type=int, default=2, help="busy processes of the hog")
    parser.add_argument(
        "--hog-delay", type=float, default=2.0, help="bench: seconds before the hog starts"
    )
    parser.add_argument(
        "--serve-delay",
        type=float,
        default=0.7,
        help="demo: seconds into the 2 s serve before the hog starts",
    )
    parser.add_argument("--only", default="demo,sklearn,aa,ab,baseline")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    cases = args.only.split(",")
    figures: dict[str, Any] = {}
    if "demo" in cases or "demo_hog" in cases:
        labels = ("quiet", "hog") if "demo" in cases else ("hog",)
        figures["demo"] = demo(args.runs, args.hog, args.serve_delay, labels)
    if "sklearn" in cases:
        figures["sklearn"] = sklearn(args.runs)
    if "baseline" in cases:
        figures["baseline"] = baseline_pairs(args.runs)
    if {"aa", "ab"} & set(cases):
        figures["bench"] = bench_cases(args.runs, args.hog, args.hog_delay, cases)
    summary = {
        key: (
            {k: v for k, v in value.items() if k.endswith("summary") or k.endswith("ratio")}
            if key == "demo"
            else value
        )
        for key, value in figures.items()
    }
    print(json.dumps(summary, indent=2, default=str))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
