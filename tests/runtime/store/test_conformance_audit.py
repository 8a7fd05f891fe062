"""Conformance: the audit trail, queue metrics, effects ledger, checkpoints, events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime import ValidationFailed
from runtime.store import Failure, NewItem, Store, WorkItem


def token(item: WorkItem) -> str:
    assert item.lease_token is not None
    return item.lease_token


async def test_every_transition_writes_an_audit_row(store: Store, fake_clock: Any) -> None:
    item_id = (await store.enqueue(NewItem(topic="audit.t", payload=b"p", max_attempts=3))).id
    (first,) = await store.lease("w1", lease_s=10)
    await store.fail(item_id, token(first), Failure(error="e1", error_type="IOError"))
    fake_clock.advance(10)
    (_second,) = await store.lease("w2", lease_s=10)
    fake_clock.advance(10)
    await store.reclaim_expired()
    (third,) = await store.lease("w3")
    await store.fail(item_id, token(third), Failure(error="e3"))  # attempt 3 of 3
    replay_id = await store.replay(item_id)
    await store.archive(item_id)

    events = await store.events(item_id=item_id)
    assert [(e.kind, e.from_state, e.to_state, e.attempt) for e in events] == [
        ("enqueued", None, "enqueued", 0),
        ("leased", "enqueued", "leased", 1),
        ("retry_scheduled", "leased", "retry_scheduled", 1),
        ("leased", "retry_scheduled", "leased", 2),
        ("lease_expired", "leased", "enqueued", 2),
        ("leased", "enqueued", "leased", 3),
        ("dead_lettered", "leased", "dead_lettered", 3),
        ("replayed", "dead_lettered", "dead_lettered", 3),
        ("archived", "dead_lettered", "archived", 3),
    ]
    for event in events:
        assert event.topic == "audit.t"
        assert event.item_id == item_id
        assert event.queue == "default"
        assert event.max_attempts == 3
    errors = {e.kind: e.error for e in events if e.error is not None}
    assert errors["retry_scheduled"] == "IOError: e1"
    assert errors["lease_expired"] is not None and "w2" in errors["lease_expired"]
    assert errors["dead_lettered"] == "Exception: e3"
    assert json.loads(events[6].detail or "{}") == {"reason": "retries_exhausted"}
    assert json.loads(events[1].detail or "{}") == {"owner": "w1"}
    assert json.loads(events[7].detail or "{}")["replayed_item_id"] == replay_id

    (replayed,) = await store.events(item_id=replay_id)
    assert replayed.kind == "enqueued"
    assert json.loads(replayed.detail or "{}") == {"replay_of": item_id}


async def test_ack_writes_a_succeeded_audit_row(store: Store) -> None:
    item_id = (await store.enqueue(NewItem(topic="t", payload=b"p"))).id
    (item,) = await store.lease("w")
    await store.ack(item.id, token(item))
    assert [e.kind for e in await store.events(item_id=item_id)][-1] == "succeeded"


async def test_refused_operations_write_no_audit_row(store: Store) -> None:
    await store.enqueue(NewItem(topic="t", payload=b"p"))
    (item,) = await store.lease("w")
    before = await store.events()
    with pytest.raises(Exception):  # noqa: B017 - StaleLease; the point is no audit row
        await store.ack(item.id, "stale")
    assert await store.events() == before


async def test_events_filter_by_topic_kind_since_and_limit(store: Store, fake_clock: Any) -> None:
    await store.enqueue(NewItem(topic="a", payload=b"p"))
    fake_clock.advance(5)
    await store.enqueue(NewItem(topic="b", payload=b"p"))
    await store.lease("w", n=2)
    assert [e.topic for e in await store.events(topic="a")] == ["a", "a"]
    assert [e.kind for e in await store.events(kind="leased")] == ["leased", "leased"]
    assert len(await store.events(since=fake_clock.now)) == 3
    assert len(await store.events(limit=2)) == 2
    ids = [e.id for e in await store.events()]
    assert ids == sorted(ids)


async def test_record_event_is_audited(store: Store, fake_clock: Any) -> None:
    await store.record_event("pressure", {"level": "critical", "depth": 10})
    (event,) = await store.events(kind="pressure")
    assert event.at == fake_clock.now
    assert event.item_id is None
    assert json.loads(event.detail or "{}") == {"level": "critical", "depth": 10}


async def test_metrics_count_depth_throughput_retries_and_dead_letters(
    store: Store, fake_clock: Any
) -> None:
    ids = [
        (await store.enqueue(NewItem(topic=topic, payload=b"p", max_attempts=2))).id
        for topic in ("a", "a", "b", "b")
    ]
    fake_clock.advance(4)  # every item waits 4 s before its first lease
    leased = await store.lease("w", n=3)
    await store.ack(leased[0].id, token(leased[0]))
    success_at = fake_clock.now
    await store.fail(leased[1].id, token(leased[1]), Failure(error="x"))
    await store.fail(leased[2].id, token(leased[2]), Failure(error="y", terminal=True))

    metrics = await store.metrics(since_s=60)
    assert metrics.queue == "default"
    assert metrics.now == fake_clock.now
    assert metrics.depth == {
        "enqueued": 1,
        "leased": 0,
        "succeeded": 1,
        "retry_scheduled": 1,
        "dead_lettered": 1,
        "archived": 0,
    }
    assert metrics.enqueued == 4
    assert metrics.succeeded == 1
    assert metrics.throughput_per_min == pytest.approx(1.0)
    assert metrics.retries == 1
    assert metrics.dead_letters == 1
    assert metrics.lease_expirations == 0
    assert metrics.lease_contention == 0
    assert metrics.avg_queue_latency_s == pytest.approx(4.0)
    assert metrics.last_success == {"a": success_at}
    assert ids[3] not in {i.id for i in leased}


async def test_metrics_window_excludes_older_activity(store: Store, fake_clock: Any) -> None:
    await store.enqueue(NewItem(topic="t", payload=b"p"))
    (item,) = await store.lease("w", lease_s=5)
    fake_clock.advance(5)
    await store.reclaim_expired()
    assert (await store.metrics(since_s=60)).lease_expirations == 1
    fake_clock.advance(120)
    metrics = await store.metrics(since_s=60)
    assert (metrics.enqueued, metrics.lease_expirations) == (0, 0)
    assert metrics.avg_queue_latency_s is None
    assert metrics.depth["enqueued"] == 1  # depth is current, not windowed
    assert item.attempt == 1


async def test_metrics_refuse_a_non_positive_window(store: Store) -> None:
    with pytest.raises(ValidationFailed):
        await store.metrics(since_s=0)


async def test_effects_ledger_records_each_key_once(store: Store) -> None:
    assert not await store.has_effect("email:42")
    assert await store.record_effect("email:42", "item-1")
    assert not await store.record_effect("email:42", "item-2")
    assert await store.has_effect("email:42")
    assert not await store.has_effect("email:43")


async def test_checkpoints_keep_the_latest_state(store_factory: Any) -> None:
    async with store_factory.open() as store:
        assert await store.load_checkpoint("actor-1") is None
        await store.save_checkpoint("actor-1", b"v1")
        await store.save_checkpoint("actor-1", b"v2")
        await store.save_checkpoint("actor-2", b"")
        assert await store.load_checkpoint("actor-1") == b"v2"
    async with store_factory.open() as store:  # survives a restart
        assert await store.load_checkpoint("actor-1") == b"v2"
        assert await store.load_checkpoint("actor-2") == b""


async def test_checkpoint_over_the_payload_limit_is_refused(
    store_factory: Any, store_config: Any
) -> None:
    import msgspec

    config = msgspec.structs.replace(store_config, max_payload_bytes=8)
    async with store_factory.open(config) as store:
        with pytest.raises(ValidationFailed):
            await store.save_checkpoint("a", b"x" * 9)
        assert await store.load_checkpoint("a") is None


async def test_data_survives_reopening(store_factory: Any) -> None:
    async with store_factory.open() as store:
        item_id = (await store.enqueue(NewItem(topic="t", payload=b"durable"))).id
    async with store_factory.open() as store:
        assert (await store.get(item_id)).payload == b"durable"


async def test_closed_store_refuses_calls(store_factory: Any) -> None:
    from runtime import StoreUnavailable

    async with store_factory.open() as store:
        pass
    with pytest.raises(StoreUnavailable):
        await store.enqueue(NewItem(topic="t", payload=b"p"))
    with pytest.raises(StoreUnavailable):
        await store.items()
    await store.aclose()  # idempotent
