from __future__ import annotations

import subprocess
import sys
import urllib.request

import msgspec
import pytest

from runtime._errors import ValidationFailed
from runtime.telemetry import (
    TelemetryConfig,
    _setup,
    configure_telemetry,
    current_instruments,
    dead_letter_written,
    items_enqueued,
)


def test_memory_exporter_captures_and_shutdown_restores() -> None:
    before = current_instruments()
    with configure_telemetry(TelemetryConfig(exporter="memory", set_global=False)) as handle:
        assert current_instruments() is not before
        dead_letter_written(reason="shed", topic="t", item_id="i", attempts=1)
        assert handle.span_exporter is not None and handle.metric_reader is not None
        [span] = handle.span_exporter.get_finished_spans()
        assert span.name == "garrison.dead_letter.write"
        assert span.resource.attributes["service.name"] == "garrison"
        handle.force_flush()
    assert current_instruments() is before
    handle.shutdown()  # idempotent


@pytest.mark.parametrize("exporter", ["noop", "console"])
def test_other_exporters_configure_and_shut_down(
    exporter: str, capsys: pytest.CaptureFixture[str]
) -> None:
    handle = configure_telemetry(
        TelemetryConfig(exporter=exporter, set_global=False)  # type: ignore[arg-type]
    )
    dead_letter_written(reason="shed", topic="t", item_id="i", attempts=1)
    handle.shutdown()
    if exporter == "console":
        assert "garrison.dead_letter.write" in capsys.readouterr().out


def test_none_without_port_sets_up_no_sdk() -> None:
    handle = configure_telemetry()
    assert handle.tracer_provider is None and handle.meter_provider is None
    handle.shutdown()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_exporters_are_built(protocol: str) -> None:
    spans, metrics = _setup._otlp_exporters(
        TelemetryConfig(
            exporter="otlp",
            otlp_protocol=protocol,  # type: ignore[arg-type]
            otlp_endpoint="http://127.0.0.1:4317",
        )
    )
    assert "OTLPSpanExporter" in type(spans).__name__
    assert "OTLPMetricExporter" in type(metrics).__name__


def test_prometheus_endpoint_is_scraped() -> None:
    with configure_telemetry(TelemetryConfig(metrics_port=0, set_global=False)) as handle:
        assert handle.metrics_port
        items_enqueued("scraped", 3)
        url = f"http://127.0.0.1:{handle.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
    [line] = [
        line
        for line in body.splitlines()
        if line.startswith("garrison_items_enqueued_total{") and 'garrison_topic="scraped"' in line
    ]
    assert line.endswith(" 3.0")


def test_port_in_use_is_an_os_error() -> None:
    with configure_telemetry(TelemetryConfig(metrics_port=0, set_global=False)) as first:
        before = current_instruments()
        with pytest.raises(OSError):
            configure_telemetry(TelemetryConfig(metrics_port=first.metrics_port, set_global=False))
        assert current_instruments() is before


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"sample_ratio": 2.0}, "sample_ratio"),
        ({"sample_ratio": -0.1}, "sample_ratio"),
        ({"sample_ratio": float("nan")}, "sample_ratio"),
        ({"metrics_port": 70000}, "metrics_port"),
        ({"metrics_port": -1}, "metrics_port"),
        ({"metric_interval_s": 0}, "metric_interval_s"),
    ],
)
def test_config_is_validated(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        TelemetryConfig(**options)  # type: ignore[arg-type]
    assert refused.value.field == field
    # Decoding refuses the same values: the bounds are declared once, on the fields.
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(options, TelemetryConfig)


def test_config_bounds_are_inclusive() -> None:
    for ratio in (0.0, 1.0):
        assert TelemetryConfig(sample_ratio=ratio).sample_ratio == ratio
    for port in (0, 65535, None):
        assert TelemetryConfig(metrics_port=port).metrics_port == port


def test_globals_are_set_once_per_process() -> None:
    # The OpenTelemetry globals can be set once per process: checked in a fresh one.
    code = """
from opentelemetry import trace, metrics
from runtime.telemetry import TelemetryConfig, configure_telemetry
first = configure_telemetry(TelemetryConfig(exporter="memory"))
assert trace.get_tracer_provider() is first.tracer_provider
assert metrics.get_meter_provider() is first.meter_provider
second = configure_telemetry(TelemetryConfig(exporter="memory"))
assert trace.get_tracer_provider() is first.tracer_provider
second.shutdown(); first.shutdown()
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_sample_ratio_picks_the_sampler() -> None:
    assert "TraceIdRatioBased{0.25}" in _setup._sampler(0.25).get_description()
    config = TelemetryConfig(exporter="memory", set_global=False, sample_ratio=0.0)
    with configure_telemetry(config) as handle:
        dead_letter_written(reason="shed", topic="t", item_id="i", attempts=1)
        assert handle.tracer_provider is not None
        handle.tracer_provider.get_tracer("test").start_span("ordinary").end()
        assert handle.span_exporter is not None
        # Ordinary spans are sampled out; required ones are kept (test_sampling.py).
        spans = handle.span_exporter.get_finished_spans()
        assert [span.name for span in spans] == ["garrison.dead_letter.write"]
        # Sampling thins traces only: the counters still see everything.
        assert handle.metric_reader is not None
        data = handle.metric_reader.get_metrics_data()
        assert data is not None
        names = {
            metric.name
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }
        assert "garrison.items.dead_lettered" in names
