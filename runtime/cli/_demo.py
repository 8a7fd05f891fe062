"""``garrison demo``: the README's main job on the embedded SQLite default."""

from __future__ import annotations

from typing import Annotated

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
from runtime.demo import DemoProgress, DemoReport, run_demo


def _live_table(p: DemoProgress) -> Table:
    table = Table(title=f"garrison demo — {p.elapsed_s:5.1f} s")
    for column in ("enqueued", "succeeded", "failed attempts", "in flight", "waiting", "dead"):
        table.add_column(column, justify="right")
    table.add_row(
        str(p.enqueued),
        str(p.succeeded),
        str(p.failed),
        str(p.in_flight),
        str(p.depth.get("enqueued", 0) + p.depth.get("retry_scheduled", 0)),
        str(p.depth.get("dead_lettered", 0)),
    )
    return table


def _report_table(r: DemoReport) -> Table:
    table = Table(title="reconciliation: enqueued = succeeded + dead-lettered")
    table.add_column("")
    table.add_column("items", justify="right")
    table.add_row("enqueued", str(r.enqueued))
    table.add_row("succeeded", str(r.succeeded))
    table.add_row("dead-lettered", str(r.dead_lettered))
    for reason, count in r.dead_letters_by_reason.items():
        table.add_row(f"  reason {reason}", str(count))
    table.add_row("retries scheduled", str(r.retries))
    table.add_row("unaccounted", str(r.unaccounted), style="bold red" if r.unaccounted else None)
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
) -> None:
    """Run a worker on the embedded SQLite queue with injected faults (flaky, poison,
    hanging handlers), then reconcile: every item must be succeeded or dead-lettered.
    Exits 1 if anything is unaccounted for."""
    out = check_format(fmt)
    live_console = Console(stderr=out == "json")
    live_view = live_console.is_terminal
    path = db_path(db)

    async def body() -> DemoReport:
        if not live_view:
            return await run_demo(path, items=items, duration_s=duration, seed=seed)
        with Live(console=live_console, refresh_per_second=8) as live:
            return await run_demo(
                path,
                items=items,
                duration_s=duration,
                seed=seed,
                on_progress=lambda p: live.update(_live_table(p)),
            )

    report = run_async(body)
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
