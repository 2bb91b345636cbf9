"""``silenttax load``: open-loop runs, capacity, paired capacity comparisons, soaks."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

from silenttax.cli._args import count, number, seconds

__all__ = ["add_parser"]

EXIT = (
    "exit status: 0 pass, 1 regression (an SLO missed, capacity below --required-rate, "
    "memory growth), 2 usage error, 3 inconclusive or invalid (a generator-bound run is "
    "never a pass)"
)


def _target(text: str, args: argparse.Namespace, stack: contextlib.ExitStack) -> Any:
    """An ``http://`` URL, or ``package.module:callable`` (imported from the working
    directory; in ``--processes`` worker processes when given, closed with ``stack``)."""
    from silenttax.errors import InputError

    if text.startswith(("http://", "https://")):
        if args.processes:
            raise InputError("--processes: only for a module:callable target, not a URL")
        return text
    module, sep, attr = text.partition(":")
    if not sep or not module or not attr:
        raise InputError(f"target: need an http:// URL or module:callable, got {text!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        found: Any = importlib.import_module(module)
        for part in attr.split("."):
            found = getattr(found, part)
    except Exception as exc:
        raise InputError(f"target {text!r}: {type(exc).__name__}: {exc}") from None
    if args.processes:
        from silenttax.load import worker_process

        return stack.enter_context(worker_process(found, processes=args.processes, name=text))
    return found


def _payloads(path: str | None) -> list[Any] | None:
    """One JSON document per line (a ``.jsonl`` file)."""
    from silenttax.errors import InputError

    if path is None:
        return None
    items = []
    for number_, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"--payloads {path}: line {number_} is not JSON: {exc}") from None
    if not items:
        raise InputError(f"--payloads {path}: no payloads in the file")
    return items


def _write(args: argparse.Namespace, figures: dict[str, Any], report: Any) -> None:
    if args.json:
        Path(args.json).write_text(
            json.dumps({"figures": figures, "report": json.loads(report.to_json())}, indent=2,
                       default=str),
            encoding="utf-8",
        )  # fmt: skip
    if args.html:
        Path(args.html).write_text(report.to_html(title="silenttax load"), encoding="utf-8")


class _Bar:
    """A progress bar on stderr over a run's known duration (rich when installed and
    stderr is a terminal; otherwise nothing: the summary follows)."""

    def __init__(self, label: str, seconds: float) -> None:
        from silenttax._deps import is_installed

        self._bar: Any = None
        self._stop = threading.Event()
        self._seconds = seconds
        if sys.stderr.isatty() and is_installed("rich"):
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True),
                                 transient=True)  # fmt: skip

    def __enter__(self) -> _Bar:
        if self._bar is not None:
            self._bar.start()
            task = self._bar.add_task("", total=self._seconds)
            start = time.monotonic()

            def tick() -> None:
                while not self._stop.wait(0.5):
                    self._bar.update(task, completed=min(self._seconds, time.monotonic() - start))

            threading.Thread(target=tick, name="silenttax-load-bar", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._bar is not None:
            self._bar.stop()


def _progress(probe: Any) -> None:
    tag = "confirm" if probe.confirmation else "probe  "
    p99 = f"{probe.p99 * 1e3:.3g} ms" if math.isfinite(probe.p99) else "inf"
    print(f"  {tag} {probe.rate:9.4g}/s  p99 {p99:>9}  over the SLO {probe.exceedance.share:6.2%}"
          f"  [{probe.exceedance.low:.2%}, {probe.exceedance.high:.2%}]  {probe.verdict}",
          file=sys.stderr, flush=True)  # fmt: skip


def _blocks(done: int, blocks: int) -> None:
    print(f"  block {done}/{blocks} done (both arms at every rate)", file=sys.stderr, flush=True)


def add_parser(subparsers: Any) -> None:
    """Register ``load`` and its commands."""
    load = subparsers.add_parser(
        "load",
        help="drive a model open-loop: capacity at an SLO, two versions compared, soaks",
        description="Open-loop load without coordinated omission (see docs/load.md).",
    )
    inner = load.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(load))

    def command(name: str, help_: str, targets: int = 1) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = inner.add_parser(
            name, help=help_, description=help_, epilog=EXIT
        )
        names = ["target"] if targets == 1 else ["baseline", "candidate"]
        for target in names:
            parser.add_argument(target, metavar=target.upper(),
                                help="an http:// URL or module:callable")  # fmt: skip
        parser.add_argument("--payloads", metavar="FILE.jsonl",
                            help="one JSON payload per line, sent in turn")  # fmt: skip
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", metavar="OUT.json", help="write figures and report here")
        parser.add_argument("--html", metavar="OUT.html",
                            help="write the report as HTML (capacity: the latency-throughput "
                            "curve)")  # fmt: skip
        parser.add_argument("--processes", type=count(at_least=1), metavar="N",
                            help="run a module:callable in N worker processes (one that "
                            "holds the GIL)")  # fmt: skip
        return parser

    one = command("run", "one open-loop run at a rate")
    one.add_argument("--rate", type=number(above=0), required=True, help="requests per second")
    one.add_argument("--duration", type=seconds, default=10.0, help="(10s)")
    one.add_argument("--slo-p99", type=seconds, help="judge the p99 against it, e.g. 50ms")
    one.set_defaults(func=run_one)

    cap = command("capacity", "the highest rate meeting the p99 SLO, with an interval")
    cap.add_argument("--slo-p99", type=seconds, required=True, help="e.g. 50ms")
    cap.add_argument("--required-rate", type=number(above=0), help="fail below it (req/s)")
    cap.add_argument("--start-rate", type=number(above=0))
    cap.add_argument("--probe", type=seconds, default=5.0, help="seconds per probe (5s)")
    cap.add_argument("--confirm", type=seconds, default=20.0, help="confirmation run (20s)")
    cap.add_argument("--max-probes", type=count(at_least=2), default=12)
    cap.add_argument("--peak-rate", type=number(above=0), help="also plan replicas for it")
    cap.set_defaults(func=run_capacity)

    cmp_ = command("compare", "candidate vs baseline capacity, interleaved and paired", 2)
    cmp_.add_argument("--slo-p99", type=seconds, required=True, help="e.g. 50ms")
    cmp_.add_argument("--rates", help="comma-separated ladder of rates (default: searched)")
    cmp_.add_argument("--blocks", type=count(at_least=6), default=8, help="(8; at least 6)")
    cmp_.add_argument("--block", type=seconds, default=3.0, help="seconds per run (3s)")
    cmp_.add_argument("--tolerance", type=number(above=0, below=1), default=0.05)
    cmp_.set_defaults(func=run_compare)

    soak_ = command("soak", "memory and p99 per 1000 requests under sustained load")
    soak_.add_argument("--rate", type=number(above=0), required=True)
    soak_.add_argument("--duration", type=seconds, default=600.0, help="(10m)")
    soak_.add_argument("--pid", type=int, help="the server process whose memory is read")
    soak_.set_defaults(func=run_soak)
    load.set_defaults(
        func=lambda args: load.error("name a command: run, capacity, compare, soak") or 2
    )


def run_one(args: argparse.Namespace) -> int:
    from silenttax.load import run

    with contextlib.ExitStack() as stack, _Bar("load run", args.duration):
        done = run(_target(args.target, args, stack), rate=args.rate, duration=args.duration,
                   payloads=_payloads(args.payloads), seed=args.seed)  # fmt: skip
    report = done.report(slo_p99=args.slo_p99)
    print(report.to_text())
    _write(args, done.figures(), report)
    if not done.valid:
        return 3
    return int(report.exit_code())


def run_capacity(args: argparse.Namespace) -> int:
    from silenttax.load import capacity

    print(f"capacity of {args.target} at p99 <= {args.slo_p99 * 1e3:g} ms", file=sys.stderr)
    with contextlib.ExitStack() as stack:
        found = capacity(_target(args.target, args, stack), slo_p99=args.slo_p99,
                         payloads=_payloads(args.payloads), start_rate=args.start_rate,
                         probe=args.probe, confirm=args.confirm, max_probes=args.max_probes,
                         seed=args.seed, progress=_progress)  # fmt: skip
    report = found.report(required_rate=args.required_rate)
    print(report.to_text())
    figures = found.figures()
    if args.peak_rate and found.safe:
        figures["plan"] = found.plan(args.peak_rate)
        plan = figures["plan"]
        print(f"plan: {plan['replicas']} replicas for {args.peak_rate:g}/s with 30% headroom; "
              f"concurrency target {plan['concurrency_target'] or 0:.3g}")  # fmt: skip
    _write(args, figures, report)
    if found.verdict in ("inconclusive", "invalid"):
        return 3
    return 1 if found.verdict == "fail" else int(report.exit_code())


def run_compare(args: argparse.Namespace) -> int:
    from silenttax.errors import InputError
    from silenttax.load import compare_capacity

    rates = None
    if args.rates:
        try:
            rates = [float(r) for r in args.rates.split(",")]
        except ValueError:
            raise InputError(
                f"--rates: need numbers separated by commas, got {args.rates!r}"
            ) from None
    with contextlib.ExitStack() as stack:
        result = compare_capacity(_target(args.baseline, args, stack),
                                  _target(args.candidate, args, stack), slo_p99=args.slo_p99,
                                  rates=rates, blocks=args.blocks, block=args.block,
                                  tolerance=args.tolerance, payloads=_payloads(args.payloads),
                                  seed=args.seed, progress=_blocks)  # fmt: skip
    report = result.report()
    print(report.to_text())
    _write(args, result.figures(), report)
    return {"pass": 0, "regression": 1}.get(result.verdict, 3)


def run_soak(args: argparse.Namespace) -> int:
    from silenttax.load import soak

    with contextlib.ExitStack() as stack, _Bar("soak", args.duration):
        result = soak(_target(args.target, args, stack), rate=args.rate,
                      duration=args.duration, pid=args.pid, payloads=_payloads(args.payloads),
                      seed=args.seed)  # fmt: skip
    report = result.report()
    print(report.to_text())
    _write(args, result.figures(), report)
    if not result.run.valid or result.memory is None:
        return 3
    return int(report.exit_code())
