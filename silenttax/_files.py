"""Reading CSV and Parquet files into columns (for the command line).

pyarrow is used when installed (``pip install 'silenttax[io]'``); CSV also
works without it through Python's ``csv`` module, with per-column type
inference (a column is numeric when every non-empty value is a plain number).
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np

from silenttax._deps import is_installed, optional_import
from silenttax._parse import PLAIN, parse_numbers
from silenttax.errors import InputError

__all__ = ["read_table"]


def read_table(path: str | Path) -> Any:
    """Read a ``.csv``/``.csv.gz``/``.parquet`` file into something ``to_table`` accepts.

    Raises:
        InputError: the file is missing, empty or of an unknown type.
        MissingDependencyError: a Parquet file without pyarrow installed.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{str(file)!r}: no such file")
    name = file.name.lower()
    if name.endswith((".parquet", ".pq")):
        pq: Any = optional_import("pyarrow.parquet", purpose="reading Parquet files")
        try:
            return pq.read_table(file)
        except Exception as exc:  # ArrowInvalid, OSError: a corrupt or non-Parquet file
            raise InputError(f"{str(file)!r}: cannot read as Parquet: {exc}") from exc
    if not name.endswith((".csv", ".csv.gz")):
        raise InputError(f"{str(file)!r}: expected a .csv, .csv.gz or .parquet file")
    if is_installed("pyarrow"):
        pa_csv: Any = optional_import("pyarrow.csv")
        try:
            return pa_csv.read_csv(file)
        except Exception as exc:  # pyarrow's errors carry no common base worth importing
            raise InputError(f"{str(file)!r}: cannot read as CSV: {exc}") from exc
    return _read_csv(file)


def _read_csv(file: Path) -> dict[str, Any]:
    opener = gzip.open if file.name.lower().endswith(".gz") else open
    try:
        with opener(file, "rt", newline="", encoding="utf-8") as handle:
            text = handle.read()
        rows = list(csv.reader(io.StringIO(text)))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{str(file)!r}: cannot read as CSV: {exc}") from exc
    if not rows or not rows[0]:
        raise InputError(f"{str(file)!r}: is empty")
    header, body = rows[0], rows[1:]
    width = len(header)
    for i, row in enumerate(body, start=2):
        if len(row) != width:
            raise InputError(f"{str(file)!r}: line {i} has {len(row)} fields, expected {width}")
    columns: dict[str, Any] = {}
    for j, name in enumerate(header):
        raw = np.array([None if row[j] == "" else row[j] for row in body], dtype=object)
        parsed = parse_numbers(raw)
        present = int(sum(v is not None for v in raw.tolist()))
        if present and int(np.count_nonzero(parsed.form == PLAIN)) == present:
            values = parsed.values
            missing = np.isnan(values)
            whole = values[~missing]
            if np.all(whole == np.round(whole)) and np.all(np.abs(whole) < 2**53):
                # integers, like pyarrow reads them (None where a value is missing)
                ints = np.array(
                    [None if m else int(v) for v, m in zip(values, missing, strict=True)]
                )
                columns[name] = ints.astype(object) if missing.any() else ints.astype(np.int64)
            else:
                columns[name] = values
        else:  # text: keep empty fields as "" (pyarrow's reading of an empty string field)
            columns[name] = np.array([row[j] for row in body], dtype=object)
    return columns
