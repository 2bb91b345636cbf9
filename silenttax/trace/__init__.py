"""End-to-end request tracing that exposes the "shadow pipeline" around the model.

Examples:
    >>> from silenttax.trace import Tracer
    >>> tracer = Tracer()
    >>> with tracer.span("predict"):
    ...     with tracer.span("forward", stage="model"):
    ...         pass
    >>> tracer.check().filter(code="pipeline.shadow_overhead")[0].metric
    'non_model_share'

``silenttax.trace.otel.replay`` hands retained traces to OpenTelemetry; importing
``silenttax.trace`` never imports OpenTelemetry.
"""

from silenttax.trace._breakdown import Breakdown, SpanStats, StageStats
from silenttax.trace._check import BreakdownPolicy, check_breakdown
from silenttax.trace._records import SpanRecord
from silenttax.trace._tracer import Tracer

__all__ = [
    "Breakdown",
    "BreakdownPolicy",
    "SpanRecord",
    "SpanStats",
    "StageStats",
    "Tracer",
    "check_breakdown",
]
