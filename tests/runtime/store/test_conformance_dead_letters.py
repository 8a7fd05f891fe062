"""Conformance: dead letters (list, get, replay, archive, purge) and the retention purge."""

from __future__ import annotations

from typing import Any

import pytest

from policies import RetentionPolicy
from runtime import InvalidTransition, ItemNotFound, ReplayRefused
from runtime.store import DeadReason, Failure, ItemState, NewItem, Store

DAY = 86400.0


async def make_dead(
    store: Store, topic: str = "t", *, terminal: bool = True, payload: bytes = b"p"
) -> str:
    """Enqueue, lease and fail one item so that it is dead-lettered; return its id."""
    item_id = (await store.enqueue(NewItem(topic=topic, payload=payload, max_attempts=1))).id
    leased = await store.lease("w", topics=[topic])
    assert [i.id for i in leased] == [item_id]
    assert leased[0].lease_token is not None
    await store.fail(item_id, leased[0].lease_token, Failure(error="bad", terminal=terminal))
    return item_id


async def make_succeeded(store: Store) -> str:
    item_id = (await store.enqueue(NewItem(topic="ok", payload=b"p"))).id
    (item,) = await store.lease("w", topics=["ok"])
    assert item.lease_token is not None
    await store.ack(item.id, item.lease_token)
    return item_id


async def test_get_dead_letter_describes_the_failure(store: Store, fake_clock: Any) -> None:
    payload = b"payload bytes"
    item_id = await make_dead(store, "billing", payload=payload)
    dead = await store.get_dead_letter(item_id)
    item = await store.get(item_id)
    assert dead.item_id == item_id
    assert dead.topic == "billing"
    assert dead.reason is DeadReason.TERMINAL_ERROR
    assert dead.payload_sha256 == item.sha256
    assert dead.payload_size == len(payload)
    assert dead.correlation_id == item.correlation_id
    assert dead.dead_at == fake_clock.now
    assert dead.archived_at is None and dead.replay_count == 0
    assert dead.queue == "default"


async def test_get_dead_letter_of_a_live_item_raises_item_not_found(store: Store) -> None:
    item_id = (await store.enqueue(NewItem(topic="t", payload=b"p"))).id
    with pytest.raises(ItemNotFound):
        await store.get_dead_letter(item_id)
    with pytest.raises(ItemNotFound):
        await store.get_dead_letter("missing")


async def test_dead_letters_filter_by_topic_reason_and_time(store: Store, fake_clock: Any) -> None:
    t0 = fake_clock.now
    a = await make_dead(store, "a")
    fake_clock.advance(10)
    b = await make_dead(store, "b", terminal=False)  # max_attempts 1: retries_exhausted
    fake_clock.advance(10)
    c = await make_dead(store, "a")
    ids = lambda letters: [d.item_id for d in letters]  # noqa: E731
    assert ids(await store.dead_letters()) == [a, b, c]
    assert ids(await store.dead_letters(topic="a")) == [a, c]
    assert ids(await store.dead_letters(reason=DeadReason.RETRIES_EXHAUSTED)) == [b]
    assert ids(await store.dead_letters(reason="terminal_error")) == [a, c]
    assert ids(await store.dead_letters(since=t0 + 10)) == [b, c]
    assert ids(await store.dead_letters(until=t0 + 10)) == [a]
    assert ids(await store.dead_letters(since=t0 + 5, until=t0 + 15)) == [b]
    assert ids(await store.dead_letters(limit=2)) == [a, b]
    with pytest.raises(ValueError):
        await store.dead_letters(reason="not-a-reason")


async def test_archived_dead_letters_are_listed_only_when_asked(store: Store) -> None:
    a = await make_dead(store)
    b = await make_dead(store)
    await store.archive(a)
    assert [d.item_id for d in await store.dead_letters()] == [b]
    listed = await store.dead_letters(include_archived=True)
    assert [d.item_id for d in listed] == [a, b]
    assert listed[0].archived_at is not None
    assert (await store.get(a)).state is ItemState.ARCHIVED


async def test_archive_refuses_twice_and_non_dead_letters(store: Store) -> None:
    item_id = await make_dead(store)
    await store.archive(item_id)
    with pytest.raises(InvalidTransition):
        await store.archive(item_id)
    live = (await store.enqueue(NewItem(topic="t", payload=b"p"))).id
    with pytest.raises(ItemNotFound):
        await store.archive(live)
    with pytest.raises(ItemNotFound):
        await store.archive("missing")


async def test_replay_enqueues_a_linked_copy_once(store: Store, fake_clock: Any) -> None:
    item_id = await make_dead(store, "billing", payload=b"the payload")
    fake_clock.advance(5)
    new_id = await store.replay(item_id)
    new = await store.get(new_id)
    old = await store.get(item_id)
    assert new.replay_of == item_id
    assert new.state is ItemState.ENQUEUED and new.attempt == 0
    assert (new.payload, new.sha256, new.topic) == (old.payload, old.sha256, old.topic)
    assert new.correlation_id == old.correlation_id
    assert new.idempotency_key is None
    dead = await store.get_dead_letter(item_id)
    assert dead.replay_count == 1
    assert dead.replayed_item_id == new_id
    assert dead.replayed_at == fake_clock.now
    assert old.state is ItemState.DEAD_LETTERED  # the dead letter stays until archived
    with pytest.raises(ReplayRefused):
        await store.replay(item_id)
    assert len(await store.items()) == 2


async def test_forced_replay_enqueues_again(store: Store) -> None:
    item_id = await make_dead(store)
    first = await store.replay(item_id)
    second = await store.replay(item_id, force=True)
    assert first != second
    dead = await store.get_dead_letter(item_id)
    assert (dead.replay_count, dead.replayed_item_id) == (2, second)
    assert (await store.get(second)).replay_of == item_id


async def test_replay_refuses_archived_and_unknown(store: Store) -> None:
    item_id = await make_dead(store)
    await store.archive(item_id)
    with pytest.raises(InvalidTransition):
        await store.replay(item_id, force=True)
    with pytest.raises(ItemNotFound):
        await store.replay("missing")


async def test_replayed_item_can_be_leased_and_acked(store: Store) -> None:
    item_id = await make_dead(store)
    new_id = await store.replay(item_id)
    (item,) = await store.lease("w")
    assert item.id == new_id
    assert item.lease_token is not None
    await store.ack(item.id, item.lease_token)
    assert (await store.get(new_id)).state is ItemState.SUCCEEDED


async def test_purge_dead_letters_removes_only_archived_by_default(
    store: Store, fake_clock: Any
) -> None:
    archived = await make_dead(store)
    live = await make_dead(store)
    await store.archive(archived)
    fake_clock.advance(10)
    assert await store.purge_dead_letters(older_than_s=20) == 0
    assert await store.purge_dead_letters() == 1
    with pytest.raises(ItemNotFound):
        await store.get(archived)
    assert (await store.get_dead_letter(live)).item_id == live
    assert await store.purge_dead_letters(include_live=True) == 1
    with pytest.raises(ItemNotFound):
        await store.get(live)
    assert await store.dead_letters(include_archived=True) == []
    kinds = [e.kind for e in await store.events(kind="dead_letters_purged")]
    assert kinds == ["dead_letters_purged", "dead_letters_purged"]


async def test_purging_a_replayed_dead_letter_keeps_the_replay(
    store: Store, fake_clock: Any
) -> None:
    item_id = await make_dead(store)
    new_id = await store.replay(item_id)
    await store.archive(item_id)
    fake_clock.advance(1)
    assert await store.purge_dead_letters() == 1
    assert (await store.get(new_id)).replay_of is None  # link cleared, item kept


async def test_retention_purge_dry_run_counts_and_real_run_deletes(
    store: Store, fake_clock: Any
) -> None:
    old_ok = await make_succeeded(store)
    old_archived = await make_dead(store)
    await store.archive(old_archived)
    old_live = await make_dead(store)
    fake_clock.advance(10 * DAY)
    new_ok = await make_succeeded(store)
    new_archived = await make_dead(store)
    await store.archive(new_archived)
    policy = RetentionPolicy(succeeded_s=DAY, archived_s=DAY, dead_letters_s=None, audit_s=None)

    dry = await store.purge(policy, dry_run=True)
    assert (dry.succeeded, dry.dead_letters, dry.audit, dry.dry_run) == (1, 1, 0, True)
    assert {i.id for i in await store.items()} >= {old_ok, old_archived}  # nothing deleted

    real = await store.purge(policy)
    assert (real.succeeded, real.dead_letters, real.audit, real.dry_run) == (1, 1, 0, False)
    remaining = {i.id for i in await store.items()}
    assert remaining == {old_live, new_ok, new_archived}
    assert await store.purge(policy) == real.__class__(0, 0, 0)


async def test_retention_purge_of_live_dead_letters_spares_archived_ones(
    store: Store, fake_clock: Any
) -> None:
    archived = await make_dead(store)
    await store.archive(archived)
    live = await make_dead(store)
    fake_clock.advance(10 * DAY)
    # archived rows are kept forever (None); only live dead letters age out.
    policy = RetentionPolicy(succeeded_s=None, archived_s=None, dead_letters_s=DAY, audit_s=None)
    dry = await store.purge(policy, dry_run=True)
    real = await store.purge(policy)
    assert dry.dead_letters == real.dead_letters == 1
    assert {i.id for i in await store.items()} == {archived}
    with pytest.raises(ItemNotFound):
        await store.get(live)


async def test_retention_purge_of_audit_rows(store: Store, fake_clock: Any) -> None:
    await make_succeeded(store)
    old_rows = len(await store.events())
    fake_clock.advance(2 * DAY)
    await store.record_event("marker", {"n": 1})
    policy = RetentionPolicy(succeeded_s=None, archived_s=None, audit_s=DAY)
    assert (await store.purge(policy, dry_run=True)).audit == old_rows
    assert (await store.purge(policy)).audit == old_rows
    kinds = [e.kind for e in await store.events()]
    assert kinds == ["marker", "audit_purged"]


async def test_retention_purge_with_none_keeps_everything(store: Store, fake_clock: Any) -> None:
    await make_succeeded(store)
    dead = await make_dead(store)
    await store.archive(dead)
    fake_clock.advance(1000 * DAY)
    keep = RetentionPolicy(succeeded_s=None, archived_s=None, dead_letters_s=None, audit_s=None)
    before = await store.items()
    result = await store.purge(keep)
    assert (result.succeeded, result.dead_letters, result.audit) == (0, 0, 0)
    assert await store.items() == before


async def test_retention_purge_uses_the_configured_policy_by_default(
    store_factory: Any, store_config: Any, fake_clock: Any
) -> None:
    import msgspec

    config = msgspec.structs.replace(
        store_config, retention=RetentionPolicy(succeeded_s=60.0, archived_s=None, audit_s=None)
    )
    async with store_factory.open(config) as store:
        item_id = await make_succeeded(store)
        fake_clock.advance(61)
        assert (await store.purge()).succeeded == 1
        with pytest.raises(ItemNotFound):
            await store.get(item_id)
