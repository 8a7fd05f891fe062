"""Conformance: enqueue, bulk enqueue, idempotency and the intake gate (any backend)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from runtime import ChecksumMismatch, PayloadTooLarge, ValidationFailed
from runtime.store import ItemState, NewItem, Store, StoreConfig, payload_digest

Snap = Callable[[Store], Awaitable[Any]]


async def test_enqueue_stores_the_item_exactly(store: Store, fake_clock: Any) -> None:
    payload = bytes(range(256))
    result = await store.enqueue(
        NewItem(
            topic="orders.created",
            payload=payload,
            key="customer-7",
            priority=5,
            idempotency_key="order-1",
            max_attempts=4,
            sha256=payload_digest(payload).upper(),
            correlation_id="corr-1",
            trace_context={"traceparent": "00-abc-def-01"},
        )
    )
    assert result.created
    item = await store.get(result.id)
    assert item.payload == payload
    assert item.sha256 == payload_digest(payload)
    assert (item.topic, item.key, item.priority) == ("orders.created", "customer-7", 5)
    assert (item.idempotency_key, item.max_attempts) == ("order-1", 4)
    assert item.correlation_id == "corr-1"
    assert item.trace_context == {"traceparent": "00-abc-def-01"}
    assert item.state is ItemState.ENQUEUED
    assert item.attempt == 0
    assert item.created_at == item.available_at == fake_clock.now
    assert item.lease_token is None and item.replay_of is None


async def test_enqueue_defaults_max_attempts_and_correlation_id(store: Store) -> None:
    result = await store.enqueue(NewItem(topic="t", payload=b""))
    item = await store.get(result.id)
    assert item.max_attempts == 3  # TEST_CONFIG's retry policy
    assert item.correlation_id == item.id
    assert item.payload == b""


async def test_enqueue_with_delay_is_not_leasable_until_due(store: Store, fake_clock: Any) -> None:
    result = await store.enqueue(NewItem(topic="t", payload=b"x", delay_s=60))
    assert (await store.get(result.id)).available_at == fake_clock.now + 60
    assert await store.lease("w") == []
    fake_clock.advance(60)
    assert [i.id for i in await store.lease("w")] == [result.id]


async def test_enqueue_many_returns_ids_in_order(store: Store) -> None:
    results = await store.enqueue_many([NewItem(topic="t", payload=bytes([n])) for n in range(5)])
    assert all(r.created for r in results)
    items = await store.items()
    assert [i.id for i in items] == [r.id for r in results]
    assert [i.payload for i in items] == [bytes([n]) for n in range(5)]
    assert [i.seq for i in items] == sorted(i.seq for i in items)


async def test_enqueue_many_of_nothing_writes_nothing(store: Store, snapshot: Snap) -> None:
    before = await snapshot(store)
    assert await store.enqueue_many([]) == []
    assert await snapshot(store) == before


async def test_bulk_with_one_bad_item_writes_nothing(store: Store, snapshot: Snap) -> None:
    await store.enqueue(NewItem(topic="t", payload=b"existing"))
    before = await snapshot(store)
    batch = [NewItem(topic="t", payload=b"a"), NewItem(topic="bad topic!", payload=b"b")]
    with pytest.raises(ValidationFailed, match="item 1") as info:
        await store.enqueue_many(batch)
    assert info.value.field == "topic"
    assert await snapshot(store) == before


async def test_idempotency_key_returns_existing_id_and_adds_nothing(
    store: Store, snapshot: Snap
) -> None:
    first = await store.enqueue(NewItem(topic="t", payload=b"one", idempotency_key="k1"))
    before = await snapshot(store)
    again = await store.enqueue(NewItem(topic="t", payload=b"two", idempotency_key="k1"))
    assert again.id == first.id
    assert not again.created
    assert await snapshot(store) == before
    assert (await store.get(first.id)).payload == b"one"


async def test_idempotency_key_repeated_within_one_bulk(store: Store) -> None:
    results = await store.enqueue_many(
        [
            NewItem(topic="t", payload=b"1", idempotency_key="same"),
            NewItem(topic="t", payload=b"2", idempotency_key="same"),
        ]
    )
    assert results[0].created and not results[1].created
    assert results[0].id == results[1].id
    assert len(await store.items()) == 1


async def test_idempotency_key_holds_after_the_item_finished(store: Store) -> None:
    first = await store.enqueue(NewItem(topic="t", payload=b"1", idempotency_key="k"))
    (leased,) = await store.lease("w")
    assert leased.lease_token is not None
    await store.ack(leased.id, leased.lease_token)
    again = await store.enqueue(NewItem(topic="t", payload=b"1", idempotency_key="k"))
    assert again.id == first.id and not again.created


BAD_ITEMS: list[tuple[str, NewItem, type[ValidationFailed], str]] = [
    ("empty topic", NewItem(topic="", payload=b"x"), ValidationFailed, "topic"),
    ("topic with space", NewItem(topic="a b", payload=b"x"), ValidationFailed, "topic"),
    ("topic with newline", NewItem(topic="abc\n", payload=b"x"), ValidationFailed, "topic"),
    ("topic starting with dot", NewItem(topic=".a", payload=b"x"), ValidationFailed, "topic"),
    ("topic too long", NewItem(topic="a" * 201, payload=b"x"), ValidationFailed, "topic"),
    ("topic not str", NewItem(topic=7, payload=b"x"), ValidationFailed, "topic"),  # type: ignore[arg-type]
    ("payload str", NewItem(topic="t", payload="x"), ValidationFailed, "payload"),  # type: ignore[arg-type]
    ("payload too large", NewItem(topic="t", payload=b"x" * 65), PayloadTooLarge, "payload"),
    (
        "sha256 mismatch",
        NewItem(topic="t", payload=b"x", sha256=payload_digest(b"y")),
        ChecksumMismatch,
        "sha256",
    ),
    (
        "sha256 malformed",
        NewItem(topic="t", payload=b"x", sha256="abc"),
        ValidationFailed,
        "sha256",
    ),
    (
        "sha256 not hex",
        NewItem(topic="t", payload=b"x", sha256="z" * 64),
        ValidationFailed,
        "sha256",
    ),
    ("sha256 not str", NewItem(topic="t", payload=b"x", sha256=5), ValidationFailed, "sha256"),  # type: ignore[arg-type]
    ("priority str", NewItem(topic="t", payload=b"x", priority="1"), ValidationFailed, "priority"),  # type: ignore[arg-type]
    (
        "priority bool",
        NewItem(topic="t", payload=b"x", priority=True),
        ValidationFailed,
        "priority",
    ),
    (
        "priority out of range",
        NewItem(topic="t", payload=b"x", priority=1_000_001),
        ValidationFailed,
        "priority",
    ),
    (
        "max_attempts zero",
        NewItem(topic="t", payload=b"x", max_attempts=0),
        ValidationFailed,
        "max_attempts",
    ),
    (
        "max_attempts too high",
        NewItem(topic="t", payload=b"x", max_attempts=1001),
        ValidationFailed,
        "max_attempts",
    ),
    (
        "max_attempts bool",
        NewItem(topic="t", payload=b"x", max_attempts=True),
        ValidationFailed,
        "max_attempts",
    ),
    (
        "max_attempts float",
        NewItem(topic="t", payload=b"x", max_attempts=2.0),  # type: ignore[arg-type]
        ValidationFailed,
        "max_attempts",
    ),
    ("key empty", NewItem(topic="t", payload=b"x", key=""), ValidationFailed, "key"),
    ("key control char", NewItem(topic="t", payload=b"x", key="a\x00"), ValidationFailed, "key"),
    ("key not str", NewItem(topic="t", payload=b"x", key=3), ValidationFailed, "key"),  # type: ignore[arg-type]
    (
        "idempotency key too long",
        NewItem(topic="t", payload=b"x", idempotency_key="k" * 257),
        ValidationFailed,
        "idempotency_key",
    ),
    (
        "correlation id with newline",
        NewItem(topic="t", payload=b"x", correlation_id="a\nb"),
        ValidationFailed,
        "correlation_id",
    ),
    ("delay negative", NewItem(topic="t", payload=b"x", delay_s=-1), ValidationFailed, "delay_s"),
    (
        "delay over a year",
        NewItem(topic="t", payload=b"x", delay_s=367 * 86400),
        ValidationFailed,
        "delay_s",
    ),
    (
        "delay nan",
        NewItem(topic="t", payload=b"x", delay_s=float("nan")),
        ValidationFailed,
        "delay_s",
    ),
    ("delay bool", NewItem(topic="t", payload=b"x", delay_s=True), ValidationFailed, "delay_s"),
    ("delay str", NewItem(topic="t", payload=b"x", delay_s="1"), ValidationFailed, "delay_s"),  # type: ignore[arg-type]
    (
        "trace context not a dict",
        NewItem(topic="t", payload=b"x", trace_context=["a"]),  # type: ignore[arg-type]
        ValidationFailed,
        "trace_context",
    ),
    (
        "trace context with int value",
        NewItem(topic="t", payload=b"x", trace_context={"a": 1}),  # type: ignore[dict-item]
        ValidationFailed,
        "trace_context",
    ),
    (
        "trace context too big",
        NewItem(topic="t", payload=b"x", trace_context={str(n): "v" for n in range(33)}),
        ValidationFailed,
        "trace_context",
    ),
    (
        "trace context value too long",
        NewItem(topic="t", payload=b"x", trace_context={"a": "v" * 4097}),
        ValidationFailed,
        "trace_context",
    ),
]


@pytest.mark.parametrize(
    ("item", "error", "field"),
    [pytest.param(item, error, field, id=name) for name, item, error, field in BAD_ITEMS],
)
async def test_bad_input_is_refused_with_a_typed_error_and_changes_nothing(
    store_factory: Any,
    store_config: StoreConfig,
    snapshot: Snap,
    item: NewItem,
    error: type[ValidationFailed],
    field: str,
) -> None:
    config = msgspec.structs.replace(store_config, max_payload_bytes=64)
    async with store_factory.open(config) as store:
        await store.enqueue(NewItem(topic="t", payload=b"already here", idempotency_key="k"))
        before = await snapshot(store)
        with pytest.raises(error) as info:
            await store.enqueue(item)
        assert info.value.field == field
        with pytest.raises(error):
            await store.enqueue_many([NewItem(topic="t", payload=b"fine"), item])
        assert await snapshot(store) == before


async def test_payload_exactly_at_the_limit_is_accepted(
    store_factory: Any, store_config: StoreConfig
) -> None:
    config = msgspec.structs.replace(store_config, max_payload_bytes=64)
    async with store_factory.open(config) as store:
        result = await store.enqueue(NewItem(topic="t", payload=b"x" * 64))
        assert (await store.get(result.id)).payload == b"x" * 64


async def test_bytearray_payload_is_stored_as_bytes(store: Store) -> None:
    result = await store.enqueue(NewItem(topic="t", payload=bytearray(b"abc")))  # type: ignore[arg-type]
    assert (await store.get(result.id)).payload == b"abc"
