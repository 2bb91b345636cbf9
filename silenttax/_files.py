"""Reading CSV and Parquet files into columns (for the command line and the audit).

Delimited text is read **as text first**: a column becomes numbers only when every
value is a plain number (``12``, ``-3.5e2``) or a missing marker (empty, ``NA``,
``NaN``, ``null``, ...: pandas' and pyarrow's set). A number padded with whitespace
(``"  1.18 "``), with thousands separators (``1,234.5``) or a decimal comma (``3,14``)
keeps its column as text, so feature health sees what arrived
(``feature.numeric_string``, ``feature.whitespace``), the same findings as a Parquet
file or a DataFrame whose column holds those strings; drift reads the numbers in it
against a numeric reference. (CSV readers trim and convert such values silently, and
the padding was invisible.)

pyarrow is used when installed (``pip install 'silenttax[io]'``): its type inference
picks the candidate numeric columns, which are read as strings and cast with Arrow's
strict number parser (no whitespace, no separators). CSV also works without it
through Python's ``csv`` module with the same rule.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np

from silenttax._deps import is_installed, optional_import
from silenttax._parse import PLAIN, parse_numbers
from silenttax.errors import InputError

__all__ = ["MISSING", "read_table"]

#: Text that means "no value" in a numeric CSV column (pandas' and pyarrow's defaults).
MISSING = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
     "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip


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
        try:
            return _read_csv_arrow(file)
        except Exception as exc:  # pyarrow's errors carry no common base worth importing
            raise InputError(f"{str(file)!r}: cannot read as CSV: {exc}") from exc
    return _read_csv(file)


def _read_csv_arrow(file: Path) -> Any:
    """pyarrow's reader, text first: the columns it would read as numbers are read as
    strings and become numbers only when every value is plain (see the module docs)."""
    pa: Any = optional_import("pyarrow")
    pa_csv: Any = optional_import("pyarrow.csv")
    pc: Any = optional_import("pyarrow.compute")
    with pa_csv.open_csv(file) as reader:  # the first block: what would be numbers
        schema = reader.schema
    numeric = [
        f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
    ]
    options = pa_csv.ConvertOptions(column_types={n: pa.string() for n in numeric},
                                    strings_can_be_null=False)  # fmt: skip
    table = pa_csv.read_csv(file, convert_options=options)
    missing_set = pa.array(sorted(MISSING), pa.string())
    for index, name in enumerate(table.column_names):
        column = table.column(index)
        if name not in numeric or not pa.types.is_string(column.type):
            continue
        missing = pc.is_in(column, value_set=missing_set)
        if pc.all(missing).as_py():
            continue  # nothing but missing markers: text, as the csv module reads it
        cleaned = pc.if_else(missing, pa.scalar(None, pa.string()), column)
        try:  # Arrow's parser is strict: '  1.18 ', '1,234.5' or '3,14' do not cast
            typed = pc.cast(cleaned, pa.float64())
        except pa.ArrowInvalid:
            continue  # a padded or formatted number, or text: the column stays text
        with contextlib.suppress(pa.ArrowInvalid):  # whole numbers within int64
            typed = pc.cast(cleaned, pa.int64())
        table = table.set_column(index, name, typed)
    return table


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
        raw = np.array([None if row[j] in MISSING else row[j] for row in body], dtype=object)
        parsed = parse_numbers(raw)
        present = int(sum(v is not None for v in raw.tolist()))
        plain = (parsed.form == PLAIN) & ~parsed.padded_mask  # "  1.18 " is text, not 1.18
        if present and int(np.count_nonzero(plain)) == present:
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
