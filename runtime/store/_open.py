"""``open_store``: a store for an ``async with`` block, on SQLite or in memory."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from os import PathLike

import anyio

from runtime.store._bridge import in_thread, wait_future
from runtime.store._config import StoreConfig
from runtime.store._front import QueueStore
from runtime.store._memory_store import MemoryStore
from runtime.store._sqlite_store import SQLiteStore

#: The path that opens the in-memory reference backend instead of a SQLite file.
MEMORY_URL = "memory://"


@asynccontextmanager
async def open_store(
    path: str | PathLike[str],
    config: StoreConfig | None = None,
    *,
    create: bool = True,
    clock: Callable[[], float] = time.time,
    rand: Callable[[], float] = random.random,
) -> AsyncIterator[QueueStore]:
    """Open a store for the duration of an ``async with`` block; close it on exit.

    ``path`` is a SQLite database file, or ``"memory://"`` for a new, empty in-memory
    store (:class:`MemoryStore`; nothing survives the block). The store is closed on exit
    even when the block is cancelled.

    Raises what :meth:`SQLiteStore.open` raises.
    """
    store: QueueStore
    if isinstance(path, str) and path == MEMORY_URL:
        store = MemoryStore.open(None, config, clock=clock, rand=rand)
    else:
        store = await wait_future(
            in_thread(
                functools.partial(
                    SQLiteStore.open, path, config, create=create, clock=clock, rand=rand
                )
            )
        )
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()
