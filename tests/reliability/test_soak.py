"""Soak: every recorder holds bounded state, so RSS stays flat however long it runs.

The default run is a seeded, shorter version (about 10 s); the full one (tens of
millions of records and spans) is behind the ``slow`` marker and in
``benchmarks/bench_soak.py``, whose figures are in docs/reliability.md.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_soak import soak


def _assert_flat(
    figures: dict[str, object], *, ops_bound_mib: float, http_bound_mib: float
) -> None:
    assert figures["monitor_count"] == figures["records"]
    assert figures["canary_requests"] == figures["records"]
    assert figures["tracer_requests"] == figures["spans"] // 2  # type: ignore[operator]
    assert figures["tracer_retained"] <= 1100  # max_traces + the slowest tenth: bounded
    assert figures["monitor_state_kib"] < 64  # type: ignore[operator]
    served = figures["served"]
    assert isinstance(served, dict)
    assert served["requests"] == figures["requests"] and served["internal_errors"] == 0
    assert served["routes"] == 1 and served["state_kib"] < 256
    # memory past the warm-up: a leak of even a few bytes per operation would show
    assert figures["growth_mib"] < ops_bound_mib  # type: ignore[operator]
    assert served["growth_mib"] < http_bound_mib


def test_memory_stays_flat_under_a_short_soak() -> None:
    figures = soak(records=600_000, spans=300_000, requests=6_000)
    _assert_flat(figures, ops_bound_mib=8.0, http_bound_mib=8.0)


@pytest.mark.slow
def test_memory_stays_flat_under_tens_of_millions() -> None:
    figures = soak(records=20_000_000, spans=10_000_000, requests=200_000)
    # 110 million operations: 8 MiB is under 0.1 byte each
    _assert_flat(figures, ops_bound_mib=8.0, http_bound_mib=8.0)
