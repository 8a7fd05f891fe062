"""``garrison run`` in a real process: runs the factory's pipeline, drains on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.store import NewItem
from tests.soak.test_multiprocess import ROOT, count, seed, wait_for


def start(db: Path, factory: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "run", factory, "--db", str(db)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_run_processes_items_and_drains_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    seed(db, [NewItem(topic="t", payload=b"x", key=str(i % 5)) for i in range(300)])
    proc = start(db, "tests.soak.pipelines:build")
    wait_for(
        lambda: count(db, "SELECT count(*) FROM items WHERE state = 'succeeded'") == 300,
        60,
        "all items to succeed",
    )
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM items WHERE state != 'succeeded'").fetchone() == (
            0,
        )


@pytest.mark.slow
def test_run_refuses_a_factory_that_is_not_a_pipeline(tmp_path: Path) -> None:
    proc = start(tmp_path / "x.db", "tests.soak.pipelines:not_a_pipeline")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert b"not a Pipeline" in err
    assert b"Traceback" not in err


@pytest.mark.slow
def test_run_refuses_a_missing_factory(tmp_path: Path) -> None:
    proc = start(tmp_path / "x.db", "tests.soak.pipelines:nope")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert b"has no attribute" in err
