"""Argument parsing and dispatch for the ``silenttax`` command.

Each subcommand lives in its own module with an ``add_parser(subparsers)``
function whose parser sets ``func`` (namespace -> exit status); ``build_parser``
lists them. Usage errors print one clear line and exit with status 2;
findings at or above ``--fail-on`` exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from silenttax._version import __version__
from silenttax.cli import (
    _audit,
    _bench,
    _drift,
    _gate,
    _history,
    _load,
    _merge,
    _serving,
    _stack,
)
from silenttax.errors import SilentTaxError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One clear line on stderr and exit status 2 (no usage dump)."""
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = _Parser(
        prog="silenttax",
        description=(
            "Find the silent AI tax: models that keep their accuracy but get slower, "
            "costlier and more fragile in production."
        ),
    )
    parser.add_argument("--version", action="version", version=f"silenttax {__version__}")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (repeatable): it registers your own components and codes "
        "(silenttax.component), so their snapshots load, merge and are judged",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    _audit.add_parser(subparsers)
    _drift.add_parser(subparsers)
    _gate.add_parser(subparsers)
    _bench.add_parser(subparsers)
    _stack.add_parser(subparsers)
    _merge.add_parser(subparsers)
    _serving.add_parser(subparsers)
    _history.add_parser(subparsers)
    _load.add_parser(subparsers)
    return parser


def _one_line(message: str, limit: int = 1000) -> str:
    """``message`` as one printable line of at most ``limit`` characters (a parser's
    message may quote binary garbage from the file it could not read)."""
    flat = " ".join(message.split("\n"))
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _import(modules: Sequence[str]) -> None:
    """Import the user's modules named with ``--import`` (they register components)."""
    import importlib

    from silenttax.errors import InputError

    if modules and "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # as 'python -m' would: the working directory's packages
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise InputError(f"--import {module}: {type(exc).__name__}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 findings, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        _import(args.imports)
        status: int = func(args)
    except SilentTaxError as exc:
        print(f"silenttax: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the user named cannot be read or written
        where = exc.filename2 if exc.filename2 is not None else exc.filename
        named = f"{str(where)!r}: " if where is not None else ""
        print(f"silenttax: error: {named}{_one_line(exc.strerror or str(exc))}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # parser.error() inside a command: a usage error
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    return status
