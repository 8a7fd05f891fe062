"""``garrison doctor``, ``db-stats``, ``maintenance``, ``purge`` and ``diagnostics``.

Exit codes: 0 ok; 1 findings that need action (doctor) or an unusable store; 2 bad input.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from policies import RetentionPolicy
from runtime.cli._common import (
    EXIT_BAD_INPUT,
    BusyTimeoutOption,
    DbOption,
    FormatOption,
    QueueOption,
    check_format,
    console,
    db_path,
    fail,
    print_json,
    run_async,
)
from runtime.cli._ops_common import ops_errors
from runtime.ops import (
    MB,
    DbStats,
    DoctorConfig,
    PurgeReport,
    Severity,
    build_bundle,
    db_stats,
    default_bundle_name,
    diagnose,
    format_age,
    maintain,
    parse_age,
    purge,
)
from runtime.time_parse import parse_since

_DEFAULT = RetentionPolicy()
_SUCCEEDED_AGE = format_age(_DEFAULT.succeeded_s)
_ARCHIVED_AGE = format_age(_DEFAULT.archived_s)
_DEAD_LETTERS_AGE = format_age(_DEFAULT.dead_letters_s)
_AUDIT_AGE = format_age(_DEFAULT.audit_s)

SucceededOption = Annotated[
    str,
    typer.Option(help="Succeeded items finished longer ago than this (e.g. 7d; 'never')."),
]
ArchivedOption = Annotated[
    str, typer.Option(help="Archived dead letters archived longer ago than this ('never').")
]
DeadLettersOption = Annotated[
    str,
    typer.Option(
        help="Live (not archived) dead letters older than this; by default never: they are "
        "work still owed."
    ),
]
AuditOption = Annotated[str, typer.Option(help="Audit rows older than this ('never').")]


def retention_policy(
    succeeded: str, archived: str, dead_letters: str, audit: str
) -> RetentionPolicy:
    """The :class:`RetentionPolicy` the retention options select.

    Raises:
        ValidationFailed: an age is not a duration.
    """
    return RetentionPolicy(
        succeeded_s=parse_age(succeeded),
        archived_s=parse_age(archived),
        dead_letters_s=parse_age(dead_letters),
        audit_s=parse_age(audit),
    )


def doctor(
    db: DbOption = None,
    full: Annotated[
        bool, typer.Option("--full", help="Run integrity_check (every page) not quick_check.")
    ] = False,
    checkpoint: Annotated[
        bool, typer.Option(help="Run a passive WAL checkpoint first and report its frames.")
    ] = True,
    stuck_after: Annotated[
        str, typer.Option(help="A ready item waiting longer than this is stuck.")
    ] = "1h",
    dlq_window: Annotated[str, typer.Option(help="Window of the dead-letter growth check.")] = "1h",
    dlq_threshold: Annotated[
        int, typer.Option(help="Warn when more dead letters than this arrived in the window.")
    ] = 10,
    succeeded_older_than: SucceededOption = _SUCCEEDED_AGE,
    archived_older_than: ArchivedOption = _ARCHIVED_AGE,
    dead_letters_older_than: DeadLettersOption = _DEAD_LETTERS_AGE,
    audit_older_than: AuditOption = _AUDIT_AGE,
    max_page_count: Annotated[
        int | None,
        typer.Option(help="The size cap (pages) the stores run with, if any.", min=1),
    ] = None,
    disk_warn_mb: Annotated[
        int,
        typer.Option(
            help="Warn under this much free disk (MB).", min=0, envvar="GARRISON_DISK_WARN_MB"
        ),
    ] = 1024,
    disk_critical_mb: Annotated[
        int,
        typer.Option(
            help="Critical under this much free disk (MB).",
            min=0,
            envvar="GARRISON_DISK_CRITICAL_MB",
        ),
    ] = 512,
    backups: Annotated[
        Path, typer.Option(help="Backup folder; a corrupt database's fix names its newest backup.")
    ] = Path("backups"),
    fail_on: Annotated[
        str,
        typer.Option(
            help="Exit 1 on findings this severe or worse: warning, critical, or never "
            "(report only).",
            case_sensitive=False,
        ),
    ] = "warning",
    busy_timeout: BusyTimeoutOption = 5.0,
    fmt: FormatOption = "table",
) -> None:
    """Check the database: WAL checkpoint, integrity, schema and indexes, foreign keys,
    expired leases, stuck items, rows past retention, dead-letter growth, disk space.

    Each finding has a severity (ok, info, warning, critical) and the command that fixes it.
    Exit code: 0 nothing to do, 1 a warning or critical finding (see --fail-on), 2 bad input.
    """
    out = check_format(fmt)
    threshold = fail_on.lower()
    if threshold not in ("warning", "critical", "never"):
        fail(f"--fail-on must be warning, critical or never (got {fail_on!r})", EXIT_BAD_INPUT)
    path = db_path(db)
    with ops_errors():
        config = DoctorConfig(
            full=full,
            checkpoint=checkpoint,
            stuck_after_s=parse_since(stuck_after),
            dead_letter_window_s=parse_since(dlq_window),
            dead_letter_growth=dlq_threshold,
            retention=retention_policy(
                succeeded_older_than, archived_older_than, dead_letters_older_than, audit_older_than
            ),
            max_page_count=max_page_count,
            disk_warn_bytes=disk_warn_mb * MB,
            disk_critical_bytes=disk_critical_mb * MB,
            backups=str(backups),
            busy_timeout_s=busy_timeout,
        )
        report = diagnose(path, config, now=time.time())
    if out == "json":
        print_json(report)
    else:
        table = Table(title=f"doctor {path}: {report.status}")
        for column in ("check", "severity", "finding", "fix"):
            table.add_column(column, overflow="fold")
        for f in report.findings:
            table.add_row(f.check, f.severity.value, f.message, f.fix or "")
        console().print(table)
    failing = threshold != "never" and report.status.rank >= Severity(threshold).rank
    raise typer.Exit(1 if failing else 0)


def db_stats_command(db: DbOption = None, fmt: FormatOption = "table") -> None:
    """Page count, free pages, file and WAL sizes, rows per table and items per state."""
    out = check_format(fmt)
    with ops_errors():
        stats = db_stats(db_path(db))
    if out == "json":
        print_json(stats)
    else:
        print_stats(stats)


def print_stats(stats: DbStats, title: str | None = None) -> None:
    """db-stats as tables."""
    table = Table(title=title or f"db-stats {stats.path}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name in (
        "file_bytes",
        "wal_bytes",
        "page_size",
        "page_count",
        "freelist_count",
        "journal_mode",
        "schema_version",
    ):
        table.add_row(name, str(getattr(stats, name)))
    for name, n in stats.rows.items():
        table.add_row(f"rows {name}", str(n))
    for queue, states in stats.items.items():
        for state, n in states.items():
            table.add_row(f"items {queue} {state}", str(n))
    for queue, kinds in stats.dead_letters.items():
        for kind, n in kinds.items():
            table.add_row(f"dead letters {queue} {kind}", str(n))
    console().print(table)


def maintenance(
    db: DbOption = None,
    vacuum: Annotated[
        bool,
        typer.Option(
            "--vacuum",
            help="Also VACUUM: returns free pages to the disk; blocks writers while it runs and "
            "needs free space about the database's size.",
        ),
    ] = False,
    busy_timeout: BusyTimeoutOption = 5.0,
    fmt: FormatOption = "table",
) -> None:
    """Routine upkeep, safe while workers run: reclaim expired leases, recreate missing
    indexes, repair dangling foreign keys, ANALYZE, PRAGMA optimize, optional VACUUM, and
    a WAL checkpoint. Prints db-stats before and after."""
    out = check_format(fmt)
    with ops_errors():
        result = maintain(db_path(db), vacuum=vacuum, busy_timeout_s=busy_timeout)
    if out == "json":
        print_json(result)
        return
    reclaimed = sum(result.reclaimed_leases.values())
    typer.echo(
        f"maintenance done: {reclaimed} expired lease(s) reclaimed, "
        f"{len(result.indexes_created)} index(es) recreated, "
        f"{sum(result.foreign_keys_repaired.values())} foreign key(s) repaired, "
        f"ANALYZE and optimize run{', VACUUM run' if result.vacuumed else ''}; "
        f"pages {result.before.page_count} -> {result.after.page_count}, "
        f"free pages {result.before.freelist_count} -> {result.after.freelist_count}, "
        f"WAL {result.before.wal_bytes} -> {result.after.wal_bytes} bytes"
    )
    print_stats(result.after, "db-stats after maintenance")


def purge_command(
    db: DbOption = None,
    succeeded_older_than: SucceededOption = _SUCCEEDED_AGE,
    archived_older_than: ArchivedOption = _ARCHIVED_AGE,
    dead_letters_older_than: DeadLettersOption = _DEAD_LETTERS_AGE,
    audit_older_than: AuditOption = _AUDIT_AGE,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be purged; change nothing.")
    ] = False,
    busy_timeout: BusyTimeoutOption = 5.0,
    queue: QueueOption = "default",
    fmt: FormatOption = "table",
) -> None:
    """Retention purge: delete succeeded items, archived (and, if asked, live) dead letters
    and audit rows past their ages. Every deletion is audited."""
    out = check_format(fmt)
    with ops_errors():
        policy = retention_policy(
            succeeded_older_than, archived_older_than, dead_letters_older_than, audit_older_than
        )

    async def body() -> PurgeReport:
        return await purge(
            db_path(db), policy, queue=queue, dry_run=dry_run, busy_timeout_s=busy_timeout
        )

    report = run_async(body)
    if out == "json":
        print_json({**_struct_dict(report), "total": report.total})
        return
    verb = "would purge" if dry_run else "purged"
    typer.echo(
        f"{verb} {report.total} row(s) from queue {report.queue}: {report.succeeded} succeeded "
        f"item(s), {report.dead_letters} dead letter(s), {report.audit} audit row(s)"
    )


def diagnostics(
    db: DbOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Zip file to write (default: ./garrison-diagnostics-<time>.zip)."
        ),
    ] = None,
    log_file: Annotated[
        list[Path] | None,
        typer.Option("--log-file", help="A log file to include the tail of (repeatable)."),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config-file", help="A service config file (JSON/TOML) to include."),
    ] = None,
    events: Annotated[int, typer.Option(help="Most recent audit events included.", min=0)] = 1000,
    since: Annotated[str, typer.Option(help="Window of the queue metrics.")] = "1h",
    redact: Annotated[
        list[str] | None,
        typer.Option(
            "--redact",
            help="Also hide values under this name (repeatable; adds to $GARRISON_REDACT).",
        ),
    ] = None,
    fmt: FormatOption = "table",
) -> None:
    """Write a zip for a support ticket: doctor, metrics, db-stats, recent events and logs,
    configuration (secrets redacted), versions and platform. Exit 0 once it is written."""
    fmt_out = check_format(fmt)
    now = time.time()
    with ops_errors():
        result = build_bundle(
            db_path(db),
            out or default_bundle_name(now),
            now=now,
            log_files=log_file or [],
            config_file=config_file,
            events_limit=events,
            since_s=parse_since(since),
            redact_names=redact or [],
        )
    if fmt_out == "json":
        print_json(result)
        return
    typer.echo(
        f"wrote {result.path} ({len(result.files)} files; doctor: {result.doctor_status}; "
        f"{len(result.errors)} part(s) could not be gathered)"
    )
    for name, error in result.errors.items():
        typer.echo(f"  {name}: {error}")


def _struct_dict(value: Any) -> dict[str, Any]:
    import msgspec

    data: dict[str, Any] = msgspec.to_builtins(value)
    return data


__all__ = [
    "db_stats_command",
    "diagnostics",
    "doctor",
    "maintenance",
    "purge_command",
]
