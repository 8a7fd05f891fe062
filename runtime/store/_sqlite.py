"""The embedded SQLite backend of the durable queue."""

from __future__ import annotations

import collections
import functools
import os
import queue
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from os import PathLike
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.lowlevel
import msgspec

from policies import RetentionPolicy
from runtime._errors import ItemNotFound, StaleLease, StoreUnavailable, ValidationFailed
from runtime.store import _queries as q
from runtime.store import _transitions as tx
from runtime.store._bridge import in_thread, wait_future
from runtime.store._config import StoreConfig
from runtime.store._envelope import (
    DeadLetter,
    DeadReason,
    Failure,
    ItemState,
    NewItem,
    WorkItem,
    validate_new_item,
)
from runtime.store._sqlite_errors import translate
from runtime.store._sqlite_open import check_path, connect, prepare
from runtime.store._use_lock import shared_use
from runtime.store._writer import GroupCommitWriter, WriteFn, WriterStatistics
from runtime.telemetry import _instruments as tel

T = TypeVar("T")


class StoreStatistics(msgspec.Struct, frozen=True):
    """A snapshot of a store handle."""

    path: str
    queue: str
    synchronous: str
    writer: WriterStatistics
    schema_version_found: int


class SQLiteStore:
    """A durable queue in one SQLite file (WAL), shared safely by many processes.

    Writes go through one group-commit writer thread; reads use their own connections
    and never wait for it. Open with :func:`open_store` (async) or :meth:`open` (sync).

    Every method is async, cancellation-safe and never blocks the event loop. A write
    that has been handed to the writer completes even if the caller is cancelled
    (cancellation is delivered afterwards), so no write is ever half done.
    """

    def __init__(
        self,
        path: Path,
        config: StoreConfig,
        *,
        clock: Callable[[], float],
        rand: Callable[[], float],
        found_version: int,
    ) -> None:
        self.path = path
        self.config = config
        self._clock = clock
        self._rand = rand
        self._found_version = found_version
        self._use_lock: int | None = None
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._read_pool = ThreadPoolExecutor(config.readers, thread_name_prefix="garrison-read")
        self._writer = GroupCommitWriter(
            connect(path, config, writer=True),
            clock=clock,
            max_batch=config.max_batch,
            max_pending=config.max_pending,
            busy_timeout_s=config.busy_timeout_s,
            on_contention=functools.partial(_contention, queue=config.queue),
        )
        self._closed = False
        # The ready mark: moved by every operation of this handle that made items
        # leasable, so an idle consumer of the same process wakes at once (wait_ready).
        self._ready = 0
        self._ready_event: anyio.Event | None = None
        self._ready_waiters = 0
        self._unregister_depth = tel.register_depth_source(config.queue, self._sample_depth)

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
        try:
            store._writer.submit(
                lambda c, now: tx.reclaim_expired(c, now, config.queue, 1_000_000)
            ).result()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Commit what is queued and close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._unregister_depth()
        self._writer.close()
        self._read_pool.shutdown(wait=True)
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break
        if self._use_lock is not None:
            os.close(self._use_lock)
            self._use_lock = None

    async def aclose(self) -> None:
        """Close without blocking the event loop."""
        await wait_future(in_thread(self.close))

    def now(self) -> float:
        """The store's clock: wall time, unless a test injected another."""
        return self._clock()

    def statistics(self) -> StoreStatistics:
        """Counters of this handle."""
        return StoreStatistics(
            path=str(self.path),
            queue=self.config.queue,
            synchronous=self.config.synchronous.value,
            writer=self._writer.statistics(),
            schema_version_found=self._found_version,
        )

    def _sample_depth(self) -> dict[str, int]:
        # Called by the queue-depth gauge in the metrics exporter's thread (blocking is fine).
        if self._closed:
            return {}
        queue_name, now = self.config.queue, self._clock()
        return self._read_sync(lambda c: q.queue_metrics(c, queue_name, now, 1.0).depth)

    # -- readiness ---------------------------------------------------------------------

    def ready_mark(self) -> int:
        """A counter that moves whenever an operation of this store object made items
        ready to lease (enqueue, replay, a reclaim, a retry due at once).

        Take it *before* a lease that comes back empty, then ``wait_ready(mark, ...)``: an
        enqueue between the two is not missed. Writes by other processes do not move it.
        """
        return self._ready

    async def wait_ready(self, mark: int, timeout_s: float) -> None:
        """Return as soon as :meth:`ready_mark` differs from ``mark``, or after
        ``timeout_s`` seconds, whichever comes first. Any number of tasks may wait.

        It waits on an event (no polling). Cancellation: a cancelled wait raises the
        cancellation and changes nothing.

        Raises:
            ValidationFailed: ``timeout_s`` is negative or not a number.
        """
        if not timeout_s >= 0:
            raise ValidationFailed("timeout_s must be zero or more", field="timeout_s")
        if self._ready != mark:
            await anyio.lowlevel.checkpoint()
            return
        event = self._ready_event
        if event is None:
            event = self._ready_event = anyio.Event()
        self._ready_waiters += 1
        try:
            with anyio.move_on_after(timeout_s):
                await event.wait()
        finally:
            self._ready_waiters -= 1
            # The last waiter drops the event, so none outlives the event loop it belongs to.
            if not self._ready_waiters and self._ready_event is event:
                self._ready_event = None

    def _made_ready(self) -> None:
        self._ready += 1
        event, self._ready_event = self._ready_event, None
        if event is not None:
            event.set()

    # -- plumbing ----------------------------------------------------------------------

    async def _write(self, fn: WriteFn[T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            future = self._writer.submit(fn, block=False)
        except queue.Full:
            # Backpressure: wait in a thread for room rather than grow the queue.
            future = await wait_future(in_thread(lambda: self._writer.submit(fn)))
        return await wait_future(future)

    def _read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return await wait_future(self._read_pool.submit(self._read_sync, fn))

    # -- intake ------------------------------------------------------------------------

    async def enqueue(self, item: NewItem) -> tx.EnqueueResult:
        """Add one item; an already known idempotency key returns the existing id.

        Raises:
            ValidationFailed: (and subclasses) the item was refused; nothing was written.
        """
        return (await self.enqueue_many([item]))[0]

    async def enqueue_many(self, items: Sequence[NewItem]) -> list[tx.EnqueueResult]:
        """Add many items in one transaction: all of them, or (on a refusal) none.

        Raises:
            ValidationFailed: an item was refused (its index is in the message).
        """
        digests: list[str] = []
        for index, item in enumerate(items):
            try:
                digests.append(validate_new_item(item, max_payload_bytes=self._limit))
            except ValidationFailed as exc:
                tel.item_rejected(str(getattr(item, "topic", "")), type(exc).__name__)
                if len(items) > 1:
                    exc.args = (f"item {index}: {exc.args[0]}",)
                raise
        if not digests:
            return []
        queue_name, attempts = self.config.queue, self.config.retry.max_attempts
        # The send span's W3C context goes into each item's envelope (unless the caller
        # set one), so its process span links back here from any process, after restarts.
        with tel.enqueue_span(items) as traced:
            checked = list(zip(traced, digests, strict=True))
            results = await self._write(
                lambda c, now: tx.enqueue_many(c, now, queue_name, checked, attempts)
            )
        _count_enqueued(checked, results)
        ready = zip(checked, results, strict=True)
        if any(r.created and not item.delay_s for (item, _), r in ready):
            self._made_ready()
        return results

    @property
    def _limit(self) -> int:
        return self.config.max_payload_bytes

    # -- the lease cycle ---------------------------------------------------------------

    async def lease(
        self,
        owner: str,
        n: int = 1,
        lease_s: float = 30.0,
        topics: Sequence[str] | None = None,
    ) -> list[WorkItem]:
        """Lease up to ``n`` ready items for ``lease_s`` seconds (fewer if fewer are ready).

        Each carries a fresh ``lease_token`` that heartbeat, ack and fail must present.

        Raises:
            ValidationFailed: ``n`` or ``lease_s`` outside the configured bounds.
        """
        if not 1 <= n <= self.config.max_lease_batch:
            raise ValidationFailed(
                f"n must be within [1, {self.config.max_lease_batch}]", field="n"
            )
        if not 0 < lease_s <= self.config.max_lease_s:
            raise ValidationFailed(
                f"lease_s must be within (0, {self.config.max_lease_s:g}]", field="lease_s"
            )
        queue_name, reclaim = self.config.queue, self.config.max_lease_batch
        picked = list(topics) if topics else None
        return await self._write(
            lambda c, now: tx.lease(c, now, queue_name, owner, n, lease_s, picked, reclaim)
        )

    async def heartbeat(self, item_id: str, token: str, lease_s: float = 30.0) -> float:
        """Extend a lease by ``lease_s`` from now; return the new expiry.

        Raises:
            StaleLease: the token is not the item's current lease.
        """
        if not 0 < lease_s <= self.config.max_lease_s:
            raise ValidationFailed("lease_s out of bounds", field="lease_s")
        return await self._write(lambda c, now: tx.heartbeat(c, now, item_id, token, lease_s))

    async def heartbeat_many(
        self, leases: Sequence[tuple[str, str]], lease_s: float = 30.0
    ) -> list[StaleLease | ItemNotFound | None]:
        """Extend many ``(item_id, token)`` leases by ``lease_s`` from now, in one transaction.

        Returns one entry per lease: None when extended, else the error that refused it
        (a stale lease does not stop the others).

        Raises:
            ValidationFailed: ``lease_s`` outside the configured bounds (nothing written).
        """
        if not 0 < lease_s <= self.config.max_lease_s:
            raise ValidationFailed(
                f"lease_s must be within (0, {self.config.max_lease_s:g}]", field="lease_s"
            )
        batch = list(leases)
        if not batch:
            return []
        return await self._write(lambda c, now: tx.heartbeat_many(c, now, batch, lease_s))

    async def ack(self, item_id: str, token: str, *, effects: Sequence[str] = ()) -> None:
        """Mark a leased item succeeded; ``effects`` (effects-ledger keys of what it
        delivered) are recorded in the same transaction.

        Raises:
            StaleLease: the lease expired and the item was reclaimed or leased again
                (nothing is recorded then).
            ItemNotFound: no such item.
        """
        keys = tuple(effects)
        with tel.settle_span("ack", item_id=item_id):
            await self._write(lambda c, now: tx.ack(c, now, item_id, token, keys))

    async def ack_many(
        self,
        leases: Sequence[tuple[str, str]],
        *,
        effects: Mapping[str, Sequence[str]] | None = None,
    ) -> list[StaleLease | ItemNotFound | None]:
        """Acknowledge many ``(item_id, token)`` leases in one transaction.

        ``effects`` maps item ids to effects-ledger keys recorded with their ack. Returns
        one entry per lease: None when acknowledged, else the error that refused it (a
        stale lease does not stop the others, and its effects are not recorded).
        """
        batch = list(leases)
        if not batch:
            return []
        with tel.settle_span(
            "ack", count=len(batch), item_id=batch[0][0] if len(batch) == 1 else None
        ):
            return await self._write(lambda c, now: tx.ack_many(c, now, batch, effects))

    async def fail(self, item_id: str, token: str, failure: Failure) -> tx.FailOutcome:
        """Record a failed attempt; the retry policy decides retry or dead letter.

        Raises:
            StaleLease: the lease is no longer this caller's.
        """
        policy, rand = self.config.retry, self._rand()

        def op(c: sqlite3.Connection, now: float) -> tuple[tx.FailOutcome, WorkItem | None]:
            outcome = tx.fail(c, now, item_id, token, failure, policy, rand)
            if outcome.state is not ItemState.DEAD_LETTERED:
                return outcome, None
            return outcome, q.get_item(c, item_id)

        with tel.settle_span("nack", item_id=item_id):
            outcome, dead = await self._write(op)
        if outcome.state is ItemState.RETRY_SCHEDULED and outcome.delay_s <= 0:
            self._made_ready()
        if dead is not None and outcome.reason is not None:
            _report_dead(dead, outcome.reason, failure.error_type)
        return outcome

    async def dead_letter(self, item_id: str, reason: DeadReason, error: str) -> None:
        """Dead-letter a waiting or leased item at once (shedding, validation).

        Raises:
            InvalidTransition: the item is already finished.
        """

        def op(c: sqlite3.Connection, now: float) -> WorkItem:
            tx.dead_letter_now(c, now, item_id, reason, error)
            return q.get_item(c, item_id)

        _report_dead(await self._write(op), DeadReason(reason), None)

    async def shed(self, n: int, *, dead_letter: bool = True) -> list[str]:
        """Shed up to ``n`` waiting items, lowest priority (then newest) first; return ids.

        With ``dead_letter`` they become dead letters with reason ``shed``; otherwise they
        are dropped. Each is audited.
        """
        if n <= 0:
            return []
        queue_name, cap = self.config.queue, min(n, self.config.max_lease_batch)

        def op(c: sqlite3.Connection, now: float) -> tuple[list[str], list[WorkItem]]:
            ids = tx.shed_lowest(c, now, queue_name, cap, dead_letter)
            return ids, [q.get_item(c, i) for i in ids] if dead_letter else []

        shed, dead = await self._write(op)
        for item in dead:
            _report_dead(item, DeadReason.SHED, None)
        return shed

    async def reclaim_expired(self, limit: int | None = None) -> int:
        """Return expired leases to the queue (or dead-letter them); return how many."""
        queue_name, cap = self.config.queue, limit or self.config.max_lease_batch
        dead: list[WorkItem] = []

        def op(c: sqlite3.Connection, now: float) -> int:
            dead.clear()  # a retried batch runs the operation again
            return tx.reclaim_expired(c, now, queue_name, cap, dead)

        reclaimed = await self._write(op)
        if reclaimed > len(dead):
            self._made_ready()
        for item in dead:
            _report_dead(item, DeadReason.LEASE_EXPIRED, None)
        return reclaimed

    # -- dead letters ------------------------------------------------------------------

    async def dead_letters(
        self,
        *,
        topic: str | None = None,
        reason: DeadReason | str | None = None,
        since: float | None = None,
        until: float | None = None,
        include_archived: bool = False,
        limit: int | None = None,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first (at most ``limit`` or the configured list limit)."""
        queue_name, cap = self.config.queue, self._cap(limit)
        why = None if reason is None else DeadReason(reason).value
        return await self._read(
            lambda c: q.list_dead_letters(
                c,
                queue_name,
                topic=topic,
                reason=why,
                since=since,
                until=until,
                include_archived=include_archived,
                limit=cap,
            )
        )

    async def get_dead_letter(self, item_id: str) -> DeadLetter:
        """One dead letter. Raises ItemNotFound."""
        return await self._read(lambda c: q.get_dead_letter(c, item_id))

    async def replay(self, item_id: str, *, force: bool = False) -> str:
        """Enqueue a dead letter again as a new linked item; return the new id.

        Raises:
            ReplayRefused: it was replayed before and ``force`` is False.
            InvalidTransition: it is archived.
            ItemNotFound: no such dead letter.
        """
        attempts = self.config.retry.max_attempts
        try:
            dead: WorkItem | None = await self._read(lambda c: q.get_item(c, item_id))
        except ItemNotFound:
            dead = None  # the write below raises the precise error
        with tel.replay_span(
            item_id,
            topic=None if dead is None else dead.topic,
            trace_context=None if dead is None else dead.trace_context,
            forced=force,
        ) as recorder:
            extra = recorder.trace_context() or None
            new = await self._write(
                lambda c, now: tx.replay(c, now, item_id, force, attempts, extra)
            )
            recorder.replayed(new)
        self._made_ready()
        if dead is not None:
            tel.items_enqueued(dead.topic)
        return new

    async def archive(self, item_id: str) -> None:
        """Archive a dead letter. Raises ItemNotFound or InvalidTransition."""
        await self._write(lambda c, now: tx.archive(c, now, item_id))

    async def purge_dead_letters(
        self, older_than_s: float = 0.0, *, include_live: bool = False
    ) -> int:
        """Delete archived dead letters (and live ones with ``include_live``) older than
        ``older_than_s``; return how many. Each purge is audited."""
        queue_name, cap = self.config.queue, self.config.max_batch * 100
        total = 0
        while True:

            def op(c: sqlite3.Connection, now: float) -> int:
                return tx.purge_dead_letters(
                    c, now, queue_name, now - older_than_s, include_live, cap
                )

            done = await self._write(op)
            total += done
            if done < cap:
                return total

    async def purge(
        self, policy: RetentionPolicy | None = None, *, dry_run: bool = False
    ) -> q.PurgeResult:
        """Retention purge: succeeded items, archived dead letters and old audit rows.

        With ``dry_run`` nothing is deleted; the counts say what would be.
        """
        policy = policy or self.config.retention
        queue_name = self.config.queue
        if dry_run:
            now = self._clock()
            cut = policy.cutoffs(now)
            return await self._read(lambda c: q.retention_counts(c, queue_name, cut))
        cap = self.config.max_batch * 100
        succeeded = dead = 0
        while True:

            def op(c: sqlite3.Connection, now: float) -> tuple[int, int]:
                cut = policy.cutoffs(now)
                s = d = 0
                if cut.succeeded_before is not None:
                    s = tx.purge_succeeded(c, now, queue_name, cut.succeeded_before, cap)
                if cut.archived_before is not None:
                    d = tx.purge_dead_letters(c, now, queue_name, cut.archived_before, False, cap)
                if cut.dead_letters_before is not None:
                    d += tx.purge_dead_letters(
                        c, now, queue_name, cut.dead_letters_before, True, cap, live_only=True
                    )
                return s, d

            s, d = await self._write(op)
            succeeded, dead = succeeded + s, dead + d
            if s < cap and d < cap:
                break

        def audit_op(c: sqlite3.Connection, now: float) -> int:
            cut = policy.cutoffs(now).audit_before
            return 0 if cut is None else tx.purge_audit(c, now, queue_name, cut)

        audit_rows = await self._write(audit_op)
        return q.PurgeResult(succeeded=succeeded, dead_letters=dead, audit=audit_rows)

    # -- reads -------------------------------------------------------------------------

    def _cap(self, limit: int | None) -> int:
        return min(limit or self.config.list_limit, self.config.list_limit)

    async def get(self, item_id: str) -> WorkItem:
        """One item by id. Raises ItemNotFound."""
        return await self._read(lambda c: q.get_item(c, item_id))

    async def items(
        self, state: ItemState | None = None, *, limit: int | None = None
    ) -> list[WorkItem]:
        """Items in sequence order, optionally of one state (bounded by ``limit``)."""
        queue_name, cap = self.config.queue, self._cap(limit)
        return await self._read(lambda c: q.list_items(c, queue_name, state, cap))

    async def depth(self) -> dict[str, int]:
        """Unfinished items by state (``enqueued``, ``retry_scheduled``, ``leased``); cheap
        enough to poll, whatever the size of the history."""
        queue_name = self.config.queue
        return await self._read(lambda c: q.active_depth(c, queue_name))

    async def metrics(self, since_s: float = 60.0) -> q.QueueMetrics:
        """Depth by state and rates over the last ``since_s`` seconds."""
        if since_s <= 0:
            raise ValidationFailed("since must be positive", field="since")
        queue_name, now = self.config.queue, self._clock()
        figures = await self._read(lambda c: q.queue_metrics(c, queue_name, now, since_s))
        tel.queue_depth(queue_name, figures.depth)
        return figures

    async def events(
        self,
        *,
        item_id: str | None = None,
        topic: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[q.AuditEvent]:
        """The audit trail of this store's queue, oldest first, filtered."""
        cap = self._cap(limit)
        return await self._read(
            lambda c: q.list_events(
                c,
                queue=self.config.queue,
                item_id=item_id,
                topic=topic,
                kind=kind,
                since=since,
                limit=cap,
            )
        )

    async def record_event(self, kind: str, detail: dict[str, object]) -> None:
        """Write a runtime event (pressure transition, restart) to the audit trail."""
        queue_name = self.config.queue
        await self._write(lambda c, now: tx.audit(c, now, kind, queue_name, detail=detail))

    # -- effects ledger and checkpoints -----------------------------------------------

    async def record_effect(self, effect_key: str, item_id: str) -> bool:
        """Record a delivered side effect; False if it had been recorded before."""
        return await self._write(lambda c, now: tx.record_effect(c, now, effect_key, item_id))

    async def has_effect(self, effect_key: str) -> bool:
        """Whether a side effect with this key was delivered."""
        return await self._read(
            lambda c: (
                c.execute("SELECT 1 FROM effects WHERE effect_key = ?", (effect_key,)).fetchone()
                is not None
            )
        )

    async def save_checkpoint(self, name: str, state: bytes) -> None:
        """Keep ``state`` as the latest snapshot of actor ``name``."""
        if len(state) > self.config.max_payload_bytes:
            raise ValidationFailed("checkpoint is over the payload size limit", field="state")
        await self._write(lambda c, now: tx.save_checkpoint(c, now, name, state))

    async def load_checkpoint(self, name: str) -> bytes | None:
        """The latest snapshot of actor ``name``, or None."""
        row = await self._read(
            lambda c: c.execute("SELECT state FROM checkpoints WHERE name = ?", (name,)).fetchone()
        )
        return None if row is None else bytes(row[0])


def _contention(conn: sqlite3.Connection, now: float, waits: int, *, queue: str) -> None:
    tx.record_contention(conn, now, queue, waits)
    tel.lease_contended(waits, queue=queue)


def _count_enqueued(
    checked: Sequence[tuple[NewItem, str]], results: Sequence[tx.EnqueueResult]
) -> None:
    counts = collections.Counter(
        item.topic for (item, _), result in zip(checked, results, strict=True) if result.created
    )
    for topic, n in counts.items():
        tel.items_enqueued(topic, n)


def _report_dead(item: WorkItem, reason: DeadReason, error_type: str | None) -> None:
    tel.dead_letter_written(
        reason=reason.value,
        topic=item.topic,
        item_id=item.id,
        attempts=item.attempt,
        max_attempts=item.max_attempts,
        queue=item.queue,
        error_type=error_type,
    )


@asynccontextmanager
async def open_store(
    path: str | PathLike[str],
    config: StoreConfig | None = None,
    *,
    create: bool = True,
    clock: Callable[[], float] = time.time,
    rand: Callable[[], float] = random.random,
) -> AsyncIterator[SQLiteStore]:
    """Open a SQLite store for the duration of an ``async with`` block.

    Raises what :meth:`SQLiteStore.open` raises.
    """
    store = await wait_future(
        in_thread(
            functools.partial(SQLiteStore.open, path, config, create=create, clock=clock, rand=rand)
        )
    )
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()


__all__ = ["SQLiteStore", "StoreStatistics", "open_store"]
