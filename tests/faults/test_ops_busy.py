"""Another process holding the write lock: the CLI waits up to the busy timeout, then exits
1 with one clear line (real time, kept to fractions of a second)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from runtime.store import SQLiteStore

MESSAGE = "garrison: error: the database is locked by another writer (busy timeout passed)\n"


def garrison(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    db = tmp_path / "q.db"
    SQLiteStore.open(db).close()
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    yield db
    holder.execute("ROLLBACK")
    holder.close()


def test_enqueue_against_a_held_lock_fails_clearly(locked: Path) -> None:
    started = time.monotonic()
    code, out, err = garrison(
        "enqueue", "--db", str(locked), "--topic", "t", "--payload", "{}", "--busy-timeout", "0.2"
    )
    assert (code, out, err) == (1, "", MESSAGE)
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize("command", [("purge",), ("maintenance",)])
def test_ops_commands_take_a_busy_timeout(locked: Path, command: tuple[str, ...]) -> None:
    code, out, err = garrison(*command, "--db", str(locked), "--busy-timeout", "0.1")
    assert (code, out, err) == (1, "", MESSAGE)


def test_doctor_reports_a_held_lock_without_waiting_forever(locked: Path) -> None:
    code, out, err = garrison("doctor", "--db", str(locked), "--busy-timeout", "0.1")
    assert code in (0, 1) and "Traceback" not in out + err
