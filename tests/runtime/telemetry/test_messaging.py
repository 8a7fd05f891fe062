"""Messaging spans and per-item measurements: send, process, settle."""

from __future__ import annotations

import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from runtime.store import ItemState, NewItem, WorkItem
from runtime.telemetry import (
    Instruments,
    capture_telemetry,
    enqueue_span,
    extract_context,
    process_span,
    settle_span,
    settled,
    use_instruments,
)


def test_enqueue_span_injects_context_only_where_missing() -> None:
    mine = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    items = [
        NewItem(topic="t", payload=b"a"),
        NewItem(topic="t", payload=b"b", trace_context=mine),
    ]
    with capture_telemetry() as cap:
        with enqueue_span(items) as traced:
            pass
        span = cap.span("send t")
        assert span.kind is SpanKind.PRODUCER
        assert span.attributes is not None
        assert span.attributes["messaging.batch.message_count"] == 2
        assert span.attributes["messaging.destination.name"] == "t"
        context = extract_context(traced[0].trace_context)
        assert context is not None and context.span_id == span.context.span_id
        assert traced[1].trace_context == mine
        with enqueue_span([NewItem(topic="a", payload=b""), NewItem(topic="b", payload=b"")]):
            pass
        assert cap.spans("send")


def test_new_item_stays_valid_after_injection() -> None:
    with capture_telemetry(), enqueue_span([NewItem(topic="t", payload=b"")]) as traced:
        assert msgspec.json.decode(msgspec.json.encode(traced[0]), type=NewItem) == traced[0]


def leased(topic: str = "t", trace_context: dict[str, str] | None = None) -> WorkItem:
    return WorkItem(
        id="item-1",
        seq=1,
        queue="default",
        topic=topic,
        key=None,
        priority=0,
        payload=b"",
        sha256="",
        idempotency_key=None,
        state=ItemState.LEASED,
        attempt=1,
        max_attempts=3,
        created_at=0.0,
        available_at=0.0,
        updated_at=0.0,
        correlation_id=None,
        trace_context=trace_context,
        last_error=None,
        lease_owner="w",
        lease_token="t",
        lease_expires_at=None,
        replay_of=None,
    )


def test_settled_hands_outcome_and_error_to_the_process_span() -> None:
    with capture_telemetry() as cap:
        item = leased()
        with process_span(item, owner="w") as span:
            # Handed to the span when it ends, with the item's attributes.
            settled(item, "retry_scheduled", duration_s=0.5, error=ValueError("boom"))
            assert "garrison.outcome" not in dict(span.attributes or {})  # type: ignore[attr-defined]
        finished = cap.span("process t")
        attributes = dict(finished.attributes or {})
        assert attributes["garrison.outcome"] == "retry_scheduled"
        assert attributes["error.type"] == "ValueError"
        assert attributes["messaging.message.id"] == "item-1"
        assert attributes["messaging.consumer.group.name"] == "w"
        assert finished.status.status_code is StatusCode.ERROR
        assert [e.name for e in finished.events] == ["exception"]
        assert cap.value("garrison.items.retried", garrison_reason="error") == 1
        assert cap.value("garrison.process.duration", garrison_outcome="retry_scheduled") == 1
        assert cap.value("garrison.queue.latency") == 0

        # Outside a process span the outcome goes to whatever span is current.
        with cap.instruments.tracer.start_as_current_span("other"):
            settled(item, "succeeded", duration_s=0.1, queue_latency_s=-1.0)
        assert dict(cap.span("other").attributes or {})["garrison.outcome"] == "succeeded"
        assert cap.value("garrison.queue.latency", garrison_topic="t") == 1


def test_single_settle_inside_a_sampled_out_span_starts_no_span() -> None:
    started: list[str] = []

    class Counting(trace.Tracer):
        def __init__(self, tracer: trace.Tracer) -> None:
            self._tracer = tracer

        def start_span(self, name: str, *args: object, **kwargs: object) -> trace.Span:
            started.append(name)
            return self._tracer.start_span(name, *args, **kwargs)  # type: ignore[arg-type]

        def start_as_current_span(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            raise AssertionError("not used on the hot path")

    instruments = Instruments(TracerProvider(sampler=ALWAYS_OFF), NoOpMeterProvider())
    instruments.tracer = Counting(instruments.tracer)
    with use_instruments(instruments):
        with process_span(leased()) as span:
            assert span.get_span_context().is_valid and not span.is_recording()
            with settle_span("ack", item_id="item-1"):
                pass
        # Outside any span a single settle gets a span of its own.
        with settle_span("ack", item_id="item-1"):
            pass
    assert started == ["process t", "ack"]


def test_settle_span_of_its_own_records_an_error() -> None:
    with capture_telemetry() as cap:
        with pytest.raises(KeyError), settle_span("nack", item_id="i"):
            assert trace.get_current_span().is_recording()
            raise KeyError("gone")
        span = cap.span("nack")
        assert span.kind is SpanKind.CLIENT
        assert span.status.status_code is StatusCode.ERROR
        assert dict(span.attributes or {})["messaging.message.id"] == "i"
        assert [e.name for e in span.events] == ["exception"]
        assert not trace.get_current_span().get_span_context().is_valid


def test_process_span_links_from_a_cached_traceparent() -> None:
    carrier = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    with capture_telemetry() as cap:
        for _ in range(2):
            with process_span(leased(trace_context=carrier)):
                pass
        first, second = cap.spans("process t")
        assert [link.context.span_id for link in first.links] == [int("2" * 16, 16)]
        assert [link.context.span_id for link in second.links] == [int("2" * 16, 16)]
        assert dict(first.links[0].attributes or {}) == {}  # the enqueue link is plain


class Outgoing(msgspec.Struct, frozen=True):
    """Not the store's NewItem: any Struct with a topic and a trace context will do."""

    topic: str
    trace_context: dict[str, str] | None = None


class Leased:
    """Not the store's WorkItem: the attributes the process span reads, and no more."""

    id = "plain-1"
    queue = "q"
    topic = "plain"
    key = "k"
    priority = 3
    attempt = 2
    max_attempts = 4
    correlation_id = "corr"
    trace_context = None
    replay_of = "dead-0"


def test_items_are_described_by_the_attributes_read() -> None:
    # Telemetry imports nothing of the store: its helpers take anything shaped like the
    # store's items (OutgoingItem, LeasedItem).
    with capture_telemetry() as cap:
        with enqueue_span([Outgoing(topic="plain")]) as traced:
            assert isinstance(traced[0], Outgoing) and traced[0].trace_context
        with process_span(Leased(), owner="w"):
            settled(Leased(), "succeeded", duration_s=0.5)
        attributes = dict(cap.span("process plain").attributes or {})
    assert attributes["messaging.message.id"] == "plain-1"
    assert attributes["garrison.key"] == "k"
    assert attributes["messaging.message.conversation_id"] == "corr"
    assert attributes["garrison.replay_of"] == "dead-0"
    assert attributes["messaging.consumer.group.name"] == "w"
    assert attributes["garrison.outcome"] == "succeeded"
