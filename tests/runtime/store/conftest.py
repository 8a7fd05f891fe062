"""The store conformance fixtures, parametrised over backends.

Every conformance test asks for ``store`` (an open store with the default test config) or
``store_factory`` (to open one with its own config, or to reopen the same database). A
backend proves itself by adding a factory class and its name to ``BACKENDS`` (SQLite and
the in-memory reference do; PostgreSQL will); nothing in the conformance modules names a
backend. Tests of one backend's specifics live in ``test_sqlite_*.py`` / ``test_memory_*.py``
and open their stores themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import msgspec
import pytest

from policies import RetentionPolicy, RetryPolicy
from runtime.store import (
    AuditEvent,
    DeadLetter,
    MemoryDatabase,
    MemoryStore,
    SQLiteStore,
    Store,
    StoreConfig,
    WorkItem,
    open_store,
)

BACKENDS = ["sqlite", "memory"]

#: Test config: 3 attempts, 10 s first backoff doubling to at most 100 s, no retention
#: purge by default (tests pass their own policy). ``rand`` is 0.5, so no jitter.
TEST_CONFIG = StoreConfig(
    retry=RetryPolicy(max_attempts=3, base_delay_s=10.0, max_delay_s=100.0, multiplier=2.0),
    retention=RetentionPolicy(succeeded_s=None, archived_s=None, audit_s=None),
    readers=2,
)


class StoreFactory(Protocol):
    """Opens stores of one backend on one database (the same one every time)."""

    name: str

    def open(
        self, config: StoreConfig | None = None, *, create: bool = True
    ) -> AbstractAsyncContextManager[Store]:
        """An open store for an ``async with`` block."""
        ...

    def open_sync(self, config: StoreConfig | None = None) -> Store:
        """An open store for sync code (hypothesis); close it with ``trio.run(s.aclose)``."""
        ...


class SQLiteFactory:
    name = "sqlite"

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = path
        self.clock = clock

    def open(
        self, config: StoreConfig | None = None, *, create: bool = True
    ) -> AbstractAsyncContextManager[SQLiteStore]:
        return open_store(
            self.path, config or TEST_CONFIG, create=create, clock=self.clock, rand=lambda: 0.5
        )

    def open_sync(self, config: StoreConfig | None = None) -> SQLiteStore:
        return SQLiteStore.open(
            self.path, config or TEST_CONFIG, clock=self.clock, rand=lambda: 0.5
        )


class MemoryFactory:
    name = "memory"

    def __init__(self, clock: Callable[[], float]) -> None:
        self.database = MemoryDatabase()
        self.clock = clock

    @asynccontextmanager
    async def open(
        self, config: StoreConfig | None = None, *, create: bool = True
    ) -> AsyncIterator[MemoryStore]:
        store = self.open_sync(config)
        try:
            yield store
        finally:
            await store.aclose()

    def open_sync(self, config: StoreConfig | None = None) -> MemoryStore:
        return MemoryStore.open(
            self.database, config or TEST_CONFIG, clock=self.clock, rand=lambda: 0.5
        )


def make_factory(name: str, tmp_path: Path, clock: Callable[[], float]) -> StoreFactory:
    """A factory of backend ``name`` on a fresh database."""
    if name == "sqlite":
        return SQLiteFactory(tmp_path / "queue.db", clock)
    if name == "memory":
        return MemoryFactory(clock)
    raise AssertionError(f"unknown backend {name}")  # pragma: no cover


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def store_factory(backend: str, tmp_path: Path, fake_clock: Any) -> StoreFactory:
    """Opens stores of the backend under test on one fresh database."""
    return make_factory(backend, tmp_path, fake_clock)


@pytest.fixture
def fresh_store_factory(
    backend: str, tmp_path: Path
) -> Callable[[Callable[[], float]], StoreFactory]:
    """``fresh_store_factory(clock)``: a factory on a new, empty database each call.

    For hypothesis tests, where every example needs a database of its own.
    """
    count = 0

    def fresh(clock: Callable[[], float]) -> StoreFactory:
        nonlocal count
        count += 1
        folder = tmp_path / f"db-{count}"
        folder.mkdir()
        return make_factory(backend, folder, clock)

    return fresh


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[Store]:
    """An open store with :data:`TEST_CONFIG`."""
    async with store_factory.open() as opened:
        yield opened


class Snapshot(msgspec.Struct, frozen=True):
    """Everything a caller can see of a queue (to prove that a refusal changed nothing)."""

    items: list[WorkItem]
    dead_letters: list[DeadLetter]
    events: list[AuditEvent]


async def take_snapshot(store: Store) -> Snapshot:
    """The visible state of ``store``."""
    return Snapshot(
        items=await store.items(),
        dead_letters=await store.dead_letters(include_archived=True),
        events=await store.events(),
    )


@pytest.fixture
def snapshot() -> Callable[[Store], Awaitable[Snapshot]]:
    """``await snapshot(store)``: everything visible in the store, for equality checks."""
    return take_snapshot


@pytest.fixture
def store_config() -> StoreConfig:
    """:data:`TEST_CONFIG`, for tests that open a store with a variation of it."""
    return TEST_CONFIG
