"""The SQLite backend: one database file (WAL), a group-commit writer thread, read pools.

Everything SQLite-specific stays here and in the ``_sqlite_*`` modules: PRAGMAs, file
paths and the use lock, the writer thread and its group commit, SQL. Policy is the front
end's (``_front.QueueStore``); this only loads, locks and applies.
"""

from __future__ import annotations

import functools
import queue
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from policies import RetentionCutoffs
from runtime._errors import StoreUnavailable
from runtime.store import _queries as q
from runtime.store import _sqlite_admin as admin
from runtime.store import _sqlite_tx as tx
from runtime.store._backend import (
    Admitted,
    Changed,
    DeadLetterQuery,
    Decide,
    EventQuery,
    Pick,
    PurgeTarget,
)
from runtime.store._bridge import in_thread, wait_future
from runtime.store._config import StoreConfig
from runtime.store._envelope import DeadLetter, ItemState, WorkItem
from runtime.store._records import AuditEvent, EnqueueResult, PurgeResult, QueueMetrics
from runtime.store._rules import Refusal
from runtime.store._sqlite_errors import translate
from runtime.store._sqlite_open import connect
from runtime.store._writer import GroupCommitWriter, WriteFn

T = TypeVar("T")


class SQLiteBackend:
    """The :class:`~runtime.store._backend.Backend` of one queue in one SQLite file.

    Writes go through one group-commit writer thread; reads use their own connections
    (in WAL mode they see the last commit and never wait for the writer). A write handed
    to the writer completes even if its caller is cancelled.

    ``on_contention(waits)`` is called (on the writer thread) when a batch had to wait
    for another process's write lock; the wait is also audited in that batch.
    """

    def __init__(
        self,
        path: Path,
        config: StoreConfig,
        *,
        clock: Callable[[], float],
        on_contention: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.queue = config.queue
        self._clock = clock
        self._on_contention = on_contention
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._read_pool = ThreadPoolExecutor(config.readers, thread_name_prefix="garrison-read")
        self.writer = GroupCommitWriter(
            connect(path, config, writer=True),
            clock=clock,
            max_batch=config.max_batch,
            max_pending=config.max_pending,
            busy_timeout_s=config.busy_timeout_s,
            on_contention=self._contention,
        )
        self._closed = False

    def _contention(self, conn: sqlite3.Connection, now: float, waits: int) -> None:
        admin.record_contention(conn, now, self.queue, waits)
        if self._on_contention is not None:
            self._on_contention(waits)

    def close(self) -> None:
        """Commit what is queued and close every connection. Idempotent; blocking."""
        if self._closed:
            return
        self._closed = True
        self.writer.close()
        self._read_pool.shutdown(wait=True)
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break

    async def aclose(self) -> None:
        """Close without blocking the event loop."""
        await wait_future(in_thread(self.close))

    # -- plumbing ----------------------------------------------------------------------

    def write_sync(self, fn: WriteFn[T]) -> T:
        """Run a write operation in the next batch and wait for it (blocking)."""
        return self.writer.submit(fn).result()

    async def write(self, fn: WriteFn[T]) -> T:
        """Run a write operation in the next batch; its result once committed."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            future = self.writer.submit(fn, block=False)
        except queue.Full:
            # Backpressure: wait in a thread for room rather than grow the queue.
            future = await wait_future(in_thread(lambda: self.writer.submit(fn)))
        return await wait_future(future)

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read on a pooled read connection (blocking)."""
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = connect(self.path, self.config, writer=False)
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        finally:
            self._readers.put(conn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read on the read pool's threads."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return await wait_future(self._read_pool.submit(self.read_sync, fn))

    def depth_now(self) -> dict[str, int]:
        """Unfinished items by state, blocking (for the depth gauge's thread)."""
        if self._closed:
            return {}
        return self.read_sync(functools.partial(q.active_depth, queue=self.queue))

    # -- writes ------------------------------------------------------------------------

    async def enqueue(self, items: Sequence[Admitted]) -> list[EnqueueResult]:
        """See ``Backend.enqueue``."""
        return await self.write(lambda c, now: tx.enqueue_many(c, now, self.queue, items))

    async def lease(
        self, owner: str, n: int, lease_s: float, topics: Sequence[str] | None, reclaim: int
    ) -> tuple[list[WorkItem], list[Changed]]:
        """See ``Backend.lease``."""
        return await self.write(
            lambda c, now: tx.lease(c, now, self.queue, owner, n, lease_s, topics, reclaim)
        )

    async def extend(
        self, leases: Sequence[tuple[str, str]], lease_s: float
    ) -> list[float | Refusal]:
        """See ``Backend.extend``."""
        return await self.write(lambda c, now: tx.extend(c, now, leases, lease_s))

    async def ack(
        self, leases: Sequence[tuple[str, str]], effects: Mapping[str, Sequence[str]] | None
    ) -> list[Refusal | None]:
        """See ``Backend.ack``."""
        return await self.write(lambda c, now: tx.ack_many(c, now, leases, effects))

    async def transition(self, pick: Pick, decide: Decide) -> list[Changed]:
        """See ``Backend.transition``."""
        return await self.write(lambda c, now: tx.transition(c, now, self.queue, pick, decide))

    async def replay(self, item_id: str, force: bool, extra_trace: dict[str, str] | None) -> str:
        """See ``Backend.replay``."""
        return await self.write(lambda c, now: tx.replay(c, now, item_id, force, extra_trace))

    async def purge(self, target: PurgeTarget, before: float, limit: int) -> int:
        """See ``Backend.purge``."""
        return await self.write(
            lambda c, now: admin.purge(c, now, self.queue, target, before, limit)
        )

    async def record_event(self, kind: str, detail: dict[str, object]) -> None:
        """See ``Backend.record_event``."""
        await self.write(lambda c, now: admin.record_event(c, now, self.queue, kind, detail))

    async def record_effect(self, effect_key: str, item_id: str) -> bool:
        """See ``Backend.record_effect``."""
        return await self.write(lambda c, now: admin.record_effect(c, now, effect_key, item_id))

    async def save_checkpoint(self, name: str, state: bytes) -> None:
        """See ``Backend.save_checkpoint``."""
        await self.write(lambda c, now: admin.save_checkpoint(c, now, name, state))

    # -- reads -------------------------------------------------------------------------

    async def get(self, item_id: str) -> WorkItem:
        """See ``Backend.get``."""
        return await self.read(lambda c: q.get_item(c, item_id))

    async def items(self, state: ItemState | None, limit: int) -> list[WorkItem]:
        """See ``Backend.items``."""
        return await self.read(lambda c: q.list_items(c, self.queue, state, limit))

    async def dead_letter(self, item_id: str) -> DeadLetter:
        """See ``Backend.dead_letter``."""
        return await self.read(lambda c: q.get_dead_letter(c, item_id))

    async def dead_letters(self, query: DeadLetterQuery) -> list[DeadLetter]:
        """See ``Backend.dead_letters``."""
        return await self.read(lambda c: q.list_dead_letters(c, self.queue, query))

    async def events(self, query: EventQuery) -> list[AuditEvent]:
        """See ``Backend.events``."""
        return await self.read(lambda c: q.list_events(c, self.queue, query))

    async def depth(self) -> dict[str, int]:
        """See ``Backend.depth``."""
        return await self.read(lambda c: q.active_depth(c, self.queue))

    async def metrics(self, now: float, since_s: float) -> QueueMetrics:
        """See ``Backend.metrics``."""
        return await self.read(lambda c: q.queue_metrics(c, self.queue, now, since_s))

    async def retention_counts(self, cut: RetentionCutoffs) -> PurgeResult:
        """See ``Backend.retention_counts``."""
        return await self.read(lambda c: q.retention_counts(c, self.queue, cut))

    async def has_effect(self, effect_key: str) -> bool:
        """See ``Backend.has_effect``."""
        return await self.read(lambda c: q.has_effect(c, effect_key))

    async def load_checkpoint(self, name: str) -> bytes | None:
        """See ``Backend.load_checkpoint``."""
        return await self.read(lambda c: q.load_checkpoint(c, name))
