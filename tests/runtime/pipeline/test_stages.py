"""The pipeline's stages: outbound actors apart from the workers, handler timeouts by the
per-worker watchdog, pipelined leasing under the in-memory bound (autojump clock)."""

from __future__ import annotations

from collections import defaultdict

import trio
import trio.testing

from runtime.pipeline import HandlerContext, Pipeline
from runtime.store import DeadReason, ItemState, SQLiteStore, WorkItem

from .test_pipeline import RecordingSink, config, enqueue, run_until_settled

Clock = trio.testing.MockClock


class GatedSink:
    """A sink that holds every delivery until the test opens the gate."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = trio.Event()
        self.delivered: list[str] = []

    async def deliver(self, item: WorkItem, result: bytes | None, idempotency_key: str) -> None:
        await self.gate.wait()
        self.delivered.append(item.id)


async def test_a_slow_sink_holds_deliveries_not_handling(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    ids = await enqueue(store, 12, keys=3)
    sink = GatedSink()
    handled: list[str] = []

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        handled.append(item.id)

    cfg = config(outbound_partitions=2, outbound_inbox_size=8, sink_timeout_s=1000.0)
    pipeline = Pipeline(store, handler, sinks=[sink], config=cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        while len(handled) < len(ids):
            await trio.sleep(0.01)
        # Every item was handled while not one was delivered: the workers went on.
        assert sink.delivered == []
        assert pipeline.statistics().succeeded == 0
        assert pipeline.statistics().in_flight == len(ids)
        sink.gate.set()
        while pipeline.statistics().succeeded < len(ids):
            await trio.sleep(0.01)
        pipeline.stop()
    assert sorted(sink.delivered) == sorted(ids)


async def test_outbound_delivers_each_keys_effects_in_handling_order(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    await enqueue(store, 60, keys=5)
    handled: dict[str, list[int]] = defaultdict(list)
    delivered: dict[str, list[int]] = defaultdict(list)

    class SlowSink:
        name = "slow"

        async def deliver(self, item: WorkItem, result: bytes | None, key: str) -> None:
            await trio.sleep(0.01 * (int(item.payload) % 4))
            delivered[item.key or ""].append(int(item.payload))

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        handled[item.key or ""].append(int(item.payload))

    pipeline = Pipeline(store, handler, sinks=[SlowSink()], config=config(outbound_partitions=2))
    assert await run_until_settled(pipeline)
    assert delivered == handled
    for order in delivered.values():
        assert order == sorted(order)


async def test_a_failing_sink_fails_the_attempt_from_the_outbound_actor(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    [item_id] = await enqueue(store, 1)
    sink = RecordingSink(fail_times=3)  # the first attempt's three tries fail
    pipeline = Pipeline(store, lambda i, c: b"r", sinks=[sink], config=config())
    assert await run_until_settled(pipeline)
    item = await store.get(item_id)
    assert (item.state, item.attempt) == (ItemState.SUCCEEDED, 2)
    stats = pipeline.statistics()
    assert (stats.failed, stats.succeeded, stats.in_flight) == (1, 1, 0)


async def test_a_timeout_fails_only_the_item_that_overran(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    # One key: one worker handles them in order, the next ones already in its inbox.
    ids = await enqueue(store, 8, keys=1)
    slow = ids[2]
    seen: list[str] = []
    started: dict[str, float] = {}
    failed_at: dict[str, float] = {}

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        if item.id == slow:
            started.setdefault(item.id, trio.current_time())
            try:
                await trio.sleep_forever()
            finally:
                failed_at.setdefault(item.id, trio.current_time())
        await trio.sleep(0.01)  # the next item awaits too: it must not inherit the timeout
        seen.append(item.id)

    pipeline = Pipeline(store, handler, config=config(handler_timeout_s=2.0))
    await run_until_settled(pipeline)
    # Cancelled exactly at its deadline, and the worker carried on with the others.
    assert failed_at[slow] - started[slow] == 2.0
    assert seen == [i for i in ids if i != slow]
    assert (await store.get_dead_letter(slow)).reason is DeadReason.TIMEOUT
    stats = pipeline.statistics()
    assert (stats.timeouts, stats.succeeded, stats.worker_restarts) == (3, 7, 0)


async def test_a_handler_ending_at_its_deadline_is_settled_either_way(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    ids = await enqueue(store, 6, keys=1)

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        await trio.sleep(2.0)  # the watchdog wakes at the same instant

    pipeline = Pipeline(store, handler, config=config(handler_timeout_s=2.0))
    assert await run_until_settled(pipeline)
    states = [(await store.get(i)).state for i in ids]
    assert set(states) <= {ItemState.SUCCEEDED, ItemState.DEAD_LETTERED}
    assert pipeline.statistics().in_flight == 0


async def test_concurrent_leases_never_pass_the_in_memory_bound(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    await enqueue(store, 300, keys=7)

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        await trio.sleep(0.01)

    cfg = config(lease_concurrency=4, lease_batch=10, partitions=2, inbox_size=3, intake_size=5)
    pipeline = Pipeline(store, handler, config=cfg)
    assert await run_until_settled(pipeline)
    stats = pipeline.statistics()
    assert stats.capacity == 2 * 3 + 5
    assert stats.max_in_flight <= stats.capacity
    assert stats.succeeded == 300


async def test_the_settler_acknowledges_at_most_ack_batch_per_transaction(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    await enqueue(store, 50, keys=5)
    calls: list[int] = []
    ack_many = store.ack_many

    async def counting(pairs, **options):  # type: ignore[no-untyped-def]
        calls.append(len(pairs))
        return await ack_many(pairs, **options)

    store.ack_many = counting  # type: ignore[method-assign]

    async def noop(item: WorkItem, ctx: HandlerContext) -> None:
        # Async on purpose: under the autojump clock a sync handler's thread looks idle, and
        # on a loaded machine virtual time ran past the handler timeout while it worked.
        return None

    pipeline = Pipeline(store, noop, config=config(ack_batch=4, lease_batch=50))
    assert await run_until_settled(pipeline)
    assert sum(calls) == 50
    assert max(calls) <= 4
