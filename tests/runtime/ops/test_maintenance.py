from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runtime import NotADatabase, StoreBusy
from runtime.ops import DoctorConfig, diagnose, maintain
from runtime.ops._maintenance import index_definitions
from runtime.store._schema import EXPECTED_INDEXES
from tests.conftest import FakeClock
from tests.runtime.ops.conftest import corrupt


def test_maintenance_fixes_what_the_doctor_finds(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]]
) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DROP INDEX items_state")
        conn.execute("DELETE FROM items WHERE id = ?", (seeded["dead"][1],))  # dangling row
        conn.execute("UPDATE items SET replay_of = 'gone' WHERE id = ?", (seeded["waiting"][0],))
    before = diagnose(db, now=fake_clock())
    assert {f.check for f in before.findings if f.severity.needs_action} >= {
        "schema",
        "foreign_keys",
        "expired_leases",
    }
    result = maintain(db, clock=fake_clock)
    assert result.reclaimed_leases == {"default": 1}
    assert result.indexes_created == ["items_state"]
    assert result.foreign_keys_repaired == {"dead_letters_deleted": 1, "replay_links_cleared": 1}
    assert result.analyzed and result.optimized and not result.vacuumed
    assert result.after.wal_bytes == 0 and result.wal_frames_after == 0
    after = diagnose(db, DoctorConfig(), now=fake_clock())
    for check in ("schema", "foreign_keys", "expired_leases"):
        assert after.finding(check).severity.value == "ok", check  # type: ignore[union-attr]
    conn = sqlite3.connect(db)
    repaired = "SELECT count(*) FROM audit WHERE kind = 'foreign_keys_repaired'"
    assert conn.execute(repaired).fetchone()[0] > 0
    assert conn.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0] > 0
    conn.close()


def test_vacuum_returns_free_pages(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]]
) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit")
        conn.execute("DELETE FROM items WHERE state = 'succeeded'")
    result = maintain(db, vacuum=True, clock=fake_clock)
    assert result.vacuumed and result.after.freelist_count == 0
    assert result.reclaimed_leases == {"default": 1}


def test_maintenance_on_an_empty_file_creates_the_schema(db: Path, fake_clock: FakeClock) -> None:
    db.touch()
    result = maintain(db, clock=fake_clock)
    assert result.before.rows == {} and set(result.after.rows) >= {"items", "audit"}
    assert result.indexes_created == []


def test_maintenance_refuses_a_corrupt_database(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]]
) -> None:
    corrupt(db)
    with pytest.raises(NotADatabase, match="restore"):
        maintain(db, clock=fake_clock)


def test_maintenance_waits_for_a_writer_then_fails_clearly(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]]
) -> None:
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusy, match="locked"):
            maintain(db, busy_timeout_s=0.1, clock=fake_clock)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_index_definitions_cover_the_schema() -> None:
    assert set(index_definitions()) == set(EXPECTED_INDEXES)
    assert all("IF NOT EXISTS" in s for s in index_definitions().values())
