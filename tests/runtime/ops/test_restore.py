from __future__ import annotations

import os
import socket
import sqlite3
import threading
from pathlib import Path

import pytest
import trio

from runtime import StoreBusy, ValidationFailed
from runtime.ops import BackupRefused, DatabaseInUse, backup, holders, restore
from runtime.ops import _restore as restore_module
from runtime.store import NewItem, SQLiteStore, StoreConfig, open_store
from tests.conftest import FakeClock
from tests.runtime.ops.conftest import corrupt, rows


@pytest.fixture
def made(db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]], tmp_path: Path) -> Path:
    return Path(backup(db, tmp_path / "b", now=fake_clock()).backup)


def test_restore_replaces_a_corrupt_database_and_keeps_it(
    db: Path, fake_clock: FakeClock, made: Path
) -> None:
    expected = rows(db)
    corrupt(db)
    result = restore(made, db, clock=fake_clock)
    after = rows(db)
    assert (after["items"], after["dead_letters"]) == (expected["items"], expected["dead_letters"])
    assert after["audit"] == expected["audit"] + 1  # reopening reclaimed the expired lease
    assert result.pre_restore == os.fspath(db) + ".pre-restore"
    assert Path(result.pre_restore).exists()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    # A second restore keeps the first pre-restore file and adds a timestamped one.
    again = restore(made, db, clock=fake_clock)
    assert again.pre_restore is not None and again.pre_restore.endswith("Z.pre-restore")
    assert Path(result.pre_restore).exists()


def test_restore_into_a_new_path(made: Path, tmp_path: Path, fake_clock: FakeClock) -> None:
    target = tmp_path / "fresh.db"
    result = restore(made, target, clock=fake_clock)
    assert result.pre_restore is None and result.rows["items"] == 12


def test_a_tampered_backup_changes_nothing(db: Path, made: Path, fake_clock: FakeClock) -> None:
    with made.open("r+b") as fh:
        fh.seek(6000)
        fh.write(b"tampered")
    before = db.read_bytes()
    with pytest.raises(BackupRefused, match="does not match the manifest"):
        restore(made, db, clock=fake_clock)
    assert db.read_bytes() == before and not db.with_name("q.db.pre-restore").exists()


def test_bad_targets(made: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="is a folder"):
        restore(made, tmp_path)
    with pytest.raises(ValidationFailed, match="does not exist"):
        restore(made, tmp_path / "no" / "q.db")
    with pytest.raises(ValidationFailed, match="no backup at"):
        restore(tmp_path / "nope.db", tmp_path / "q.db")


async def test_restore_is_refused_while_a_store_has_the_database_open(
    db: Path, made: Path, fake_clock: FakeClock
) -> None:
    async with open_store(db, clock=fake_clock):
        assert holders(db, now=fake_clock())
        with pytest.raises(DatabaseInUse, match="stop the workers first") as info:
            restore(made, db, clock=fake_clock)
        assert "open" in info.value.holders[0]
    assert holders(db, now=fake_clock()) == []


def test_live_leases_of_running_processes_count_and_of_dead_ones_do_not(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    db = tmp_path / "leases.db"
    me = socket.gethostname()

    async def lease(owner: str) -> None:
        async with open_store(db, StoreConfig(), clock=fake_clock) as store:
            await store.enqueue(NewItem(topic="t", payload=b"x"))
            await store.lease(owner, 1, lease_s=60)

    trio.run(lease, f"{me}:{os.getpid()}:aaaaaa")
    assert holders(db, now=fake_clock())[0].startswith(f"worker {me}:{os.getpid()}")
    dead_pid = 2**22 + 12345
    db.unlink()
    trio.run(lease, f"{me}:{dead_pid}:bbbbbb")
    assert holders(db, now=fake_clock()) == []
    db.unlink()
    trio.run(lease, "elsewhere:1:cccccc")
    assert holders(db, now=fake_clock()) == [
        "worker elsewhere:1:cccccc holds leases (for 60 s more)"
    ]
    assert holders(db, now=fake_clock() + 61) == []
    assert holders(tmp_path / "none.db", now=0.0) == []


def test_a_file_that_is_not_a_database_is_probed_with_posix_locks(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 1000)
    assert holders(junk, now=0.0) == []


def test_a_restored_file_that_does_not_reopen_is_rolled_back(
    db: Path, made: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = db.read_bytes()
    db.with_name("q.db-wal").write_bytes(b"")

    def broken(*_args: object) -> dict[str, int]:
        raise BackupRefused("boom")

    monkeypatch.setattr(restore_module, "_confirm", broken)
    with pytest.raises(BackupRefused, match="the original was put back"):
        restore(made, db, clock=fake_clock)
    assert db.read_bytes() == before and db.with_name("q.db-wal").exists()
    assert not db.with_name("q.db.pre-restore").exists()


def test_confirm_checks_the_restored_file(
    db: Path, made: Path, fake_clock: FakeClock, tmp_path: Path
) -> None:
    from runtime.ops import verify_backup

    manifest = verify_backup(made)
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"x" * 100)
    with pytest.raises(BackupRefused, match="not a SQLite database"):
        restore_module._confirm(bad, manifest, fake_clock)
    SQLiteStore.open(bad.with_name("empty.db"), clock=fake_clock).close()
    with pytest.raises(BackupRefused, match="row counts"):
        restore_module._confirm(bad.with_name("empty.db"), manifest, fake_clock)
    corrupt(db)
    with pytest.raises(Exception, match=r"malformed|quick_check"):
        restore_module._confirm(db, manifest, fake_clock)


def test_no_store_can_open_the_file_between_the_check_and_the_swap(
    db: Path, made: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race this guards against: a worker opening the old file after the "in use?"
    # check would write into the file moved aside. Open one at the worst moment.
    attempts: list[BaseException | None] = []
    move_aside = restore_module._move_aside

    def open_from_another_thread() -> None:
        try:
            SQLiteStore.open(db, StoreConfig(busy_timeout_s=0.001), clock=fake_clock).close()
            attempts.append(None)
        except BaseException as exc:
            attempts.append(exc)

    def racing(target: Path, now: float) -> Path | None:
        thread = threading.Thread(target=open_from_another_thread)
        thread.start()
        thread.join(timeout=30)
        return move_aside(target, now)

    monkeypatch.setattr(restore_module, "_move_aside", racing)
    restore(made, db, clock=fake_clock)
    [refused] = attempts
    assert isinstance(refused, StoreBusy)
    SQLiteStore.open(db, StoreConfig(busy_timeout_s=0.001), clock=fake_clock).close()


def test_an_open_store_in_another_thread_is_named_as_the_holder(
    db: Path, made: Path, fake_clock: FakeClock
) -> None:
    store = SQLiteStore.open(db, clock=fake_clock)
    try:
        result: list[BaseException] = []
        thread = threading.Thread(target=lambda: _restore_into(result, made, db, fake_clock))
        thread.start()
        thread.join(timeout=30)
        [refused] = result
        assert isinstance(refused, DatabaseInUse)
        assert "Garrison store has the database open" in refused.holders[0]
    finally:
        store.close()


def _restore_into(result: list[BaseException], made: Path, db: Path, clock: FakeClock) -> None:
    try:
        restore(made, db, clock=clock)
    except BaseException as exc:
        result.append(exc)
