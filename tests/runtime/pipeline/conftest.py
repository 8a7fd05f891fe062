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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pytest-trio's trio_mode would run ``@pytest.mark.anyio`` tests on Trio whatever the
    ``anyio_backend``; take its marker off them so anyio's plugin picks the backend."""
    for item in items:
        if item.get_closest_marker("anyio") is not None:
            item.own_markers[:] = [m for m in item.own_markers if m.name != "trio"]
