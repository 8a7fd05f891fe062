"""W3C trace context carried by items: extraction, injection and parsing."""

from __future__ import annotations

import pytest
from opentelemetry import context, trace

from runtime.telemetry import _propagation, capture_telemetry, extract_context
from runtime.telemetry._propagation import attach, parse_traceparent, span_carrier

TRACE = "1" * 32
SPAN = "2" * 16


def test_extract_context_ignores_bad_carriers() -> None:
    assert extract_context(None) is None
    assert extract_context({}) is None
    assert extract_context({"traceparent": "garbage"}) is None


@pytest.mark.parametrize(
    ("value", "sampled"),
    [(f"00-{TRACE}-{SPAN}-01", True), (f"00-{TRACE}-{SPAN}-00", False)],
)
def test_parse_traceparent_reads_ids_and_flags(value: str, sampled: bool) -> None:
    found = parse_traceparent(value)
    assert found is not None and found.is_remote
    assert (found.trace_id, found.span_id) == (int(TRACE, 16), int(SPAN, 16))
    assert found.trace_flags.sampled is sampled
    # As the full propagator reads it.
    assert extract_context({"traceparent": value}) == found


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        f"00-{'z' * 32}-{SPAN}-01",  # not hex
        f"00-{'0' * 32}-{SPAN}-01",  # an all-zero trace id is invalid
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"00-{TRACE}-{SPAN}",  # unusual layouts go through the propagator
    ],
)
def test_parse_traceparent_refuses_what_is_not_a_context(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_the_parse_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_propagation, "_parsed", {})
    for n in range(_propagation.MAX_PARSED + 10):
        parse_traceparent(f"00-{TRACE}-{n + 1:016x}-01")
    assert 0 < len(_propagation._parsed) <= _propagation.MAX_PARSED


def test_a_carrier_round_trips_and_invalid_spans_are_not_attached() -> None:
    with capture_telemetry() as cap:
        span = cap.instruments.tracer.start_span("s")
        carrier = span_carrier(span)
        found, mine = extract_context(carrier), span.get_span_context()
        assert found is not None and found.is_remote
        assert (found.trace_id, found.span_id) == (mine.trace_id, mine.span_id)
        token = attach(span)
        assert token is not None and trace.get_current_span() is span
        context.detach(token)  # type: ignore[arg-type]
        span.end()
    assert attach(trace.INVALID_SPAN) is None
