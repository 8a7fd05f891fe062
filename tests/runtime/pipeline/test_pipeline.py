"""The supervised pipeline on the autojump clock, against a real SQLite store."""

from __future__ import annotations

from collections import defaultdict

import pytest
import trio
import trio.testing

from runtime.pipeline import HandlerContext, Pipeline, PipelineConfig
from runtime.store import DeadReason, ItemState, NewItem, SQLiteStore, WorkItem
from runtime.worker import TerminalError

Clock = trio.testing.MockClock


class RecordingSink:
    def __init__(self, name: str = "out", fail_times: int = 0, hang: bool = False) -> None:
        self.name = name
        self.fail_times = fail_times
        self.hang = hang
        self.calls = 0
        self.delivered: list[tuple[str, bytes | None, str]] = []

    async def deliver(self, item: WorkItem, result: bytes | None, idempotency_key: str) -> None:
        self.calls += 1
        if self.hang:
            await trio.sleep_forever()
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("sink down")
        self.delivered.append((item.id, result, idempotency_key))


async def enqueue(store: SQLiteStore, n: int, *, keys: int = 4, topic: str = "t") -> list[str]:
    results = await store.enqueue_many(
        [NewItem(topic=topic, payload=str(i).encode(), key=f"k{i % keys}") for i in range(n)]
    )
    return [r.id for r in results]


async def settled(store: SQLiteStore) -> bool:
    depth = await store.depth()
    return depth["enqueued"] + depth["retry_scheduled"] + depth["leased"] == 0


async def run_until_settled(pipeline: Pipeline, limit_s: float = 600.0) -> bool:
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        with trio.fail_after(limit_s):
            while not await settled(pipeline.store):
                await trio.sleep(0.1)
        pipeline.stop()
    return pipeline.drained


def config(**overrides: object) -> PipelineConfig:
    base: dict[str, object] = {
        "partitions": 3,
        "inbox_size": 4,
        "intake_size": 8,
        "lease_s": 10.0,
        "poll_interval_s": 0.05,
        "handler_timeout_s": 5.0,
        "sink_timeout_s": 1.0,
    }
    base.update(overrides)
    return PipelineConfig(**base)  # type: ignore[arg-type]


async def test_items_flow_to_the_sink_and_are_acked(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    ids = await enqueue(store, 40)
    sink = RecordingSink()

    async def handler(item: WorkItem, ctx: HandlerContext) -> bytes:
        return item.payload.upper()

    pipeline = Pipeline(store, handler, sinks=[sink], config=config())
    assert await run_until_settled(pipeline)
    assert sorted(d[0] for d in sink.delivered) == sorted(ids)
    assert all(key.startswith("out:") for _, _, key in sink.delivered)
    stats = pipeline.statistics()
    assert (stats.succeeded, stats.failed, stats.in_flight) == (40, 0, 0)
    assert stats.max_in_flight <= stats.capacity
    assert (await store.metrics(600)).depth["succeeded"] == 40


async def test_sync_handlers_are_supported(store: SQLiteStore, autojump_clock: Clock) -> None:
    await enqueue(store, 5)
    seen: list[str] = []
    pipeline = Pipeline(store, lambda item, ctx: seen.append(item.id), config=config())
    assert await run_until_settled(pipeline)
    assert len(seen) == 5


async def test_per_key_order_holds_while_another_partition_crashes(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    ids = await enqueue(store, 60, keys=6)
    order: dict[str, list[int]] = defaultdict(list)
    crashed: list[str] = []

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        n = int(item.payload)
        if item.key == "k1" and not crashed:
            crashed.append(item.id)
            raise RuntimeError("worker bug")
        await trio.sleep(0.01 * (n % 3))
        if item.attempt == 1:
            order[item.key or ""].append(n)

    pipeline = Pipeline(store, handler, config=config(let_it_crash=True))
    assert await run_until_settled(pipeline)
    assert pipeline.statistics().worker_restarts == 1
    [restart] = pipeline.workers.restart_history()
    assert restart.error_type == "RuntimeError"  # the handler's own error, not a group
    for key, seen in order.items():
        assert seen == sorted(seen), key
    assert (await store.metrics(600)).depth["succeeded"] == len(ids)


async def test_a_hung_worker_is_restarted_and_its_item_runs_again(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    [hung] = await enqueue(store, 1)
    await enqueue(store, 9)

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        if item.id == hung and item.attempt == 1:
            await trio.sleep_forever()

    pipeline = Pipeline(
        store, handler, config=config(heartbeat_timeout_s=1.0, lease_s=3.0, handler_timeout_s=60)
    )
    assert await run_until_settled(pipeline)
    assert pipeline.statistics().worker_hangs == 1
    item = await store.get(hung)
    assert (item.state, item.attempt) == (ItemState.SUCCEEDED, 2)


async def test_handler_timeout_dead_letters_as_timeout(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    [slow] = await enqueue(store, 1)

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        await trio.sleep(100)

    pipeline = Pipeline(store, handler, config=config(handler_timeout_s=2.0))
    await run_until_settled(pipeline)
    letter = await store.get_dead_letter(slow)
    assert letter.reason is DeadReason.TIMEOUT
    assert letter.attempts == 3
    assert pipeline.statistics().timeouts == 3


async def test_terminal_errors_dead_letter_at_once(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    [bad] = await enqueue(store, 1)

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        raise TerminalError("no")

    pipeline = Pipeline(store, handler, config=config())
    await run_until_settled(pipeline)
    assert (await store.get_dead_letter(bad)).reason is DeadReason.TERMINAL_ERROR


async def test_sink_retries_in_place_then_times_out_to_a_dead_letter(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    [flaky] = await enqueue(store, 1, topic="flaky")
    flaky_sink = RecordingSink("flaky", fail_times=2)
    pipeline = Pipeline(store, lambda i, c: i.payload, sinks=[flaky_sink], config=config())
    assert await run_until_settled(pipeline)
    assert [d[0] for d in flaky_sink.delivered] == [flaky]
    assert (await store.get(flaky)).attempt == 1

    [stuck] = await enqueue(store, 1, topic="stuck")
    pipeline = Pipeline(
        store, lambda i, c: None, sinks=[RecordingSink("stuck", hang=True)], config=config()
    )
    await run_until_settled(pipeline)
    assert (await store.get_dead_letter(stuck)).reason is DeadReason.TIMEOUT


async def test_effects_already_delivered_are_skipped_on_retry_and_replay(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    [item_id] = await enqueue(store, 1)
    good = RecordingSink("good")
    bad = RecordingSink("bad", fail_times=10_000)
    pipeline = Pipeline(store, lambda i, c: b"r", sinks=[good, bad], config=config())
    await run_until_settled(pipeline)
    assert (await store.get_dead_letter(item_id)).reason is DeadReason.RETRIES_EXHAUSTED
    assert len(good.delivered) == 1
    assert pipeline.statistics().effects_skipped == 2

    new_id = await store.replay(item_id)
    bad.fail_times = 0
    pipeline = Pipeline(store, lambda i, c: b"r", sinks=[good, bad], config=config())
    assert await run_until_settled(pipeline)
    assert len(good.delivered) == 1
    assert [d[0] for d in bad.delivered] == [new_id]
    assert good.delivered[0][2] == "good:" + item_id


async def test_stop_drains_in_flight_items(store: SQLiteStore, autojump_clock: Clock) -> None:
    await enqueue(store, 20)
    started = trio.Event()

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        started.set()
        await trio.sleep(2)

    pipeline = Pipeline(store, handler, config=config(drain_timeout_s=100))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pipeline.run)
        await started.wait()
        pipeline.stop()
    assert pipeline.drained
    depth = (await store.metrics(600)).depth
    assert depth["leased"] == 0
    assert depth["succeeded"] + depth["enqueued"] == 20


async def test_drain_deadline_leaves_leases_to_expire(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    await enqueue(store, 3)
    started = trio.Event()

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        started.set()
        await trio.sleep(3600)

    pipeline = Pipeline(
        store, handler, config=config(drain_timeout_s=1.0, handler_timeout_s=7200, lease_s=5)
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pipeline.run)
        await started.wait()
        pipeline.stop()
    assert not pipeline.drained
    assert not pipeline.stopped_cleanly
    await trio.sleep(6)
    assert await store.reclaim_expired() == 3


async def test_workers_crashing_past_intensity_escalate(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    from policies import RestartPolicy
    from supervisors import SupervisorEscalation

    await enqueue(store, 50)

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        raise RuntimeError("always")

    pipeline = Pipeline(
        store,
        handler,
        config=config(let_it_crash=True, worker_restarts=RestartPolicy(2, 60.0)),
    )
    with pytest.raises(SupervisorEscalation):
        await pipeline.run()


@pytest.mark.parametrize(
    "options",
    [
        {"partitions": 0},
        {"lease_s": 0},
        {"drain_timeout_s": -1},
        {"heartbeat_timeout_s": 0},
    ],
)
def test_config_bounds(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PipelineConfig(**options)  # type: ignore[arg-type]


async def test_replay_chains_share_one_effect_key_even_after_a_purge(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    from runtime.pipeline import origin_id

    [first] = await enqueue(store, 1)
    await store.dead_letter(first, DeadReason.TERMINAL_ERROR, "x")
    second = await store.replay(first)
    await store.dead_letter(second, DeadReason.TERMINAL_ERROR, "x")
    third = await store.replay(second)
    assert await origin_id(store, await store.get(third)) == first
    await store.archive(first)
    await trio.sleep(1)
    assert await store.purge_dead_letters(0) == 1
    assert await origin_id(store, await store.get(third)) == second
