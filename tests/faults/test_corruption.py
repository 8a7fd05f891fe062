"""A corrupted database file gives typed errors (NotADatabase / StoreUnavailable), never raw
sqlite3 ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runtime import NotADatabase, StoreUnavailable
from runtime.store import ItemState, NewItem, open_store
from tests.conftest import FakeClock


async def make_database(path: Path, clock: FakeClock) -> None:
    async with open_store(path, clock=clock) as store:
        await store.enqueue_many(
            [NewItem(topic=f"t{n % 5}", payload=bytes([n]) * 1500) for n in range(200)]
        )
    # The last connection closed: the WAL is checkpointed into the main file.
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(data)


async def use_store(path: Path, clock: FakeClock) -> None:
    """Open and read everything; a corrupt database must fail with a typed error."""
    async with open_store(path, clock=clock) as store:
        await store.items()
        await store.items(ItemState.ENQUEUED)
        await store.metrics()
        await store.enqueue(NewItem(topic="t", payload=b"p"))
        await store.lease("w", n=50)


@pytest.mark.parametrize("pattern", [b"\x00", b"\xff", b"\xa5\x5a"])
async def test_pages_overwritten_in_the_middle_give_typed_errors(
    tmp_path: Path, fake_clock: FakeClock, pattern: bytes
) -> None:
    db = tmp_path / "q.db"
    await make_database(db, fake_clock)
    size = db.stat().st_size
    overwrite(db, size // 3, pattern * (size // 3 // len(pattern)))
    with pytest.raises(StoreUnavailable) as info:
        await use_store(db, fake_clock)
    assert isinstance(info.value, NotADatabase)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


async def test_schema_page_overwritten_gives_not_a_database(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    db = tmp_path / "q.db"
    await make_database(db, fake_clock)
    overwrite(db, 100, b"\xff" * 3000)  # just past the 100-byte header: the schema page
    with pytest.raises(NotADatabase):
        await use_store(db, fake_clock)


async def test_overwritten_header_gives_not_a_database(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    db = tmp_path / "q.db"
    await make_database(db, fake_clock)
    overwrite(db, 0, b"garbage!" * 4)
    with pytest.raises(NotADatabase, match="bad file header"):
        await use_store(db, fake_clock)


async def test_truncated_database_gives_a_typed_error(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    db = tmp_path / "q.db"
    await make_database(db, fake_clock)
    with db.open("r+b") as fh:
        fh.truncate(db.stat().st_size // 2)
    with pytest.raises(StoreUnavailable):
        await use_store(db, fake_clock)
