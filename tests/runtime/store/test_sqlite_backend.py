"""SQLite specifics: file checks, PRAGMAs, schema versions, statistics."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from runtime import NotADatabase, SchemaTooNew, StoreUnavailable, ValidationFailed
from runtime.store import (
    SCHEMA_VERSION,
    NewItem,
    SQLiteStore,
    StoreConfig,
    Synchronous,
    open_store,
)
from runtime.store.sqlite import EXPECTED_INDEXES, EXPECTED_TABLES


def read_pragma(path: Path, name: str) -> Any:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


async def test_new_database_is_wal_with_the_current_schema(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    async with open_store(db) as store:
        assert store.statistics().schema_version_found == 0
    assert read_pragma(db, "journal_mode") == "wal"
    assert read_pragma(db, "user_version") == SCHEMA_VERSION
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert set(EXPECTED_TABLES) | set(EXPECTED_INDEXES) <= names


async def test_reopening_finds_the_current_schema_version(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    async with open_store(db):
        pass
    async with open_store(db) as store:
        assert store.statistics().schema_version_found == SCHEMA_VERSION


@pytest.mark.parametrize(("level", "expected"), [(Synchronous.NORMAL, 1), (Synchronous.FULL, 2)])
async def test_synchronous_pragma_follows_the_config(
    tmp_path: Path, level: Synchronous, expected: int
) -> None:
    async with open_store(tmp_path / "q.db", StoreConfig(synchronous=level)) as store:
        conn = store.backend.writer._conn
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == expected
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0  # it retries itself
        assert store.statistics().synchronous == level.value


async def test_reader_connections_are_query_only(tmp_path: Path) -> None:
    async with open_store(tmp_path / "q.db", StoreConfig(busy_timeout_s=2.5)) as store:

        def pragmas(conn: sqlite3.Connection) -> tuple[int, int]:
            return (
                conn.execute("PRAGMA query_only").fetchone()[0],
                conn.execute("PRAGMA busy_timeout").fetchone()[0],
            )

        assert await store.backend.read(pragmas) == (1, 2500)


async def test_max_page_count_applies_to_the_writer(tmp_path: Path) -> None:
    async with open_store(tmp_path / "q.db", StoreConfig(max_page_count=500)) as store:
        assert store.backend.writer._conn.execute("PRAGMA max_page_count").fetchone()[0] == 500


def test_config_refuses_non_positive_bounds() -> None:
    with pytest.raises(ValueError, match="max_page_count"):
        StoreConfig(max_page_count=0)
    with pytest.raises(ValueError, match="busy_timeout_s"):
        StoreConfig(busy_timeout_s=0)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"surprise": 1}, StoreConfig)


async def test_missing_database_with_create_false_is_unavailable(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    with pytest.raises(StoreUnavailable, match="no database"):
        async with open_store(db, create=False):
            pass
    assert not db.exists()


async def test_existing_database_opens_with_create_false(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    async with open_store(db):
        pass
    async with open_store(db, create=False) as store:
        assert await store.items() == []


async def test_path_in_a_missing_folder_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="does not exist"):
        async with open_store(tmp_path / "nope" / "q.db"):
            pass


async def test_directory_path_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="directory"):
        async with open_store(tmp_path):
            pass


async def test_text_file_is_not_a_database_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 10)
    before = path.read_bytes()
    with pytest.raises(NotADatabase):
        async with open_store(path):
            pass
    assert path.read_bytes() == before


async def test_empty_file_becomes_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    async with open_store(path) as store:
        await store.enqueue(NewItem(topic="t", payload=b"p"))
        assert len(await store.items()) == 1


async def test_unreadable_file_is_unavailable(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "q.db"
    path.write_bytes(b"SQLite format 3\x00")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(StoreUnavailable, match="cannot read"):
        SQLiteStore.open(path)


@pytest.mark.parametrize("user_version", [0, 1])
async def test_foreign_sqlite_database_is_refused_unchanged(
    tmp_path: Path, user_version: int
) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE contacts (name TEXT)")
        conn.execute("INSERT INTO contacts VALUES ('ada')")
        conn.execute(f"PRAGMA user_version = {user_version}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(NotADatabase, match="not a Garrison one"):
        async with open_store(path):
            pass
    assert path.read_bytes() == before
    assert read_pragma(path, "journal_mode") == "delete"  # not switched to WAL


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    async with open_store(db) as store:
        item_id = (await store.enqueue(NewItem(topic="t", payload=b"p"))).id
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="upgrade Garrison"):
        async with open_store(db):
            pass
    assert read_pragma(db, "user_version") == SCHEMA_VERSION + 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM items").fetchall() == [(item_id,)]
    conn.close()


async def test_statistics_describe_the_handle(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    async with open_store(db, StoreConfig(queue="billing")) as store:
        await store.enqueue(NewItem(topic="t", payload=b"p"))
        stats = store.statistics()
    assert stats.path == str(db)
    assert stats.queue == "billing"
    assert stats.writer.operations >= 2  # the reclaim at open, then the enqueue
    assert stats.writer.batches >= 1
    assert stats.writer.pending == 0
    assert stats.writer.lock_waits == 0


async def test_queues_in_one_database_are_separate(tmp_path: Path, fake_clock: Any) -> None:
    db = tmp_path / "q.db"
    async with (
        open_store(db, StoreConfig(queue="a"), clock=fake_clock) as a,
        open_store(db, StoreConfig(queue="b"), clock=fake_clock) as b,
    ):
        a_id = (await a.enqueue(NewItem(topic="t", payload=b"a", idempotency_key="k"))).id
        b_id = (await b.enqueue(NewItem(topic="t", payload=b"b", idempotency_key="k"))).id
        assert a_id != b_id  # idempotency keys are per queue
        assert [i.id for i in await b.lease("w", n=10)] == [b_id]
        assert [i.id for i in await a.items()] == [a_id]
        assert (await a.metrics()).depth["leased"] == 0


def test_sync_open_and_close_work_outside_an_event_loop(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "q.db")
    try:
        result = trio.run(store.enqueue, NewItem(topic="t", payload=b"p"))
        assert trio.run(store.get, result.id).payload == b"p"
    finally:
        store.close()
        store.close()  # idempotent


async def test_now_reads_the_injected_clock(tmp_path: Path, fake_clock: Any) -> None:
    async with open_store(tmp_path / "q.db", clock=fake_clock) as store:
        assert store.now() == fake_clock.now
        fake_clock.advance(5)
        assert store.now() == fake_clock.now


async def test_queues_sharing_a_database_keep_their_audit_apart(tmp_path: Path) -> None:
    import time

    from policies import RetentionPolicy
    from runtime.store import NewItem, StoreConfig, open_store

    db = tmp_path / "two.db"
    async with (
        open_store(db, StoreConfig(queue="a")) as a,
        open_store(db, StoreConfig(queue="b")) as b,
    ):
        await a.enqueue(NewItem(topic="t", payload=b"1"))
        await b.enqueue(NewItem(topic="t", payload=b"2"))
        assert {e.queue for e in await a.events()} == {"a"}
        assert {e.queue for e in await b.events()} == {"b"}
    # An hour later, queue a's audit retention runs: queue b's trail is not touched.
    policy = RetentionPolicy(succeeded_s=None, archived_s=None, audit_s=60.0)
    later = time.time() + 3600
    async with open_store(db, StoreConfig(queue="a"), clock=lambda: later) as a_later:
        assert (await a_later.purge(policy, dry_run=True)).audit == 1
        assert (await a_later.purge(policy)).audit == 1
    async with open_store(db, StoreConfig(queue="b")) as b:
        assert [e.kind for e in await b.events()] == ["enqueued"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_batch": 0}, "max_batch"),
        ({"max_pending": 0}, "max_pending"),
        ({"max_lease_batch": 16_385}, "max_lease_batch"),
        ({"max_lease_s": 0.0}, "max_lease_s"),
        ({"readers": 0}, "readers"),
        ({"list_limit": -1}, "list_limit"),
        ({"queue": ""}, "queue"),
        ({"busy_timeout_s": float("nan")}, "busy_timeout_s"),
    ],
)
def test_config_bounds_are_declared_and_checked(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        StoreConfig(**fields)
    assert info.value.field == field
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(fields, StoreConfig)
