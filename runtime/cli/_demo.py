"""``garrison demo``: the README's main job on the embedded SQLite default."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from runtime.cli._common import (
    DbOption,
    FormatOption,
    check_format,
    console,
    db_path,
    print_json,
    run_async,
)
from runtime.cli._telemetry_cli import (
    LogFileOption,
    LogFormatOption,
    MetricsHostOption,
    MetricsPortOption,
    OtelEndpointOption,
    OtelExporterOption,
    OtelProtocolOption,
    OtelSampleRatioOption,
    options_from,
    with_telemetry,
)
from runtime.demo import DemoReport, run_demo
from runtime.pipeline import PipelineStatistics


def _live_table(p: PipelineStatistics, elapsed: float) -> Table:
    table = Table(title=f"garrison demo — {elapsed:5.1f} s")
    for column in (
        "leased",
        "succeeded",
        "failed",
        "dead",
        "shed",
        "rejected",
        "in flight",
        "queue",
        "intake",
        "restarts",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        str(p.leased),
        str(p.succeeded),
        str(p.failed),
        str(p.dead_lettered),
        str(p.shed),
        str(p.rejected),
        f"{p.in_flight}/{p.capacity}",
        p.queue_level.value,
        p.intake_level.value,
        f"{p.worker_restarts} ({p.worker_hangs} hang)",
    )
    return table


def _report_table(r: DemoReport) -> Table:
    table = Table(title="reconciliation: enqueued = succeeded + dead-lettered + shed")
    table.add_column("")
    table.add_column("items", justify="right")
    table.add_row("enqueued", str(r.enqueued))
    table.add_row("succeeded", str(r.succeeded))
    table.add_row("dead-lettered", str(r.dead_lettered))
    table.add_row("shed", str(r.shed))
    for reason, count in r.dead_letters_by_reason.items():
        table.add_row(f"  dead letters: {reason}", str(count))
    table.add_row("unaccounted", str(r.unaccounted), style="bold red" if r.unaccounted else None)
    table.add_row("rejected submissions (never enqueued)", str(r.rejected_submissions))
    for reason, count in r.restarts_by_reason.items():
        table.add_row(f"worker restarts: {reason}", str(count))
    table.add_row("pressure transitions", str(len(r.pressure_transitions)))
    for transition in r.pressure_transitions[:6]:
        table.add_row("  pressure", transition)
    if len(r.pressure_transitions) > 6:
        table.add_row("  pressure", f"... {len(r.pressure_transitions) - 6} more (garrison events)")
    table.add_row("max queue depth", str(r.max_queue_depth))
    table.add_row("throughput", f"{r.items_per_s} items/s over {r.elapsed_s} s")
    return table


def demo(
    db: DbOption = None,
    items: Annotated[int, typer.Option(help="Items to enqueue.", min=1, max=1_000_000)] = 3000,
    duration: Annotated[
        float, typer.Option(help="Seconds the run may take (it ends sooner when done).", min=1)
    ] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of the fault plan.")] = 7,
    fmt: FormatOption = "table",
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "127.0.0.1",
    otel_exporter: OtelExporterOption = "none",
    otel_protocol: OtelProtocolOption = "grpc",
    otel_endpoint: OtelEndpointOption = None,
    otel_sample_ratio: OtelSampleRatioOption = 1.0,
    log_format: LogFormatOption = "auto",
    log_file: LogFileOption = None,
) -> None:
    """Run a supervised pipeline on the embedded SQLite queue under injected faults
    (crashing and hanging handlers, a failing and a timing-out sink, a burst into critical
    pressure), then reconcile: enqueued = succeeded + dead-lettered + shed. Exits 1 if
    anything is unaccounted for or the drain did not complete."""
    out = check_format(fmt)
    live_console = Console(stderr=out == "json")
    live_view = live_console.is_terminal
    path = db_path(db)

    async def body() -> DemoReport:
        if not live_view:
            return await run_demo(path, items=items, duration_s=duration, seed=seed)
        with Live(console=live_console, refresh_per_second=8) as live, _logs_above(live):
            return await run_demo(
                path,
                items=items,
                duration_s=duration,
                seed=seed,
                on_progress=lambda p, t: live.update(_live_table(p, t)),
            )

    telemetry = options_from(locals())
    report = run_async(with_telemetry(body, telemetry))
    if out == "json":
        print_json({**{f: getattr(report, f) for f in report.__struct_fields__}, "ok": report.ok})
    else:
        console().print(_report_table(report))
        typer.echo(
            f"next: garrison dlq list --db {path}   |   "
            f"garrison queue-metrics --db {path} --since 300"
        )
    if not report.ok:
        raise typer.Exit(1)


@contextlib.contextmanager
def _logs_above(live: Live) -> Iterator[None]:
    """Print log lines above the live table, never into it.

    Rich's ``Live`` swaps ``sys.stdout``/``sys.stderr`` for proxies that print above the
    live region, but logging's stream handlers keep the stream they were given at
    set-up: point them at the proxies while the table is live, and back afterwards.
    """
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    originals = {id(sys.__stderr__): sys.stderr, id(sys.__stdout__): sys.stdout}
    handlers = logging.getLogger().handlers + logging.getLogger("garrison").handlers
    for handler in handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            proxy = originals.get(id(handler.stream))
            if proxy is not None and proxy is not handler.stream:
                swapped.append((handler, handler.setStream(proxy)))
    try:
        yield
    finally:
        for handler, stream in swapped:
            handler.setStream(stream)
        live.refresh()
