"""Feature health: "fat features" — type decay, padding, nulls, precision, ranges, levels.

Examples:
    >>> from silenttax.features import FeatureHealth
    >>> health = FeatureHealth().fit({"country": ["DE", "FR", "DE", "IT"] * 500})
    >>> report = health.check({"country": [" DE", "FR ", "DE", "IT"] * 500})
    >>> report.filter(code="feature.whitespace")[0].value
    0.5
"""

from silenttax.features._health import FeatureHealth, FeatureHealthState, check_health
from silenttax.features._profile import ColumnProfile

__all__ = ["ColumnProfile", "FeatureHealth", "FeatureHealthState", "check_health"]
