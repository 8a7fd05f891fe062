from __future__ import annotations

import gc
import logging

import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

from runtime import telemetry
from runtime.store import ItemState, NewItem, WorkItem
from runtime.telemetry import (
    DEAD_LETTER_CONTEXT_KEY,
    Instruments,
    _registry,
    capture_telemetry,
    current_instruments,
    dead_letter_written,
    enqueue_span,
    extract_context,
    item_rejected,
    items_enqueued,
    items_shed,
    lease_contended,
    pressure_level_gauge,
    pressure_transition,
    process_span,
    queue_depth,
    register_depth_source,
    replay_span,
    settle_span,
    settled,
    use_instruments,
)


def test_helpers_are_no_ops_without_an_sdk() -> None:
    with use_instruments(Instruments(NoOpTracerProvider(), NoOpMeterProvider())):
        dead_letter_written(reason="shed", topic="t", item_id="i", attempts=1)
        pressure_transition(
            channel="c", from_level="normal", to_level="elevated", depth=3, actions=["throttle"]
        )
        items_shed("t", 2, "pressure")
        item_rejected("t", "pressure")
        pressure_level_gauge("c", "critical")
        with replay_span("i") as recorder:
            assert recorder.trace_context() == {}
            recorder.replayed("j")
        with enqueue_span([NewItem(topic="t", payload=b"")]) as items:
            assert items[0].trace_context is None


def test_dead_letter_written_span_and_counter() -> None:
    with capture_telemetry() as cap:
        dead_letter_written(
            reason="retries_exhausted",
            topic="email",
            item_id="abc",
            attempts=3,
            max_attempts=3,
            queue="default",
            error_type="ValueError",
        )
        span = cap.span("garrison.dead_letter.write")
        assert span.attributes is not None
        assert span.attributes["garrison.dead_letter.reason"] == "retries_exhausted"
        assert span.attributes["messaging.destination.name"] == "email"
        assert span.attributes["messaging.message.id"] == "abc"
        assert span.attributes["garrison.attempt"] == 3
        assert span.attributes["garrison.max_attempts"] == 3
        assert span.attributes["error.type"] == "ValueError"
        assert cap.value("garrison.items.dead_lettered", garrison_topic="email") == 1


def test_pressure_transition_span_gauge_and_counter() -> None:
    with capture_telemetry() as cap:
        pressure_transition(
            channel="intake", from_level="normal", to_level="critical", depth=90, actions=["shed"]
        )
        span = cap.span(telemetry.PRESSURE_SPAN)
        assert dict(span.attributes or {}) == {
            "garrison.channel": "intake",
            "garrison.pressure.from": "normal",
            "garrison.pressure.to": "critical",
            "garrison.pressure.depth": 90,
            "garrison.pressure.actions": ("shed",),
        }
        assert cap.value("garrison.pressure.level", garrison_channel="intake") == 2
        assert cap.value("garrison.pressure.transitions") == 1
        pressure_level_gauge("intake", "normal")
        pressure_level_gauge("other", "elevated")
        assert cap.value("garrison.pressure.level", garrison_channel="intake") == 0
        assert cap.value("garrison.pressure.level", garrison_channel="other") == 1
        assert telemetry.pressure_level_now() == "elevated"


def test_shed_rejected_enqueued_and_contention_counters() -> None:
    with capture_telemetry() as cap:
        items_shed("t", 3, "pressure")
        items_shed("t", 0, "pressure")
        item_rejected("t", "pressure")
        items_enqueued("t", 4)
        items_enqueued("t", 0)
        lease_contended(2, queue="q")
        lease_contended(0)
        assert cap.value("garrison.items.shed", garrison_reason="pressure") == 3
        assert cap.value("garrison.items.rejected", garrison_topic="t") == 1
        assert cap.value("garrison.items.enqueued", garrison_topic="t") == 4
        assert cap.value("garrison.lease.contention", garrison_queue="q") == 2
        assert cap.value("garrison.no.such.metric") == 0


def test_queue_depth_gauge_from_samples_and_sources() -> None:
    class Source:
        def depth(self) -> dict[str, int]:
            return {"enqueued": 7}

    def broken() -> dict[str, int]:
        raise RuntimeError("closed")

    with capture_telemetry() as cap:
        queue_depth("a", {"enqueued": 1, "leased": 2})
        source = Source()
        unregister = register_depth_source("b", source.depth)
        unregister_broken = register_depth_source("c", broken)
        assert cap.value("garrison.queue.depth", garrison_queue="a", garrison_state="leased") == 2
        assert cap.value("garrison.queue.depth", garrison_queue="b") == 7
        del source
        gc.collect()
        assert cap.value("garrison.queue.depth", garrison_queue="b") == 0
        unregister()
        unregister_broken()
        assert current_instruments().depths()[("a", "enqueued")] == 1


def test_gauge_series_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "MAX_GAUGE_SERIES", 2)
    inst = Instruments()
    for n in range(5):
        inst.set_level(f"c{n}", 1)
        inst.set_depth(f"q{n}", {"enqueued": n})
    assert len(inst.levels()) == 2 and len(inst.depths()) == 2


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


def test_extract_context_ignores_bad_carriers() -> None:
    assert extract_context(None) is None
    assert extract_context({}) is None
    assert extract_context({"traceparent": "garbage"}) is None


def test_replay_span_links_and_outcomes() -> None:
    with capture_telemetry() as cap:
        with enqueue_span([NewItem(topic="t", payload=b"")]) as traced:
            pass
        origin = cap.span("send t")
        with replay_span(
            "dead1", topic="t", trace_context=traced[0].trace_context, forced=True
        ) as recorder:
            extra = recorder.trace_context()
            recorder.replayed("new1")
            recorder.replayed("ignored twice")
        span = cap.span(telemetry.REPLAY_SPAN)
        attributes = dict(span.attributes or {})
        assert attributes["garrison.dead_letter.id"] == "dead1"
        assert attributes["garrison.replay.forced"] is True
        assert attributes["garrison.outcome"] == "replayed"
        assert [link.context.span_id for link in span.links] == [origin.context.span_id]
        replay_context = extract_context({"traceparent": extra[DEAD_LETTER_CONTEXT_KEY]})
        assert replay_context is not None and replay_context.span_id == span.context.span_id

        with replay_span("dead2") as recorder:
            recorder.refused("already_replayed")
        with pytest.raises(KeyError), replay_span("dead3"):
            raise KeyError("x")
        refused = cap.spans(telemetry.REPLAY_SPAN)[1:]
        assert [s.status.status_code for s in refused] == [StatusCode.ERROR] * 2
        assert cap.value("garrison.replays", garrison_outcome="replayed") == 1
        assert cap.value("garrison.replays", garrison_outcome="already_replayed") == 1
        assert cap.value("garrison.replays", garrison_outcome="KeyError") == 1


def test_capture_restores_the_previous_instruments() -> None:
    before = current_instruments()
    with capture_telemetry() as cap:
        assert current_instruments() is cap.instruments
        with pytest.raises(LookupError, match="no span named"):
            cap.span("nothing")
        cap.clear()
        assert cap.spans() == []
    assert current_instruments() is before


def test_lazy_names_and_unknown_attribute() -> None:
    assert telemetry.TelemetryConfig().exporter == "none"
    assert telemetry.KeepRequiredSampler(0.5).ratio == 0.5
    with pytest.raises(AttributeError):
        _ = telemetry.nothing_here  # type: ignore[attr-defined]


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


def test_shedding_warns_once_per_shed_not_once_per_item(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        items_shed("t", 3, "queue_critical", log=True)
        items_shed("t", 1, "mailbox_critical")  # one at a time: counted, not logged
        for n in range(3):
            dead_letter_written(topic="t", item_id=f"i{n}", reason="shed", attempts=0)
        dead_letter_written(topic="t", item_id="x", reason="timeout", attempts=3)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "shed 3 item(s) (queue_critical)",
        "item x dead-lettered (timeout) after 3 attempt(s)",
    ]
    assert sum(r.levelno == logging.INFO for r in caplog.records) == 3
