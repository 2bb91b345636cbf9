"""Quantization studies of an MLP, an LSTM and a small TransformerEncoder (CPU).

Target (quantization issue): on a Linear-heavy MLP at batch 16 the recommended
candidate is >= 2x faster than fp32, <= 0.4x the size, max abs diff <= 0.05;
a whole MLP study with the default max_time takes under a minute. Each
candidate is measured interleaved against torch fp32 (ORT with spinning off).

Run: python benchmarks/bench_quantize.py [--threads 2]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from silenttax.quantize import study


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
    return {
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for label, (model, x, calibration) in models().items():
        start = time.perf_counter()
        result = study(model, x, calibration=calibration, threads=args.threads, name=label)
        took = time.perf_counter() - start
        best = result.best(max_rel_error=0.05)
        print(
            f"\n### {label}\n\nstudy took {took:.1f} s; recommended: "
            f"{best.method if best else 'keep fp32'}\n"
        )
        print(result.table())


if __name__ == "__main__":
    main()
