"""Errors raised by silenttax.

Every error silenttax raises on purpose derives from :class:`SilentTaxError`, so
``except silenttax.SilentTaxError`` catches them all. The specific classes also
derive from the matching built-in where one exists, so code that already
catches ``ValueError`` or ``ImportError`` keeps working::

    SilentTaxError                      base of everything below
    ├── InputError (+ ValueError)       bad argument or data: names the column/argument
    │   └── SchemaMismatchError         columns or types differ from what was fitted
    ├── NotFittedError                  check()/compare before fit()
    ├── MissingDependencyError (+ ImportError)
    │                                   an optional extra is not installed; the message
    │                                   carries the exact ``pip install 'silenttax[extra]'``
    ├── StateError                      a saved state/report file is unreadable, of
    │                                   another kind, or from a newer silenttax
    ├── StackError (+ RuntimeError)     a stack check could not build an environment or
    │                                   drive a worker process (crash, hang, garbage)
    └── InternalError (+ RuntimeError)  silenttax itself failed (a bug to report); the
                                        cause is chained

Examples:
    >>> from silenttax.errors import InputError, SilentTaxError
    >>> try:
    ...     raise InputError("column 'age': expected numbers, got strings")
    ... except ValueError as exc:
    ...     print(isinstance(exc, SilentTaxError), exc)
    True column 'age': expected numbers, got strings
"""

from __future__ import annotations

__all__ = [
    "InputError",
    "InternalError",
    "MissingDependencyError",
    "NotFittedError",
    "SchemaMismatchError",
    "SilentTaxError",
    "StackError",
    "StateError",
]


class SilentTaxError(Exception):
    """Base class of every error silenttax raises on purpose."""


class InputError(SilentTaxError, ValueError):
    """An argument or the data passed in is not usable.

    The message names the argument or column and says what was expected.
    """


class SchemaMismatchError(InputError):
    """The data's columns or types do not match what a component was fitted on."""


class NotFittedError(SilentTaxError):
    """A component that needs ``fit()`` was used before it was fitted."""


class MissingDependencyError(SilentTaxError, ImportError):
    """An optional dependency is not installed.

    Args:
        package: The import name that failed (``"torch"``, ``"pynvml"``).
        extra: The silenttax extra that installs it, if there is one.
        purpose: What it is needed for, e.g. ``"silenttax.profile.profile_torch"``.

    Examples:
        >>> err = MissingDependencyError("torch", extra="torch", purpose="profile_torch")
        >>> err.install_command
        "pip install 'silenttax[torch]'"
        >>> print(err)
        profile_torch needs the optional dependency 'torch', which is not installed. \
Install it with: pip install 'silenttax[torch]'
    """

    def __init__(self, package: str, *, extra: str | None = None, purpose: str | None = None):
        self.package = package
        self.extra = extra
        self.install_command = (
            f"pip install 'silenttax[{extra}]'" if extra else f"pip install '{package}'"
        )
        who = purpose or "this feature of silenttax"
        message = (
            f"{who} needs the optional dependency {package!r}, which is not installed. "
            f"Install it with: {self.install_command}"
        )
        super().__init__(message, name=package)


class StateError(SilentTaxError):
    """A saved state or report is unreadable, of another kind, or from a newer version."""


class StackError(SilentTaxError, RuntimeError):
    """A stack check could not build an environment or drive a worker process.

    The message names the arm (baseline/candidate) and what failed: the
    installer's own error, or a worker that crashed, hung past its timeout or
    wrote something that is not a protocol message (the worker is killed first).
    """


class InternalError(SilentTaxError, RuntimeError):
    """silenttax itself failed (a bug, not your input): the original error is its cause."""
