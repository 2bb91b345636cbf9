"""Shared test helpers."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI and a plain `pytest` draw the same examples every run (with the Hypothesis that
# constraints.txt pins): a red CI is a bug seen here too, not a new random draw.
# `HYPOTHESIS_PROFILE=thorough` draws fresh random examples, 1000 per test, to hunt.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("default", max_examples=60, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=1000, derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
