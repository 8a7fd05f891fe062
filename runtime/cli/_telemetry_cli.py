"""The telemetry options every long-running command shares (``work``, ``run``, ``demo``).

A command adds the ``*Option`` parameters it wants, builds :class:`TelemetryOptions` from
them and wraps its body in :func:`telemetry_session`::

    def work(..., metrics_port: MetricsPortOption = None, log_format: LogFormatOption = "auto",
             ...) -> None:
        options = TelemetryOptions(metrics_port=metrics_port, log_format=log_format, ...)
        with telemetry_session(options):
            ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import msgspec
import typer

from runtime.cli._common import EXIT_BAD_INPUT, fail
from runtime.telemetry import LogConfig, configure_logging, reset_logging

__all__ = [
    "LogBackupsOption",
    "LogFileOption",
    "LogFormatOption",
    "LogMaxBytesOption",
    "MetricsHostOption",
    "MetricsPortOption",
    "OtelEndpointOption",
    "OtelExporterOption",
    "OtelProtocolOption",
    "OtelSampleRatioOption",
    "ProgressIntervalOption",
    "TelemetryOptions",
    "telemetry_session",
    "with_telemetry",
]

T = TypeVar("T")

MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        help="Serve Prometheus metrics on 127.0.0.1:PORT (0 picks a free port).",
        min=0,
        max=65535,
    ),
]
MetricsHostOption = Annotated[
    str, typer.Option("--metrics-host", help="Address the Prometheus endpoint listens on.")
]
OtelExporterOption = Annotated[
    str,
    typer.Option(
        "--otel-exporter",
        help="Where spans and metrics go: none, console or otlp (needs the otlp extra).",
        case_sensitive=False,
    ),
]
OtelProtocolOption = Annotated[
    str,
    typer.Option("--otel-protocol", help="OTLP transport: grpc or http/protobuf."),
]
OtelEndpointOption = Annotated[
    str | None,
    typer.Option(
        "--otel-endpoint",
        help="OTLP collector address (default: the exporter's, or OTEL_EXPORTER_OTLP_ENDPOINT).",
    ),
]
OtelSampleRatioOption = Annotated[
    float,
    typer.Option(
        "--otel-sample-ratio",
        help="Fraction of traces kept, 0 to 1, decided at enqueue (an item's processing "
        "follows it). Dead-letter, pressure, restart, escalation and replay spans are "
        "always kept.",
        min=0.0,
        max=1.0,
    ),
]
LogFormatOption = Annotated[
    str,
    typer.Option(
        "--log-format",
        help="Log lines: json (one object per line), human, or auto (human on a terminal).",
        case_sensitive=False,
    ),
]
LogFileOption = Annotated[
    Path | None,
    typer.Option("--log-file", help="Write logs to this file (rotated) instead of stderr."),
]
LogMaxBytesOption = Annotated[
    int, typer.Option("--log-max-bytes", help="Rotate the log file at this size.", min=1024)
]
LogBackupsOption = Annotated[
    int,
    typer.Option("--log-backups", help="Rotated log files kept.", min=0, max=1000),
]
ProgressIntervalOption = Annotated[
    float | None,
    typer.Option(
        "--progress-interval",
        help="Print a [progress] key=value line to stderr every S seconds.",
        min=0.001,
    ),
]

_EXPORTERS = ("none", "console", "otlp")
_PROTOCOLS = ("grpc", "http/protobuf")
_LOG_FORMATS = ("json", "human", "auto")


class TelemetryOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The values of the shared options (defaults: telemetry off, logs auto to stderr)."""

    otel_exporter: str = "none"
    otel_protocol: str = "grpc"
    otel_endpoint: str | None = None
    otel_sample_ratio: float = 1.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_format: str = "auto"
    log_file: Path | None = None
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    progress_interval: float | None = None


def options_from(values: Mapping[str, object]) -> TelemetryOptions:
    """The :class:`TelemetryOptions` among a command's parameters (pass ``locals()``):
    commands declare the shared options and hand them over without listing them twice."""
    fields = TelemetryOptions.__struct_fields__
    return TelemetryOptions(**{k: v for k, v in values.items() if k in fields})  # type: ignore[arg-type]


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    lowered = value.lower()
    if lowered not in allowed:
        fail(f"{name} must be one of {', '.join(allowed)} (got {value!r})", EXIT_BAD_INPUT)
    return lowered


@contextmanager
def telemetry_session(options: TelemetryOptions) -> Iterator[object | None]:
    """Configure logs and (unless everything is off) the OpenTelemetry SDK for a command;
    flush and shut it down at the end. Yields the ``TelemetryHandle`` or None.

    Bad option values exit 2 with a one-line message; an unusable port or log file exits 1.
    """
    exporter = _choice("--otel-exporter", options.otel_exporter, _EXPORTERS)
    protocol = _choice("--otel-protocol", options.otel_protocol, _PROTOCOLS)
    log_format = _choice("--log-format", options.log_format, _LOG_FORMATS)
    try:
        configure_logging(
            LogConfig(
                format=log_format,  # type: ignore[arg-type]
                file=None if options.log_file is None else str(options.log_file),
                max_bytes=options.log_max_bytes,
                backup_count=options.log_backups,
            )
        )
    except OSError as exc:
        fail(f"cannot open log file {options.log_file}: {exc.strerror or exc}")
    try:
        if exporter == "none" and options.metrics_port is None:
            yield None
        else:
            with _sdk(options, exporter, protocol) as handle:
                yield handle
    finally:
        reset_logging()


@contextmanager
def _sdk(options: TelemetryOptions, exporter: str, protocol: str) -> Iterator[object]:
    from runtime.telemetry import TelemetryConfig, configure_telemetry

    try:
        handle = configure_telemetry(
            TelemetryConfig(
                exporter=exporter,  # type: ignore[arg-type]
                otlp_protocol=protocol,  # type: ignore[arg-type]
                otlp_endpoint=options.otel_endpoint,
                sample_ratio=options.otel_sample_ratio,
                metrics_port=options.metrics_port,
                metrics_host=options.metrics_host,
            )
        )
    except OSError as exc:
        fail(f"cannot serve metrics on port {options.metrics_port}: {exc.strerror or exc}")
    if handle.metrics_port is not None:
        typer.echo(
            f"garrison: metrics on http://{options.metrics_host}:{handle.metrics_port}/metrics",
            err=True,
        )
    try:
        yield handle
    finally:
        handle.shutdown()


def with_telemetry(
    fn: Callable[[], Awaitable[T]], options: TelemetryOptions
) -> Callable[[], Awaitable[T]]:
    """``fn`` run inside a :func:`telemetry_session` (for a command's async body)."""

    async def traced() -> T:
        with telemetry_session(options):
            return await fn()

    return traced
