"""A one-line way for tests to see what was traced and measured."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import AttributeValue

from runtime.telemetry._readers import MemoryReader
from runtime.telemetry._registry import Instruments, histogram_set, use_instruments

__all__ = ["CapturedTelemetry", "capture_telemetry"]


class CapturedTelemetry:
    """Spans and metrics captured by :func:`capture_telemetry`.

    ``tracer_provider`` and ``meter_provider`` can be injected into components that take
    providers (e.g. ``supervisors.Supervisor`` telemetry) so their output lands here too.
    """

    def __init__(self) -> None:
        self.span_exporter = InMemorySpanExporter()
        histograms = histogram_set()
        self.metric_reader: InMemoryMetricReader = MemoryReader(histograms)
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.meter_provider = MeterProvider(
            metric_readers=[self.metric_reader], exemplar_filter=AlwaysOffExemplarFilter()
        )
        self.instruments = Instruments(
            self.tracer_provider, self.meter_provider, histograms=histograms
        )

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, oldest first, optionally only those called ``name``."""
        finished = self.span_exporter.get_finished_spans()
        return [s for s in finished if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        """The last finished span called ``name``.

        Raises:
            LookupError: there is none.
        """
        found = self.spans(name)
        if not found:
            names = sorted({s.name for s in self.spans()})
            raise LookupError(f"no span named {name!r}; finished spans: {names}")
        return found[-1]

    def metrics(self) -> dict[str, Metric]:
        """Every metric collected now, by name."""
        data = self.metric_reader.get_metrics_data()
        found: dict[str, Metric] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found

    def value(self, name: str, **attributes: AttributeValue) -> float:
        """The sum of a counter (or the count of a histogram, or the last gauge value)
        over the data points whose attributes include ``attributes``.

        Attribute names use ``_`` for ``.`` (``garrison_topic="t"``). 0 if nothing matches.
        """
        wanted = {key.replace("_", "."): value for key, value in attributes.items()}
        metric = self.metrics().get(name)
        if metric is None:
            return 0
        total: float = 0
        for point in metric.data.data_points:
            point_attributes = dict(point.attributes or {})
            if all(point_attributes.get(k) == v for k, v in wanted.items()):
                number = getattr(point, "value", None)
                total += float(point.count if number is None else number)  # type: ignore[union-attr]
        return total

    def clear(self) -> None:
        """Forget the spans captured so far (metrics are cumulative and stay)."""
        self.span_exporter.clear()


@contextmanager
def capture_telemetry() -> Iterator[CapturedTelemetry]:
    """Capture Garrison's spans and metrics in memory inside the block.

    The helpers of :mod:`runtime.telemetry` report to fresh in-memory SDK providers for
    the duration, whatever the OpenTelemetry globals are, so tests do not depend on order.
    """
    captured = CapturedTelemetry()
    with use_instruments(captured.instruments):
        try:
            yield captured
        finally:
            captured.tracer_provider.shutdown()
            captured.meter_provider.shutdown()
