"""The current instruments, gauges and their bounds, and capture_telemetry."""

from __future__ import annotations

import gc

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import NoOpTracerProvider

from runtime import telemetry
from runtime.store import NewItem
from runtime.telemetry import (
    Instruments,
    _registry,
    capture_telemetry,
    current_instruments,
    dead_letter_written,
    enqueue_span,
    item_rejected,
    items_shed,
    pressure_level_gauge,
    pressure_transition,
    queue_depth,
    register_depth_source,
    replay_span,
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
