"""``silenttax drift``: data drift and feature health between two files (or the demo)."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from silenttax.cli._args import FRACTION
from silenttax.report import Severity

__all__ = ["add_parser", "demo_data"]

DEMO_NOTE = (
    "demo: the diabetes study of Efron et al. (2004, 'Least Angle Regression'; as shipped with "
    "scikit-learn), 442 patients; reference = patients coded sex=1 (235), current = sex=2 (207), "
    "the sex column dropped, so the drift below is real"
)


def demo_data() -> tuple[dict[str, Any], dict[str, Any]]:
    """The bundled demo: (reference, current) split of a real dataset by a real covariate."""
    from silenttax._files import read_table
    from silenttax._input import to_table

    with resources.as_file(resources.files("silenttax.data") / "diabetes.csv") as path:
        table = to_table(read_table(path))
    sex = table["sex"]
    reference = {n: table[n][sex == 1] for n in table.names if n != "sex"}
    current = {n: table[n][sex == 2] for n in table.names if n != "sex"}
    return reference, current


def add_parser(subparsers: Any) -> None:
    """Register the ``drift`` subcommand."""
    parser = subparsers.add_parser(
        "drift",
        help="data drift and feature health between two CSV/Parquet files",
        description=(
            "Compare CURRENT with REFERENCE: statistical drift per column (calibrated, "
            "effect-size aware) and feature health (types, numbers as strings, padding, "
            "nulls, precision, range, categories). Prints a compact table."
        ),
    )
    parser.add_argument("reference", nargs="?", help="reference data (.csv, .csv.gz, .parquet)")
    parser.add_argument("current", nargs="?", help="current data (.csv, .csv.gz, .parquet)")
    parser.add_argument("--demo", action="store_true", help="run on the bundled real dataset")
    parser.add_argument("--out", metavar="JSON", help="also write the report as JSON")
    parser.add_argument("--html", metavar="HTML", help="also write the report as HTML")
    parser.add_argument(
        "--alpha", type=FRACTION, default=0.05, help="dataset-level false-alarm rate (0.05)"
    )
    parser.add_argument(
        "--fail-on",
        choices=["none", "info", "warning", "critical"],
        default="warning",
        help="exit with status 1 when a finding reaches this severity (warning, as every "
        "command that judges data or models; none: always 0)",
    )
    parser.add_argument("--all", action="store_true", help="also list healthy feature checks")
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    """Run the drift command; returns the exit status."""
    from silenttax._files import read_table
    from silenttax.drift import DriftDetector
    from silenttax.features import FeatureHealth

    parser: argparse.ArgumentParser = args.parser
    if args.demo:
        if args.reference or args.current:
            parser.error("--demo takes no files")
        reference, current = demo_data()
        print(DEMO_NOTE)
    else:
        if not (args.reference and args.current):
            parser.error("give REFERENCE and CURRENT files, or --demo")
        reference, current = read_table(args.reference), read_table(args.current)
    drift = DriftDetector(alpha=args.alpha).fit(reference).check(current)
    health = FeatureHealth().fit(reference).check(current)
    report = drift | health
    shown = drift | (health if args.all else health.problems(Severity.INFO))
    print(shown.to_text(color=sys.stdout.isatty()))
    if args.out:
        report.save(Path(args.out), indent=2)
        print(f"report written to {args.out}")
    if args.html:
        Path(args.html).write_text(report.to_html(), encoding="utf-8")
        print(f"HTML written to {args.html}")
    if args.fail_on == "none":
        return 0
    return report.exit_code(fail_on=args.fail_on)
