"""``silenttax merge``: merge N replicas' saved snapshots, then report the fleet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]

EXIT = "exit status: 0 merged (and nothing at --fail-on), 1 a finding at --fail-on, 2 error"


def add_parser(subparsers: Any) -> None:
    """Register the ``merge`` subcommand."""
    parser = subparsers.add_parser(
        "merge",
        help="merge saved snapshots of one kind from N replicas, then report them",
        description=(
            "Read every STATE (a saved snapshot, or a directory of *.json snapshots), merge "
            "them with their kind's own merge (counts add up exactly; settings must agree), "
            "print the merged component's report (its check() or report(), when it can judge "
            "itself), and write the merged snapshot with --out. Mismatched kinds or settings "
            f"are an error naming the file. {EXIT}."
        ),
        epilog=EXIT,
    )
    parser.add_argument("states", nargs="+", metavar="STATE", help="snapshot files or directories")
    parser.add_argument("--out", metavar="JSON", help="write the merged snapshot here")
    parser.add_argument(
        "--fail-on",
        choices=("info", "warning", "critical"),
        default="warning",
        help="lowest severity that exits 1 (warning)",
    )
    parser.set_defaults(func=run, parser=parser)


def _judge(component: Any) -> Any:
    """The component's own verdict, when it can give one without more data."""
    from silenttax.errors import SilentTaxError
    from silenttax.report import Report

    for method in ("check", "report"):
        judge = getattr(component, method, None)
        if callable(judge):
            try:
                result = judge()
            except (SilentTaxError, TypeError):
                continue
            if isinstance(result, Report):
                return result
    return None


def run(args: argparse.Namespace) -> int:
    """Merge, report, save; returns the exit status."""
    import silenttax

    merged = silenttax.merge(args.states)
    report = _judge(merged)
    count = len(silenttax._registry._sources(args.states))
    print(f"merged {count} {type(merged).__name__} snapshot(s)")
    if report is not None:
        print(report.to_text(color=sys.stdout.isatty()))
    if args.out:
        Path(args.out).write_text(merged.to_json(indent=2), encoding="utf-8")
        print(f"merged snapshot written to {args.out}")
    return 0 if report is None else report.exit_code(args.fail_on)
