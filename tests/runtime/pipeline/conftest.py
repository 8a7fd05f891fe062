from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from policies import RetryPolicy
from runtime.store import SQLiteStore, StoreConfig, open_store

BASE = 1_800_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A real SQLite store whose clock follows Trio's (request autojump_clock in the test)."""
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock), "request autojump_clock in the test"
    config = StoreConfig(retry=RetryPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=5.0))
    async with open_store(
        tmp_path / "p.db", config, clock=lambda: BASE + clock.current_time(), rand=lambda: 0.5
    ) as s:
        yield s
