"""W3C trace-context propagation: what an item carries from its enqueue to its processing.

An enqueue injects its span's ``traceparent`` into each item's ``trace_context``; a process
span reads it back (and, for a replayed item, the replay's, under
:data:`DEAD_LETTER_CONTEXT_KEY`) to link to them, in any process and after any restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "DEAD_LETTER_CONTEXT_KEY",
    "MAX_PARSED",
    "attach",
    "extract_context",
    "parse_traceparent",
    "span_carrier",
]

#: The trace-context key under which a replayed item carries its dead letter's context.
DEAD_LETTER_CONTEXT_KEY: Final = "garrison-dead-letter-traceparent"
#: Parsed traceparents memoised (the items of one enqueue call share theirs); the table is
#: cleared when full, so a stream of distinct contexts costs only the parsing.
MAX_PARSED: Final = 256

_PROPAGATOR: Final = TraceContextTextMapPropagator()
_parsed: dict[str, trace.SpanContext | None] = {}


def extract_context(carrier: Mapping[str, str] | None) -> trace.SpanContext | None:
    """The remote span context in a W3C ``traceparent`` carrier, or None."""
    if not carrier or "traceparent" not in carrier:
        return None
    ctx = _PROPAGATOR.extract(carrier)
    span_context = trace.get_current_span(ctx).get_span_context()
    return span_context if span_context.is_valid else None


def span_carrier(span: Span) -> dict[str, str]:
    """``span``'s context as a W3C carrier (``{"traceparent": ...}``)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span, Context()))
    return carrier


def attach(span: Span) -> object | None:
    """Make ``span`` current (the token to detach), unless it is invalid (nothing records)."""
    if span.get_span_context().is_valid:
        return otel_context.attach(trace.set_span_in_context(span))
    return None


def parse_traceparent(value: str | None) -> trace.SpanContext | None:
    """The span context of a ``traceparent`` value (memoised), or None if there is none."""
    if not value:
        return None
    try:
        return _parsed[value]
    except KeyError:
        pass
    found = _parse_traceparent_uncached(value)
    if len(_parsed) >= MAX_PARSED:
        _parsed.clear()
    _parsed[value] = found
    return found


def _parse_traceparent_uncached(value: str) -> trace.SpanContext | None:
    # A fast W3C traceparent parse (version 00 layout); anything unusual goes through the
    # full propagator.
    parts = value.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16 and len(parts[3]) == 2:
        try:
            trace_id, span_id = int(parts[1], 16), int(parts[2], 16)
            flags = int(parts[3], 16)
        except ValueError:
            return None
        if trace_id and span_id and parts[0] != "ff":
            return trace.SpanContext(
                trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags & 0xFF)
            )
        return None
    return extract_context({"traceparent": value})
