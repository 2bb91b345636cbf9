"""Replay silenttax traces into OpenTelemetry (needs ``pip install 'silenttax[otel]'``).

silenttax records every request cheaply; OpenTelemetry's SDK costs 13-19 µs a
span. :func:`replay` pays that only for the traces you choose — the slow ones,
or those a check flagged — by re-emitting them through *your* tracer provider
after the fact, with their real start and end times. Export stays with your
OpenTelemetry configuration; silenttax ships no exporter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from silenttax._deps import optional_import
from silenttax.trace._records import SpanRecord
from silenttax.trace._tracer import Tracer

__all__ = ["replay"]

_SCOPE = "silenttax.trace"


def replay(
    tracer: Tracer,
    *,
    tracer_provider: Any = None,
    traces: Iterable[SpanRecord] | None = None,
) -> int:
    """Re-emit retained traces as OpenTelemetry spans; returns how many spans.

    Each span keeps its name, explicit start/end timestamps (monotonic
    durations mapped to epoch nanoseconds once), parent link, attributes plus
    ``silenttax.stage`` (and ``silenttax.gc_time``, seconds, when garbage
    collection paused it), and an ERROR status with the exception type when it
    failed. Top-level spans become children of the OpenTelemetry span current
    at the call, if any.

    Args:
        tracer: The silenttax tracer whose traces to replay.
        tracer_provider: An OpenTelemetry ``TracerProvider`` (default: the global one).
        traces: Which traces (default: all of ``tracer.traces()``), e.g. only the slow ones.

    Raises:
        MissingDependencyError: opentelemetry is not installed.

    Examples:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        ...     InMemorySpanExporter)
        >>> exporter = InMemorySpanExporter()
        >>> provider = TracerProvider()
        >>> provider.add_span_processor(SimpleSpanProcessor(exporter))
        >>> t = Tracer()
        >>> with t.span("request"):
        ...     with t.span("forward", stage="model"):
        ...         pass
        >>> replay(t, tracer_provider=provider)
        2
        >>> sorted(s.name for s in exporter.get_finished_spans())
        ['forward', 'request']
    """
    otel_trace: Any = optional_import("opentelemetry.trace", purpose="silenttax.trace.otel.replay")
    from silenttax._version import __version__

    provider = tracer_provider or otel_trace.get_tracer_provider()
    otel_tracer = provider.get_tracer(_SCOPE, __version__)
    records = tracer.traces() if traces is None else list(traces)
    return sum(_emit(otel_trace, otel_tracer, record, None) for record in records)


def _emit(otel_trace: Any, otel_tracer: Any, record: SpanRecord, parent: Any) -> int:
    context = otel_trace.set_span_in_context(parent) if parent is not None else None
    attributes = {
        k: v for k, v in record.attributes.items() if isinstance(v, bool | int | float | str)
    }
    attributes["silenttax.stage"] = record.stage
    if record.gc_time:
        attributes["silenttax.gc_time"] = record.gc_time
    span = otel_tracer.start_span(
        record.name, context=context, start_time=record.start_ns, attributes=attributes
    )
    count = 1
    for child in record.children:
        count += _emit(otel_trace, otel_tracer, child, span)
    if record.error is not None:
        span.set_attribute("error.type", record.error)
        span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, record.error))
    span.end(end_time=record.start_ns + round(record.duration * 1e9))
    return count
