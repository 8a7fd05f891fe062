"""SDK metric readers that also report the histograms Garrison aggregates itself.

``configure_telemetry`` and ``capture_telemetry`` build their readers from these, so the
per-item histograms of a :class:`~runtime.telemetry._histograms.HistogramSet` reach every
exporter, the Prometheus endpoint and the in-memory reader as ordinary explicit-bucket
histograms (why Garrison aggregates them: ``_histograms``).
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

# The class the SDK keys a reader's temporality preference by (it has no public name).
from opentelemetry.sdk.metrics._internal.instrument import _Histogram as _SdkHistogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    MetricExporter,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from runtime.telemetry._histograms import HistogramSet

__all__ = ["MemoryReader", "PeriodicReader", "merge_histograms", "prometheus_reader"]


def merge_histograms(
    histograms: HistogramSet,
    data: MetricsData,
    temporality: AggregationTemporality,
    state: dict[str, dict[Hashable, Any]],
) -> MetricsData:
    """``data`` with the histograms of ``histograms`` added to its scope in each resource.

    ``state`` belongs to one reader: with delta temporality it holds what that reader was
    last given, so each collection reports the change since.
    """
    now_ns = time.time_ns()
    delta = temporality is AggregationTemporality.DELTA
    metrics: list[Metric] = []
    for table in histograms.tables:
        points = table.points(state.setdefault(table.name, {}) if delta else None, now_ns)
        if not points:
            continue
        data_points = [
            HistogramDataPoint(
                attributes=p.attributes,
                start_time_unix_nano=p.start_ns,
                time_unix_nano=now_ns,
                count=p.count,
                sum=p.sum,
                bucket_counts=p.bucket_counts,
                explicit_bounds=table.bounds,
                min=p.min,
                max=p.max,
            )
            for p in points
        ]
        metrics.append(
            Metric(
                name=table.name,
                description=table.description,
                unit=table.unit,
                data=Histogram(data_points=data_points, aggregation_temporality=temporality),
            )
        )
    if not metrics:
        return data
    resources: list[ResourceMetrics] = []
    for resource in data.resource_metrics:
        scopes = list(resource.scope_metrics)
        for i, scope in enumerate(scopes):
            if scope.scope.name == histograms.scope:
                scopes[i] = ScopeMetrics(
                    scope=scope.scope,
                    metrics=[*scope.metrics, *metrics],
                    schema_url=scope.schema_url,
                )
                break
        else:
            scope = ScopeMetrics(
                scope=InstrumentationScope(histograms.scope), metrics=metrics, schema_url=""
            )
            scopes.append(scope)
        resources.append(
            ResourceMetrics(
                resource=resource.resource, scope_metrics=scopes, schema_url=resource.schema_url
            )
        )
    return MetricsData(resource_metrics=resources)


class _Merging(MetricReader):
    """Adds a :class:`HistogramSet` to what a reader collects (a mixin, first in the bases).

    ``_receive_metrics`` is the SDK's documented override point for readers. The SDK only
    calls it when it collected something; Garrison counts an item in the same call that
    records it in these histograms, so there is always something when they have data.
    """

    def _garrison_init(self, histograms: HistogramSet) -> None:
        self._garrison_histograms = histograms
        self._garrison_state: dict[str, dict[Hashable, Any]] = {}

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        # The reader's preference for histograms (what an OTLP exporter asked for).
        temporality = self._instrument_class_temporality.get(
            _SdkHistogram, AggregationTemporality.CUMULATIVE
        )
        merged = merge_histograms(
            self._garrison_histograms, metrics_data, temporality, self._garrison_state
        )
        super()._receive_metrics(merged, timeout_millis, **kwargs)  # type: ignore[safe-super]


class MemoryReader(_Merging, InMemoryMetricReader):
    """An :class:`InMemoryMetricReader` that also reports ``histograms``."""

    def __init__(self, histograms: HistogramSet, **kwargs: Any) -> None:
        self._garrison_init(histograms)
        super().__init__(**kwargs)


class PeriodicReader(_Merging, PeriodicExportingMetricReader):
    """A :class:`PeriodicExportingMetricReader` that also reports ``histograms``."""

    def __init__(self, exporter: MetricExporter, histograms: HistogramSet, **kwargs: Any) -> None:
        # Before the base starts its export thread, which may collect at once.
        self._garrison_init(histograms)
        super().__init__(exporter, **kwargs)


def prometheus_reader(histograms: HistogramSet) -> MetricReader:
    """A ``PrometheusMetricReader`` that also reports ``histograms``."""
    # Imported here: only processes that serve metrics load prometheus_client.
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    class PrometheusReader(_Merging, PrometheusMetricReader):
        def __init__(self) -> None:
            self._garrison_init(histograms)
            super().__init__()

    return PrometheusReader()
