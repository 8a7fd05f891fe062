from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from policies import RetryPolicy
from runtime.store import MEMORY_URL, SQLiteStore, StoreConfig, open_store

BASE = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "memory"])
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SQLiteStore]:
    """A store whose clock follows Trio's (request autojump_clock in the test): a real
    SQLite file, and the in-memory reference backend, so the engine is proven on both."""
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock), "request autojump_clock in the test"
    config = StoreConfig(retry=RetryPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=5.0))
    where = tmp_path / "p.db" if request.param == "sqlite" else MEMORY_URL
    async with open_store(
        where, config, clock=lambda: BASE + clock.current_time(), rand=lambda: 0.5
    ) as s:
        yield s  # type: ignore[misc]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pytest-trio's trio_mode would run ``@pytest.mark.anyio`` tests on Trio whatever the
    ``anyio_backend``; take its marker off them so anyio's plugin picks the backend."""
    for item in items:
        if item.get_closest_marker("anyio") is not None:
            item.own_markers[:] = [m for m in item.own_markers if m.name != "trio"]
