"""The in-memory store: the front end over the memory backend, for tests and demos."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import msgspec

from runtime.store._config import StoreConfig
from runtime.store._front import QueueStore
from runtime.store._memory import MemoryBackend
from runtime.store._memory_db import MemoryDatabase


class MemoryStatistics(msgspec.Struct, frozen=True):
    """A snapshot of an in-memory store handle."""

    queue: str
    items: int
    audit_rows: int
    max_rows: int


class MemoryStore(QueueStore):
    """A store whose queue lives in memory (:class:`MemoryDatabase`): the reference
    backend under the same front end as :class:`SQLiteStore`, for tests and demos.

    ``open_store("memory://")`` opens one on a new, empty database; nothing survives the
    process. Every method is async and cancellation-safe (a cancelled call changed nothing).
    """

    backend: MemoryBackend

    def __init__(
        self,
        database: MemoryDatabase,
        config: StoreConfig,
        *,
        clock: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        super().__init__(
            MemoryBackend(database, config.queue, clock), config, clock=clock, rand=rand
        )
        self.database = database

    @classmethod
    def open(
        cls,
        database: MemoryDatabase | None = None,
        config: StoreConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> MemoryStore:
        """A handle on ``database`` (a new one when None), expired leases reclaimed."""
        store = cls(database or MemoryDatabase(), config or StoreConfig(), clock=clock, rand=rand)
        store.backend.reclaim_now()
        return store

    def close(self) -> None:
        """Refuse further calls; the database stays for other handles. Idempotent."""
        self._stop()
        self.backend.close()

    def statistics(self) -> MemoryStatistics:
        """Counters of this handle's database."""
        return MemoryStatistics(
            queue=self.config.queue,
            items=len(self.database.items),
            audit_rows=len(self.database.audit),
            max_rows=self.database.max_rows,
        )
