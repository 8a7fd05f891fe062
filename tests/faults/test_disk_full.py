"""A full disk (simulated with ``PRAGMA max_page_count``) refuses writes, loses nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from policies import RetentionPolicy
from runtime import StoreFull
from runtime.store import ItemState, NewItem, StoreConfig, open_store
from tests.conftest import FakeClock

BIG = 3000  # bytes: each payload needs about one page of its own


def page_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


async def fill_until_full(store: object, limit: int = 500) -> list[str]:
    """Enqueue big items until the store refuses with StoreFull; return the stored ids."""
    stored: list[str] = []
    for n in range(limit):
        try:
            result = await store.enqueue(NewItem(topic="fill", payload=bytes([n % 256]) * BIG))  # type: ignore[attr-defined]
        except StoreFull:
            return stored
        stored.append(result.id)
    raise AssertionError("the store never filled up")


async def test_full_database_refuses_writes_and_keeps_what_it_has(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    db = tmp_path / "q.db"
    async with open_store(db, clock=fake_clock):
        pass
    config = StoreConfig(max_page_count=page_count(db) + 30)
    async with open_store(db, config, clock=fake_clock) as store:
        stored = await fill_until_full(store)
        assert stored, "some items fit before the disk filled"
        with pytest.raises(StoreFull, match="nothing from this operation was written"):
            await store.enqueue_many([NewItem(topic="bulk", payload=b"x" * BIG) for _ in range(5)])
        items = await store.items()
        assert [i.id for i in items] == stored
        assert all(i.payload == bytes([n % 256]) * BIG for n, i in enumerate(items))
        assert await store.items(ItemState.ENQUEUED) == items
        events = await store.events(kind="enqueued")
        assert [e.item_id for e in events] == stored  # no audit row for a refused write
    # More room (a bigger disk): work resumes, and nothing was lost.
    bigger = StoreConfig(max_page_count=page_count(db) + 200)
    async with open_store(db, bigger, clock=fake_clock) as store:
        result = await store.enqueue(NewItem(topic="after", payload=b"x" * BIG))
        assert len(await store.items()) == len(stored) + 1
        assert (await store.get(result.id)).payload == b"x" * BIG


async def test_purging_old_rows_makes_room_again(tmp_path: Path, fake_clock: FakeClock) -> None:
    db = tmp_path / "q.db"
    async with open_store(db, clock=fake_clock) as store:
        for n in range(20):
            await store.enqueue(NewItem(topic="old", payload=bytes([n]) * BIG))
        leased = await store.lease("w", n=20)
        assert all(i.lease_token for i in leased)
        await store.ack_many([(i.id, i.lease_token or "") for i in leased])
    fake_clock.advance(3600)
    config = StoreConfig(max_page_count=page_count(db) + 10)
    async with open_store(db, config, clock=fake_clock) as store:
        stored = await fill_until_full(store)
        with pytest.raises(StoreFull):
            await store.enqueue(NewItem(topic="t", payload=b"x" * BIG))
        keep = RetentionPolicy(succeeded_s=60.0, archived_s=None, audit_s=None)
        assert (await store.purge(keep)).succeeded == 20
        for _ in range(5):
            await store.enqueue(NewItem(topic="after-purge", payload=b"y" * BIG))
        assert [i.id for i in await store.items(ItemState.ENQUEUED)][: len(stored)] == stored
        assert len(await store.items(ItemState.ENQUEUED)) == len(stored) + 5
