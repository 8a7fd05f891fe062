"""Another process holding the write lock: retried up to the busy timeout, then StoreBusy.

These are the only tests with a real wall-clock wait: the lock is held by a raw sqlite3
connection (another "process"), and the writer thread's busy timeout is real time. The
waits are kept to a fraction of a second.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import StoreBusy
from runtime.store import NewItem, StoreConfig, open_store
from tests.conftest import FakeClock

BUSY_TIMEOUT_S = 0.2


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "q.db"


@pytest.fixture
def competitor(db: Path) -> Iterator[sqlite3.Connection]:
    """A second writer's connection (as another process would have)."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


async def test_lock_held_past_the_busy_timeout_raises_store_busy(
    db: Path, competitor: sqlite3.Connection, fake_clock: FakeClock
) -> None:
    config = StoreConfig(busy_timeout_s=BUSY_TIMEOUT_S)
    async with open_store(db, config, clock=fake_clock) as store:
        before = await store.enqueue(NewItem(topic="t", payload=b"before"))
        competitor.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreBusy, match="busy timeout"):
            await store.enqueue(NewItem(topic="t", payload=b"refused"))
        waited = time.monotonic() - started
        assert BUSY_TIMEOUT_S <= waited < BUSY_TIMEOUT_S + 2.0
        # reads do not wait for the writer's lock (WAL)
        assert [i.id for i in await store.items()] == [before.id]
        competitor.execute("ROLLBACK")
        after = await store.enqueue(NewItem(topic="t", payload=b"after"))
        assert [i.id for i in await store.items()] == [before.id, after.id]
        assert [e.item_id for e in await store.events(kind="enqueued")] == [before.id, after.id]


async def test_lock_released_in_time_is_waited_for_and_counted_as_contention(
    db: Path, competitor: sqlite3.Connection, fake_clock: FakeClock
) -> None:
    config = StoreConfig(busy_timeout_s=5.0)
    async with open_store(db, config, clock=fake_clock) as store:
        await store.enqueue(NewItem(topic="t", payload=b"ready"))
        competitor.execute("BEGIN IMMEDIATE")
        releaser = threading.Timer(0.05, lambda: competitor.execute("ROLLBACK"))
        releaser.start()
        try:
            leased = await store.lease("w")
        finally:
            releaser.join()
        assert len(leased) == 1
        assert store.statistics().writer.lock_waits > 0
        metrics = await store.metrics()
        assert metrics.lease_contention == store.statistics().writer.lock_waits
        (event,) = await store.events(kind="contention")
        assert event.detail is not None and '"waits"' in event.detail
