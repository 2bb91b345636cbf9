"""``silenttax stack-check``: the same model on a newer framework stack, measured."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from silenttax.cli._args import FRACTION, count, number
from silenttax.errors import InputError

__all__ = ["add_parser", "exit_status"]

EXIT = "exit status: 0 nothing to act on, 1 a finding at --fail-on, 3 inconclusive, 2 usage error"
#: Which verdict codes each --fail-on value acts on.
FAIL_ON = {
    "rot": ("dependency.rot",),
    "regression": ("dependency.upgrade_regression",),
    "any": (
        "dependency.rot",
        "dependency.upgrade_regression",
        "dependency.output_change",
        "dependency.stack_aa",
    ),
}


def add_parser(subparsers: Any) -> None:
    """Register the ``stack-check`` subcommand."""
    parser = subparsers.add_parser(
        "stack-check",
        help="dependency rot: the same model on a newer stack, in paired processes",
        description=(
            "First the cheap stage: the installed versions against the newest on the package "
            "index (dependency.version_lag). Then the benchmark: build a candidate "
            "environment with the --upgrade pins (uv when available, pip otherwise; cached), "
            "run MODEL on both stacks in worker processes, alternating warm blocks inside "
            "each of --pairs pairs of fresh processes, and decide over the pairs: faster "
            "(dependency.rot: upgrading pays), slower (dependency.upgrade_regression), "
            "equivalent within --equivalence, or inconclusive (with the pairs that would "
            "resolve it). MODEL is an .onnx file or a factory 'package.module:function' "
            "(torch by default; --kind python for any callable over numpy arrays). "
            f"{EXIT}."
        ),
        epilog=EXIT,
    )
    parser.add_argument("model", help="an .onnx file or 'package.module:factory'")
    parser.add_argument(
        "--inputs",
        nargs="+",
        action="extend",
        default=[],
        metavar="[NAME=]FILE.npy",
        help="example input arrays (NAME= for ONNX input names or keyword arguments)",
    )
    parser.add_argument(
        "--upgrade",
        action="append",
        default=[],
        metavar="PKG[SPEC]",
        help="a package for the candidate stack: 'onnxruntime' (latest), 'torch==2.14.0', "
        "'numpy>=2.3'; repeat for several",
    )
    parser.add_argument(
        "--python", metavar="PATH", help="use this existing interpreter as the candidate stack"
    )
    parser.add_argument(
        "--aa",
        action="store_true",
        help="A/A self-test: this environment on both arms (measures false alarms)",
    )
    parser.add_argument("--kind", choices=("torch", "python"), default="torch")
    parser.add_argument("--weights", help="a state_dict (torch.save) or .safetensors file")
    parser.add_argument("--threads", type=count(), default=None, help="threads on both arms")
    parser.add_argument("--cores", help="CPUs for both arms, e.g. '0,1' (default: all usable)")
    parser.add_argument(
        "--pairs", type=count(at_least=2), default=6, help="pairs of fresh processes (6)"
    )
    parser.add_argument("--rounds", type=count(), default=30, help="interleaved rounds per pair")
    parser.add_argument(
        "--equivalence", type=number(above=0), default=0.05, help="margin of no change (0.05 = 5%%)"
    )
    parser.add_argument("--confidence", type=FRACTION, default=0.95)
    parser.add_argument(
        "--max-time", type=number(above=0), default=900.0, help="seconds for the pairs"
    )
    parser.add_argument(
        "--requirement",
        action="append",
        default=[],
        help="another requirement for the candidate environment (your package: '.')",
    )
    parser.add_argument("--env-cache", metavar="DIR", help="where built environments are kept")
    parser.add_argument("--installer", choices=("auto", "uv", "pip"), default="auto")
    parser.add_argument("--index-url", help="replace the primary package index")
    parser.add_argument("--extra-index-url", action="append", default=[])
    parser.add_argument("--find-links", action="append", default=[])
    parser.add_argument(
        "--price-per-hour", type=number(at_least=0), help="price the change per 1000 calls"
    )
    parser.add_argument("--no-lag", action="store_true", help="skip the version-lag stage")
    parser.add_argument(
        "--lag-only", action="store_true", help="only the version-lag stage (no benchmark)"
    )
    parser.add_argument(
        "--fail-on",
        choices=tuple(FAIL_ON),
        default="any",
        help="which outcome exits 1: rot (newer is faster), regression (newer is slower), "
        "any (either, changed outputs, a failed A/A)",
    )
    parser.add_argument("--out", metavar="DIR", help="write stack.json, report.json, report.html")
    parser.set_defaults(func=run, parser=parser)


def _upgrades(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        text = item.strip()
        cut = next((i for i, ch in enumerate(text) if ch in "=<>!~"), len(text))
        name, spec = text[:cut].strip(), text[cut:].strip()
        if not name or not all(ch.isalnum() or ch in "-_." for ch in name):
            raise InputError(f"--upgrade: {item!r} is not 'package' or 'package<specifier>'")
        out[name] = spec or "latest"
    return out


def _spec(args: argparse.Namespace) -> Any:
    from silenttax.benchmark import ModelSpec
    from silenttax.cli._bench import read_inputs

    inputs = read_inputs(args.inputs, "--inputs")
    cores = None
    if args.cores:
        try:
            cores = [int(c) for c in args.cores.split(",") if c.strip()]
        except ValueError:
            raise InputError(f"--cores: {args.cores!r} is not a list like '0,1'") from None
    common = {"threads": args.threads, "cores": cores}
    if args.model.endswith(".onnx"):
        if not Path(args.model).is_file():
            raise InputError(f"model: no such ONNX file {args.model!r}")
        return ModelSpec.onnx(args.model, inputs=inputs, **common)
    if args.kind == "python":
        return ModelSpec.python(args.model, inputs=inputs, **common)
    return ModelSpec.torch(args.model, inputs=inputs, weights=args.weights, **common)


class _Progress:
    """One status line on stderr (redrawn in place on a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.began = time.perf_counter()
        self.last = ""

    def __call__(self, fraction: float, message: str) -> None:
        if message == self.last:
            return
        self.last = message
        width = 24
        bar = "#" * round(fraction * width)
        line = (
            f"[{bar:<{width}}] {fraction:4.0%} {message} ({time.perf_counter() - self.began:.0f} s)"
        )
        end = "" if self.tty and fraction < 1 else "\n"
        print(("\r\x1b[2K" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)


def exit_status(report: Any, fail_on: str, inconclusive: bool) -> int:
    """0 nothing to act on, 1 a WARNING+ finding named by ``fail_on``, 3 inconclusive."""
    from silenttax.report import Severity

    if any(f.code in FAIL_ON[fail_on] and f.severity >= Severity.WARNING for f in report):
        return 1
    return 3 if inconclusive else 0


def run(args: argparse.Namespace) -> int:
    """Run the check; returns the exit status."""
    from silenttax.benchmark import compare_stacks, version_lag
    from silenttax.report import Report

    parser: argparse.ArgumentParser = args.parser
    chosen = sum(bool(x) for x in (args.upgrade, args.python, args.aa))
    if chosen != 1 and not args.lag_only:
        parser.error("give the candidate stack: --upgrade PKG (repeatable), --python PATH or --aa")
    upgrades = _upgrades(args.upgrade)
    spec = None if args.lag_only else _spec(args)
    report = Report(findings=[], source="cli.stack-check")
    if not args.no_lag:
        from silenttax.benchmark._envs import installed_versions, normalize

        here = installed_versions()
        names = {normalize(n) for n in upgrades} | set(spec.packages() if spec else ())
        packages = sorted(n for n in names if n in here) or None
        print("checking version lag against the package index...", file=sys.stderr)
        report = report | version_lag(
            packages,
            index_url=args.index_url,
            extra_index_urls=args.extra_index_url,
            find_links=args.find_links,
        )
    comparison = None
    if spec is not None:
        candidate: Any = "current" if args.aa else (args.python or upgrades)
        comparison = compare_stacks(
            spec,
            candidate=candidate,
            pairs=args.pairs,
            rounds=args.rounds,
            equivalence=args.equivalence,
            confidence=args.confidence,
            max_time=args.max_time,
            requirements=args.requirement,
            env_cache=args.env_cache,
            installer=args.installer,
            index_url=args.index_url,
            extra_index_urls=args.extra_index_url,
            find_links=args.find_links,
            progress=_Progress(),
        )
        cost = None
        if args.price_per_hour is not None:
            from silenttax.cost import CostModel

            cost = CostModel(price_per_hour=args.price_per_hour)
        report = comparison.report(cost=cost) | report
    print(report.to_text(color=sys.stdout.isatty()))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report.save(out / "report.json", indent=2)
        (out / "report.html").write_text(report.to_html(), encoding="utf-8")
        if comparison is not None:
            comparison.save(out / "stack.json", indent=2)
        print(f"written to {out}/ (report.json, report.html{', stack.json' if comparison else ''})")
    inconclusive = (
        comparison is not None and comparison.verdict == "inconclusive" and not comparison.aa
    )
    return exit_status(report, args.fail_on, inconclusive)
