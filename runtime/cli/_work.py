"""``garrison work``: run a handler on leased items until stopped or drained.

It runs the one engine, :class:`runtime.pipeline.Pipeline` (root supervisor, intake,
one worker partition per unit of concurrency, settler, lease keeper, pressure monitor),
configured from the options through :class:`runtime.worker.WorkerConfig`.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import msgspec
import typer

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
    ProgressIntervalOption,
    options_from,
    with_telemetry,
)
from runtime.pipeline import Pipeline, is_async, load_handler
from runtime.store import StoreConfig, Synchronous, open_store
from runtime.worker import run_until_signalled, worker_config
from supervisors import LoopWatchConfig

ASYNC_CONCURRENCY = 8
"""``--concurrency`` for an async handler when not given."""


def work(
    handler: Annotated[
        str,
        typer.Option(help="MODULE:FUNC called as FUNC(item) or FUNC(item, ctx); sync or async."),
    ],
    db: DbOption = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Items handled at once (one worker partition each). Default: 8 for an async"
            " handler; --threads for a sync one (each of its items holds a thread throughout,"
            " so fewer partitions would leave threads idle: a sync no-op drains ~1.6x faster"
            " at 32 than at 8).",
            min=1,
            max=10_000,
        ),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            help="Threads sync handlers run on (at most this many at once; suits I/O-bound"
            " handlers, CPU-bound ones gain nothing past one per core)."
        ),
    ] = 32,
    let_it_crash: Annotated[
        bool,
        typer.Option(
            "--let-it-crash",
            help="A handler exception fails the item and restarts its worker partition.",
        ),
    ] = False,
    loop_watch: Annotated[
        float,
        typer.Option(
            help="Report (log with the loop's stack, span, counter) an event loop blocked "
            "this many seconds, e.g. by a sync call in an async handler; 0 turns it off.",
            min=0.0,
            max=3600.0,
        ),
    ] = 1.0,
    lease_seconds: Annotated[float, typer.Option(help="Lease length in seconds.")] = 30.0,
    lease_batch: Annotated[
        int,
        typer.Option(
            help="Most items per lease call, and how many are leased ahead of the handlers"
            " (fewer round trips per item; lower it to spread slow items over processes)."
        ),
    ] = 256,
    drain: Annotated[
        bool, typer.Option("--drain", help="Exit 0 once every item is finished.")
    ] = False,
    handler_timeout: Annotated[
        float | None, typer.Option(help="Seconds before a handler call fails as a timeout.")
    ] = None,
    shutdown_timeout: Annotated[
        float, typer.Option(help="Seconds in-flight items get to finish after a signal.")
    ] = 30.0,
    poll_interval: Annotated[
        float,
        typer.Option(
            help="When idle, how soon another process's enqueue is seen (seconds); an"
            " enqueue in this process wakes the worker at once."
        ),
    ] = 0.2,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", help="Only these topics (repeatable).")
    ] = None,
    max_attempts: Annotated[
        int,
        typer.Option(help="Default attempts for items that do not set theirs.", min=1, max=1000),
    ] = 5,
    synchronous: Annotated[
        Synchronous, typer.Option(help="SQLite synchronous level.")
    ] = Synchronous.NORMAL,
    queue: QueueOption = "default",
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
    progress_interval: ProgressIntervalOption = None,
) -> None:
    """Run HANDLER on leased items. SIGINT/SIGTERM stop leasing and let in-flight items
    finish (up to --shutdown-timeout); a second signal stops at once.

    Exit codes: 0 done (or drained), 3 shutdown deadline passed, 130 forced stop, 1 the
    supervision tree gave up (with --let-it-crash, past its restart intensity).
    """
    from policies import RetryPolicy

    if str(handler).strip() == "":
        raise typer.BadParameter("--handler is required")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    # Like other runners (uvicorn, celery), resolve the service's modules from where it runs.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    with friendly_errors():
        fn = load_handler(handler)
        if concurrency is None:
            # Clamped: an out-of-bounds --threads is reported as such, just below.
            concurrency = ASYNC_CONCURRENCY if is_async(fn) else max(1, min(threads, 10_000))
        config = worker_config(
            concurrency=concurrency,
            lease_s=lease_seconds,
            lease_batch=lease_batch,
            poll_interval_s=poll_interval,
            handler_timeout_s=handler_timeout,
            shutdown_timeout_s=shutdown_timeout,
            drain=drain,
            topics=tuple(topic or ()),
            progress_interval_s=progress_interval,
            threads=threads,
            let_it_crash=let_it_crash,
        ).pipeline_config()
        if loop_watch > 0:
            watch = LoopWatchConfig(threshold_s=loop_watch, interval_s=min(0.1, loop_watch / 4))
            config = msgspec.structs.replace(config, loop_watch=watch)
        store_config = StoreConfig(
            queue=queue,
            synchronous=synchronous,
            retry=RetryPolicy(max_attempts=max_attempts),
        )

    async def body() -> int:
        async with open_store(db_path(db), store_config) as store:
            pipeline = Pipeline(store, fn, config=config, name="work")
            return await run_until_signalled(pipeline)

    telemetry = options_from(locals())
    code = run_async(with_telemetry(body, telemetry))
    raise typer.Exit(code)
