"""``garrison run`` in-process: a factory's pipeline runs until SIGTERM, then drains."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading

from tests.runtime.cli.conftest import Garrison


def test_run_drains_on_sigterm_and_exits_0(garrison: Garrison) -> None:
    for n in range(20):
        garrison("enqueue", "--topic", "t", "--payload", str(n), "--key", str(n % 3))
    # The signal arrives while the pipeline runs; whatever it has in hand is drained.
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code, _, err = garrison("run", "tests.soak.pipelines:build")
    finally:
        timer.cancel()
    assert code == 0, err
    assert garrison.rows()["items"] == 20


def test_run_refuses_a_factory_that_is_not_a_pipeline(garrison: Garrison) -> None:
    code, _, err = garrison("run", "tests.soak.pipelines:not_a_pipeline")
    assert code == 2
    assert "not a Pipeline" in err


def test_run_refuses_a_malformed_factory(garrison: Garrison) -> None:
    code, _, err = garrison("run", "nonsense")
    assert code == 2
    assert "MODULE:FUNC" in err


def test_run_with_drain_exits_0_once_nothing_is_left(garrison: Garrison) -> None:
    for n in range(10):
        garrison("enqueue", "--topic", "t", "--payload", str(n), "--key", str(n % 3))
    code, _, err = garrison("run", "tests.soak.pipelines:build", "--drain")
    assert code == 0, err
    with sqlite3.connect(garrison.db) as conn:
        [(succeeded,)] = conn.execute("SELECT count(*) FROM items WHERE state = 'succeeded'")
    assert succeeded == 10
