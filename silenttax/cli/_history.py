"""``silenttax history``: append snapshots, show series, judge trends, compact, export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from silenttax.cli._args import number

__all__ = ["add_parser", "labels_of"]

EXIT = "exit status: 0 done (trend: nothing at --fail-on), 1 trend: a finding at --fail-on, 2 error"


def labels_of(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments as labels."""
    from silenttax.errors import InputError

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--label: need KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def add_parser(subparsers: Any) -> None:
    """Register ``history`` and its commands."""
    history = subparsers.add_parser(
        "history",
        help="keep every snapshot in a store; show series and judge trends over months",
        description="A history store (one SQLite file, see docs/history.md).",
    )
    inner = history.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(history))

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = inner.add_parser(
            name, help=help_, description=help_, epilog=EXIT
        )
        parser.add_argument("store", metavar="STORE", help="the history file (created if missing)")
        parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                            help="labels of the stream (repeatable)")  # fmt: skip
        return parser

    append = command("append", "append snapshots (.json files, audit directories) to the store")
    append.add_argument("sources", nargs="+", metavar="FILE_OR_DIR")
    append.add_argument("--at", type=float, metavar="EPOCH", help="when they were taken (now)")
    append.set_defaults(func=run_append)

    show = command(
        "show", "print a tracked figure's series (or, without --metric, what is tracked)"
    )
    show.add_argument("--metric", help="the figure, e.g. latency.p99")
    show.add_argument("--since", help="e.g. 90d, 12h (default: all)")
    show.add_argument("--resolution", choices=["raw", "1h", "1d"], default="raw")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_show)

    trend = command("trend", "judge creep and change points over the daily rollups")
    trend.add_argument("--metric", action="append", default=[], help="a figure (repeatable)")
    trend.add_argument("--since", default="90d", help="the window judged (90d; 'all')")
    trend.add_argument("--resolution", choices=["raw", "1h", "1d"], default="1d")
    trend.add_argument("--alpha", type=number(above=0, below=1), default=0.05)
    trend.add_argument("--margin", type=number(at_least=0), default=0.01,
                       help="smallest creep per 30 days (0.01: 1%%)")  # fmt: skip
    trend.add_argument("--limit", action="append", default=[], metavar="METRIC=VALUE",
                       help="an SLO or budget: when it is crossed (repeatable)")  # fmt: skip
    trend.add_argument("--fail-on", choices=["info", "warning", "critical", "none"],
                       default="warning", help="(warning)")  # fmt: skip
    trend.add_argument("--json", metavar="OUT.json", help="write the report as JSON here")
    trend.set_defaults(func=run_trend)

    compact = command("compact", "build hourly and daily rollups, drop what retention ends")
    compact.add_argument("--vacuum", action="store_true",
                         help="also rewrite the file, packing half-empty pages")  # fmt: skip
    compact.set_defaults(func=run_compact)

    export = command("export", "write Hive-partitioned Parquet for DuckDB or Spark (needs pyarrow)")
    export.add_argument("--out", required=True, metavar="DIR")
    export.add_argument("--since", help="e.g. 365d (default: all)")
    export.set_defaults(func=run_export)
    history.set_defaults(
        func=lambda args: history.error("name a command: append, show, trend, compact, export") or 2
    )


def run_append(args: argparse.Namespace) -> int:
    import silenttax
    from silenttax import history
    from silenttax.audit._judge import MANIFEST
    from silenttax.errors import InputError

    labels = labels_of(args.label)
    done = 0
    with history.open(args.store) as store:
        for source in args.sources:
            path = Path(source)
            if path.is_dir() and (path / MANIFEST).is_file():
                done += append_audit_dir(store, path, labels, at=args.at)
            elif path.is_file():
                store.append(silenttax.load(path), at=args.at, labels=labels)
                done += 1
            else:
                raise InputError(f"{source!r}: not a snapshot file or an audit directory")
    print(f"appended {done} snapshot(s) to {args.store}")
    return 0


def append_audit_dir(store: Any, folder: Path, labels: dict[str, str], *, at: float | None) -> int:
    """An audit directory's snapshots and report, as ``History.append`` does with an audit."""
    import silenttax

    snapshots = {f.stem: silenttax.load(f) for f in sorted((folder / "snapshots").glob("*.json"))
                 if not f.stem.endswith("_reference")}  # fmt: skip
    report = folder / "report.json"
    loaded = silenttax.load(report) if report.is_file() else None
    done: int = store._append_run(snapshots, loaded, at=at, labels=labels)[0]
    return done


def _since(text: str | None) -> str | None:
    return None if text in (None, "all") else text


def run_show(args: argparse.Namespace) -> int:
    from silenttax import history
    from silenttax.history._store import _iso

    labels: dict[str, Any] = labels_of(args.label)
    with history.open(args.store) as store:
        if not args.metric:
            stats = store.stats()
            print(f"{args.store}: {stats['snapshot']} snapshots, {stats['point']} points, "
                  f"{stats['finding']} findings, {stats['marker']} markers, "
                  f"{stats['bytes']:,} bytes")  # fmt: skip
            for name in store.metrics(**labels):
                print(f"  {name}")
            for marker in store.markers(**labels):
                print(f"  marker {marker.when} {marker.kind} {json.dumps(marker.meta)}")
            return 0
        series = store.series(
            args.metric, since=_since(args.since), resolution=args.resolution, **labels
        )
    if args.json:
        print(json.dumps(series.to_dict()))
        return 0
    print(f"{series.name} {series.labels} ({series.unit}, {series.resolution})")
    for t, v, lo, hi, n in zip(
        series.times, series.values, series.lo, series.hi, series.n, strict=True
    ):
        interval = f" [{lo:.6g}, {hi:.6g}]" if lo is not None and hi is not None else ""
        print(f"  {_iso(t)}  {v:.6g}{interval}" + (f"  n={n}" if n is not None else ""))
    return 0


def run_trend(args: argparse.Namespace) -> int:
    from silenttax import history
    from silenttax.cli._audit import _print

    limits = {k: float(v) for k, v in labels_of(args.limit).items()}
    labels: dict[str, Any] = labels_of(args.label)
    with history.open(args.store) as store:
        report = store.trend(
            args.metric or None, since=_since(args.since), resolution=args.resolution,
            alpha=args.alpha, margin=args.margin, limits=limits, **labels,
        )  # fmt: skip
    _print(report)
    if args.json:
        Path(args.json).write_text(report.to_json(), encoding="utf-8")
        print(f"written: {args.json}")
    return 0 if args.fail_on == "none" else report.exit_code(fail_on=args.fail_on)


def run_compact(args: argparse.Namespace) -> int:
    from silenttax import history

    with history.open(args.store) as store:
        done = store.compact(vacuum=args.vacuum)
        stats = store.stats()
    print(f"rollups written: {done['1h']} hourly, {done['1d']} daily; {done['dropped']} "
          f"snapshots past retention dropped; {stats['bytes']:,} bytes")  # fmt: skip
    return 0


def run_export(args: argparse.Namespace) -> int:
    from silenttax import history

    with history.open(args.store) as store:
        written = store.export(args.out, since=_since(args.since))
    print(f"written {len(written)} file(s) under {args.out}", file=sys.stdout)
    return 0
