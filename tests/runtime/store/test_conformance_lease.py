"""Conformance: leasing, heartbeats, fencing, ack, fail, retries and lease expiry."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from runtime import InvalidTransition, ItemNotFound, StaleLease, ValidationFailed
from runtime.store import DeadReason, Failure, ItemState, NewItem, Store, StoreConfig, WorkItem


async def enqueue(store: Store, topic: str = "t", **fields: Any) -> str:
    return (await store.enqueue(NewItem(topic=topic, payload=b"p", **fields))).id


async def lease_one(store: Store, owner: str = "w", lease_s: float = 30.0) -> WorkItem:
    (item,) = await store.lease(owner, lease_s=lease_s)
    assert item.lease_token is not None
    return item


def token(item: WorkItem) -> str:
    assert item.lease_token is not None
    return item.lease_token


async def test_lease_takes_higher_priority_first_then_sequence(store: Store) -> None:
    low = await enqueue(store, priority=-5)
    mid_a = await enqueue(store, priority=0)
    high = await enqueue(store, priority=10)
    mid_b = await enqueue(store, priority=0)
    leased = await store.lease("w", n=10)
    assert [i.id for i in leased] == [high, mid_a, mid_b, low]


async def test_lease_marks_items_and_counts_the_attempt(store: Store, fake_clock: Any) -> None:
    item_id = await enqueue(store)
    item = await lease_one(store, owner="worker-1", lease_s=20)
    assert item.id == item_id
    assert item.state is ItemState.LEASED
    assert item.attempt == 1
    assert item.lease_owner == "worker-1"
    assert item.lease_expires_at == fake_clock.now + 20
    stored = await store.get(item_id)
    assert stored.state is ItemState.LEASED
    assert stored.lease_token == item.lease_token
    assert stored.attempt == 1


async def test_lease_returns_at_most_n_and_never_the_same_item_twice(store: Store) -> None:
    ids = {await enqueue(store) for _ in range(5)}
    first = await store.lease("a", n=2)
    second = await store.lease("b", n=2)
    third = await store.lease("c", n=2)
    fourth = await store.lease("d", n=2)
    assert [len(first), len(second), len(third), len(fourth)] == [2, 2, 1, 0]
    leased = [i.id for i in first + second + third]
    assert len(set(leased)) == 5 and set(leased) == ids
    assert len({i.lease_token for i in first + second + third}) == 5


async def test_lease_on_an_empty_queue_returns_nothing(store: Store) -> None:
    assert await store.lease("w", n=10) == []


@pytest.mark.parametrize(
    ("n", "lease_s"),
    [(0, 30.0), (-1, 30.0), (1001, 30.0), (1, 0.0), (1, -5.0), (1, 3601.0), (1, float("nan"))],
)
async def test_lease_refuses_n_and_lease_s_out_of_bounds(
    store: Store, n: int, lease_s: float
) -> None:
    await enqueue(store)
    with pytest.raises(ValidationFailed):
        await store.lease("w", n=n, lease_s=lease_s)
    assert (await store.items())[0].state is ItemState.ENQUEUED


async def test_lease_bounds_follow_the_config(
    store_factory: Any, store_config: StoreConfig
) -> None:
    config = msgspec.structs.replace(store_config, max_lease_batch=2, max_lease_s=10.0)
    async with store_factory.open(config) as store:
        for _ in range(3):
            await enqueue(store)
        with pytest.raises(ValidationFailed):
            await store.lease("w", n=3)
        with pytest.raises(ValidationFailed):
            await store.lease("w", lease_s=10.5)
        assert len(await store.lease("w", n=2, lease_s=10.0)) == 2


async def test_lease_filters_by_topics(store: Store) -> None:
    a = await enqueue(store, topic="a")
    b = await enqueue(store, topic="b")
    c = await enqueue(store, topic="c")
    assert [i.id for i in await store.lease("w", n=10, topics=["c", "a"])] == [a, c]
    assert [i.id for i in await store.lease("w", n=10, topics=["a"])] == []
    assert [i.id for i in await store.lease("w", n=10)] == [b]


async def test_heartbeat_extends_the_lease(store: Store, fake_clock: Any) -> None:
    await enqueue(store)
    item = await lease_one(store, lease_s=10)
    fake_clock.advance(8)
    expires = await store.heartbeat(item.id, token(item), lease_s=10)
    assert expires == fake_clock.now + 10
    assert (await store.get(item.id)).lease_expires_at == expires
    fake_clock.advance(8)  # past the first expiry, not the extended one
    assert await store.reclaim_expired() == 0
    await store.ack(item.id, token(item))
    assert (await store.get(item.id)).state is ItemState.SUCCEEDED


async def test_heartbeat_refuses_lease_s_out_of_bounds(store: Store) -> None:
    await enqueue(store)
    item = await lease_one(store)
    with pytest.raises(ValidationFailed):
        await store.heartbeat(item.id, token(item), lease_s=0)


async def test_stale_token_is_refused_after_expiry_reclaim_and_new_lease(
    store: Store, fake_clock: Any
) -> None:
    await enqueue(store)
    old = await lease_one(store, owner="stalled", lease_s=10)
    fake_clock.advance(11)
    assert await store.reclaim_expired() == 1
    new = await lease_one(store, owner="fresh")
    assert new.id == old.id and new.lease_token != old.lease_token
    assert new.attempt == 2
    with pytest.raises(StaleLease):
        await store.heartbeat(old.id, token(old))
    with pytest.raises(StaleLease):
        await store.ack(old.id, token(old))
    with pytest.raises(StaleLease):
        await store.fail(old.id, token(old), Failure(error="late"))
    stored = await store.get(new.id)
    assert stored.state is ItemState.LEASED
    assert stored.lease_owner == "fresh"
    await store.ack(new.id, token(new))
    assert (await store.get(new.id)).state is ItemState.SUCCEEDED


async def test_stale_token_is_refused_while_reclaimed_but_not_leased_again(
    store: Store, fake_clock: Any
) -> None:
    await enqueue(store)
    old = await lease_one(store, lease_s=5)
    fake_clock.advance(5)
    await store.reclaim_expired()
    with pytest.raises(StaleLease):
        await store.ack(old.id, token(old))
    assert (await store.get(old.id)).state is ItemState.ENQUEUED


async def test_wrong_token_is_refused_and_changes_nothing(store: Store) -> None:
    await enqueue(store)
    item = await lease_one(store)
    with pytest.raises(StaleLease):
        await store.ack(item.id, "not-the-token")
    assert await store.get(item.id) == msgspec.structs.replace(item)


async def test_ack_of_an_unknown_item_raises_item_not_found(store: Store) -> None:
    with pytest.raises(ItemNotFound):
        await store.ack("missing", "token")


async def test_ack_marks_succeeded_and_clears_the_lease(store: Store, fake_clock: Any) -> None:
    await enqueue(store)
    item = await lease_one(store)
    fake_clock.advance(3)
    await store.ack(item.id, token(item))
    stored = await store.get(item.id)
    assert stored.state is ItemState.SUCCEEDED
    assert stored.lease_token is None and stored.lease_owner is None
    assert stored.lease_expires_at is None
    assert stored.updated_at == fake_clock.now
    with pytest.raises(StaleLease):
        await store.ack(item.id, token(item))  # twice is refused


async def test_ack_many_reports_per_lease_outcomes(store: Store) -> None:
    for _ in range(3):
        await enqueue(store)
    a, b, c = await store.lease("w", n=3)
    outcomes = await store.ack_many(
        [(a.id, token(a)), (b.id, "stale"), ("missing", "x"), (c.id, token(c))]
    )
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], StaleLease)
    assert isinstance(outcomes[2], ItemNotFound)
    states = {i.id: i.state for i in await store.items()}
    assert states == {a.id: ItemState.SUCCEEDED, b.id: ItemState.LEASED, c.id: ItemState.SUCCEEDED}
    assert await store.ack_many([]) == []


async def test_fail_schedules_a_retry_with_backoff(store: Store, fake_clock: Any) -> None:
    item_id = await enqueue(store)
    item = await lease_one(store)
    outcome = await store.fail(item.id, token(item), Failure(error="boom", error_type="IOError"))
    assert outcome.state is ItemState.RETRY_SCHEDULED
    assert outcome.delay_s == 10.0  # base_delay_s, rand 0.5 = no jitter
    assert outcome.reason is None
    stored = await store.get(item_id)
    assert stored.state is ItemState.RETRY_SCHEDULED
    assert stored.available_at == fake_clock.now + 10.0
    assert stored.last_error == "IOError: boom"
    assert stored.lease_token is None
    fake_clock.advance(9.99)
    assert await store.lease("w") == []  # not leasable before its backoff
    fake_clock.advance(0.01)
    again = await lease_one(store)
    assert again.id == item_id and again.attempt == 2
    outcome = await store.fail(again.id, token(again), Failure(error="boom"))
    assert outcome.delay_s == 20.0  # doubled


async def test_fail_terminal_dead_letters_at_once(store: Store) -> None:
    item_id = await enqueue(store)
    item = await lease_one(store)
    outcome = await store.fail(
        item.id, token(item), Failure(error="bad data", terminal=True, traceback="tb")
    )
    assert outcome.state is ItemState.DEAD_LETTERED
    assert outcome.reason is DeadReason.TERMINAL_ERROR
    dead = await store.get_dead_letter(item_id)
    assert dead.reason is DeadReason.TERMINAL_ERROR
    assert dead.error == "Exception: bad data"
    assert dead.traceback == "tb"
    assert dead.attempts == 1
    assert (await store.get(item_id)).state is ItemState.DEAD_LETTERED


async def test_fail_with_a_configured_terminal_error_type_dead_letters(
    store_factory: Any, store_config: StoreConfig
) -> None:
    retry = msgspec.structs.replace(store_config.retry, terminal_errors=frozenset({"KeyError"}))
    async with store_factory.open(msgspec.structs.replace(store_config, retry=retry)) as store:
        await enqueue(store)
        item = await lease_one(store)
        outcome = await store.fail(item.id, token(item), Failure(error="k", error_type="KeyError"))
        assert outcome.reason is DeadReason.TERMINAL_ERROR


async def test_fail_on_the_last_attempt_dead_letters_as_retries_exhausted(
    store: Store, fake_clock: Any
) -> None:
    item_id = await enqueue(store, max_attempts=2)
    first = await lease_one(store)
    assert (await store.fail(first.id, token(first), Failure(error="1"))).state is (
        ItemState.RETRY_SCHEDULED
    )
    fake_clock.advance(100)
    second = await lease_one(store)
    outcome = await store.fail(second.id, token(second), Failure(error="2"))
    assert outcome.state is ItemState.DEAD_LETTERED
    assert outcome.reason is DeadReason.RETRIES_EXHAUSTED
    dead = await store.get_dead_letter(item_id)
    assert (dead.attempts, dead.max_attempts) == (2, 2)
    assert dead.error == "Exception: 2"


async def test_fail_timeout_on_the_last_attempt_dead_letters_as_timeout(store: Store) -> None:
    await enqueue(store, max_attempts=1)
    item = await lease_one(store)
    outcome = await store.fail(item.id, token(item), Failure(error="slow", timeout=True))
    assert outcome.reason is DeadReason.TIMEOUT


async def test_fail_stores_bounded_error_text(store: Store) -> None:
    item_id = await enqueue(store, max_attempts=1)
    item = await lease_one(store)
    await store.fail(item.id, token(item), Failure(error="x" * 100_000, traceback="t" * 100_000))
    dead = await store.get_dead_letter(item_id)
    assert dead.error is not None and len(dead.error) <= 8192
    assert dead.error.endswith("[truncated]")
    assert dead.traceback is not None and len(dead.traceback) <= 8192


async def test_expired_lease_is_reclaimed_with_the_attempt_counted(
    store: Store, fake_clock: Any
) -> None:
    item_id = await enqueue(store)
    item = await lease_one(store, owner="crashed", lease_s=30)
    fake_clock.advance(29.9)
    assert await store.reclaim_expired() == 0
    fake_clock.advance(0.1)
    assert await store.reclaim_expired() == 1
    stored = await store.get(item_id)
    assert stored.state is ItemState.ENQUEUED
    assert stored.attempt == 1
    assert stored.lease_token is None
    assert stored.last_error is not None and "crashed" in stored.last_error
    again = await lease_one(store)
    assert again.attempt == item.attempt + 1


async def test_lease_reclaims_expired_leases_itself(store: Store, fake_clock: Any) -> None:
    item_id = await enqueue(store)
    await lease_one(store, lease_s=10)
    fake_clock.advance(10)
    again = await lease_one(store, owner="other")
    assert again.id == item_id and again.attempt == 2


async def test_poison_item_past_max_attempts_dead_letters_as_lease_expired(
    store: Store, fake_clock: Any
) -> None:
    item_id = await enqueue(store, max_attempts=3)
    for attempt in (1, 2, 3):
        item = await lease_one(store, lease_s=5)
        assert item.attempt == attempt
        fake_clock.advance(5)
        assert await store.reclaim_expired() == 1
    assert await store.lease("w") == []
    dead = await store.get_dead_letter(item_id)
    assert dead.reason is DeadReason.LEASE_EXPIRED
    assert dead.attempts == 3
    assert (await store.get(item_id)).state is ItemState.DEAD_LETTERED


async def test_expired_leases_are_reclaimed_when_the_store_opens(
    store_factory: Any, fake_clock: Any
) -> None:
    async with store_factory.open() as store:
        item_id = await enqueue(store)
        await lease_one(store, lease_s=10)
    fake_clock.advance(60)  # the worker died with the lease; the process restarts
    async with store_factory.open() as store:
        stored = await store.get(item_id)
        assert stored.state is ItemState.ENQUEUED
        assert stored.attempt == 1
        assert [e.kind for e in await store.events(item_id=item_id)][-1] == "lease_expired"


async def test_unexpired_leases_survive_reopening(store_factory: Any, fake_clock: Any) -> None:
    async with store_factory.open() as store:
        await enqueue(store)
        item = await lease_one(store, lease_s=60)
    fake_clock.advance(30)
    async with store_factory.open() as store:
        assert (await store.get(item.id)).state is ItemState.LEASED
        await store.ack(item.id, token(item))


async def test_dead_letter_now_works_on_waiting_and_leased_items(store: Store) -> None:
    waiting = await enqueue(store)
    leased_id = await enqueue(store, priority=1)
    leased = await lease_one(store)
    assert leased.id == leased_id
    await store.dead_letter(waiting, DeadReason.SHED, "shed under pressure")
    await store.dead_letter(leased_id, DeadReason.VALIDATION, "bad schema")
    assert (await store.get_dead_letter(waiting)).reason is DeadReason.SHED
    assert (await store.get_dead_letter(leased_id)).reason is DeadReason.VALIDATION
    with pytest.raises(StaleLease):
        await store.ack(leased.id, token(leased))
    with pytest.raises(InvalidTransition):
        await store.dead_letter(waiting, DeadReason.SHED, "again")
    with pytest.raises(ItemNotFound):
        await store.dead_letter("missing", DeadReason.SHED, "x")


async def test_get_of_an_unknown_item_raises_item_not_found(store: Store) -> None:
    with pytest.raises(ItemNotFound):
        await store.get("missing")


async def test_items_filters_by_state_and_is_bounded(store: Store) -> None:
    ids = [await enqueue(store) for _ in range(4)]
    await lease_one(store)
    assert [i.id for i in await store.items(ItemState.ENQUEUED)] == ids[1:]
    assert [i.id for i in await store.items(ItemState.LEASED)] == ids[:1]
    assert [i.id for i in await store.items(limit=2)] == ids[:2]


async def test_heartbeat_many_extends_every_valid_lease(store: Store, fake_clock: Any) -> None:
    for _ in range(3):
        await enqueue(store)
    a, b, c = await store.lease("w", n=3, lease_s=10)
    fake_clock.advance(8)
    outcomes = await store.heartbeat_many([(a.id, token(a)), (b.id, token(b))], lease_s=20)
    assert outcomes == [None, None]
    assert (await store.get(a.id)).lease_expires_at == fake_clock.now + 20
    assert (await store.get(b.id)).lease_expires_at == fake_clock.now + 20
    assert (await store.get(c.id)).lease_expires_at == fake_clock.now + 2
    fake_clock.advance(5)  # past c's lease, not a's or b's
    assert await store.reclaim_expired() == 1
    assert (await store.get(c.id)).state is ItemState.ENQUEUED
    assert await store.ack_many([(a.id, token(a)), (b.id, token(b))]) == [None, None]


async def test_heartbeat_many_reports_per_lease_outcomes(store: Store, fake_clock: Any) -> None:
    for _ in range(2):
        await enqueue(store)
    a, b = await store.lease("w", n=2, lease_s=10)
    outcomes = await store.heartbeat_many(
        [(a.id, token(a)), (b.id, "stale"), ("missing", "x"), (a.id, "old"), (a.id, token(a))],
        lease_s=30,
    )
    assert outcomes[0] is None and outcomes[4] is None
    assert isinstance(outcomes[1], StaleLease)
    assert isinstance(outcomes[2], ItemNotFound)
    assert isinstance(outcomes[3], StaleLease)
    assert (await store.get(a.id)).lease_expires_at == fake_clock.now + 30
    # The refused lease kept its expiry and its token.
    stored_b = await store.get(b.id)
    assert stored_b.lease_expires_at == fake_clock.now + 10
    assert stored_b.lease_token == b.lease_token
    assert await store.heartbeat_many([]) == []


async def test_heartbeat_many_refuses_finished_items(store: Store) -> None:
    await enqueue(store)
    item = await lease_one(store)
    await store.ack(item.id, token(item))
    (outcome,) = await store.heartbeat_many([(item.id, token(item))])
    assert isinstance(outcome, StaleLease)
    assert (await store.get(item.id)).state is ItemState.SUCCEEDED


@pytest.mark.parametrize("lease_s", [0.0, -1.0, 3601.0, float("nan")])
async def test_heartbeat_many_refuses_lease_s_out_of_bounds(
    store: Store, lease_s: float, snapshot: Any
) -> None:
    await enqueue(store)
    item = await lease_one(store)
    before = await snapshot(store)
    with pytest.raises(ValidationFailed):
        await store.heartbeat_many([(item.id, token(item))], lease_s=lease_s)
    assert await snapshot(store) == before


async def test_ack_many_names_the_stale_pair_when_an_item_appears_twice(store: Store) -> None:
    await enqueue(store)
    item = await lease_one(store)
    outcomes = await store.ack_many(
        [(item.id, "old"), (item.id, token(item)), (item.id, token(item))]
    )
    assert isinstance(outcomes[0], StaleLease)
    assert outcomes[1] is None
    assert isinstance(outcomes[2], StaleLease)  # the same lease twice: the second is stale
    assert (await store.get(item.id)).state is ItemState.SUCCEEDED
