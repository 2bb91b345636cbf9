"""The ``silenttax`` command line (also ``python -m silenttax``).

Examples:
    >>> main(["--version"])  # doctest: +ELLIPSIS
    silenttax ...
    0
"""

from silenttax.cli._main import main

__all__ = ["main"]
