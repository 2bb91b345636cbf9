from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from silenttax._input import Table, to_table
from silenttax.errors import InputError

RAW = {
    "i": [1, 2, None, 4],
    "f": [1.5, None, float("inf"), -2.0],
    "s": ["a", None, " b", "c"],
    "b": [True, None, False, True],
}
EXPECTED = {
    "i": np.array([1.0, 2.0, np.nan, 4.0]),
    "f": np.array([1.5, np.nan, np.inf, -2.0]),
    "s": np.array(["a", None, " b", "c"], dtype=object),
    "b": np.array([1.0, np.nan, 0.0, 1.0]),
}
KINDS = {"i": "int", "f": "float", "s": "string", "b": "bool"}


def pandas_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": pd.array(RAW["i"], dtype="Int64"),
            "f": RAW["f"],
            "s": RAW["s"],
            "b": pd.array(RAW["b"], dtype="boolean"),
        }
    )


SOURCES = {
    "dict": lambda: RAW,
    "dict_of_arrays": lambda: {k: np.array(v, dtype=object) for k, v in RAW.items()},
    "pandas": pandas_frame,
    "polars": lambda: pl.DataFrame(RAW),
    "polars_lazy": lambda: pl.DataFrame(RAW).lazy(),
    "pyarrow": lambda: pa.table(RAW),
    "dask": lambda: dd.from_pandas(pandas_frame(), npartitions=2),
}


def assert_same(table: Table) -> None:
    assert table.names == tuple(RAW)
    assert table.kinds == KINDS
    assert table.n_rows == 4
    for name, expected in EXPECTED.items():
        got = table[name]
        assert got.dtype == expected.dtype, name
        if expected.dtype == object:
            assert got.tolist() == expected.tolist(), name
        else:
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("source", SOURCES)
def test_every_source_gives_the_same_table(source: str) -> None:
    table = to_table(SOURCES[source]())
    assert_same(table)


def test_source_names() -> None:
    assert to_table(RAW).source == "dict"
    assert to_table(pandas_frame()).source == "pandas"
    assert to_table(pl.DataFrame(RAW)).source == "polars"
    assert to_table(pa.table(RAW)).source == "pyarrow"


def test_numpy_2d_and_structured() -> None:
    data = np.arange(6, dtype=np.int32).reshape(3, 2)
    table = to_table(data)
    assert table.names == ("0", "1") and table.kinds == {"0": "int", "1": "int"}
    np.testing.assert_array_equal(table["1"], [1.0, 3.0, 5.0])
    named = to_table(data, names=["a", "b"])
    assert named.names == ("a", "b")
    rec = np.array([(1, 2.5, "x")], dtype=[("a", "i8"), ("b", "f8"), ("c", "U3")])
    table = to_table(rec)
    assert table.kinds == {"a": "int", "b": "float", "c": "string"}
    assert table["c"].tolist() == ["x"]


def test_categoricals_and_datetimes_agree() -> None:
    cats = ["x", "y", None]
    days = ["2024-01-01", None, "2024-03-01"]
    frames = [
        pd.DataFrame({"c": pd.Categorical(cats), "d": pd.to_datetime(days)}),
        pl.DataFrame({"c": cats, "d": days}).with_columns(
            pl.col("c").cast(pl.Categorical), pl.col("d").str.to_datetime()
        ),
    ]
    for frame in frames:
        table = to_table(frame)
        assert table.kinds == {"c": "categorical", "d": "datetime"}
        assert table["c"].tolist() == cats
        assert table["d"].dtype == np.dtype("datetime64[ns]")
        assert np.isnat(table["d"][1]) and str(table["d"][2])[:10] == "2024-03-01"


def test_mixed_object_column_is_kept_as_object() -> None:
    table = to_table({"x": [1, "2", None, 3.5]})
    assert table.kinds["x"] == "object"
    assert table["x"].tolist() == [1, "2", None, 3.5]
    assert to_table({"x": [None, None]}).kinds["x"] == "object"
    ints = to_table({"x": np.array([1, 2], dtype=object)})
    assert ints.kinds["x"] == "int"
    assert to_table({"x": [1, 2.5]}).kinds["x"] == "float"
    assert to_table({"x": pd.Series([1, pd.NA, 3], dtype=object)}).kinds["x"] == "int"


def test_column_names_become_strings() -> None:
    table = to_table(pd.DataFrame({0: [1, 2], "a": [3, 4]}))
    assert table.names == ("0", "a")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([1, 2, 3], "dict such as"),
        (np.arange(3), "must be 2-D"),
        ({}, "no columns"),
        ({"a": [1, 2], "b": [1]}, "column 'b' has 1 rows but 'a' has 2"),
        ({"a": np.zeros((2, 2))}, "column 'a' must be 1-D"),
        ({1: [1], "1": [2]}, "'1' appears twice"),
        (pd.Series([1, 2]), "dict such as"),
        ("abc", "expected a dataframe"),
    ],
)
def test_bad_inputs_name_the_problem(data: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        to_table(data, argument="reference")
    with pytest.raises(InputError, match=r"^reference|names"):
        to_table(data, argument="reference")


def test_wrong_number_of_names() -> None:
    with pytest.raises(InputError, match="names: got 1 names"):
        to_table(np.zeros((2, 2)), names=["a"])


def test_empty_frame_keeps_columns() -> None:
    table = to_table(pd.DataFrame({"a": pd.Series([], dtype=float), "s": pd.Series([], dtype=str)}))
    assert table.n_rows == 0 and table.kinds == {"a": "float", "s": "string"}


LABELS = ["DE", None, "", " FR", "é", "DE", "x" * 300, "DE", None, "列"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: pd.DataFrame({"c": pd.Series(LABELS, dtype=object)}),
        lambda: pd.DataFrame({"c": pd.Series(LABELS, dtype="string[pyarrow]")}),
        lambda: pd.DataFrame({"c": pd.Series(LABELS, dtype="string[python]")}),
        lambda: pd.DataFrame(
            {
                "c": pd.Categorical(
                    LABELS, categories=["DE", "", " FR", "é", "unused", "x" * 300, "列"]
                )
            }
        ),
        lambda: pl.DataFrame({"c": LABELS}),
        lambda: pl.DataFrame({"c": pl.Series(LABELS).cast(pl.Categorical)}),
        lambda: pl.DataFrame(
            {"c": pl.Series(LABELS).cast(pl.Enum(["DE", "", " FR", "é", "x" * 300, "列", "z"]))}
        ),
        lambda: pa.table({"c": pa.array(LABELS)}),
        lambda: pa.table({"c": pa.array(LABELS).dictionary_encode()}),
        lambda: pa.table({"c": pa.array(LABELS, type=pa.large_string())}),
    ],
    ids=[
        "object",
        "arrow",
        "python",
        "category",
        "polars",
        "pl-cat",
        "pl-enum",
        "pa",
        "pa-dict",
        "pa-large",
    ],
)
def test_level_counts_by_the_library_equal_counting_the_values(make) -> None:
    """A text column is counted by its own library (value_counts); the counts, and every
    summary built from them, equal counting the converted values one by one."""
    from collections import Counter

    from silenttax.drift import DriftDetector
    from silenttax.features import FeatureHealth

    table = to_table(make())
    assert "c" in table.counters
    assert table.level_counts("c") == Counter(table["c"].tolist()) == Counter(LABELS)
    plain = {"c": np.array(LABELS, dtype=object)}
    # (the states differ only in the kind: "categorical" where the library says so)
    assert DriftDetector().fit(make()).reference == DriftDetector().fit(plain).reference
    profile = FeatureHealth().fit(make()).profiles["c"]
    assert profile.model_copy(update={"kind": "string"}) == FeatureHealth().fit(plain).profiles["c"]
    detector = DriftDetector().fit(plain)
    assert detector.window(make()).summaries == detector.window(plain).summaries
