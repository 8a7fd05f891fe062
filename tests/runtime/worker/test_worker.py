"""The worker under a mock clock: store time follows Trio's clock, so nothing sleeps."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from runtime._errors import ValidationFailed
from runtime.store import (
    MEMORY_URL,
    ItemState,
    NewItem,
    SQLiteStore,
    StoreConfig,
    WorkItem,
    open_store,
)
from runtime.worker import TerminalError, Worker, WorkerConfig, run_until_signalled, worker_config

BASE = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "memory"])
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SQLiteStore]:
    # Both backends: the engine behind the Worker facade must not depend on SQLite.
    # pytest-trio runs a test on the autojump clock only when the test itself asks for
    # it, so every test here does; the store's clock follows whatever clock Trio runs on.
    # MockClock.current_time reads plain attributes, so the writer thread may call it.
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock), "request autojump_clock in the test"
    async with open_store(
        tmp_path / "w.db" if request.param == "sqlite" else MEMORY_URL,
        StoreConfig(),
        clock=lambda: BASE + clock.current_time(),
        rand=lambda: 0.5,
    ) as s:
        yield s  # type: ignore[misc]


async def fill(store: SQLiteStore, n: int, topic: str = "t") -> list[str]:
    results = await store.enqueue_many(
        [NewItem(topic=topic, payload=str(i).encode()) for i in range(n)]
    )
    return [r.id for r in results]


async def test_drain_handles_every_item_once(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    ids = await fill(store, 50)
    seen: list[str] = []

    async def handler(item: WorkItem) -> None:
        seen.append(item.id)
        await trio.sleep(0.01)

    worker = Worker(store, handler, WorkerConfig(concurrency=4, drain=True))
    await worker.run()
    assert sorted(seen) == sorted(ids)
    stats = worker.statistics()
    assert (stats.leased, stats.succeeded, stats.in_flight, stats.drained) == (50, 50, 0, True)


async def test_sync_handlers_run_in_threads(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    await fill(store, 3)
    seen: list[bytes] = []
    await Worker(store, lambda item: seen.append(item.payload), WorkerConfig(drain=True)).run()
    assert sorted(seen) == [b"0", b"1", b"2"]


async def test_failures_follow_the_retry_policy(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    [flaky] = await fill(store, 1, "flaky")
    [poison] = await fill(store, 1, "poison")

    async def handler(item: WorkItem) -> None:
        if item.topic == "poison":
            raise TerminalError("bad payload")
        if item.attempt < 3:
            raise ConnectionError("try later")

    worker = Worker(store, handler, WorkerConfig(drain=True))
    await worker.run()
    assert (await store.get(flaky)).state is ItemState.SUCCEEDED
    assert (await store.get(flaky)).attempt == 3
    letter = await store.get_dead_letter(poison)
    assert letter.reason == "terminal_error"
    assert worker.statistics().failed == 3


async def test_handler_timeout_is_a_timeout_failure(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    [item_id] = await fill(store, 1)

    async def handler(item: WorkItem) -> None:
        await trio.sleep(60)

    config = WorkerConfig(drain=True, handler_timeout_s=1.0)
    await Worker(store, handler, config).run()
    letter = await store.get_dead_letter(item_id)
    assert letter.reason == "timeout"
    assert letter.attempts == 5


async def test_heartbeats_keep_a_long_handler_s_lease(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    [item_id] = await fill(store, 1)

    async def handler(item: WorkItem) -> None:
        await trio.sleep(100)  # ten lease periods

    await Worker(store, handler, WorkerConfig(lease_s=10, drain=True)).run()
    item = await store.get(item_id)
    assert item.state is ItemState.SUCCEEDED
    assert item.attempt == 1


async def test_stop_lets_in_flight_items_finish(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    await fill(store, 10)
    started = trio.Event()

    async def handler(item: WorkItem) -> None:
        started.set()
        await trio.sleep(5)

    worker = Worker(store, handler, WorkerConfig(concurrency=2, lease_batch=2))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        await started.wait()
        worker.stop()
    depth = (await store.metrics(60)).depth
    # Every item leased (in flight: handled or waiting in memory) finishes; none is
    # leased after the stop, so the rest stay enqueued.
    leased = worker.statistics().leased
    assert 2 <= leased < 10
    assert depth["succeeded"] == leased
    assert depth["enqueued"] == 10 - leased
    assert worker.completed_shutdown


async def test_shutdown_deadline_cuts_in_flight_items_and_their_leases_expire(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    [item_id] = await fill(store, 1)
    started = trio.Event()

    async def handler(item: WorkItem) -> None:
        started.set()
        await trio.sleep(3600)

    worker = Worker(store, handler, WorkerConfig(lease_s=30, shutdown_timeout_s=2))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        await started.wait()
        worker.stop()
    assert not worker.completed_shutdown
    assert (await store.get(item_id)).state is ItemState.LEASED
    await trio.sleep(31)
    assert await store.reclaim_expired() == 1
    assert (await store.get(item_id)).state is ItemState.ENQUEUED


async def test_on_settled_sees_every_outcome(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    await fill(store, 2)
    outcomes: list[str] = []

    async def handler(item: WorkItem) -> None:
        if item.payload == b"1":
            raise TerminalError("no")

    async def settled(item: WorkItem, outcome: str) -> None:
        outcomes.append(outcome)

    await Worker(store, handler, WorkerConfig(drain=True), on_settled=settled).run()
    assert sorted(outcomes) == ["dead_lettered", "succeeded"]


async def test_first_signal_drains_second_signal_forces(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    await fill(store, 4)
    started = trio.Event()

    async def handler(item: WorkItem) -> None:
        started.set()
        await trio.sleep(3600)

    worker = Worker(store, handler, WorkerConfig(concurrency=1, lease_batch=1))
    code: list[int] = []
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            code.append(await run_until_signalled(worker, (signal.SIGUSR1,)))

        nursery.start_soon(run)
        await started.wait()
        os.kill(os.getpid(), signal.SIGUSR1)
        await trio.sleep(1)
        assert worker.statistics().stopping
        os.kill(os.getpid(), signal.SIGUSR1)
    assert code == [130]


async def test_signal_then_clean_finish_exits_0(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    await fill(store, 1)
    started = trio.Event()

    async def handler(item: WorkItem) -> None:
        started.set()
        await trio.sleep(1)

    worker = Worker(store, handler, WorkerConfig(concurrency=1))
    code: list[int] = []
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            code.append(await run_until_signalled(worker, (signal.SIGUSR2,)))

        nursery.start_soon(run)
        await started.wait()
        os.kill(os.getpid(), signal.SIGUSR2)
    assert code == [0]
    assert (await store.metrics(60)).depth["succeeded"] == 1


async def test_deadline_exit_code(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    await fill(store, 1)
    started = trio.Event()

    async def handler(item: WorkItem) -> None:
        started.set()
        await trio.sleep(3600)

    worker = Worker(store, handler, WorkerConfig(shutdown_timeout_s=1))
    code: list[int] = []
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            code.append(await run_until_signalled(worker, (signal.SIGUSR2,)))

        nursery.start_soon(run)
        await started.wait()
        os.kill(os.getpid(), signal.SIGUSR2)
    assert code == [3]


@pytest.mark.parametrize(
    "options",
    [
        {"concurrency": 0},
        {"lease_s": 0},
        {"lease_batch": 0},
        {"handler_timeout_s": 0},
        {"poll_interval_s": -1},
    ],
)
def test_worker_config_bounds(options: dict[str, float]) -> None:
    with pytest.raises(ValidationFailed):
        worker_config(**options)


def test_default_lease_ahead_is_bounded_by_the_lease_batch() -> None:
    config = WorkerConfig()
    pipeline = config.pipeline_config()
    assert pipeline.lease_batch == config.lease_batch == 256
    # Held in memory at most: two per partition plus one lease batch ahead.
    assert pipeline.capacity == 2 * config.concurrency + config.lease_batch
