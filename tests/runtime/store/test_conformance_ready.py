"""Conformance: the ready mark and ``wait_ready`` (in-process wake-up without polling)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from policies import RetryPolicy
from runtime import ValidationFailed
from runtime.store import DeadReason, Failure, NewItem, Store, StoreConfig


def new(**fields: Any) -> NewItem:
    return NewItem(topic="t", payload=b"p", **fields)


async def test_enqueue_moves_the_mark(store: Store) -> None:
    mark = store.ready_mark()
    await store.enqueue(new())
    assert store.ready_mark() != mark
    mark = store.ready_mark()
    await store.enqueue_many([new(), new()])
    assert store.ready_mark() != mark


async def test_items_that_are_not_ready_leave_the_mark_alone(store: Store) -> None:
    await store.enqueue(new(idempotency_key="k"))
    mark = store.ready_mark()
    await store.enqueue(new(delay_s=60))  # not leasable yet
    await store.enqueue(new(idempotency_key="k"))  # nothing created
    await store.enqueue_many([])
    (item,) = await store.lease("w")
    assert item.lease_token is not None
    await store.heartbeat_many([(item.id, item.lease_token)])
    await store.fail(item.id, item.lease_token, Failure(error="x"))  # retried after 10 s
    assert store.ready_mark() == mark


async def test_a_retry_due_at_once_moves_the_mark(store_factory: Any) -> None:
    config = StoreConfig(retry=RetryPolicy(max_attempts=3, base_delay_s=0.0), readers=2)
    async with store_factory.open(config) as store:
        await store.enqueue(new())
        (item,) = await store.lease("w")
        mark = store.ready_mark()
        await store.fail(item.id, item.lease_token, Failure(error="x"))
        assert store.ready_mark() != mark


async def test_reclaim_and_replay_move_the_mark(store: Store, fake_clock: Any) -> None:
    await store.enqueue(new())
    await store.lease("w", lease_s=5)
    mark = store.ready_mark()
    assert await store.reclaim_expired() == 0
    assert store.ready_mark() == mark
    fake_clock.advance(6)
    assert await store.reclaim_expired() == 1
    assert store.ready_mark() != mark
    (item,) = await store.lease("w")
    await store.dead_letter(item.id, DeadReason.VALIDATION, "bad")
    mark = store.ready_mark()
    await store.replay(item.id)
    assert store.ready_mark() != mark


async def test_wait_ready_returns_at_once_when_the_mark_moved(store: Store) -> None:
    mark = store.ready_mark()
    await store.enqueue(new())
    with trio.fail_after(5):
        await store.wait_ready(mark, 3600)


async def test_wait_ready_times_out_without_a_change(store: Store, autojump_clock: Any) -> None:
    mark = store.ready_mark()
    start = trio.current_time()
    await store.wait_ready(mark, 7.5)
    assert trio.current_time() - start == pytest.approx(7.5)
    assert store.ready_mark() == mark
    await store.wait_ready(mark, 0)


async def test_wait_ready_refuses_a_bad_timeout(store: Store) -> None:
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValidationFailed):
            await store.wait_ready(store.ready_mark(), bad)


async def test_every_waiter_wakes_on_one_enqueue(store: Store) -> None:
    woken: list[int] = []

    async def waiter(n: int, mark: int) -> None:
        await store.wait_ready(mark, 3600)
        woken.append(n)

    with trio.fail_after(10):  # the waits are an hour: only the wake-up ends them
        async with trio.open_nursery() as nursery:
            mark = store.ready_mark()
            for n in range(3):
                nursery.start_soon(waiter, n, mark)
            await trio.testing.wait_all_tasks_blocked()
            assert woken == []
            await store.enqueue(new())
    assert sorted(woken) == [0, 1, 2]


async def test_an_enqueue_between_an_empty_lease_and_the_wait_is_not_missed(
    store: Store,
) -> None:
    mark = store.ready_mark()
    assert await store.lease("w") == []
    await store.enqueue(new())  # lands before the consumer starts waiting
    with trio.fail_after(10):
        await store.wait_ready(mark, 3600)
    assert len(await store.lease("w")) == 1


async def test_a_cancelled_wait_leaves_later_waits_working(store: Store) -> None:
    mark = store.ready_mark()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.wait_ready, mark, 3600)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.wait_ready, mark, 3600)
            await trio.testing.wait_all_tasks_blocked()
            await store.enqueue(new())
