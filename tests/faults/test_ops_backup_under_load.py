"""A backup taken while four worker processes run restores to a database that passes
``integrity_check`` and keeps every acknowledged item the backup held; a restore is refused
while a real second process holds the database.

These tests start real processes, so they wait for them (polling with a deadline).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from runtime.cli import app
from runtime.ops import backup, restore
from runtime.store import NewItem, open_store

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 800
pytestmark = pytest.mark.slow


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def states(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT id, state FROM items"))
    finally:
        conn.close()


def wait_for(condition: object, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_backup_during_four_workers_restores_every_acknowledged_item(tmp_path: Path) -> None:
    db = tmp_path / "q.db"

    async def fill() -> None:
        async with open_store(db) as store:
            await store.enqueue_many([NewItem(topic="t", payload=b"{}") for _ in range(ITEMS)])

    trio.run(fill)
    command = [
        sys.executable,
        "-m",
        "runtime.cli",
        "work",
        "--db",
        str(db),
        "--handler",
        "tests.faults.ops_handlers:slow",
        "--concurrency",
        "2",
        "--drain",
        "--poll-interval",
        "0.01",
    ]
    workers = [
        subprocess.Popen(
            command, env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    try:
        wait_for(lambda: list(states(db).values()).count("succeeded") >= 50)
        made = backup(db, tmp_path / "b", now=time.time())
        for worker in workers:
            assert worker.wait(timeout=120) == 0, worker.stderr.read() if worker.stderr else ""
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    copy = states(Path(made.backup))
    acked = {i for i, s in copy.items() if s == "succeeded"}
    assert 50 <= len(acked) < ITEMS, "the backup was taken mid-run"
    assert len(copy) == ITEMS and made.manifest.rows["items"] == ITEMS

    result = restore(Path(made.backup), db)
    assert result.pre_restore is not None
    restored = states(db)
    assert set(restored) == set(copy)
    assert {i for i, s in restored.items() if s == "succeeded"} == acked
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


HOLDER = """
import sys
from runtime.store import SQLiteStore
store = SQLiteStore.open(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
store.close()
"""


def test_restore_is_refused_while_another_process_holds_the_database(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    trio.run(_one_item, db)
    made = backup(db, tmp_path / "b", now=time.time())
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        env=env(),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        before = db.read_bytes()
        result = CliRunner().invoke(app, ["restore", made.backup, "--db", str(db)])
        assert result.exit_code == 1
        assert result.stderr.startswith("garrison: error:") and "is in use" in result.stderr
        assert db.read_bytes() == before and not db.with_name("q.db.pre-restore").exists()
    finally:
        holder.communicate("", timeout=30)
    result = CliRunner().invoke(app, ["restore", made.backup, "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["rows"]["items"] == 1


async def _one_item(db: Path) -> None:
    async with open_store(db) as store:
        await store.enqueue(NewItem(topic="t", payload=b"{}"))
