"""Quantization studies of MLPs, an LSTM and TransformerEncoders (CPU), each run twice.

Targets: on a Linear-heavy MLP at batch 16 the recommended candidate is >= 2x
faster than fp32 (on CPUs where int8 pays), <= 0.4x the size, max abs diff
<= 0.05; a whole MLP study with the default max_time takes under a minute.
Reproducibility (fresh-machine issue): two back-to-back studies of the same
model give overlapping speedup CIs and the same recommendation, unless the
recommendation names the candidates it could not tell apart. fp32 and every
candidate are timed in one interleaved session (ORT with spinning off).

Run: python benchmarks/bench_quantize.py [--threads 2] [--models mlp,encoder]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from silenttax.benchmark import environment
from silenttax.quantize import int8_support, study


class LSTMModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(128, 256, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def models() -> dict[str, tuple[torch.nn.Module, torch.Tensor, list[torch.Tensor]]]:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 10),
    ).eval()
    layer = torch.nn.TransformerEncoderLayer(256, 4, 512, batch_first=True)
    encoder = torch.nn.TransformerEncoder(layer, 4, enable_nested_tensor=False).eval()
    gelu = torch.nn.Sequential(
        torch.nn.Linear(768, 1536),
        torch.nn.GELU(),
        torch.nn.Linear(1536, 1536),
        torch.nn.GELU(),
        torch.nn.Linear(1536, 768),
    ).eval()
    wide = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(128, 4, 512, batch_first=True),
        2,
        enable_nested_tensor=False,
    ).eval()
    return {
        "GELU MLP 768-1536-1536-768 (regression), batch 32": (
            gelu,
            torch.randn(32, 768),
            [torch.randn(32, 768) for _ in range(8)],
        ),
        "TransformerEncoder d128 x2, seq 128, batch 8": (
            wide,
            torch.randn(8, 128, 128),
            [torch.randn(8, 128, 128) for _ in range(4)],
        ),
        "MLP 1024x3 + head, batch 16": (
            mlp,
            torch.randn(16, 1024),
            [torch.randn(16, 1024) for _ in range(8)],
        ),
        "LSTM 2x256, seq 32, batch 8": (
            LSTMModel().eval(),
            torch.randn(8, 32, 128),
            [torch.randn(8, 32, 128) for _ in range(4)],
        ),
        "TransformerEncoder d256 x4, seq 64, batch 4": (
            encoder,
            torch.randn(4, 64, 256),
            [torch.randn(4, 64, 256) for _ in range(4)],
        ),
    }


def _overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> str:
    if a is None or b is None:
        return "—"
    return "yes" if a[0] <= b[1] and b[0] <= a[1] else "**no**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--models", default="", help="comma-separated words to pick models by")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(int8_support(environment().cpu_flags).summary)
    picks = [w.lower() for w in args.models.split(",") if w]
    for label, (model, x, calibration) in models().items():
        if picks and not any(w in label.lower() for w in picks):
            continue
        runs = []
        for _ in range(2):
            start = time.perf_counter()
            result = study(
                model,
                x,
                calibration=calibration,
                threads=args.threads,
                name=label,
                classifier=False if "regression" in label else None,
            )
            runs.append((result, time.perf_counter() - start))
        print(f"\n### {label}\n")
        for i, (result, took) in enumerate(runs, 1):
            rec = result.report().filter(code="quantize.recommendation")[0]
            print(f"run {i}: study took {took:.1f} s, {result.rounds} rounds; {rec.message}\n")
        print(runs[0][0].table())
        second = {c.method: c for c in runs[1][0].candidates}
        print("\n| method | run 1 speedup | run 2 speedup | CIs overlap |\n|---|---|---|---|")
        for c in runs[0][0].candidates:
            d = second[c.method]
            if c.speedup is None or d.speedup is None:
                continue
            print(
                f"| {c.method} | {c.speedup:.2f} [{c.speedup_ci[0]:.2f}, {c.speedup_ci[1]:.2f}] | "  # type: ignore[index]
                f"{d.speedup:.2f} [{d.speedup_ci[0]:.2f}, {d.speedup_ci[1]:.2f}] | "  # type: ignore[index]
                f"{_overlap(c.speedup_ci, d.speedup_ci)} |"
            )


if __name__ == "__main__":
    main()
