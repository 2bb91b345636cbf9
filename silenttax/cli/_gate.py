"""``silenttax gate``: the deployment gate between two saved measurements."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from silenttax.cli._args import FRACTION, number
from silenttax.errors import InputError

__all__ = ["add_parser", "read_side"]

EXIT = "exit status: 0 pass, 1 regression, 3 inconclusive, 2 usage error"


def add_parser(subparsers: Any) -> None:
    """Register the ``gate`` subcommand."""
    parser = subparsers.add_parser(
        "gate",
        help="deployment gate: is CANDIDATE slower than BASELINE beyond a tolerance?",
        description=(
            "Gate CANDIDATE against BASELINE on p50 and p99 latency (and peak memory or "
            "cost per 1000 inferences when asked): pass, regression or inconclusive per "
            "metric, from confidence intervals of ratios with Holm's adjustment. A single "
            "Comparison JSON (silenttax bench A B) is gated on blocks of its rounds. Each side "
            "is a BenchmarkResult JSON (silenttax bench), any saved silenttax snapshot "
            "(LatencySketch, LatencyMonitor), a JSON object with a 'samples' array (or "
            "'blocks': a list of arrays, one per run), or a text/CSV file with one latency "
            f"in seconds per line. {EXIT}."
        ),
        epilog=EXIT,
    )
    parser.add_argument("baseline", help="the production side, or a Comparison (see above)")
    parser.add_argument(
        "candidate", nargs="?", help="the side that would replace it (none with a Comparison)"
    )
    for name, default, what in [
        ("p50", 0.05, "p50"),
        ("p99", 0.10, "p99"),
    ]:
        parser.add_argument(
            f"--max-{name}-regression",
            type=number(at_least=0),
            default=default,
            metavar="R",
            help=f"tolerated {what} slowdown ({default:g} = {default * 100:g}%%)",
        )
    parser.add_argument(
        "--max-memory-regression",
        type=number(at_least=0),
        default=None,
        metavar="R",
        help="gate peak RSS too (BenchmarkResults, 2+ runs per side)",
    )
    parser.add_argument(
        "--max-cost-regression",
        type=number(at_least=0),
        default=None,
        metavar="R",
        help="gate cost per 1000 inferences too (mean latency ratio)",
    )
    parser.add_argument(
        "--alpha", type=FRACTION, default=0.05, help="family-wise false-regression rate (0.05)"
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="tolerances and alpha from a JSON or TOML file (a [gate] table works); they "
        "replace the options above",
    )
    parser.add_argument(
        "--capacity",
        metavar="CMP.json",
        help="also gate capacity under load: the --json of 'silenttax load compare' (its "
        "verdict joins the gate's)",
    )
    parser.add_argument("--out", metavar="JSON", help="also write the report as JSON")
    parser.add_argument("--markdown", action="store_true", help="print Markdown (PR comments)")
    parser.set_defaults(func=run, parser=parser)


def read_side(path: str, role: str) -> Any:
    """One side of the gate from a file (see the command's help)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{role}: cannot read {path!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise InputError(
            f"{role}: {path!r} is not UTF-8 text (a binary file?); see 'silenttax gate --help'"
        ) from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{role}: {path!r} is not valid JSON: {exc}") from exc
        if isinstance(data, dict) and "kind" in data:
            import silenttax

            return silenttax.load(data)
        if isinstance(data, dict) and isinstance(data.get("blocks"), list):
            return [list(block) for block in data["blocks"]]
        if isinstance(data, dict) and isinstance(data.get("samples"), list):
            return data["samples"]
        raise InputError(
            f"{role}: {path!r} is JSON without 'kind', 'samples' or 'blocks'; see "
            "'silenttax gate --help'"
        )
    values = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        cell = line.split(",")[0].strip()
        if not cell or cell.startswith("#"):
            continue
        try:
            values.append(float(cell))
        except ValueError:
            if not values and line_number == 1:
                continue  # a header line
            raise InputError(
                f"{role}: {path!r} line {line_number}: {cell!r} is not a number"
            ) from None
    return values


def _capacity(path: str) -> Any:
    """A capacity comparison saved by ``silenttax load compare --json``."""
    from silenttax.load import CapacityComparison

    try:
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--capacity {path}: cannot read it ({exc})") from None
    figures = saved.get("figures") if isinstance(saved, dict) else None
    if not isinstance(figures, dict):
        raise InputError(f"--capacity {path}: not the --json of 'silenttax load compare'")
    try:
        return CapacityComparison.from_figures(figures)
    except InputError as exc:
        raise InputError(f"--capacity {path}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Run the gate; returns the exit status (0 pass, 1 regression, 3 inconclusive)."""
    from silenttax.gate import exit_status, performance_gate

    report = performance_gate(
        read_side(args.baseline, "baseline"),
        read_side(args.candidate, "candidate") if args.candidate else None,
        max_p50_regression=args.max_p50_regression,
        max_p99_regression=args.max_p99_regression,
        max_memory_regression=args.max_memory_regression,
        max_cost_regression=args.max_cost_regression,
        alpha=args.alpha,
        policy=args.policy,
        capacity=_capacity(args.capacity) if args.capacity else None,
    )
    print(report.to_markdown() if args.markdown else report.to_text(color=sys.stdout.isatty()))
    if args.out:
        report.save(Path(args.out), indent=2)
        print(f"report written to {args.out}")
    return exit_status(report)
