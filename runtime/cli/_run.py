"""``garrison run MODULE:FACTORY``: run a service's pipeline until signalled."""

from __future__ import annotations

import inspect
import os
import sys
from typing import Annotated

import typer

from runtime._errors import ValidationFailed
from runtime.cli._common import DbOption, QueueOption, db_path, friendly_errors, run_async
from runtime.cli._telemetry_cli import (
    LogBackupsOption,
    LogFileOption,
    LogFormatOption,
    LogMaxBytesOption,
    MetricsHostOption,
    MetricsPortOption,
    OtelEndpointOption,
    OtelExporterOption,
    OtelProtocolOption,
    OtelSampleRatioOption,
    options_from,
    with_telemetry,
)
from runtime.pipeline import Pipeline
from runtime.store import StoreConfig, Synchronous, open_store
from runtime.worker import load_callable, run_until_signalled


def run(
    factory: Annotated[
        str, typer.Argument(help="MODULE:FACTORY; FACTORY(store) returns a Pipeline.")
    ],
    db: DbOption = None,
    synchronous: Annotated[
        Synchronous, typer.Option(help="SQLite synchronous level.")
    ] = Synchronous.NORMAL,
    queue: QueueOption = "default",
    drain: Annotated[
        bool,
        typer.Option("--drain", help="Exit 0 once every item is finished (nothing waiting)."),
    ] = False,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "127.0.0.1",
    otel_exporter: OtelExporterOption = "none",
    otel_protocol: OtelProtocolOption = "grpc",
    otel_endpoint: OtelEndpointOption = None,
    otel_sample_ratio: OtelSampleRatioOption = 1.0,
    log_format: LogFormatOption = "auto",
    log_file: LogFileOption = None,
    log_max_bytes: LogMaxBytesOption = 10 * 1024 * 1024,
    log_backups: LogBackupsOption = 5,
) -> None:
    """Run the pipeline a service declares. SIGINT/SIGTERM stop intake and drain in-flight
    items (up to the pipeline's drain timeout); a second signal stops at once.

    With --drain it stops by itself once no item is waiting, scheduled or leased.

    Exit codes: 0 drained, 3 drain deadline passed, 130 forced, 1 the supervision tree
    gave up (the reason is printed).
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    with friendly_errors():
        build = load_callable(factory, "factory")

    async def body() -> int:
        async with open_store(db_path(db), StoreConfig(queue=queue, synchronous=synchronous)) as s:
            pipeline = build(s)
            if inspect.isawaitable(pipeline):
                pipeline = await pipeline
            if not isinstance(pipeline, Pipeline):
                raise ValidationFailed(
                    f"factory {factory!r} returned {type(pipeline).__name__}, not a Pipeline",
                    field="factory",
                )
            if drain:
                pipeline.stop_when_drained()
            return await run_until_signalled(pipeline)

    telemetry = options_from(locals())
    raise typer.Exit(run_async(with_telemetry(body, telemetry)))
