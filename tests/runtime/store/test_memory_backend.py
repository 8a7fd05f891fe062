"""The in-memory backend's own specifics (the conformance suite covers its behaviour)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from runtime import StoreFull, StoreUnavailable
from runtime.store import (
    MEMORY_URL,
    MemoryDatabase,
    MemoryStore,
    NewItem,
    QueueStore,
    StoreConfig,
    open_store,
)


def new(topic: str = "t") -> NewItem:
    return NewItem(topic=topic, payload=b"p")


async def test_open_store_memory_url_opens_a_fresh_memory_store() -> None:
    async with open_store(MEMORY_URL) as store:
        assert isinstance(store, MemoryStore)
        await store.enqueue(new())
        assert len(await store.items()) == 1
    async with open_store("memory://") as again:
        assert await again.items() == []  # every open is a new, empty database


async def test_the_row_bound_holds_and_a_refused_write_changes_nothing(fake_clock: Any) -> None:
    db = MemoryDatabase(max_rows=6)  # an item costs two rows: itself and its audit row
    store = MemoryStore.open(db, clock=fake_clock)
    await store.enqueue_many([new(), new(), new()])
    with pytest.raises(StoreFull):
        await store.enqueue(new())
    assert store.statistics().items == 3 and store.statistics().audit_rows == 3
    with pytest.raises(StoreFull):
        await store.lease("w")  # a lease writes audit rows too
    assert [i.state.value for i in await store.items()] == ["enqueued"] * 3
    await store.aclose()


def test_the_row_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        MemoryDatabase(max_rows=0)


async def test_handles_on_one_database_share_it_and_keep_queues_apart(fake_clock: Any) -> None:
    db = MemoryDatabase()
    a = MemoryStore.open(db, StoreConfig(queue="a"), clock=fake_clock)
    b = MemoryStore.open(db, StoreConfig(queue="b"), clock=fake_clock)
    a_again = MemoryStore.open(db, StoreConfig(queue="a"), clock=fake_clock)
    item = (await a.enqueue(new())).id
    await b.enqueue(new())
    assert [i.id for i in await a_again.items()] == [item]
    assert len(await b.items()) == 1
    assert (await a.depth())["enqueued"] == 1
    a.close()
    with pytest.raises(StoreUnavailable):
        await a.items()
    assert len(await a_again.items()) == 1  # the database outlives a closed handle
    for store in (b, a_again):
        await store.aclose()


async def test_statistics_describe_the_database(fake_clock: Any) -> None:
    store = MemoryStore.open(MemoryDatabase(max_rows=100), StoreConfig(queue="q"), clock=fake_clock)
    await store.enqueue(new())
    stats = store.statistics()
    assert (stats.queue, stats.items, stats.audit_rows, stats.max_rows) == ("q", 1, 1, 100)
    assert isinstance(store, QueueStore)
    await store.aclose()


async def test_a_cancelled_call_changes_nothing(fake_clock: Any) -> None:
    store = MemoryStore.open(clock=fake_clock)
    with trio.CancelScope() as scope:
        scope.cancel()
        await store.enqueue(new())
    assert await store.items() == []
    await store.aclose()


def test_depth_is_read_from_counters_without_an_event_loop(fake_clock: Any) -> None:
    store = MemoryStore.open(clock=fake_clock)
    trio.run(store.enqueue, new())
    assert store.backend.depth_now() == {"enqueued": 1, "retry_scheduled": 0, "leased": 0}
    store.close()
