"""The input adapter: any supported table in, named NumPy columns out.

Everything inside silenttax works on columnar NumPy arrays. :func:`to_table`
converts once at the edge from any dataframe narwhals understands (pandas,
polars, pyarrow, Dask, ...; lazy frames are collected), a dict of 1-D arrays
or lists, or a 2-D / structured NumPy array. The same data gives the same
:class:`Table` whatever it arrived as:

========== =========================================== ==========================
kind       source types                                values
========== =========================================== ==========================
``int``    integer dtypes                              float64, NaN for nulls
``float``  float and decimal dtypes                    float64, NaN for nulls
``bool``   boolean dtypes                              float64 0/1, NaN for nulls
``string`` strings                                     object array of str, None
``categorical`` pandas/polars categoricals, enums      object array of str, None
``datetime`` dates and datetimes                       datetime64[ns], NaT
``object`` anything else (mixed types, nested, ...)    object array, None
========== =========================================== ==========================

Numbers become float64 so every numeric kernel has one dtype to handle; the
original kind is kept in ``Table.kinds`` (an ``int`` column with nulls is still
``int``).

Examples:
    >>> import numpy as np
    >>> t = to_table({"age": [31, 40, None], "city": ["Oslo", None, "Rome"]})
    >>> t.kinds, t.n_rows
    ({'age': 'int', 'city': 'string'}, 3)
    >>> t["age"], t["city"]
    (array([31., 40., nan]), array(['Oslo', None, 'Rome'], dtype=object))
    >>> to_table(np.eye(2)).names
    ('0', '1')
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from silenttax._deps import imported
from silenttax._parse import to_float
from silenttax.errors import InputError

__all__ = ["ColumnKind", "Table", "partitions", "to_table", "wider_kind"]

ColumnKind = Literal["int", "float", "bool", "string", "categorical", "datetime", "object"]
NUMERIC_KINDS: frozenset[str] = frozenset({"int", "float", "bool"})
TEXT_KINDS: frozenset[str] = frozenset({"string", "categorical"})
_NUMERIC_WIDTH = {"bool": 0, "int": 1, "float": 2}


def wider_kind(a: str, b: str) -> str:
    """The kind of a column whose rows came as ``a`` in one part and ``b`` in another:
    the one rule every merge of profiles uses (batches, partitions, replicas, live windows).

    Numbers widen (bool < int < float), text stays text (``string``), a nested value
    keeps the column ``nested``, and any other mix (numbers and strings, say a float
    that arrives as ``"  17.99 "``) is ``object``: both kinds kept, judged as a type
    change against the reference.

    Examples:
        >>> wider_kind("int", "float"), wider_kind("string", "categorical")
        ('float', 'string')
        >>> wider_kind("float", "string"), wider_kind("nested", "float")
        ('object', 'nested')
    """
    if a == b:
        return a
    if a in _NUMERIC_WIDTH and b in _NUMERIC_WIDTH:
        return max(a, b, key=_NUMERIC_WIDTH.__getitem__)
    if "nested" in (a, b):
        return "nested"
    if a in TEXT_KINDS and b in TEXT_KINDS:
        return "string"
    return "object"


@dataclass(frozen=True, slots=True)
class Table:
    """Named, equally long 1-D NumPy columns plus each column's logical kind.

    Columns are converted when read (``table[name]``), one at a time, so a
    wide table never holds every converted column at once; read a column once
    and keep the array if you need it again.
    """

    loaders: dict[str, Callable[[], npt.NDArray[Any]]]
    """Column name -> function returning the normalised values (see the module table)."""
    kinds: dict[str, ColumnKind]
    """Column name -> logical kind of the source column."""
    n_rows: int
    """Number of rows (every column has this length)."""
    source: str
    """What the data arrived as: ``pandas``, ``polars``, ``pyarrow``, ``dict``, ``numpy``..."""
    counters: dict[str, Callable[[], Counter[Any]]] = field(default_factory=dict)
    """Label column name -> its counts computed by the dataframe library (see
    :meth:`level_counts`)."""

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in their original order."""
        return tuple(self.loaders)

    @property
    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """Every column converted (materialises all of them)."""
        return {name: load() for name, load in self.loaders.items()}

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.loaders[name]()

    def level_counts(self, name: str) -> Counter[Any]:
        """Rows per distinct value of column ``name`` (``None`` counts the missing ones).

        For a dataframe's text or categorical column the dataframe library counts
        (Arrow, polars or pandas hashing: 5-10x faster than Python objects, and the
        strings are never converted); otherwise the converted values are counted.
        """
        counter = self.counters.get(name)
        return counter() if counter is not None else Counter(self[name].tolist())

    def values_or_counts(self, name: str) -> npt.NDArray[Any] | Counter[Any]:
        """Column ``name``'s values, or for a text column its :meth:`level_counts` (all
        that summaries and profiles of labels need)."""
        return self.level_counts(name) if self.kinds[name] in TEXT_KINDS else self[name]

    def __contains__(self, name: object) -> bool:
        return name in self.loaders

    def __iter__(self) -> Iterator[str]:
        return iter(self.loaders)

    def __len__(self) -> int:
        return len(self.loaders)


def to_table(data: Any, *, names: Sequence[str] | None = None, argument: str = "data") -> Table:
    """Convert ``data`` to a :class:`Table` of named NumPy columns.

    Args:
        data: A narwhals-supported dataframe (pandas, polars, pyarrow, Dask, ...),
            a mapping of column name to 1-D array-like, or a 2-D / structured
            NumPy array.
        names: Column names for a plain 2-D array (default ``"0"``, ``"1"``, ...).
        argument: The caller's argument name, used in error messages.

    Raises:
        InputError: ``data`` is of an unsupported type, columns differ in
            length, a column is not 1-D, or names are duplicated.
    """
    if isinstance(data, Table):
        return data
    if isinstance(data, Mapping):
        return _from_mapping(data, argument=argument, source="dict")
    if isinstance(data, np.ndarray):
        return _from_ndarray(data, names=names, argument=argument)
    frame = _from_native(data, argument=argument)
    if frame is not None:
        return frame
    hint = ""
    if type(data).__name__ in {"Series", "list", "tuple"}:
        hint = " (for one column, pass a dict such as {'x': values})"
    raise InputError(
        f"{argument}: expected a dataframe (pandas, polars, pyarrow, Dask, ...), a dict of "
        f"1-D arrays or a 2-D NumPy array; got {type(data).__module__}.{type(data).__name__}"
        f"{hint}"
    )


# --------------------------------------------------------------------- numpy / dict
def _from_ndarray(array: npt.NDArray[Any], *, names: Sequence[str] | None, argument: str) -> Table:
    if array.dtype.names:  # structured / record array
        return _from_mapping(
            {name: array[name] for name in array.dtype.names}, argument=argument, source="numpy"
        )
    if array.ndim != 2:
        raise InputError(
            f"{argument}: a NumPy array must be 2-D (rows x columns), got shape {array.shape}; "
            "for one column pass a dict such as {'x': values}"
        )
    labels = [str(i) for i in range(array.shape[1])] if names is None else list(names)
    if len(labels) != array.shape[1]:
        raise InputError(
            f"names: got {len(labels)} names for an array with {array.shape[1]} columns"
        )
    return _from_mapping(dict(zip(labels, array.T, strict=True)), argument=argument, source="numpy")


def _from_mapping(data: Mapping[Any, Any], *, argument: str, source: str) -> Table:
    if not data:
        raise InputError(f"{argument}: has no columns")
    loaders: dict[str, Callable[[], npt.NDArray[Any]]] = {}
    kinds: dict[str, ColumnKind] = {}
    n_rows: int | None = None
    first = ""
    for key, raw in data.items():
        name = str(key)
        if name in loaders:
            raise InputError(f"{argument}: column name {name!r} appears twice")
        try:
            array = np.asarray(raw)
        except ValueError:  # ragged sequences: one object per row, as given
            items = list(raw)
            array = np.empty(len(items), dtype=object)
            for i, item in enumerate(items):
                array[i] = item
        if array.ndim != 1:
            raise InputError(f"{argument}: column {name!r} must be 1-D, got shape {array.shape}")
        if n_rows is None:
            n_rows, first = len(array), name
        elif len(array) != n_rows:
            raise InputError(
                f"{argument}: column {name!r} has {len(array)} rows but {first!r} has {n_rows}"
            )
        kinds[name], loaders[name] = _normalise_numpy(array, f"{argument}: column {name!r}")
    assert n_rows is not None
    return Table(loaders=loaders, kinds=kinds, n_rows=n_rows, source=source)


def _normalise_numpy(
    array: npt.NDArray[Any], where: str
) -> tuple[ColumnKind, Callable[[], npt.NDArray[Any]]]:
    char = array.dtype.kind
    if char == "b":
        return "bool", lambda: array.astype(np.float64)
    if char in "iu":
        return "int", lambda: array.astype(np.float64)
    if char == "f":
        return "float", lambda: array.astype(np.float64, copy=False)
    if char == "U":
        return "string", lambda: array.astype(object)
    if char == "S":  # bytes: decoded as UTF-8, undecodable bytes kept as escapes
        return "string", lambda: np.array(
            [b.decode("utf-8", "backslashreplace") for b in array.tolist()], dtype=object
        )
    if char == "M":
        return "datetime", lambda: array.astype("datetime64[ns]")
    return _normalise_objects(array.astype(object, copy=False), where)


def _is_null(x: object) -> bool:
    if x is None:
        return True
    if isinstance(x, float):
        return math.isnan(x)
    if isinstance(x, np.datetime64 | np.timedelta64):
        return bool(np.isnat(x))
    pandas = imported("pandas")
    return pandas is not None and (x is pandas.NA or x is pandas.NaT)


def _normalise_objects(
    values: npt.NDArray[np.object_], where: str
) -> tuple[ColumnKind, Callable[[], npt.NDArray[Any]]]:
    """Infer the kind of an object array from the Python types of its non-null items.

    A column of nested values (lists, arrays, dicts: anything that cannot be a level) is
    of kind ``object`` and its loader raises an ``InputError`` naming it (``where``), so
    the error comes only if the column is read: ``columns=`` may leave it out.
    """
    nulls = np.fromiter(map(_is_null, values), dtype=bool, count=len(values))
    present = values[~nulls]
    types = set(map(type, present))
    nested = sorted(t.__name__ for t in types if t.__hash__ is None)
    if nested:
        error = InputError(
            f"{where} holds nested values ({', '.join(nested)}): drift and feature health "
            "read scalar columns; leave it out (columns=[...]) or expand it into columns"
        )

        def unreadable() -> npt.NDArray[Any]:
            raise error

        return "object", unreadable
    kind: ColumnKind
    if types and all(issubclass(t, str) for t in types):
        kind = "string"
    elif types and all(issubclass(t, bool | np.bool_) for t in types):
        kind = "bool"
    elif types and all(
        issubclass(t, int | np.integer) and not issubclass(t, bool | np.bool_) for t in types
    ):
        kind = "int"
    elif types and all(
        issubclass(t, int | float | np.integer | np.floating) and not issubclass(t, bool | np.bool_)
        for t in types
    ):
        kind = "float"
    else:  # mixed, nested, or all null: nothing narrower to infer
        kind = "object"
    if kind in NUMERIC_KINDS:
        out = np.full(len(values), np.nan)
        try:
            out[~nulls] = present.astype(np.float64)
        except OverflowError:  # integers beyond the float range: +-inf, as numpy would
            out[~nulls] = [to_float(x) for x in present.tolist()]
        return kind, lambda: out
    out_obj = values.copy()
    out_obj[nulls] = None
    return kind, lambda: out_obj


# ----------------------------------------------------------------------- narwhals
def _from_native(data: Any, *, argument: str) -> Table | None:
    import narwhals.stable.v2 as nw
    from narwhals.exceptions import DuplicateError

    source = None
    dask_frame = imported("dask.dataframe")
    if dask_frame is not None and isinstance(data, dask_frame.DataFrame):
        # Collect it ourselves: narwhals' own Dask support is moving to a plugin.
        data, source = data.compute(), "dask"
    try:
        frame = nw.from_native(data, pass_through=True)
    except DuplicateError as exc:  # pandas and pyarrow allow duplicated labels; narwhals not
        names: Any = getattr(data, "column_names", None) or getattr(data, "columns", ())
        listed = _twice(map(str, names)) or " ".join(str(exc).split())
        raise InputError(f"{argument}: duplicated column names {listed}") from None
    if isinstance(frame, nw.LazyFrame):
        frame = frame.collect()
    if not isinstance(frame, nw.DataFrame):
        return None
    source = source or nw.get_native_namespace(frame).__name__.partition(".")[0]
    twice = _twice(frame.columns)
    if twice:
        raise InputError(f"{argument}: duplicated column names {twice}")
    loaders: dict[str, Callable[[], npt.NDArray[Any]]] = {}
    kinds: dict[str, ColumnKind] = {}
    counters: dict[str, Callable[[], Counter[Any]]] = {}
    for name in frame.columns:
        series = frame.get_column(name)
        kinds[str(name)], loaders[str(name)] = _normalise_series(series, nw, argument)
        if kinds[str(name)] in TEXT_KINDS:
            counters[str(name)] = _counter(series)
    if not loaders:
        raise InputError(f"{argument}: has no columns")
    return Table(loaders=loaders, kinds=kinds, n_rows=len(frame), source=source, counters=counters)


def _twice(names: Iterable[str]) -> list[str]:
    """The names that appear more than once, sorted."""
    return sorted(name for name, n in Counter(names).items() if n > 1)


def _counter(series: Any) -> Callable[[], Counter[Any]]:
    """Count a text column's values in its own library (narwhals' ``value_counts``)."""

    def count() -> Counter[Any]:
        name = "count" if series.name != "count" else "rows"
        table = series.value_counts(sort=False, name=name)
        keys = table.get_column(table.columns[0])
        counts = table.get_column(table.columns[1]).to_list()
        nulls = keys.is_null().to_list()
        result: Counter[Any] = Counter()
        for key, n, null in zip(keys.to_list(), counts, nulls, strict=True):
            if n:  # a categorical's unused categories count 0
                result[None if null else key] += n
        return result

    return count


def _normalise_series(
    series: Any, nw: Any, argument: str
) -> tuple[ColumnKind, Callable[[], npt.NDArray[Any]]]:
    dtype = series.dtype
    if dtype.is_boolean():

        def booleans() -> npt.NDArray[Any]:
            if series.null_count() == 0:
                return np.asarray(series.to_numpy(), dtype=np.float64)
            nulls = series.is_null().to_numpy()
            filled = np.array(series.fill_null(value=False).to_numpy(), dtype=np.float64)
            filled[nulls] = np.nan
            return filled

        return "bool", booleans
    if dtype.is_numeric():
        kind: ColumnKind = "int" if dtype.is_integer() else "float"

        def numbers() -> npt.NDArray[Any]:
            try:
                return np.asarray(series.to_numpy(), dtype=np.float64)
            except Exception:  # no NumPy dtype for it (polars Int128): through Float64
                return np.asarray(series.cast(nw.Float64).to_numpy(), dtype=np.float64)

        return kind, numbers
    if dtype.is_temporal() and dtype in (nw.Datetime, nw.Date):
        return "datetime", lambda: np.asarray(series.to_numpy()).astype("datetime64[ns]")
    if dtype in (nw.String, nw.Categorical, nw.Enum):

        def labels() -> npt.NDArray[Any]:
            values = np.asarray(series.to_numpy(), dtype=object)
            if series.null_count():
                if not values.flags.writeable:  # a read-only view (pandas copy-on-write)
                    values = values.copy()
                values[np.asarray(series.is_null().to_numpy(), dtype=bool)] = None
            return values

        return ("string" if dtype == nw.String else "categorical"), labels
    return _normalise_objects(
        np.asarray(series.to_numpy(), dtype=object), f"{argument}: column {series.name!r}"
    )


def partitions(data: Any) -> Iterator[Any] | None:
    """Partitions of a Dask dataframe, computed one at a time; None for anything else.

    Lets fitting code stream data that does not fit in memory: each partition
    is computed (on the active Dask client, if any), summarized and dropped.
    """
    dask_frame = imported("dask.dataframe")
    if dask_frame is None or not isinstance(data, dask_frame.DataFrame):
        return None
    return (data.get_partition(i).compute() for i in range(data.npartitions))
