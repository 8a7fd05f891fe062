"""The SQLite store: the front end over the SQLite backend, with the file's life cycle."""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable
from os import PathLike
from pathlib import Path

import msgspec

from runtime._files import ensure_private_file
from runtime.store import _rules as rules
from runtime.store import _sqlite_tx as tx
from runtime.store._backend import Expired
from runtime.store._bridge import in_thread, wait_future
from runtime.store._config import StoreConfig
from runtime.store._front import QueueStore
from runtime.store._sqlite_backend import SQLiteBackend
from runtime.store._sqlite_open import check_path, prepare
from runtime.store._use_lock import shared_use
from runtime.store._writer import WriterStatistics
from runtime.telemetry import lease_contended

#: Expired leases reclaimed when a store opens (in one transaction).
_RECLAIM_ON_OPEN = 1_000_000


class StoreStatistics(msgspec.Struct, frozen=True):
    """A snapshot of a store handle."""

    path: str
    queue: str
    synchronous: str
    writer: WriterStatistics
    schema_version_found: int


class SQLiteStore(QueueStore):
    """A durable queue in one SQLite file (WAL), shared safely by many processes.

    Writes go through one group-commit writer thread; reads use their own connections
    and never wait for it. Open with :func:`open_store` (async) or :meth:`open` (sync).

    Every method is async, cancellation-safe and never blocks the event loop. A write
    that has been handed to the writer completes even if the caller is cancelled
    (cancellation is delivered afterwards), so no write is ever half done.
    """

    backend: SQLiteBackend

    def __init__(
        self,
        path: Path,
        config: StoreConfig,
        *,
        clock: Callable[[], float],
        rand: Callable[[], float],
        found_version: int,
    ) -> None:
        contended = functools.partial(lease_contended, queue=config.queue)
        backend = SQLiteBackend(path, config, clock=clock, on_contention=contended)
        super().__init__(backend, config, clock=clock, rand=rand)
        self.path = path
        self._found_version = found_version
        self._use_lock: int | None = None

    @classmethod
    def open(
        cls,
        path: str | PathLike[str],
        config: StoreConfig | None = None,
        *,
        create: bool = True,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> SQLiteStore:
        """Open (and by default create) the database at ``path``; blocking.

        Expired leases are reclaimed on opening, so a restarted worker's items run again.

        The store holds the database's use lock (``<db>.lock``, shared) until closed: a
        ``garrison restore`` waits for no store to hold it, and a store opening during a
        restore waits for it, up to ``config.busy_timeout_s``.

        Raises:
            StoreBusy: a restore of this database went on past ``config.busy_timeout_s``.
            StoreUnavailable: the path cannot hold a database, or it does not exist and
                ``create`` is False.
            NotADatabase: the file is not a (Garrison) SQLite database, or is corrupt.
            SchemaTooNew: the database was written by a newer Garrison.
        """
        config = config or StoreConfig()
        db = Path(path)
        check_path(db, create=create)
        if create:
            # Before SQLite creates it with 0644: payloads and errors are for this user only
            # (SQLite gives its -wal and -shm files the database's mode).
            ensure_private_file(db)
        # Held until close, so that a restore never swaps the file from under this store.
        use = shared_use(db, config.busy_timeout_s)
        try:
            found = prepare(db, config)
            store = cls(db, config, clock=clock, rand=rand, found_version=found)
        except BaseException:
            if use is not None:
                os.close(use)
            raise
        store._use_lock = use
        queue = config.queue
        try:
            store.backend.write_sync(
                lambda c, now: tx.transition(
                    c, now, queue, Expired(_RECLAIM_ON_OPEN), rules.decide_expired
                )
            )
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Commit what is queued and close every connection. Idempotent; blocking."""
        self._stop()
        self.backend.close()
        if self._use_lock is not None:
            os.close(self._use_lock)
            self._use_lock = None

    async def aclose(self) -> None:
        """Close without blocking the event loop."""
        await wait_future(in_thread(self.close))

    def statistics(self) -> StoreStatistics:
        """Counters of this handle."""
        return StoreStatistics(
            path=str(self.path),
            queue=self.config.queue,
            synchronous=self.config.synchronous.value,
            writer=self.backend.writer.statistics(),
            schema_version_found=self._found_version,
        )
