"""``garrison dlq``: list, get, replay, archive and purge dead letters."""

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
    duration,
    friendly_errors,
    iso,
    print_json,
    run_async,
    text_option,
)
from runtime.replay import ReplayReport, ReplaySelection, ReplayService, replay_config
from runtime.store import DeadLetter, DeadReason, StoreConfig, open_store

app = typer.Typer(help="Inspect and act on dead letters.", no_args_is_help=True)

ReasonOption = Annotated[
    DeadReason | None, typer.Option("--reason", help="Only this reason class.")
]


def _table(letters: list[DeadLetter]) -> None:
    table = Table(title=f"{len(letters)} dead letter(s)")
    table.add_column("id", no_wrap=True, min_width=32)
    for column in ("topic", "key", "reason", "attempts", "dead at", "replays", "error"):
        table.add_column(column)
    for d in letters:
        table.add_row(
            d.item_id,
            d.topic,
            d.key or "",
            d.reason.value,
            f"{d.attempts}/{d.max_attempts}",
            iso(d.dead_at) or "",
            str(d.replay_count),
            (d.error or "")[:60],
        )
    console().print(table)


def _texts(**options: str | None) -> None:
    for name, value in options.items():
        text_option(value, "ITEM_ID" if name == "item_id" else "--" + name.replace("_", "-"))


@app.command("list")
def list_(
    db: DbOption = None,
    topic: Annotated[str | None, typer.Option(help="Only this topic.")] = None,
    reason: ReasonOption = None,
    since: Annotated[
        str | None, typer.Option(help="Only dead letters newer than this (e.g. 3600, 2h).")
    ] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Include archived.")] = False,
    limit: Annotated[int, typer.Option(help="Most rows shown.", min=1)] = 1000,
    queue: QueueOption = "default",
    fmt: FormatOption = "table",
) -> None:
    """List dead letters, oldest first."""
    out = check_format(fmt)
    with friendly_errors():
        _texts(topic=topic, queue=queue)
        age = None if since is None else duration(since, "--since")

    async def body() -> list[DeadLetter]:
        async with open_store(db_path(db), StoreConfig(queue=queue), create=False) as store:
            start = None if age is None else store.now() - age
            return await store.dead_letters(
                topic=topic, reason=reason, since=start, include_archived=archived, limit=limit
            )

    letters = run_async(body)
    if out == "json":
        print_json(letters)
    else:
        _table(letters)


@app.command()
def get(
    item_id: Annotated[str, typer.Argument(help="Dead letter (item) id.")],
    db: DbOption = None,
    queue: QueueOption = "default",
    fmt: FormatOption = "json",
) -> None:
    """Show one dead letter with its error and traceback."""
    out = check_format(fmt)
    with friendly_errors():
        _texts(item_id=item_id, queue=queue)

    async def body() -> DeadLetter:
        async with open_store(db_path(db), StoreConfig(queue=queue), create=False) as store:
            return await store.get_dead_letter(item_id)

    letter = run_async(body)
    if out == "json":
        print_json(letter)
    else:
        _table([letter])
        if letter.traceback:
            typer.echo(letter.traceback)


@app.command()
def replay(
    item_id: Annotated[
        str | None, typer.Argument(help="One dead letter to replay (or select with options).")
    ] = None,
    db: DbOption = None,
    topic: Annotated[str | None, typer.Option(help="Select dead letters of this topic.")] = None,
    reason: ReasonOption = None,
    since: Annotated[str | None, typer.Option(help="Select those newer than (e.g. 2h).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be replayed; change nothing.")
    ] = False,
    partitions: Annotated[int, typer.Option(help="Replay workers (keyed by item key).")] = 4,
    rate: Annotated[
        float | None, typer.Option(help="Most replays per second (default: unlimited).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Most dead letters in one run.", min=1)] = 10_000,
    force: Annotated[
        bool, typer.Option("--force", help="Replay even if it was replayed before.")
    ] = False,
    queue: QueueOption = "default",
    fmt: FormatOption = "table",
) -> None:
    """Replay dead letters: one by id (prints the new id), or a selection through
    partitioned replay workers. Each dead letter replays once unless --force."""
    out = check_format(fmt)
    with friendly_errors():
        _texts(item_id=item_id, topic=topic, queue=queue)
        age = None if since is None else duration(since, "--since")
        config = replay_config(partitions=partitions, rate_per_s=rate, force=force)
    selecting = any(v is not None for v in (topic, reason, since)) or dry_run

    if item_id is not None and not selecting:

        async def one() -> str:
            async with open_store(db_path(db), StoreConfig(queue=queue), create=False) as store:
                return await store.replay(item_id, force=force)

        typer.echo(run_async(one))
        return

    async def many() -> ReplayReport:
        async with open_store(db_path(db), StoreConfig(queue=queue), create=False) as store:
            selection = ReplaySelection(
                ids=(item_id,) if item_id else (),
                topic=topic,
                reason=reason,
                since=None if age is None else store.now() - age,
                limit=limit,
            )
            return await ReplayService(store, config).run(selection, dry_run=dry_run)

    report = run_async(many)
    if out == "json":
        print_json(report)
    else:
        table = Table(title=("dry run: " if report.dry_run else "") + "replay")
        for column in ("id", "key", "status", "new id", "detail"):
            table.add_column(column, no_wrap=column in ("id", "new id"))
        for o in report.outcomes:
            table.add_row(o.item_id, o.key or "", o.status, o.new_item_id or "", o.detail or "")
        console().print(table)
        typer.echo(
            f"selected={report.selected} replayed={report.replayed} skipped={report.skipped} "
            f"missing={report.missing} failed={report.failed}"
        )
    if report.failed:
        raise typer.Exit(1)


@app.command()
def archive(
    item_id: Annotated[str, typer.Argument(help="Dead letter (item) id.")],
    db: DbOption = None,
    queue: QueueOption = "default",
) -> None:
    """Archive a dead letter (kept until purged)."""
    with friendly_errors():
        _texts(item_id=item_id, queue=queue)

    async def body() -> None:
        async with open_store(db_path(db), StoreConfig(queue=queue), create=False) as store:
            await store.archive(item_id)

    run_async(body)
    typer.echo(f"archived {item_id}")


@app.command()
def purge(
    db: DbOption = None,
    older_than: Annotated[
        str, typer.Option(help="Only those archived longer ago than this (e.g. 86400, 7d).")
    ] = "0",
    include_live: Annotated[
        bool, typer.Option("--include-live", help="Also purge dead letters not archived.")
    ] = False,
    queue: QueueOption = "default",
) -> None:
    """Delete archived dead letters older than --older-than; prints the count."""
    with friendly_errors():
        _texts(queue=queue)
        age = duration(older_than, "--older-than", allow_zero=True)

    async def body() -> int:
        async with open_store(db_path(db), StoreConfig(queue=queue), create=False) as store:
            return await store.purge_dead_letters(age, include_live=include_live)

    typer.echo(f"purged {run_async(body)}")
