"""Optional dependencies: import them lazily, recognise them without importing.

Heavy packages (torch, onnxruntime, pandas, dask, ...) are never imported by
``import silenttax``. Code that needs one calls :func:`optional_import` inside
the function that uses it; a missing package becomes a
:class:`~silenttax.errors.MissingDependencyError` with the exact install line.
:func:`imported` looks in ``sys.modules`` only: a user who passes a pandas
frame has already imported pandas, so recognising it costs nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from silenttax.errors import MissingDependencyError

__all__ = ["EXTRAS", "imported", "is_installed", "optional_import"]

#: Which silenttax extra installs each optional top-level import name.
EXTRAS: dict[str, str] = {
    "torch": "torch",
    "torchao": "quantize",
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "onnxscript": "onnx",
    "pynvml": "gpu",
    "dask": "dask",
    "distributed": "dask",
    "pyspark": "spark",
    "opentelemetry": "otel",
    "prometheus_client": "prometheus",
    "matplotlib": "plot",
    "pandas": "pandas",
    "pyarrow": "io",
}


def optional_import(name: str, *, purpose: str | None = None) -> ModuleType:
    """Import ``name`` or raise :class:`MissingDependencyError` naming the extra.

    Args:
        name: Module to import, e.g. ``"torch"`` or ``"opentelemetry.sdk.trace"``.
        purpose: What needs it, shown in the error (e.g. ``"Report.to_dataframe"``).

    Examples:
        >>> optional_import("json").__name__
        'json'
        >>> optional_import("surely_not_installed_pkg", purpose="demo")
        Traceback (most recent call last):
        ...
        silenttax.errors.MissingDependencyError: demo needs the optional dependency ...
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = exc.name or name
        # Only translate "the requested module (or a parent) is absent"; an import that
        # fails inside an installed package (a broken install) re-raises as it is.
        if not (name == missing or name.startswith(missing + ".")):
            raise
        top = name.partition(".")[0]
        raise MissingDependencyError(missing, extra=EXTRAS.get(top), purpose=purpose) from exc


def is_installed(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it.

    Examples:
        >>> is_installed("json"), is_installed("surely_not_installed_pkg")
        (True, False)
    """
    if name in sys.modules:  # None marks a module made unimportable on purpose
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def imported(name: str) -> ModuleType | None:
    """The module ``name`` if it is already imported, else ``None`` (never imports).

    Examples:
        >>> imported("sys").__name__
        'sys'
        >>> imported("surely_not_installed_pkg") is None
        True
    """
    return sys.modules.get(name)
