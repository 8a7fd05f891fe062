"""A full database (``PRAGMA max_page_count``): a typed error, nothing lost, the doctor
reports it, and a purge makes room again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from policies import RetentionPolicy
from runtime import StoreFull
from runtime.ops import DoctorConfig, Severity, diagnose, purge
from runtime.store import ItemState, NewItem, StoreConfig, open_store
from tests.conftest import FakeClock

BIG = 3000


def page_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])


async def test_full_database_is_reported_and_purge_lets_work_resume(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    db = tmp_path / "q.db"
    async with open_store(db, clock=fake_clock) as store:
        for n in range(20):
            await store.enqueue(NewItem(topic="old", payload=bytes([n]) * BIG))
        leased = await store.lease("w", 20)
        await store.ack_many([(i.id, i.lease_token or "") for i in leased])
    fake_clock.advance(8 * 86400)
    cap = page_count(db) + 12
    config = StoreConfig(max_page_count=cap)
    stored: list[str] = []
    async with open_store(db, config, clock=fake_clock) as store:
        with pytest.raises(StoreFull, match="nothing from this operation was written"):
            for _ in range(500):
                stored.append((await store.enqueue(NewItem(topic="new", payload=b"n" * BIG))).id)
        assert stored
    report = diagnose(db, DoctorConfig(max_page_count=cap), now=fake_clock())
    cap_finding = report.finding("size_cap")
    assert report.status is Severity.CRITICAL and cap_finding is not None
    assert cap_finding.severity is Severity.CRITICAL and "garrison purge" in (cap_finding.fix or "")
    assert report.finding("retention").data["succeeded"] == 20  # type: ignore[union-attr]

    done = await purge(db, RetentionPolicy(), clock=fake_clock)
    assert done.succeeded == 20
    async with open_store(db, config, clock=fake_clock) as store:
        assert [i.id for i in await store.items(ItemState.ENQUEUED)] == stored  # nothing lost
        more = [
            (await store.enqueue(NewItem(topic="after", payload=b"a" * BIG))).id for _ in range(5)
        ]
        assert len(await store.items(ItemState.ENQUEUED)) == len(stored) + len(more)
    after = diagnose(db, DoctorConfig(max_page_count=cap), now=fake_clock())
    assert after.finding("size_cap").severity is not Severity.CRITICAL  # type: ignore[union-attr]
