"""The group-commit writer: batching, isolation of refused ops, backpressure, closing."""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from runtime import StaleLease, StoreUnavailable
from runtime.store import NewItem, SQLiteStore, StoreConfig, open_store
from runtime.store._writer import GroupCommitWriter

WAIT = 10.0  # seconds a thread waits for an event before the test fails (never reached)


class Gate:
    """A write op that holds the writer thread until released."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn: sqlite3.Connection, now: float) -> str:
        self.running.set()
        assert self.release.wait(WAIT)
        return "gate"


@pytest.fixture
def writer() -> Iterator[GroupCommitWriter]:
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (n INTEGER)")
    w = GroupCommitWriter(conn, clock=lambda: 1.0, max_batch=4, max_pending=2, busy_timeout_s=0.1)
    yield w
    w.close()


def insert(n: int) -> Any:
    def op(conn: sqlite3.Connection, now: float) -> int:
        conn.execute("INSERT INTO t VALUES (?)", (n,))
        return n

    return op


def test_max_pending_bounds_the_queue(writer: GroupCommitWriter) -> None:
    gate = Gate()
    held = writer.submit(gate)
    assert gate.running.wait(WAIT)
    waiting = [writer.submit(insert(n), block=False) for n in range(2)]
    with pytest.raises(queue.Full):
        writer.submit(insert(99), block=False)
    assert writer.statistics().pending == 2
    gate.release.set()
    assert held.result(WAIT) == "gate"
    assert [f.result(WAIT) for f in waiting] == [0, 1]


def test_batches_are_at_most_max_batch(writer: GroupCommitWriter) -> None:
    gate = Gate()
    writer.submit(gate)
    assert gate.running.wait(WAIT)
    futures = []
    for n in range(10):  # a blocking submit waits for room (max_pending 2)
        if n == 2:
            gate.release.set()
        futures.append(writer.submit(insert(n)))
    assert [f.result(WAIT) for f in futures] == list(range(10))
    stats = writer.statistics()
    assert stats.operations == 11
    assert stats.largest_batch <= 4


def test_refused_op_is_rolled_back_alone(writer: GroupCommitWriter) -> None:
    gate = Gate()
    writer.submit(gate)
    assert gate.running.wait(WAIT)

    def refuse(conn: sqlite3.Connection, now: float) -> None:
        conn.execute("INSERT INTO t VALUES (666)")
        raise ValueError("refused")

    bad = writer.submit(refuse)
    good = writer.submit(insert(1))
    gate.release.set()
    with pytest.raises(ValueError, match="refused"):
        bad.result(WAIT)
    assert good.result(WAIT) == 1
    done = writer.submit(lambda c, now: c.execute("SELECT n FROM t").fetchall())
    assert done.result(WAIT) == [(1,)]
    assert writer.statistics().largest_batch >= 2


def test_close_commits_what_is_queued_and_refuses_more(writer: GroupCommitWriter) -> None:
    gate = Gate()
    writer.submit(gate)
    assert gate.running.wait(WAIT)
    pending = writer.submit(insert(5))
    gate.release.set()
    writer.close()
    assert pending.result(WAIT) == 5
    with pytest.raises(StoreUnavailable):
        writer.submit(insert(6))
    writer.close()  # idempotent


async def test_concurrent_enqueues_are_group_committed(tmp_path: Path) -> None:
    async with open_store(tmp_path / "q.db") as store:
        gate = Gate()
        held = store.backend.writer.submit(gate)
        results: list[str] = []

        async def produce(n: int) -> None:
            results.append((await store.enqueue(NewItem(topic="t", payload=bytes([n])))).id)

        async with trio.open_nursery() as nursery:
            for n in range(50):
                nursery.start_soon(produce, n)
            await trio.testing.wait_all_tasks_blocked()
            gate.release.set()
        assert held.result(WAIT) == "gate"
        assert len(results) == 50
        assert len({i.id for i in await store.items()}) == 50
        stats = store.statistics().writer
        assert stats.largest_batch > 1
        assert stats.batches < stats.operations


async def test_refused_op_in_a_batch_does_not_affect_its_neighbours(tmp_path: Path) -> None:
    async with open_store(tmp_path / "q.db") as store:
        await store.enqueue(NewItem(topic="t", payload=b"leased"))
        (leased,) = await store.lease("w")
        gate = Gate()
        store.backend.writer.submit(gate)
        # The writer is inside the gate before anything else is queued, so all twelve
        # operations below meet in the next batch whatever the threads' timing.
        assert gate.running.wait(WAIT)
        outcomes: dict[str, object] = {}

        async def produce(n: int) -> None:
            outcomes[f"enqueue-{n}"] = await store.enqueue(NewItem(topic="t", payload=b"p"))

        async def stale_ack() -> None:
            try:
                await store.ack(leased.id, "stale-token")
            except StaleLease as exc:
                outcomes["stale"] = exc

        async def broken_sql() -> None:
            try:
                await store.backend.write(
                    lambda c, now: c.execute("INSERT INTO nowhere VALUES (1)")
                )
            except sqlite3.OperationalError as exc:
                outcomes["sql"] = exc

        async with trio.open_nursery() as nursery:
            for n in range(5):
                nursery.start_soon(produce, n)
            nursery.start_soon(stale_ack)
            nursery.start_soon(broken_sql)
            for n in range(5, 10):
                nursery.start_soon(produce, n)
            await trio.testing.wait_all_tasks_blocked()
            gate.release.set()
        assert isinstance(outcomes.pop("stale"), StaleLease)
        assert isinstance(outcomes.pop("sql"), sqlite3.OperationalError)
        assert len(outcomes) == 10
        assert len(await store.items()) == 11
        assert store.statistics().writer.largest_batch >= 12


async def test_backpressure_waits_for_room_instead_of_growing(tmp_path: Path) -> None:
    config = StoreConfig(max_pending=3, max_batch=2)
    async with open_store(tmp_path / "q.db", config) as store:
        gate = Gate()
        store.backend.writer.submit(gate)
        assert gate.running.wait(WAIT)
        done = 0

        async def produce(n: int) -> None:
            nonlocal done
            await store.enqueue(NewItem(topic="t", payload=bytes([n])))
            done += 1

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(produce, n)
            await trio.testing.wait_all_tasks_blocked()
            assert store.statistics().writer.pending == 3  # the rest wait in threads
            assert done == 0
            gate.release.set()
        assert done == 20
        assert len(await store.items()) == 20
        assert store.statistics().writer.largest_batch <= 2


async def test_cancelled_caller_still_sees_its_write_committed(tmp_path: Path) -> None:
    async with open_store(tmp_path / "q.db") as store:
        gate = Gate()
        store.backend.writer.submit(gate)

        async def release_when_blocked() -> None:
            await trio.testing.wait_all_tasks_blocked()
            gate.release.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(release_when_blocked)
            with trio.CancelScope() as scope:
                scope.cancel()
                # The wait for the writer is shielded: the result still arrives.
                result = await store.enqueue(NewItem(topic="t", payload=b"p"))
                assert result.created
        assert [i.id for i in await store.items()] == [result.id]


def test_sync_open_does_not_need_an_event_loop_for_reads(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "q.db")
    try:
        assert trio.run(store.items) == []
        assert trio.run(store.items) == []  # a second trio.run reuses the reader
    finally:
        store.close()


def test_failed_commit_fails_and_undoes_the_whole_batch() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute(
        "CREATE TABLE child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
    )
    w = GroupCommitWriter(conn, clock=lambda: 1.0, max_batch=8, max_pending=8, busy_timeout_s=0.1)
    try:
        gate = Gate()
        w.submit(gate)
        assert gate.running.wait(WAIT)
        fine = w.submit(lambda c, now: c.execute("INSERT INTO parent VALUES (1)").rowcount)
        orphan = w.submit(lambda c, now: c.execute("INSERT INTO child VALUES (99)").rowcount)
        gate.release.set()
        for future in (fine, orphan):  # the deferred check fails at COMMIT, for everyone
            with pytest.raises(sqlite3.IntegrityError):
                future.result(WAIT)
        rows = w.submit(lambda c, now: c.execute("SELECT count(*) FROM parent").fetchone()[0])
        assert rows.result(WAIT) == 0
    finally:
        w.close()
