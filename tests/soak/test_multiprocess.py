"""Several worker processes share one database file; one is SIGKILLed mid-way.

These tests run real processes, so they wait on real time: each wait polls the database for
a condition with a generous deadline, never sleeps and hopes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import trio

from runtime.store import NewItem, StoreConfig, open_store

ROOT = Path(__file__).resolve().parents[2]
RELEASES = {"succeeded", "retry_scheduled", "lease_expired", "dead_lettered"}


def spawn_worker(db: Path, handler: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "work", "--db", str(db), "--handler", handler]
        + ["--drain", "--poll-interval", "0.05", *extra],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db, timeout=10) as conn:
        return int(conn.execute(sql).fetchone()[0])


def wait_for(predicate: object, deadline_s: float, what: str) -> None:
    assert callable(predicate)
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def assert_no_overlapping_leases(db: Path) -> dict[str, int]:
    """Every lease of an item ends (settled, retried or expired) before the next begins."""
    leases: dict[str, int] = defaultdict(int)
    open_lease: dict[str, bool] = {}
    with sqlite3.connect(db) as conn:
        for item_id, kind in conn.execute(
            "SELECT item_id, kind FROM audit WHERE item_id IS NOT NULL ORDER BY id"
        ):
            if kind == "leased":
                assert not open_lease.get(item_id), f"item {item_id} leased twice at once"
                open_lease[item_id] = True
                leases[item_id] += 1
            elif kind in RELEASES:
                open_lease[item_id] = False
    return leases


def seed(db: Path, items: list[NewItem]) -> None:
    async def go() -> None:
        async with open_store(db, StoreConfig()) as store:
            for start in range(0, len(items), 1000):
                await store.enqueue_many(items[start : start + 1000])

    trio.run(go)


@pytest.mark.slow
def test_four_workers_drain_5000_items_despite_a_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    seed(db, [NewItem(topic="soak", payload=os.urandom(100).hex().encode()) for _ in range(5000)])
    handler = "tests.soak.handlers:steady"
    args = ("--concurrency", "4", "--lease-seconds", "2", "--lease-batch", "8")
    workers = [spawn_worker(db, handler, *args) for _ in range(4)]

    wait_for(
        lambda: count(db, "SELECT count(*) FROM items WHERE state = 'succeeded'") >= 1500,
        120,
        "a third of the items to succeed",
    )
    victim = workers[0]
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    workers[0] = spawn_worker(db, handler, *args)

    for proc in workers:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()[-2000:]

    states = dict(
        sqlite3.connect(db).execute("SELECT state, count(*) FROM items GROUP BY state").fetchall()
    )
    assert sum(states.values()) == 5000
    assert set(states) <= {"succeeded", "dead_lettered"}, states
    leases = assert_no_overlapping_leases(db)
    assert len(leases) == 5000


@pytest.mark.slow
def test_poison_item_that_kills_its_worker_is_dead_lettered_as_lease_expired(
    tmp_path: Path,
) -> None:
    db = tmp_path / "poison.db"
    items = [NewItem(topic="fine", payload=b"{}") for _ in range(50)]
    items.insert(10, NewItem(topic="poison", payload=b"{}", max_attempts=2))
    seed(db, items)
    handler = "tests.soak.handlers:poison_kills"
    deaths = 0
    while True:
        proc = spawn_worker(db, handler, "--concurrency", "2", "--lease-seconds", "0.5")
        proc.communicate(timeout=120)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL
        deaths += 1
        assert deaths <= 2, "the poison item ran more often than its max attempts"

    assert deaths == 2
    with sqlite3.connect(db) as conn:
        reason, attempts = conn.execute(
            "SELECT d.reason, d.attempts FROM dead_letters d JOIN items i ON i.id = d.item_id "
            "WHERE i.topic = 'poison'"
        ).fetchone()
        fine = conn.execute(
            "SELECT count(*) FROM items WHERE topic = 'fine' AND state = 'succeeded'"
        ).fetchone()[0]
    assert (reason, attempts) == ("lease_expired", 2)
    assert fine == 50
    assert_no_overlapping_leases(db)
