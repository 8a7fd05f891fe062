"""``garrison health``: is the database usable, is there room, is work succeeding?"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from runtime.cli._common import (
    DbOption,
    FormatOption,
    QueueOption,
    check_format,
    console,
    db_path,
    friendly_errors,
    iso,
    print_json,
    run_async,
)
from runtime.ops import MB, HealthConfig, HealthReport, check_health
from runtime.store import StoreConfig, open_store


def health(
    db: DbOption = None,
    queue: QueueOption = "default",
    fmt: FormatOption = "table",
    disk_warn_mb: Annotated[
        int, typer.Option(help="Warn when the database's disk has less free space (MB).", min=0)
    ] = 1024,
    disk_critical_mb: Annotated[
        int, typer.Option(help="Critical below this much free space (MB).", min=0)
    ] = 512,
    memory_warn_mb: Annotated[
        int, typer.Option(help="Warn when less memory is available (MB).", min=0)
    ] = 256,
    alert_failure_threshold: Annotated[
        int, typer.Option(help="Warn when retries + dead letters in the window exceed it.", min=0)
    ] = 5,
    metrics_window_hours: Annotated[
        float, typer.Option(help="Window of the failure count, in hours.", min=0.001)
    ] = 24.0,
    stale_after: Annotated[
        float, typer.Option(help="Warn when a topic's last success is older (seconds).", min=1)
    ] = 24 * 3600.0,
) -> None:
    """Check the database (read and write), disk space, memory, the last success of each
    topic and recent failures. Exit code: 0 ok, 1 warn, 2 critical."""
    out = check_format(fmt)
    with friendly_errors():
        config = HealthConfig(
            disk_warn_bytes=disk_warn_mb * MB,
            disk_critical_bytes=disk_critical_mb * MB,
            memory_warn_bytes=memory_warn_mb * MB,
            alert_failure_threshold=alert_failure_threshold,
            metrics_window_hours=metrics_window_hours,
            stale_after_s=stale_after,
        )
    path = db_path(db)

    async def body() -> HealthReport:
        try:
            async with open_store(path, StoreConfig(queue=queue), create=False) as store:
                return await check_health(store, path, config)
        except Exception as exc:  # the report says why; health never shows a traceback
            return await check_health(None, path, config, store_error=exc)

    report = run_async(body)
    if out == "json":
        print_json(report)
    else:
        _table(report)
    raise typer.Exit(report.exit_code)


def _table(report: HealthReport) -> None:
    table = Table(title=f"health: {report.status}")
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail")
    for check in report.checks:
        table.add_row(check.name, check.status, check.message)
        if check.name == "last_success":
            for topic, info in check.data.get("topics", {}).items():
                table.add_row(
                    f"  {topic}",
                    "",
                    f"last success {iso(info['last_success_at'])}, {info['staleness_s']:g} s ago",
                )
    console().print(table)
