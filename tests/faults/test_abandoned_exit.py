"""A handler that ignores its cancellation cannot keep ``garrison work`` from exiting: past
the stop deadlines its task is abandoned and the process exits with the deadline's code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.store import NewItem
from tests.soak.test_multiprocess import ROOT, seed, wait_for


@pytest.mark.slow
def test_work_exits_past_a_handler_that_will_not_stop(tmp_path: Path) -> None:
    db = tmp_path / "stubborn.db"
    marker = tmp_path / "started"
    seed(db, [NewItem(topic="t", payload=b"x")])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "work",
            "--db",
            str(db),
            "--handler",
            "tests.faults.stubborn_handlers:stubborn",
            "--shutdown-timeout",
            "0.5",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT), "GARRISON_TEST_MARKER": str(marker)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(marker.exists, 60, "the handler to start")
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    text = err.decode()
    # 3: the shutdown deadline cut work short; the stop is bounded (worker shutdown 1 s,
    # then a kill round of 1 s, then abandoned), not the handler's hour.
    assert proc.returncode == 3, text[-2000:]
    assert time.monotonic() - began < 30
    assert "did not stop by their deadline" in text
    assert "Traceback" not in text
