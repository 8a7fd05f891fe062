"""``garrison top``: the live terminal view of a queue."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from runtime.cli._common import DbOption, QueueOption, db_path, friendly_errors
from runtime.store import StoreConfig, open_store


def top(
    db: DbOption = None,
    queue: QueueOption = "default",
    refresh: Annotated[
        float,
        typer.Option("--refresh", help="Seconds between reads of the database (0.5 to 60)."),
    ] = 2.0,
    window: Annotated[
        float,
        typer.Option(
            "--window", help="Seconds the rates, failures and wait are computed over (>= 1)."
        ),
    ] = 60.0,
    dead_letters: Annotated[
        int,
        typer.Option("--dead-letters", help="Most dead letters listed, newest first (1 to 1000)."),
    ] = 200,
) -> None:
    """A live view of a queue: depth, throughput, waits, pressure, topics and dead letters.

    Reads the database (--db); writes only a replay or archive you confirm. Keys: ? help.

    No --url mode yet: the ops HTTP API it would read does not exist so far.
    """
    with friendly_errors():
        # textual costs ~0.15 s to import: only the command that draws pays it.
        from runtime.tui import TopApp, TopConfig

        config = TopConfig(refresh_s=refresh, window_s=window, dead_letter_rows=dead_letters)
        path = db_path(db)

        async def body() -> None:
            async with open_store(path, StoreConfig(queue=queue), create=False) as store:
                await TopApp(store, config, queue=queue, source=str(path)).run_async()

        # textual runs on asyncio; the store's API is anyio and works there as on Trio.
        asyncio.run(body())
