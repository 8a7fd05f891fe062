"""Replay through partitioned supervised workers, on the autojump clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from runtime._errors import ItemNotFound, ValidationFailed
from runtime.replay import ReplayConfig, ReplaySelection, ReplayService, replay_config
from runtime.store import (
    MEMORY_URL,
    DeadReason,
    ItemState,
    NewItem,
    SQLiteStore,
    StoreConfig,
    open_store,
)
from supervisors import SupervisorEscalation

BASE = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "memory"])
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SQLiteStore]:
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock), "request autojump_clock in the test"
    where = tmp_path / "r.db" if request.param == "sqlite" else MEMORY_URL
    async with open_store(where, StoreConfig(), clock=lambda: BASE + clock.current_time()) as s:
        yield s  # type: ignore[misc]


async def dead(store: SQLiteStore, n: int, topic: str = "t", keys: int = 3) -> list[str]:
    ids = []
    for i in range(n):
        r = await store.enqueue(NewItem(topic=topic, payload=str(i).encode(), key=f"k{i % keys}"))
        await store.dead_letter(r.id, DeadReason.TERMINAL_ERROR, "boom")
        ids.append(r.id)
    return ids


async def replays_of(store: SQLiteStore, item_id: str) -> list[str]:
    return [i.id for i in await store.items() if i.replay_of == item_id]


async def test_dry_run_changes_nothing(store: SQLiteStore, autojump_clock: object) -> None:
    ids = await dead(store, 4)
    await store.replay(ids[0])
    before = await store.items()
    report = await ReplayService(store).run(ReplaySelection(topic="t"), dry_run=True)
    assert report.dry_run
    assert [o.status for o in report.outcomes] == ["would_skip"] + ["would_replay"] * 3
    assert (report.replayed, report.skipped) == (3, 1)
    assert await store.items() == before


async def test_each_dead_letter_replays_once_then_is_skipped(
    store: SQLiteStore, autojump_clock: object
) -> None:
    ids = await dead(store, 20)
    first = await ReplayService(store).run(ReplaySelection(topic="t"))
    assert (first.selected, first.replayed, first.failed) == (20, 20, 0)
    for item_id in ids:
        assert len(await replays_of(store, item_id)) == 1
    second = await ReplayService(store).run(ReplaySelection(topic="t"))
    assert (second.replayed, second.skipped) == (0, 20)
    forced = await ReplayService(store, ReplayConfig(force=True)).run(
        ReplaySelection(ids=(ids[0],))
    )
    assert forced.replayed == 1
    assert len(await replays_of(store, ids[0])) == 2


async def test_selection_filters(store: SQLiteStore, autojump_clock: object) -> None:
    await dead(store, 3, topic="a")
    await dead(store, 2, topic="b")
    report = await ReplayService(store).run(ReplaySelection(topic="b"), dry_run=True)
    assert report.selected == 2
    report = await ReplayService(store).run(
        ReplaySelection(reason=DeadReason.TIMEOUT), dry_run=True
    )
    assert report.selected == 0
    report = await ReplayService(store).run(ReplaySelection(limit=4), dry_run=True)
    assert report.selected == 4


async def test_archived_and_unknown_ids(store: SQLiteStore, autojump_clock: object) -> None:
    [a, b] = await dead(store, 2)
    await store.archive(a)
    report = await ReplayService(store).run(ReplaySelection(ids=(a, b)))
    assert [o.status for o in report.outcomes] == ["missing", "replayed"]
    dry = await ReplayService(store).run(ReplaySelection(ids=(a,)), dry_run=True)
    assert dry.outcomes[0].status == "missing"
    with pytest.raises(ItemNotFound):
        await ReplayService(store).run(ReplaySelection(ids=("0" * 32,)))


@pytest.mark.parametrize("crash_after_commit", [False, True])
async def test_a_crash_is_isolated_to_its_partition_and_loses_or_duplicates_nothing(
    store: SQLiteStore, autojump_clock: object, crash_after_commit: bool
) -> None:
    ids = await dead(store, 30, keys=10)
    victim = ids[7]
    crashed: list[str] = []

    async def flaky_replay(item_id: str, force: bool) -> str:
        if item_id == victim and not crashed:
            crashed.append(item_id)
            if crash_after_commit:
                await store.replay(item_id, force=force)
            raise RuntimeError("replay worker died")
        return await store.replay(item_id, force=force)

    report = await ReplayService(store, replay_fn=flaky_replay).run(ReplaySelection())
    assert crashed == [victim]
    assert report.worker_restarts == 1
    assert report.failed == 0
    assert report.replayed + report.skipped == 30
    assert report.skipped == (1 if crash_after_commit else 0)
    for item_id in ids:
        assert len(await replays_of(store, item_id)) == 1


async def test_per_key_order_is_kept(store: SQLiteStore, autojump_clock: object) -> None:
    ids = await dead(store, 12, keys=2)
    await ReplayService(store, ReplayConfig(partitions=3)).run(ReplaySelection())
    items = {i.id: i for i in await store.items()}
    for key in ("k0", "k1"):
        originals = [i for i in ids if items[i].key == key]
        new_seqs = [items[(await replays_of(store, o))[0]].seq for o in originals]
        assert new_seqs == sorted(new_seqs)


async def test_rate_limit_paces_the_replays(
    store: SQLiteStore, autojump_clock: trio.testing.MockClock
) -> None:
    await dead(store, 20)
    start = trio.current_time()
    report = await ReplayService(store, ReplayConfig(rate_per_s=10)).run(ReplaySelection())
    assert report.replayed == 20
    assert trio.current_time() - start >= 2.0


async def test_workers_that_keep_crashing_escalate(
    store: SQLiteStore, autojump_clock: object
) -> None:
    await dead(store, 3)

    async def broken(item_id: str, force: bool) -> str:
        raise RuntimeError("store unreachable")

    with pytest.raises(SupervisorEscalation):
        await ReplayService(store, replay_fn=broken).run(ReplaySelection())
    assert all(i.state is ItemState.DEAD_LETTERED for i in await store.items())


async def test_unfinished_after_all_rounds_is_reported_failed(
    store: SQLiteStore, autojump_clock: object
) -> None:
    [item_id] = await dead(store, 1)
    seen: list[int] = []

    async def lost(item: str, force: bool) -> str:
        seen.append(1)
        raise RuntimeError("lost")

    config = ReplayConfig(max_rounds=2)
    report = await ReplayService(store, config, replay_fn=lost).run(ReplaySelection(ids=(item_id,)))
    assert (report.failed, report.rounds, len(seen)) == (1, 2, 2)
    assert report.outcomes[0].status == "failed"
    assert report.worker_restarts == 2


@pytest.mark.parametrize(
    "options", [{"partitions": 0}, {"rate_per_s": 0}, {"max_rounds": 0}, {"inbox_size": 0}]
)
def test_config_bounds(options: dict[str, float]) -> None:
    with pytest.raises(ValidationFailed):
        replay_config(**options)
