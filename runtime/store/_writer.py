"""Group commit: one thread owns the write connection and commits many callers at once.

Callers hand in operations (a function of the connection and the batch's timestamp);
the writer takes up to ``max_batch`` of them, runs each inside a savepoint so one
refused operation changes nothing while its neighbours commit, and makes the whole
batch durable with a single COMMIT. Throughput then grows with the number of concurrent
callers instead of being capped by one fsync per operation.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

import msgspec

from runtime._errors import StoreBusy, StoreUnavailable
from runtime.store._sqlite_errors import translate

T = TypeVar("T")

WriteFn = Callable[[sqlite3.Connection, float], T]


class _Op(Generic[T]):
    __slots__ = ("fn", "future")

    def __init__(self, fn: WriteFn[T]) -> None:
        self.fn = fn
        self.future: Future[T] = Future()


_STOP = object()


class WriterStatistics(msgspec.Struct, frozen=True):
    """A snapshot of the writer's counters."""

    batches: int
    operations: int
    largest_batch: int
    pending: int
    lock_waits: int


class GroupCommitWriter:
    """The single writer thread of one store handle.

    ``on_contention(conn, now, waits)`` runs inside a batch that had to wait for another
    process's write lock, so the wait is recorded in the same transaction.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        clock: Callable[[], float],
        max_batch: int,
        max_pending: int,
        busy_timeout_s: float,
        on_contention: Callable[[sqlite3.Connection, float, int], None] | None = None,
    ) -> None:
        self._conn = connection
        self._clock = clock
        self._max_batch = max_batch
        self._busy_timeout_s = busy_timeout_s
        self._on_contention = on_contention
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._closed = False
        self._batches = 0
        self._operations = 0
        self._largest = 0
        self._lock_waits = 0
        self._thread = threading.Thread(target=self._run, name="garrison-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: WriteFn[T], *, block: bool = True) -> Future[T]:
        """Queue an operation; its future completes after its batch commits.

        With ``block=False`` raises ``queue.Full`` when ``max_pending`` operations wait.

        Raises:
            StoreUnavailable: the store is closed.
        """
        if self._closed:
            raise StoreUnavailable("the store is closed")
        op = _Op(fn)
        self._queue.put(op, block=block)
        return op.future

    def close(self) -> None:
        """Commit what is queued, then stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self._conn.close()

    def statistics(self) -> WriterStatistics:
        """Counters since the writer started."""
        return WriterStatistics(
            batches=self._batches,
            operations=self._operations,
            largest_batch=self._largest,
            pending=self._queue.qsize(),
            lock_waits=self._lock_waits,
        )

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[_Op[Any]] = [first]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
            self._commit(batch)

    def _begin(self) -> int:
        """BEGIN IMMEDIATE, retrying with backoff while another process holds the lock."""
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.0005
        waits = 0
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return waits
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                waits += 1
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"another writer held the database lock for over "
                        f"{self._busy_timeout_s:g} s (busy timeout)"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _commit(self, batch: list[_Op[Any]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            waits = self._begin()
            now = self._clock()
            if waits and self._on_contention is not None:
                self._lock_waits += waits
                self._on_contention(self._conn, now, waits)
            for op in batch:
                self._conn.execute("SAVEPOINT op")
                try:
                    result = op.fn(self._conn, now)
                except BaseException as exc:  # refused op: undo it alone
                    if not self._conn.in_transaction:
                        # SQLite rolled back the whole transaction (SQLITE_FULL, IOERR,
                        # ...): the savepoint and the ops before it are gone too, so the
                        # whole batch fails with this (translated) error.
                        raise
                    self._conn.execute("ROLLBACK TO op")
                    self._conn.execute("RELEASE op")
                    error = translate(exc) if isinstance(exc, sqlite3.Error) else exc
                    outcomes.append((False, error))
                else:
                    self._conn.execute("RELEASE op")
                    outcomes.append((True, result))
            self._conn.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            error = translate(exc) if isinstance(exc, sqlite3.Error) else exc
            for op in batch:
                op.future.set_exception(error)
            return
        self._batches += 1
        self._operations += len(batch)
        self._largest = max(self._largest, len(batch))
        for op, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)
