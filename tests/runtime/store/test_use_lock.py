"""The use lock keeps a restore and an open store apart (runtime/store/_use_lock.py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runtime import StoreBusy, StoreUnavailable
from runtime.store import SQLiteStore, StoreConfig
from runtime.store.sqlite import exclusive_use, lock_path, shared_use
from tests.conftest import FakeClock


@contextmanager
def held_elsewhere(db: Path) -> Iterator[Callable[[], None]]:
    """Hold ``db`` exclusively in another thread (as a restore in progress would); yields
    the function that lets go."""
    held, release, done = threading.Event(), threading.Event(), threading.Event()
    outcome: list[bool] = []

    def hold() -> None:
        with exclusive_use(db) as alone:
            outcome.append(alone)
            held.set()
            release.wait(timeout=30)
        done.set()

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(timeout=30)
    assert outcome == [True]

    def let_go() -> None:
        release.set()
        done.wait(timeout=30)

    try:
        yield let_go
    finally:
        let_go()
        thread.join(timeout=30)


def test_a_store_holds_the_lock_shared_until_closed(tmp_path: Path, fake_clock: FakeClock) -> None:
    db = tmp_path / "q.db"
    store = SQLiteStore.open(db, clock=fake_clock)
    assert lock_path(db).exists()
    with exclusive_use(db) as alone:
        assert not alone
    other = SQLiteStore.open(db, clock=fake_clock)  # shared with shared: fine
    store.close()
    with exclusive_use(db) as alone:
        assert not alone
    other.close()
    with exclusive_use(db) as alone:
        assert alone


def test_a_store_opening_during_a_restore_is_refused(tmp_path: Path, fake_clock: FakeClock) -> None:
    db = tmp_path / "q.db"
    SQLiteStore.open(db, clock=fake_clock).close()
    with held_elsewhere(db):
        with pytest.raises(StoreBusy, match="is being restored"):
            SQLiteStore.open(db, StoreConfig(busy_timeout_s=0.001), clock=fake_clock)
    SQLiteStore.open(db, StoreConfig(busy_timeout_s=0.001), clock=fake_clock).close()


def test_an_opening_store_waits_for_the_restore_to_finish(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    now = [0.0]
    with held_elsewhere(db) as let_go:

        def sleep(seconds: float) -> None:
            # The first wait is when the restore finishes (no real time passes).
            now[0] += seconds
            let_go()

        fd = shared_use(db, 5.0, clock=lambda: now[0], sleep=sleep)
    assert fd is not None and now[0] > 0
    os.close(fd)


def test_the_wait_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with held_elsewhere(db), pytest.raises(StoreBusy):
        shared_use(db, 1.0, clock=lambda: now[0], sleep=sleep)
    assert 1.0 <= now[0] < 1.1


def test_the_restoring_thread_opens_its_own_file(tmp_path: Path, fake_clock: FakeClock) -> None:
    db = tmp_path / "q.db"
    with exclusive_use(db) as alone:
        assert alone
        assert shared_use(db, 0.0) is None
        SQLiteStore.open(db, clock=fake_clock).close()


def test_a_folder_the_lock_cannot_be_made_in(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="cannot open"):
        shared_use(tmp_path / "missing" / "q.db", 0.0)


def test_the_sidecar_takes_the_database_permissions_and_needs_only_reading(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    db = tmp_path / "q.db"
    SQLiteStore.open(db, clock=fake_clock).close()
    lock_path(db).unlink()
    os.chmod(db, 0o640)
    fd = shared_use(db, 0.0)
    assert fd is not None
    os.close(fd)
    assert lock_path(db).stat().st_mode & 0o777 == 0o640 & ~_umask()
    os.chmod(lock_path(db), 0o444)  # a lock file this user cannot write still locks
    fd = shared_use(db, 0.0)
    assert fd is not None
    os.close(fd)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
