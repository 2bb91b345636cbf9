"""The demo audit's parts: real data with injected decay, a small real model, a pipeline.

Everything here is built on the spot and offline: the bundled diabetes study
split by a real covariate (the ``drift --demo`` split), the current side decayed
the way production feeds decay (``bmi`` arriving as padded strings, ``bp``
losing values more and more), and a small MLP trained on the reference side to
predict disease progression, served by a pipeline with a validation step added
"just to be safe".
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from silenttax._deps import optional_import

__all__ = ["DEMO_NOTE", "FEATURES", "decayed_current", "demo_model", "demo_tables", "pipeline"]

#: The model's input columns, in order (the study's ten baseline variables less ``sex``).
FEATURES = ("age", "bmi", "bp", "tc", "ldl", "hdl", "tch", "ltg", "glu")
TARGET = "progression"

DEMO_NOTE = (
    "demo audit: the diabetes study of Efron et al. (2004), reference = patients coded sex=1, "
    "production = sex=2 with injected decay (bmi as padded strings in 40% of rows, bp nulls "
    "rising from 0% to 60% across the rows, 30% overall); a 9-input MLP trained on the "
    "reference, exported to ONNX, served by a pipeline with an 'audit_log' validation step"
)


def demo_tables() -> tuple[dict[str, Any], dict[str, Any]]:
    """(reference, production) columns of the bundled real dataset, production decayed."""
    from silenttax.cli._drift import demo_data

    reference, current = demo_data()
    return reference, decayed_current(current)


def decayed_current(current: dict[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """Inject fat-feature decay: ``bmi`` as padded strings, a rising ``bp`` null rate."""
    rng = np.random.default_rng(seed)
    out = dict(current)
    n = len(out["bmi"])
    bmi = np.asarray(out["bmi"], dtype=np.float64)
    padded = rng.random(n) < 0.4
    out["bmi"] = np.array(
        [f"  {v:.1f} " if p else float(v) for v, p in zip(bmi, padded, strict=True)],
        dtype=object,
    )
    bp = np.asarray(out["bp"], dtype=np.float64).copy()
    rising = rng.random(n) < np.linspace(0.0, 0.6, n)  # 0% -> 60%: 30% on average
    bp[rising] = np.nan
    out["bp"] = bp
    return out


def _matrix(table: dict[str, Any]) -> np.ndarray:
    return np.column_stack([np.asarray(table[c], dtype=np.float64) for c in FEATURES])


def demo_model(reference: dict[str, Any], *, seed: int = 0) -> Any:
    """A 9 -> 256 -> 256 -> 1 MLP (standardization inside) trained on the reference."""
    torch: Any = optional_import("torch", purpose="silenttax audit --demo")
    nn = torch.nn
    x = _matrix(reference)
    y = np.asarray(reference[TARGET], dtype=np.float64)

    class Progression(nn.Module):  # type: ignore[misc, name-defined]
        """Disease progression from the nine baseline variables."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(x.mean(0), dtype=torch.float32))
            self.register_buffer("std", torch.tensor(x.std(0) + 1e-9, dtype=torch.float32))
            self.net = nn.Sequential(
                nn.Linear(len(FEATURES), 256),
                nn.ReLU(),
                nn.Linear(256, 256),
                nn.ReLU(),
                nn.Linear(256, 1),
            )
            self.scale = float(y.std())
            self.offset = float(y.mean())

        def forward(self, features: Any) -> Any:
            return self.net((features - self.mean) / self.std) * self.scale + self.offset

    torch.manual_seed(seed)
    model = Progression()
    inputs = torch.tensor(x, dtype=torch.float32)
    target = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32)[:, None]
    optimizer = torch.optim.Adam(model.net.parameters(), lr=3e-3, weight_decay=1e-3)
    for _ in range(200):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model.net((inputs - model.mean) / model.std), target)
        loss.backward()
        optimizer.step()
    return model.eval()


def requests(table: dict[str, Any]) -> list[dict[str, Any]]:
    """One JSON-like request per row, values as they arrived (strings, None for NaN)."""
    columns = [table[c] for c in FEATURES]
    out = []
    for row in zip(*columns, strict=True):
        features: dict[str, Any] = {}
        for name, value in zip(FEATURES, row, strict=True):
            if isinstance(value, str):
                features[name] = value
            else:
                v = float(value)
                features[name] = None if math.isnan(v) else v
        out.append({"features": features})
    return out


def pipeline(
    model: Any, tracer: Any, fill: dict[str, float], *, audit_log: bool
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The serving path: parse, (audit_log), forward, respond; each a traced stage.

    ``audit_log`` is the step added "just to be safe": a deep copy of the
    request, re-validated field by field, serialized and hashed for an audit
    trail. It changes nothing in the answer.
    """
    torch: Any = optional_import("torch", purpose="silenttax audit --demo")
    trail: list[str] = []

    def parse(request: dict[str, Any]) -> Any:
        features = request["features"]
        row = []
        for name in FEATURES:
            value = features.get(name)
            if isinstance(value, str):
                value = float(value.strip())
            row.append(fill[name] if value is None else float(value))
        return torch.tensor([row], dtype=torch.float32)

    def validate(request: dict[str, Any]) -> None:
        snapshot = copy.deepcopy(request)
        for name in FEATURES:
            value = snapshot["features"].get(name)
            if value is not None and not isinstance(value, int | float | str):
                raise ValueError(f"{name}: unexpected {type(value).__name__}")
        line = json.dumps(snapshot, sort_keys=True, indent=2)
        trail.append(hashlib.sha256(line.encode()).hexdigest())
        if len(trail) > 1000:
            trail.clear()

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        with tracer.span("predict", route="/predict"):
            with tracer.span("parse", stage="preprocess"):
                x = parse(request)
            if audit_log:
                with tracer.span("audit_log", stage="validate"):
                    validate(request)
            with tracer.span("forward", stage="model"), torch.inference_mode():
                y = model(x)
            with tracer.span("respond", stage="serialize"):
                return {"progression": float(y[0, 0])}

    return handle
