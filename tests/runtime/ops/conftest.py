"""Databases in known situations for the operator toolkit's tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from runtime.store import DeadReason, NewItem, StoreConfig, open_store
from tests.conftest import FakeClock

DAY = 86400.0


def seed(db: Path, clock: FakeClock, *, queue: str = "default") -> dict[str, list[str]]:
    """A history: succeeded items, live and archived dead letters, an expired lease, and
    items waiting. The clock ends 10 days after the first writes."""

    async def go() -> dict[str, list[str]]:
        config = StoreConfig(queue=queue)
        async with open_store(db, config, clock=clock) as store:
            done = await store.enqueue_many(
                [NewItem(topic="old", payload=b"done", key=str(n)) for n in range(5)]
            )
            leased = await store.lease("w", 5)
            await store.ack_many([(i.id, i.lease_token or "") for i in leased])
            dead = await store.enqueue_many(
                [NewItem(topic="bad", payload=b"x", key=str(n)) for n in range(3)]
            )
            for result in dead:
                await store.dead_letter(result.id, DeadReason.TERMINAL_ERROR, "boom")
            await store.archive(dead[0].id)
            clock.advance(10 * DAY)
            waiting = await store.enqueue_many(
                [NewItem(topic="new", payload=b"w") for _ in range(4)]
            )
            held = await store.lease("gone-host:1:abc", 1, lease_s=30)
        clock.advance(60)  # the lease expired; nobody reclaimed it yet
        return {
            "succeeded": [r.id for r in done],
            "dead": [r.id for r in dead],
            "waiting": [r.id for r in waiting],
            "held": [i.id for i in held],
        }

    return trio.run(go)


def checkpoint(db: Path) -> None:
    """Fold the WAL into the main file (as the last connection closing would)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def corrupt(db: Path, offset: int = 4096 * 3, size: int = 8192) -> None:
    """Overwrite pages in the middle of the file."""
    checkpoint(db)
    with db.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xa5" * size)


def rows(db: Path) -> dict[str, int]:
    """Row counts: the 'nothing changed' fingerprint."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("items", "dead_letters", "audit")
        }
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "q.db"


@pytest.fixture
def seeded(db: Path, fake_clock: FakeClock) -> dict[str, list[str]]:
    return seed(db, fake_clock)
