"""SDK set-up from configuration: tracer and meter providers, exporters, Prometheus.

Only commands and applications call this; library code uses ``opentelemetry-api`` alone.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Annotated, Literal

import msgspec
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from policies import check_bounds
from runtime._errors import ValidationFailed
from runtime.telemetry._readers import MemoryReader, PeriodicReader, prometheus_reader
from runtime.telemetry._registry import (
    Instruments,
    current_instruments,
    histogram_set,
    install_instruments,
)
from runtime.telemetry._sampling import KeepRequiredSampler

__all__ = ["Exporter", "TelemetryConfig", "TelemetryHandle", "configure_telemetry"]

log = logging.getLogger("garrison.telemetry")

Exporter = Literal["none", "noop", "console", "otlp", "memory"]


class TelemetryConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a command or application sets up the OpenTelemetry SDK.

    Attributes:
        exporter: where spans and metrics go. ``none``: no SDK for traces (API no-ops;
            metrics only if ``metrics_port`` is set); ``noop``: the SDK records and drops
            (for overhead measurements); ``console``: printed to stdout; ``otlp``: an OTLP
            collector (needs the ``otlp`` extra); ``memory``: kept in memory (tests).
        otlp_protocol: ``grpc`` or ``http/protobuf``.
        otlp_endpoint: the collector's address (the exporter's default when None; the
            standard ``OTEL_EXPORTER_OTLP_*`` variables also apply).
        metrics_port: serve Prometheus metrics on this port (0 picks a free one), within
            [0, 65535].
        metrics_host: the address the Prometheus endpoint listens on.
        service_name: the ``service.name`` resource attribute.
        sample_ratio: the fraction of root traces kept (parent-based), in [0, 1]. The
            required spans (``garrison.dead_letter.write``, ``garrison.pressure.transition``,
            ``garrison.supervisor.restart``, ``garrison.replay``, and
            ``garrison.supervisor.escalation``) are always kept, even
            inside a trace that was not (see :class:`~runtime.telemetry.KeepRequiredSampler`).
        metric_interval_s: how often pushed metrics (console, otlp) are exported (> 0).
        set_global: also install the providers as the OpenTelemetry globals (only the
            first configuration of a process can; Garrison's own helpers use this one
            either way).

    Raises:
        ValidationFailed: a value outside its bounds (``field`` names it).
    """

    exporter: Exporter = "none"
    otlp_protocol: Literal["grpc", "http/protobuf"] = "grpc"
    otlp_endpoint: str | None = None
    metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    metrics_host: str = "127.0.0.1"
    service_name: str = "garrison"
    sample_ratio: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 1.0
    metric_interval_s: Annotated[float, msgspec.Meta(gt=0.0)] = 60.0
    set_global: bool = True

    def __post_init__(self) -> None:
        check_bounds(self)


class _DropSpans(SpanExporter):
    """Accepts every batch and keeps nothing: the SDK's cost without an exporter's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class TelemetryHandle:
    """The SDK set up by :func:`configure_telemetry`; flush and shut it down when done.

    Attributes:
        tracer_provider: the SDK tracer provider (None with exporter ``none``).
        meter_provider: the SDK meter provider (None with exporter ``none`` and no port).
        span_exporter: the in-memory exporter (exporter ``memory`` only).
        metric_reader: the in-memory reader (exporter ``memory``/``noop`` only).
        metrics_port: the port Prometheus metrics are served on, once bound.
    """

    def __init__(
        self,
        config: TelemetryConfig,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
        *,
        span_exporter: InMemorySpanExporter | None,
        metric_reader: InMemoryMetricReader | None,
        previous: Instruments,
    ) -> None:
        self.config = config
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.span_exporter = span_exporter
        self.metric_reader = metric_reader
        self.metrics_port: int | None = None
        self._previous = previous
        self._server: object | None = None
        self._server_thread: threading.Thread | None = None
        self._closed = False

    def force_flush(self, timeout_ms: int = 10_000) -> None:
        """Export what is buffered now."""
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush(timeout_ms)
        if self.meter_provider is not None:
            self.meter_provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Flush, stop exporters and the Prometheus endpoint; idempotent.

        Garrison's helpers go back to what they reported through before.
        """
        if self._closed:
            return
        self._closed = True
        if current_instruments() is not self._previous:
            install_instruments(self._previous)
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]
            if self._server_thread is not None:
                self._server_thread.join(timeout=5)
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()

    def __enter__(self) -> TelemetryHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def _otlp_exporters(config: TelemetryConfig) -> tuple[SpanExporter, MetricExporter]:
    try:
        if config.otlp_protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ValidationFailed(
            "the otlp exporter needs the 'otlp' extra: pip install 'garrison[otlp]'",
            field="exporter",
        ) from exc
    endpoint = config.otlp_endpoint
    return OTLPSpanExporter(endpoint=endpoint), OTLPMetricExporter(endpoint=endpoint)


def configure_telemetry(config: TelemetryConfig | None = None) -> TelemetryHandle:
    """Set up the OpenTelemetry SDK as ``config`` says and return a handle to shut it down.

    Garrison's helpers (spans, counters, gauges) report through the new providers at once;
    with ``set_global`` the providers also become the OpenTelemetry globals if none was set.

    Raises:
        ValidationFailed: the ``otlp`` exporter without its extra installed.
        OSError: the Prometheus port cannot be bound.
    """
    config = config or TelemetryConfig()
    resource = Resource.create({"service.name": config.service_name})
    tracer_provider: TracerProvider | None = None
    span_exporter: InMemorySpanExporter | None = None
    memory_reader: InMemoryMetricReader | None = None
    readers: list[MetricReader] = []
    # Garrison's readers report the per-item histograms it aggregates itself.
    histograms = histogram_set()
    kind = config.exporter
    if kind != "none":
        tracer_provider = TracerProvider(resource=resource, sampler=_sampler(config.sample_ratio))
        if kind == "memory":
            span_exporter = InMemorySpanExporter()
            tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
            memory_reader = MemoryReader(histograms)
            readers.append(memory_reader)
        elif kind == "noop":
            tracer_provider.add_span_processor(BatchSpanProcessor(_DropSpans()))
            memory_reader = MemoryReader(histograms)
            readers.append(memory_reader)
        else:
            interval_ms = config.metric_interval_s * 1000
            if kind == "console":
                spans: SpanExporter = ConsoleSpanExporter(out=sys.stdout)
                pushed: MetricExporter = ConsoleMetricExporter(out=sys.stdout)
            else:
                spans, pushed = _otlp_exporters(config)
            tracer_provider.add_span_processor(BatchSpanProcessor(spans))
            readers.append(PeriodicReader(pushed, histograms, export_interval_millis=interval_ms))
    if config.metrics_port is not None:
        readers.append(prometheus_reader(histograms))
    meter_provider = (
        MeterProvider(
            resource=resource,
            metric_readers=readers,
            # Exemplars cost a reservoir offer per measurement; Garrison does not use them.
            exemplar_filter=AlwaysOffExemplarFilter(),
        )
        if readers
        else None
    )
    handle = TelemetryHandle(
        config,
        tracer_provider,
        meter_provider,
        span_exporter=span_exporter,
        metric_reader=memory_reader,
        previous=current_instruments(),
    )
    if config.metrics_port is not None:
        from prometheus_client import start_http_server

        try:
            server, thread = start_http_server(config.metrics_port, addr=config.metrics_host)
        except OSError:
            handle.shutdown()
            raise
        handle._server, handle._server_thread = server, thread
        handle.metrics_port = int(server.server_port)
    if config.set_global:
        _set_globals(tracer_provider, meter_provider)
    install_instruments(
        Instruments(
            tracer_provider,
            meter_provider,
            histograms=histograms,
            sampler_follows_links=tracer_provider is not None,
        )
    )
    return handle


def _sampler(ratio: float) -> Sampler:
    # Parent-based (a trace is kept or dropped as a whole), except that the required
    # spans are kept even inside a dropped trace.
    return KeepRequiredSampler(ratio)


def _set_globals(
    tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
) -> None:
    # The OpenTelemetry API lets a process set each global once; later attempts only log.
    # Garrison's own helpers are bound explicitly, so a second configuration still works.
    if tracer_provider is not None:
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(tracer_provider)
        else:
            log.debug("a global tracer provider is already set; not replacing it")
    if meter_provider is not None:
        from opentelemetry.metrics._internal import _ProxyMeterProvider

        if isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
            metrics.set_meter_provider(meter_provider)
        else:
            log.debug("a global meter provider is already set; not replacing it")
