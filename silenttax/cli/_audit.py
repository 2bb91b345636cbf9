"""``silenttax audit`` (every module on one model and its data) and ``silenttax report``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from silenttax.cli._args import count, number, seconds
from silenttax.report import Report, Severity

__all__ = ["add_parser"]

EXIT = (
    "exit status: 0 nothing at --fail-on, 1 a finding at --fail-on (the demo has some, by "
    "design), 2 error"
)
_FAIL_ON = ("none", "info", "warning", "critical")


def add_parser(subparsers: Any) -> None:
    """Register the ``audit`` and ``report`` subcommands."""
    parser = subparsers.add_parser(
        "audit",
        help="audit a model and its data: every module, one report (HTML with plots)",
        description=(
            "Run every silenttax module on MODEL (an .onnx file, or a torch module as "
            "'pkg.module:attr', a module or a no-argument factory) and its data: drift and "
            "feature health (with --reference and --current), the model served call by call "
            "(latency, stages, cost, resources), torch / ONNX Runtime profiles, a "
            "quantization study against the fp32 model, the gate fp32 vs the recommended "
            "candidate, the environment and version lag. Writes report.json, report.html, "
            "audit.json and the snapshots under --out (silenttax report DIR re-judges them). "
            f"--demo does it on a bundled real model and dataset, offline. {EXIT}."
        ),
        epilog=EXIT,
    )
    parser.add_argument("model", nargs="?", help="an .onnx file or a 'pkg.module:attr' torch model")
    parser.add_argument("--demo", action="store_true", help="audit the bundled demo (offline)")
    parser.add_argument("--reference", metavar="FILE", help="reference data (.csv, .parquet)")
    parser.add_argument("--current", metavar="FILE", help="production data (.csv, .parquet)")
    parser.add_argument(
        "--inputs", nargs="+", metavar="NPY", help="model inputs for one call (.npy, in order)"
    )
    parser.add_argument(
        "--batch-size",
        type=count(),
        default=1,
        help="rows per call from the data; size of dynamic dimensions when synthesized (1)",
    )
    parser.add_argument(
        "--price-per-hour",
        type=number(at_least=0),
        metavar="P",
        help="price of one serving instance per hour",
    )
    parser.add_argument(
        "--input-columns",
        metavar="A,B,...",
        help="the data columns of the model's single 2-D input, in order",
    )
    parser.add_argument(
        "--target",
        metavar="NAME",
        help="the data's target column: never fed to the model (label, target, y, class, "
        "outcome never are)",
    )
    parser.add_argument(
        "--threads",
        type=count(),
        default=None,
        help="intra-op threads the deployment will use (default: the framework's own); "
        "whether the default oversubscribes the free cores is measured either way",
    )
    parser.add_argument("--baseline", metavar="DIR", help="a previous audit's --out directory")
    parser.add_argument(
        "--capacity-slo",
        type=seconds,
        metavar="DURATION",
        help="add a capacity section: the highest rate with p99 within it (e.g. 50ms), "
        "driven open-loop (silenttax load capacity); about two minutes",
    )
    parser.add_argument(
        "--required-rate",
        type=number(above=0),
        metavar="REQ/S",
        help="with --capacity-slo: warn when the capacity is below it",
    )
    parser.add_argument("--out", metavar="DIR", default="silenttax-audit", help="(silenttax-audit)")
    parser.add_argument(
        "--max-time",
        type=number(above=0),
        default=1.0,
        help="seconds per quantization candidate (1.0)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="do not ask the package index for newer versions"
    )
    parser.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="PKG.MODULE:FUNCTION",
        help="a check of your own, given every snapshot the audit kept by name, returning a "
        "Report (repeatable; recorded, so 'silenttax report DIR' runs it again)",
    )
    parser.add_argument(
        "--history",
        metavar="STORE",
        help="append the audit to this history store and add the trend of every tracked "
        "figure over the previous audits to the report (see docs/history.md)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="labels of the audit in --history (model= defaults to the model's file name)",
    )
    parser.add_argument("--fail-on", choices=_FAIL_ON, default="warning", help="(warning)")
    parser.set_defaults(func=run_audit, parser=parser)

    report = subparsers.add_parser(
        "report",
        help="re-judge and re-render a saved audit directory, report or snapshot",
        description=(
            "Read FILE_OR_DIR through silenttax.load: an audit directory is re-judged from "
            "its snapshots (the model is not run again), a saved report is re-rendered, any "
            f"other snapshot is judged by its own check. Prints the summary. {EXIT}."
        ),
        epilog=EXIT,
    )
    report.add_argument("source", metavar="FILE_OR_DIR")
    report.add_argument("--html", metavar="OUT.html", help="write the HTML page here")
    report.add_argument("--markdown", metavar="OUT.md", help="write Markdown here")
    report.add_argument("--json", metavar="OUT.json", help="write the report as JSON here")
    report.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="PKG.MODULE:FUNCTION",
        help="a check of your own over the snapshots, by name (repeatable)",
    )
    report.add_argument("--fail-on", choices=_FAIL_ON, default="warning", help="(warning)")
    report.set_defaults(func=run_report, parser=report)


class _Progress:
    """A rich progress bar on stderr when rich is installed, plain lines otherwise."""

    def __init__(self) -> None:
        from silenttax._deps import is_installed

        self._bar: Any = None
        self._task: Any = None
        if is_installed("rich"):
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]audit[/]"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, step: str, done: int, total: int) -> None:
        if self._bar is None:
            if step != "done":
                print(f"[{done + 1}/{total}] {step}", file=sys.stderr, flush=True)
            return
        if self._task is None:
            self._task = self._bar.add_task(step, total=total)
        self._bar.update(self._task, completed=done, description=step)


def summary(report: Report, *, limit: int = 12) -> str:
    """A compact terminal summary: counts per category, then the worst findings."""
    from silenttax.report._html import _ORDER

    counts: dict[str, list[int]] = {}
    for f in report.findings:
        counts.setdefault(str(f.category), [0, 0, 0, 0])[_ORDER.index(f.severity)] += 1
    lines = [f"{'category':<16}" + "".join(f"{s.value:>10}" for s in _ORDER)]
    lines += [f"{c:<16}" + "".join(f"{n:>10}" for n in v) for c, v in counts.items()]
    problems = sorted(report.problems(Severity.WARNING), key=lambda f: -f.severity.rank)
    if problems:
        lines.append("")
        lines.append(f"worst findings ({len(problems)} at warning or above):")
        for f in problems[:limit]:
            lines.append(
                f"  {f.severity.value.upper():<8} {f.code:<24} {f.subject[:22]:<22} "
                f"{f.message[:96]}"
            )
        if len(problems) > limit:
            lines.append(f"  ... and {len(problems) - limit} more in the report")
    return "\n".join(lines)


def _print(report: Report) -> None:
    from silenttax._deps import is_installed

    text = f"silenttax — {report.summary()}\n{summary(report)}"
    if is_installed("rich") and sys.stdout.isatty():
        from rich.console import Console

        Console().print(text, highlight=False, markup=False)
    else:
        print(text)


def _exit(report: Report, fail_on: str) -> int:
    return 0 if fail_on == "none" else report.exit_code(fail_on=fail_on)


def run_audit(args: argparse.Namespace) -> int:
    """Run the audit; returns the exit status."""
    from silenttax.audit import audit, demo_audit
    from silenttax.errors import InputError

    parser: argparse.ArgumentParser = args.parser
    if args.demo and (
        args.model or args.reference or args.current or args.inputs or args.input_columns
    ):
        parser.error("--demo takes no model or data")
    if not args.demo and not args.model:
        parser.error("give a MODEL (.onnx or pkg.module:attr), or --demo")
    with _Progress() as progress:
        if args.demo:
            from silenttax.audit._demo import DEMO_NOTE

            print(DEMO_NOTE, file=sys.stderr)
            result = demo_audit(
                max_time=args.max_time,
                index=not args.offline,
                price_per_hour=args.price_per_hour if args.price_per_hour is not None else 0.10,
                threads=args.threads,
                progress=progress,
                checks=args.check,
            )
        else:
            inputs = None
            if args.inputs:
                import numpy as np

                inputs = []
                for path in args.inputs:
                    try:
                        inputs.append(np.load(path, allow_pickle=False))
                    except (OSError, ValueError) as exc:
                        raise InputError(f"--inputs: cannot read {path!r} as .npy: {exc}") from exc
            result = audit(
                args.model,
                reference=args.reference,
                current=args.current,
                inputs=inputs,
                batch_size=args.batch_size,
                price_per_hour=args.price_per_hour,
                baseline=args.baseline,
                max_time=args.max_time,
                index=not args.offline,
                threads=args.threads,
                input_columns=(
                    [c.strip() for c in args.input_columns.split(",") if c.strip()]
                    if args.input_columns
                    else None
                ),
                target=args.target,
                progress=progress,
                checks=args.check,
                capacity_slo=args.capacity_slo,
                required_rate=args.required_rate,
            )
    if args.history:
        _with_history(result, args)
    out = result.save(args.out)
    _print(result.report)
    print(f"written: {out / 'report.html'}, {out / 'report.json'}, {out / 'snapshots'}/")
    return _exit(result.report, args.fail_on)


def _with_history(result: Any, args: argparse.Namespace) -> None:
    """Append the audit to ``--history`` and add the trend over its audits to its report."""
    from silenttax import history
    from silenttax.cli._history import labels_of

    model = "demo" if args.demo else Path(str(args.model).split(":")[0]).stem
    labels: dict[str, Any] = {"model": model, **labels_of(args.label)}
    with history.open(args.history) as store:
        store.append(result, labels=labels)
        trend = store.trend(since=None, resolution="raw", **labels)
    result.report = result.report | trend


def _judge_any(source: str, checks: Sequence[str] = ()) -> Report:
    import silenttax
    from silenttax.audit import judge_directory
    from silenttax.audit._judge import MANIFEST, judge, user_checks
    from silenttax.cli._merge import _judge
    from silenttax.errors import InputError

    path = Path(source)
    if path.is_dir() and (path / MANIFEST).is_file():
        return judge_directory(path, checks=checks)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise InputError(f"{source!r}: no audit.json and no .json snapshot in it")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"{source!r}: no such file or directory")
    loaded = {file.stem: silenttax.load(file) for file in files}
    out = Report()
    for item in loaded.values():
        judged = item if isinstance(item, Report) else _judge(item)
        if judged is None and path.is_file() and not checks:
            raise InputError(f"{source!r}: a {type(item).__name__} cannot judge itself alone")
        if judged is not None:
            out = out | judged
    if checks:
        out = out | judge(user_checks(checks, loaded), loaded)
    return out


def run_report(args: argparse.Namespace) -> int:
    """Re-judge / re-render; returns the exit status."""
    report = _judge_any(args.source, args.check)
    _print(report)
    for target, render in (
        (args.html, report.to_html),
        (args.markdown, report.to_markdown),
        (args.json, report.to_json),
    ):
        if target:
            Path(target).write_text(render(), encoding="utf-8")
            print(f"written: {target}")
    return _exit(report, args.fail_on)
