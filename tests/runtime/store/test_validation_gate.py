"""Property: the intake gate either stores an item exactly or refuses it and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis.strategies as st
import msgspec
import pytest
import trio
from hypothesis import HealthCheck, given, settings

from policies import check_bounds
from runtime import ValidationFailed
from runtime.store import NewItem, Store, payload_digest
from runtime.store._envelope import TOPIC_PATTERN, within_declared
from tests.conftest import FakeClock
from tests.runtime.store.conftest import TEST_CONFIG, take_snapshot

LIMIT = 64

texts = st.none() | st.text(max_size=12) | st.text(min_size=250, max_size=300)
SHA_RIGHT = "right"


@st.composite
def new_items(draw: st.DrawFn) -> NewItem:
    payload = draw(st.binary(max_size=LIMIT + 8) | st.text(max_size=4))
    sha = draw(
        st.none()
        | st.just(SHA_RIGHT)
        | st.text(alphabet="0123456789abcdefABCDEF", min_size=63, max_size=65)
        | st.integers()
    )
    if sha == SHA_RIGHT and isinstance(payload, bytes):
        sha = draw(st.sampled_from([str.lower, str.upper]))(payload_digest(payload))
    return NewItem(
        topic=draw(
            st.from_regex(TOPIC_PATTERN, fullmatch=True) | st.text(max_size=8) | st.integers()
        ),
        payload=payload,
        key=draw(texts),
        priority=draw(
            st.integers(-1_000_001, 1_000_001) | st.booleans() | st.text(max_size=2) | st.floats()
        ),
        idempotency_key=draw(texts),
        max_attempts=draw(st.none() | st.integers(-1, 1001) | st.booleans() | st.floats()),
        sha256=sha,
        correlation_id=draw(texts),
        trace_context=draw(
            st.none()
            | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
            | st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=2)
        ),
        delay_s=draw(st.floats(min_value=-10, max_value=40_000_000) | st.booleans() | st.just(0.0)),
    )


@pytest.fixture
def gate_store(fresh_store_factory: Any) -> Iterator[Store]:
    config = msgspec.structs.replace(TEST_CONFIG, max_payload_bytes=LIMIT)
    store = fresh_store_factory(FakeClock()).open_sync(config)
    yield store
    trio.run(store.aclose)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(item=new_items())
def test_item_is_stored_exactly_or_refused_without_a_trace(
    gate_store: Store, item: NewItem
) -> None:
    before = trio.run(take_snapshot, gate_store)
    try:
        result = trio.run(gate_store.enqueue, item)
    except ValidationFailed as exc:
        refused: ValidationFailed | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.field is not None  # the error names the offending field
        assert trio.run(take_snapshot, gate_store) == before
        return
    if not result.created:  # a repeated idempotency key: the old item, nothing added
        assert trio.run(take_snapshot, gate_store) == before
        assert trio.run(gate_store.get, result.id).idempotency_key == item.idempotency_key
        return
    stored = trio.run(gate_store.get, result.id)
    assert isinstance(item.payload, bytes)
    assert stored.payload == item.payload
    assert stored.sha256 == payload_digest(stored.payload)
    if item.sha256 is not None:
        assert isinstance(item.sha256, str) and stored.sha256 == item.sha256.lower()
    assert isinstance(item.topic, str) and TOPIC_PATTERN.fullmatch(item.topic)
    assert (stored.topic, stored.key, stored.priority) == (item.topic, item.key, item.priority)
    assert type(stored.priority) is int
    assert stored.idempotency_key == item.idempotency_key
    assert stored.max_attempts == (item.max_attempts or TEST_CONFIG.retry.max_attempts)
    assert stored.trace_context == item.trace_context
    assert stored.correlation_id == (item.correlation_id or stored.id)
    assert stored.available_at == pytest.approx(stored.created_at + item.delay_s)
    after = trio.run(take_snapshot, gate_store)
    assert len(after.items) == len(before.items) + 1


@settings(max_examples=300, deadline=None)
@given(item=new_items())
def test_the_fast_bounds_check_agrees_with_the_declared_bounds(item: NewItem) -> None:
    refused: ValidationFailed | None = None
    try:
        check_bounds(item)
    except ValidationFailed as exc:
        refused = exc
    assert refused is None or refused.field is not None
    assert within_declared(item) == (refused is None)
