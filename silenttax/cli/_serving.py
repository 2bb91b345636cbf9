"""``silenttax serving rules``: Prometheus rules, their promtool tests, a Grafana dashboard."""

from __future__ import annotations

import argparse
from typing import Any

from silenttax.cli._args import number

__all__ = ["add_parser"]

EXIT = "exit status: 0 written, 2 error"


def add_parser(subparsers: Any) -> None:
    """Register the ``serving`` subcommand (``serving rules``)."""
    serving = subparsers.add_parser(
        "serving",
        help="files for serving fleets: Prometheus rules and a Grafana dashboard",
        description="Files for a served model scraped by Prometheus (see docs/serving.md).",
    )
    inner = serving.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(serving))
    rules = inner.add_parser(
        "rules",
        help="write Prometheus recording and alerting rules, their promtool tests and a "
        "Grafana dashboard",
        description=(
            "Write silenttax-rules.yml (recording and alerting rules: latency SLO and creep, "
            "the shadow pipeline, cost per 1000, live feature findings, 5xx ratio, scrape "
            "health), silenttax-rules.test.yml (promtool test rules: every alert fires and "
            "clears) and silenttax-dashboard.json (Grafana) into DIR, all from the metric "
            "names the collector exports. The finding alerts need the scrape mounted with "
            f"instrument(app, findings=True). {EXIT}."
        ),
        epilog=EXIT,
    )
    rules.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    rules.add_argument("--namespace", default="silenttax", help="metric prefix (silenttax)")
    rules.add_argument(
        "--slo",
        type=number(above=0),
        metavar="SECONDS",
        help="also alert when the histogram's p99 is over this SLO",
    )
    rules.add_argument(
        "--error-budget",
        type=number(above=0, below=1),
        default=0.01,
        metavar="SHARE",
        help="5xx / exception share that alerts (0.01)",
    )
    rules.add_argument(
        "--min-rate",
        type=number(at_least=0),
        default=0.1,
        metavar="RPS",
        help="requests/s below which the error ratio is not judged (0.1)",
    )
    rules.set_defaults(func=run)
    serving.set_defaults(func=lambda args: serving.error("name a command: rules") or 2)


def run(args: argparse.Namespace) -> int:
    """Write the files; returns the exit status."""
    from silenttax.integrations.rules import write

    written = write(
        args.out,
        namespace=args.namespace,
        slo=args.slo,
        error_budget=args.error_budget,
        min_rate=args.min_rate,
    )
    for path in written:
        print(f"written {path}")
    print(
        f"check them with: promtool check rules {written[0]} && "
        f"(cd {written[0].parent} && promtool test rules {written[1].name})"
    )
    return 0
