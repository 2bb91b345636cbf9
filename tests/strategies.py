"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from datetime import UTC

from hypothesis import strategies as st

from silenttax import Category, Finding, Severity

json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
codes = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}(\.[a-z0-9_]{1,8}){1,2}\Z")
opt_float = st.none() | st.floats()

findings = st.builds(
    Finding,
    code=codes,
    category=st.sampled_from(Category),
    severity=st.sampled_from(Severity),
    subject=st.text(max_size=20),
    message=st.text(max_size=60),
    metric=st.none() | st.text(max_size=10),
    value=opt_float,
    baseline=opt_float,
    threshold=opt_float,
    unit=st.none() | st.sampled_from(["s", "B", "USD"]),
    p_value=st.none() | st.floats(0, 1),
    effect_size=opt_float,
    evidence=st.dictionaries(st.text(max_size=8), json_value, max_size=4),
    recommendation=st.none() | st.text(max_size=20),
    detector=st.none() | st.text(max_size=10),
    created_at=st.datetimes(timezones=st.just(UTC)),
)
