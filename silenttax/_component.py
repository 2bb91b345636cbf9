"""Users' checks: how a ``"pkg.module:function"`` becomes one (see :mod:`silenttax.component`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from silenttax.report import Report

__all__ = ["Check", "load_check"]

Check = Callable[[Mapping[str, Any]], Report]
"""A check of your own: the snapshots it judges, by name (loaded components and
measurements; a serving app's is ``"serving"``, a component's its kind), to a Report."""


def load_check(spec: str | Check) -> Check:
    """A check from a callable or a ``"pkg.module:function"`` spec (what
    ``silenttax audit --check`` takes), imported now.

    Raises:
        InputError: not ``module:function``, the module does not import, or the
            attribute is not callable (each named).

    Examples:
        >>> load_check("silenttax._component:_no_findings")({}).findings
        ()
    """
    import importlib

    from silenttax.errors import InputError

    if callable(spec):
        return spec
    module, sep, name = str(spec).partition(":")
    if not sep or not module or not name:
        raise InputError(f"check: 'pkg.module:function', got {spec!r}")
    try:
        target: Any = importlib.import_module(module)
    except Exception as exc:
        raise InputError(f"check {spec!r}: cannot import {module!r}: {exc}") from exc
    for part in name.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise InputError(f"check {spec!r}: {module} has no callable {name!r}")
    fn: Check = target
    return fn


def _no_findings(snapshots: Mapping[str, Any]) -> Report:
    return Report()


def _spec_of(check: Check) -> str:
    """``"module:qualname"`` of a check (how an audit's manifest names it)."""
    module = getattr(check, "__module__", None)
    name = getattr(check, "__qualname__", None)
    if not module or not name or "<" in name:
        from silenttax.errors import InputError

        raise InputError(
            f"check: {check!r} is not importable by name (a module-level function is; "
            "lambdas and nested functions are not)"
        )
    return f"{module}:{name}"
