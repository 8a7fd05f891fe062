"""Dead letters, pressure, sheds, refusals and replays: spans, counters, log lines."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.trace import StatusCode

from runtime import telemetry
from runtime.store import NewItem
from runtime.telemetry import (
    DEAD_LETTER_CONTEXT_KEY,
    capture_telemetry,
    dead_letter_written,
    enqueue_span,
    extract_context,
    item_rejected,
    items_enqueued,
    items_shed,
    lease_contended,
    pressure_level_gauge,
    pressure_transition,
    replay_span,
)


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
