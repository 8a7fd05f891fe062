"""``garrison backup``, ``backups`` and ``restore``.

Exit codes: 0 ok; 1 refused (a backup that does not verify, a database in use, an unusable
store) or, for ``backups``, a backup in the folder that does not verify; 2 bad input.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from runtime.cli._common import (
    DbOption,
    FormatOption,
    check_format,
    console,
    db_path,
    iso,
    print_json,
)
from runtime.cli._ops_common import ops_errors
from runtime.ops import DEFAULT_RETENTION_DAYS, BackupStatus, backup, list_backups, restore

DestOption = Annotated[Path, typer.Option("--dest", help="Folder of the backups.")]


def backup_command(
    db: DbOption = None,
    dest: DestOption = Path("backups"),
    backup_retention_days: Annotated[
        float,
        typer.Option(
            "--backup-retention-days",
            help="Remove this database's Garrison backups older than this many days.",
            min=0,
        ),
    ] = DEFAULT_RETENTION_DAYS,
    prune: Annotated[bool, typer.Option(help="Apply backup retention after the backup.")] = True,
    fmt: FormatOption = "table",
) -> None:
    """Copy the database while workers run (one consistent snapshot), write a SHA-256
    manifest next to it (both mode 0600), then remove this database's backups older than
    --backup-retention-days (only Garrison backups with a manifest, never another file)."""
    out = check_format(fmt)
    term = Console(stderr=True)
    with (
        Progress(
            TextColumn("backup"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=term,
            disable=not term.is_terminal,
            transient=True,
        ) as progress,
        ops_errors(),
    ):
        task = progress.add_task("backup", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = backup(
            db_path(db),
            dest,
            now=time.time(),
            retention_days=backup_retention_days if prune else None,
            progress=advance,
        )
    if out == "json":
        print_json(result)
        return
    m = result.manifest
    typer.echo(f"backup {result.backup} ({m.size} bytes, sha256 {m.sha256})")
    typer.echo(f"manifest {result.manifest_path}")
    for path in result.pruned:
        typer.echo(f"removed old backup {path}")


def backups_command(dest: DestOption = Path("backups"), fmt: FormatOption = "table") -> None:
    """List the backups in a folder, oldest first, with time, size and whether each one's
    checksum matches its manifest. Exit code 1 if any does not verify."""
    out = check_format(fmt)
    with ops_errors():
        found = list_backups(dest)
    bad = [b for b in found if b.status is not BackupStatus.OK]
    if out == "json":
        print_json([_info_dict(b) for b in found])
    else:
        table = Table(title=f"{len(found)} backup(s) in {dest}")
        for column in ("backup", "created", "size", "checksum", "sha256"):
            table.add_column(column, overflow="fold")
        for b in found:
            table.add_row(
                b.name,
                iso(b.created_at) or "",
                str(b.size),
                b.status.value,
                (b.sha256 or "")[:16],
            )
        console().print(table)
    raise typer.Exit(1 if bad else 0)


def restore_command(
    backup_file: Annotated[
        Path, typer.Argument(metavar="BACKUP", help="The backup file to restore.")
    ],
    db: DbOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace even a file that is not a Garrison database (kept as <db>.pre-restore).",
        ),
    ] = False,
    fmt: FormatOption = "table",
) -> None:
    """Replace the database with a backup: verify the backup's checksum and integrity,
    refuse while a worker has the database open, keep the old file as <db>.pre-restore,
    then reopen to confirm. A backup that does not verify is refused and nothing changes."""
    out = check_format(fmt)
    with ops_errors():
        result = restore(backup_file, db_path(db), force=force)
    if out == "json":
        print_json(result)
        return
    typer.echo(f"restored {result.backup} into {result.db} (sha256 {result.sha256})")
    if result.pre_restore:
        typer.echo(f"the replaced database is kept as {result.pre_restore}")
    typer.echo("rows: " + ", ".join(f"{t} {n}" for t, n in result.rows.items()))


def _info_dict(info: Any) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(info)
    data.pop("manifest", None)
    data["created"] = iso(info.created_at)
    return data
