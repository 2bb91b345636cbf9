"""``silenttax bench``: benchmark one model, or two interleaved, and save the result."""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from pathlib import Path
from typing import Any

from silenttax.cli._args import count, number
from silenttax.errors import InputError

__all__ = ["add_parser", "load_model", "read_inputs"]


def add_parser(subparsers: Any) -> None:
    """Register the ``bench`` subcommand."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark an ONNX file or a torch factory (two: interleaved A/B)",
        description=(
            "Benchmark MODEL on the given inputs and save a BenchmarkResult (JSON) that "
            "'silenttax gate' reads. With two models, run them interleaved in this process "
            "(rounds alternate AB, BA, ...) until the gate decides every metric or --max-time "
            "is spent (progress on stderr), and save the Comparison; 'silenttax gate "
            "COMPARISON' then gates it on paired batches of rounds; rounds measured while "
            "other processes held the cores are left out. A model is an .onnx file or a "
            "torch factory as 'package.module:function' returning an nn.Module (weights "
            "from --weights, a state_dict saved with torch.save, read with weights_only)."
        ),
    )
    parser.add_argument("model", help="an .onnx file or 'package.module:factory'")
    parser.add_argument("model_b", nargs="?", help="a second model: run both interleaved")
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="[NAME=]FILE.npy",
        help="an input array (repeat for several; NAME= gives ONNX input names or torch keywords)",
    )
    parser.add_argument("--weights", help="state_dict for a torch factory (MODEL)")
    parser.add_argument("--weights-b", help="state_dict for the second torch factory")
    parser.add_argument("--threads", type=count(), default=None, help="intra-op threads")
    parser.add_argument(
        "--min-time", type=number(above=0), default=2.0, help="fewest seconds of measurement"
    )
    parser.add_argument(
        "--max-time",
        type=number(above=0),
        default=20.0,
        help="most seconds (two models: stop earlier once the gate decides)",
    )
    parser.add_argument("--out", metavar="JSON", required=True, help="where to save the result")
    parser.set_defaults(func=run, parser=parser)


def read_inputs(specs: list[str], option: str = "--input") -> list[Any] | dict[str, Any]:
    """Arrays from ``[NAME=]FILE.npy`` arguments: a dict when named, a list otherwise."""
    import numpy as np

    if not specs:
        raise InputError(f"{option}: give at least one input array (.npy)")
    named: dict[str, Any] = {}
    positional: list[Any] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(f"{option}: cannot read {path!r} as .npy: {exc}") from exc
        if name:
            named[name] = array
        else:
            positional.append(array)
    if named and positional:
        raise InputError(f"{option}: name all inputs (NAME=FILE.npy) or none")
    return named or positional


def load_model(spec: str, weights: str | None, inputs: Any, threads: int | None) -> Any:
    """A no-argument callable running the model ``spec`` on ``inputs``."""
    from silenttax.benchmark import onnx_fn, torch_fn

    if spec.endswith(".onnx"):
        if not Path(spec).is_file():
            raise InputError(f"model: no such ONNX file {spec!r}")
        feed = inputs if isinstance(inputs, dict) else list(inputs)
        return onnx_fn(spec, feed, threads=threads)
    module_name, sep, attr = spec.partition(":")
    if not sep:
        raise InputError(f"model: {spec!r} is neither an .onnx file nor 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"model: cannot import {spec!r}: {exc}") from exc
    from silenttax._deps import optional_import

    torch: Any = optional_import("torch", purpose="silenttax bench on a torch factory")
    model = factory()
    if weights:
        try:
            state = torch.load(weights, weights_only=True, map_location="cpu")
        except Exception as exc:  # torch raises several types for a bad file
            raise InputError(f"weights: cannot read {weights!r}: {exc}") from exc
        model.load_state_dict(state)
    model.eval()
    if isinstance(inputs, dict):
        tensors: Any = {k: torch.from_numpy(v) for k, v in inputs.items()}
    else:
        tensors = tuple(torch.from_numpy(v) for v in inputs)
    return torch_fn(model, tensors)


def run(args: argparse.Namespace) -> int:
    """Benchmark (or compare) and save; returns 0 (the gate decides, not this command)."""
    from silenttax.benchmark import benchmark, compare
    from silenttax.gate import performance_gate, verdict

    inputs = read_inputs(args.input)
    sys.path.insert(0, str(Path.cwd()))  # factories of the project the command runs in
    fn = load_model(args.model, args.weights, inputs, args.threads)
    if args.model_b is None:
        result = benchmark(fn, min_time=args.min_time, max_time=args.max_time, threads=args.threads)
        result = result.model_copy(update={"name": args.model})
        print(result.report().to_text(color=sys.stdout.isatty()))
    else:
        fn_b = load_model(args.model_b, args.weights_b, inputs, args.threads)
        comparison = compare(
            fn,
            fn_b,
            min_time=min(args.min_time, args.max_time),
            max_time=args.max_time,
            threads=args.threads,
            names=(args.model, args.model_b),
            until=lambda c: verdict(performance_gate(c)) != "inconclusive",
            progress=_progress,
        )
        gate = performance_gate(comparison)
        report = comparison.report() | gate
        print(report.to_text(color=sys.stdout.isatty()))
        if verdict(gate) == "inconclusive":
            print(_decide_hint(gate, comparison, args.max_time))
        result = comparison  # type: ignore[assignment]
    result.save(Path(args.out), indent=2)
    print(f"result written to {args.out}")
    return 0


def _progress(comparison: Any, seconds: float) -> None:
    """One stderr line per check of an adaptive comparison."""
    from silenttax.gate import performance_gate

    gate = performance_gate(comparison)
    each = ", ".join(
        f"{str(f.metric).removesuffix('_ratio')} {f.value:.3f} {f.evidence['verdict']}"
        if f.value is not None
        else f"{str(f.metric).removesuffix('_ratio')} {f.evidence['verdict']}"
        for f in gate.findings[1:]
        if f.code == "gate.latency"
    )
    busy = (comparison.contention or {}).get("contended_share", 0.0)
    print(
        f"  {seconds:5.1f} s  {comparison.rounds} rounds  {each}"
        + (f"  (machine busy {busy:.0%} of the time)" if busy else ""),
        file=sys.stderr,
        flush=True,
    )


def _decide_hint(gate: Any, comparison: Any, max_time: float) -> str:
    """The exact command that would decide an inconclusive gate."""
    import shlex

    if comparison.busy:
        return (
            "inconclusive because the machine was busy (other processes held the cores); "
            "rerun the same command when it is quiet, or on a dedicated machine"
        )
    wanted = [
        int(f.evidence["samples_to_decide"])
        for f in gate.findings
        if f.evidence.get("verdict") == "inconclusive" and "samples_to_decide" in f.evidence
    ]
    have = max(len(comparison.baseline.samples), 1)
    factor = max(wanted, default=4 * have) / have
    seconds = max(max_time * 2, math.ceil(max_time * factor * 1.2))
    argv = list(sys.argv[1:])
    if "--max-time" in argv:
        at = argv.index("--max-time")
        del argv[at : at + 2]
    argv = [a for a in argv if not a.startswith("--max-time=")]
    command = shlex.join(["silenttax", *argv, "--max-time", f"{seconds:g}"])
    return f"to decide it, measure about {factor:.1f}x longer:\n  {command}"
