"""Histograms Garrison aggregates itself: buckets, bounds, temporality, every reader."""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import Histogram as SdkHistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import TracerProvider

from runtime.telemetry import TelemetryConfig, capture_telemetry, configure_telemetry, settled
from runtime.telemetry._histograms import SECONDS_BUCKETS, HistogramSet, HistogramTable
from runtime.telemetry._readers import MemoryReader, PeriodicReader
from runtime.telemetry._registry import Instruments, histogram_set, use_instruments
from tests.runtime.telemetry.test_messaging import leased


def table(max_series: int = 16) -> HistogramTable:
    return HistogramTable("h", "s", "a histogram", (1.0, 2.0, 5.0), max_series=max_series)


def test_a_value_on_a_bound_counts_in_the_bucket_it_closes() -> None:
    h = table()
    for value in (0.5, 1.0, 1.5, 2.0, 5.0, 9.0):
        h.record(value, "k", {"a": "k"})
    [point] = h.points(None, 0)
    assert point.bucket_counts == (2, 2, 1, 1)
    assert point.count == 6 and point.sum == pytest.approx(19.0)
    assert (point.min, point.max) == (0.5, 9.0)
    assert point.attributes == {"a": "k"}


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=200))
def test_counts_agree_with_a_plain_classification(values: Sequence[float]) -> None:
    h = HistogramTable("h", "s", "", SECONDS_BUCKETS)
    for v in values:
        h.record(v, "k", {})
    points = h.points(None, 0)
    if not values:
        assert points == []
        return
    [point] = points
    expected = [0] * (len(SECONDS_BUCKETS) + 1)
    for v in values:
        expected[next((i for i, b in enumerate(SECONDS_BUCKETS) if v <= b), -1)] += 1
    assert list(point.bucket_counts) == expected
    assert point.count == len(values)
    assert math.isclose(point.sum, math.fsum(values), rel_tol=1e-9, abs_tol=1e-9)
    assert (point.min, point.max) == (min(values), max(values))


def test_series_are_bounded_and_the_rest_overflow_into_one() -> None:
    h = table(max_series=3)
    for i in range(50):
        h.record(1.0, f"k{i}", {"a": f"k{i}"})
    points = h.points(None, 0)
    assert len(points) == 3
    overflow = [p for p in points if p.attributes == {"otel.metric.overflow": True}]
    assert [p.count for p in overflow] == [48]
    assert sum(p.count for p in points) == 50


@pytest.mark.parametrize("bounds", [(2.0, 1.0), (1.0, 1.0)])
def test_bounds_must_increase(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        HistogramTable("h", "s", "", bounds)


def test_max_series_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_series"):
        HistogramTable("h", "s", "", max_series=0)


def test_delta_points_report_the_change_since_the_last_collection() -> None:
    h = table()
    state: dict[object, object] = {}
    h.record(0.5, "a", {"s": "a"})
    h.record(3.0, "b", {"s": "b"})
    first = {p.attributes["s"]: p for p in h.points(state, 10)}
    assert first["a"].count == 1 and first["b"].count == 1
    h.record(4.0, "a", {"s": "a"})
    h.record(4.5, "a", {"s": "a"})
    [second] = h.points(state, 20)  # "b" had nothing new: no point
    assert second.attributes == {"s": "a"}
    assert second.count == 2 and second.sum == pytest.approx(8.5)
    assert second.bucket_counts == (0, 0, 2, 0)
    assert (second.min, second.max) == (4.0, 4.5)  # of the interval, not since the start
    assert second.start_ns == 10
    # Cumulative readers (no state) still see everything.
    [a, _b] = sorted(h.points(None, 30), key=lambda p: str(p.attributes["s"]))
    assert a.count == 3 and (a.min, a.max) == (0.5, 4.5)


def histogram_points(data: MetricsData | None, name: str) -> list[HistogramDataPoint]:
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    assert isinstance(metric.data, Histogram)
                    return list(metric.data.data_points)
    raise LookupError(name)


def test_capture_reports_garrison_histograms_with_second_buckets() -> None:
    with capture_telemetry() as cap:
        for duration in (0.001, 0.02, 0.3):
            settled(leased("mail"), "succeeded", duration_s=duration, queue_latency_s=0.004)
        [point] = histogram_points(
            cap.metric_reader.get_metrics_data(), "garrison.process.duration"
        )
        assert tuple(point.explicit_bounds) == SECONDS_BUCKETS
        assert point.count == 3 and point.sum == pytest.approx(0.321)
        assert dict(point.attributes) == {"garrison.topic": "mail", "garrison.outcome": "succeeded"}
        assert cap.value("garrison.queue.latency", garrison_topic="mail") == 3
        metrics = cap.metrics()
        assert metrics["garrison.process.duration"].unit == "s"


def test_without_garrison_readers_the_sdk_histograms_use_the_same_buckets() -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    with use_instruments(Instruments(TracerProvider(), meter_provider)):
        settled(leased("mail"), "succeeded", duration_s=0.02, queue_latency_s=0.004)
    [point] = histogram_points(reader.get_metrics_data(), "garrison.process.duration")
    assert tuple(point.explicit_bounds) == SECONDS_BUCKETS
    assert point.count == 1
    meter_provider.shutdown()


def test_a_delta_reader_gets_deltas_and_a_cumulative_one_totals() -> None:
    histograms = histogram_set()
    delta = MemoryReader(
        histograms, preferred_temporality={SdkHistogramInstrument: AggregationTemporality.DELTA}
    )
    cumulative = MemoryReader(histograms)
    meter_provider = MeterProvider(metric_readers=[delta, cumulative])
    with use_instruments(Instruments(TracerProvider(), meter_provider, histograms=histograms)):
        settled(leased(), "succeeded", duration_s=0.02)
        settled(leased(), "succeeded", duration_s=0.03)
        [first] = histogram_points(delta.get_metrics_data(), "garrison.process.duration")
        settled(leased(), "succeeded", duration_s=0.04)
        [second] = histogram_points(delta.get_metrics_data(), "garrison.process.duration")
        [total] = histogram_points(cumulative.get_metrics_data(), "garrison.process.duration")
    assert (first.count, second.count, total.count) == (2, 1, 3)
    assert second.min == second.max == pytest.approx(0.04)
    meter_provider.shutdown()


class _Keep(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


def test_a_pushing_reader_exports_them() -> None:
    histograms = histogram_set()
    exporter = _Keep()
    reader = PeriodicReader(exporter, histograms, export_interval_millis=math.inf)
    meter_provider = MeterProvider(metric_readers=[reader])
    with use_instruments(Instruments(TracerProvider(), meter_provider, histograms=histograms)):
        settled(leased("t"), "retry_scheduled", duration_s=0.2, error=ValueError("x"))
        meter_provider.force_flush()
    [point] = histogram_points(exporter.batches[-1], "garrison.process.duration")
    assert dict(point.attributes)["garrison.outcome"] == "retry_scheduled"
    meter_provider.shutdown()


def test_a_scope_the_sdk_did_not_report_is_added() -> None:
    histograms = HistogramSet("elsewhere", [table()])
    histograms.tables[0].record(1.0, "k", {})
    reader = MemoryReader(histograms)
    meter_provider = MeterProvider(metric_readers=[reader])
    meter_provider.get_meter("other").create_counter("c").add(1)
    data = reader.get_metrics_data()
    assert data is not None
    scopes = {s.scope.name for r in data.resource_metrics for s in r.scope_metrics}
    assert scopes == {"other", "elsewhere"}
    meter_provider.shutdown()


def test_prometheus_serves_the_histogram_buckets() -> None:
    with configure_telemetry(TelemetryConfig(metrics_port=0, set_global=False)) as handle:
        settled(leased("scraped"), "succeeded", duration_s=0.003, queue_latency_s=0.2)
        url = f"http://127.0.0.1:{handle.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
    buckets = [
        line
        for line in body.splitlines()
        if line.startswith("garrison_process_duration_seconds_bucket{")
        and 'garrison_topic="scraped"' in line
    ]
    first = next(line for line in buckets if 'le="0.005"' in line)
    assert first.endswith(" 1.0")
    assert len(buckets) == len(SECONDS_BUCKETS) + 1  # and +Inf
