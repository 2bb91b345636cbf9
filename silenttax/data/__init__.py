"""Data bundled with silenttax, for examples, notebooks and the demos.

``diabetes.csv``: the diabetes study of Efron et al. (2004), "Least Angle
Regression" — 442 patients, ten baseline variables (``age``, ``sex``, ``bmi``,
``bp`` and six blood serum measurements) and ``progression``, a quantitative
measure of disease progression one year later. ``silenttax drift --demo`` and
the demo audit split it by ``sex``: a real covariate, so the two halves
differ the way two populations do.

Examples:
    >>> import csv
    >>> with open(path("diabetes.csv"), newline="") as handle:
    ...     rows = list(csv.DictReader(handle))
    >>> len(rows), sorted({row["sex"] for row in rows})
    (442, ['1', '2'])
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["path"]


def path(name: str = "diabetes.csv") -> Path:
    """The path of the bundled data file ``name``.

    Raises:
        FileNotFoundError: there is no such file.
    """
    found = Path(str(resources.files(__name__) / name))
    if not found.is_file():
        raise FileNotFoundError(f"no bundled data file {name!r}")
    return found
