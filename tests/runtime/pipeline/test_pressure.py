"""The pipeline under pressure: levels, shedding order, rejection, degrade, audit rows."""

from __future__ import annotations

import msgspec
import pytest
import trio
import trio.testing

from policies import PressureAction, PressureLevel, PressurePolicy
from runtime._errors import PressureRejected
from runtime.pipeline import HandlerContext, Pipeline, PipelineConfig
from runtime.store import DeadReason, ItemState, NewItem, SQLiteStore, WorkItem

Clock = trio.testing.MockClock


def config(**overrides: object) -> PipelineConfig:
    base: dict[str, object] = {
        "partitions": 2,
        "inbox_size": 2,
        "intake_size": 2,
        "poll_interval_s": 0.05,
        "queue_capacity": 20,
        "pressure_interval_s": 0.1,
    }
    base.update(overrides)
    return PipelineConfig(**base)  # type: ignore[arg-type]


async def blocked_pipeline(store: SQLiteStore, cfg: PipelineConfig) -> tuple[Pipeline, trio.Event]:
    """A pipeline whose handlers wait for ``release``: the queue only fills."""
    release = trio.Event()

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        await release.wait()

    return Pipeline(store, handler, config=cfg), release


async def test_levels_rise_and_fall_with_hysteresis_and_are_audited(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    policy = PressurePolicy(elevated=(), critical=())  # watch levels only
    pipeline, release = await blocked_pipeline(store, config(pressure=policy))
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await trio.sleep(1)
        # 6 items fill the pipeline's memory (its capacity); the rest wait in the queue.
        await store.enqueue_many([NewItem(topic="t", payload=b"x") for _ in range(6 + 13)])
        await trio.sleep(1)
        assert pipeline.queue_pressure.level is PressureLevel.ELEVATED  # 13/20 >= 60 %
        await store.enqueue_many([NewItem(topic="t", payload=b"x") for _ in range(5)])
        await trio.sleep(1)
        assert pipeline.queue_pressure.level is PressureLevel.CRITICAL  # 18/20 >= 90 %
        # Hovering between the marks changes nothing: 15/20 is below 90 % but above 70 %.
        await store.shed(3)
        await trio.sleep(1)
        assert pipeline.queue_pressure.level is PressureLevel.CRITICAL
        release.set()
        await trio.sleep(30)
        assert pipeline.queue_pressure.level is PressureLevel.NORMAL
        pipeline.stop()
    events = await store.events(kind="pressure_transition")
    moves = [(d["from"], d["to"]) for d in (msgspec.json.decode(e.detail or "{}") for e in events)]
    queue_moves = [
        m for m, e in zip(moves, events, strict=True) if b'"queue"' in (e.detail or "").encode()
    ]
    assert queue_moves[:2] == [("normal", "elevated"), ("elevated", "critical")]
    assert queue_moves[-1][1] == "normal"
    assert pipeline.statistics().pressure_transitions >= 3


async def test_critical_sheds_lowest_priority_first_and_rejects_submissions(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    policy = PressurePolicy(elevated=(), critical=(PressureAction.SHED, PressureAction.REJECT))
    pipeline, release = await blocked_pipeline(store, config(pressure=policy))
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await trio.sleep(1)
        await store.enqueue_many(
            [NewItem(topic="fill", payload=b"x", priority=9) for _ in range(4)]
        )
        await trio.sleep(1)
        high = await store.enqueue_many(
            [NewItem(topic="high", payload=b"x", priority=5) for _ in range(10)]
        )
        low = await store.enqueue_many(
            [NewItem(topic="low", payload=b"x", priority=1) for _ in range(9)]
        )
        await trio.sleep(1)
        release.set()
        await trio.sleep(30)
        pipeline.stop()
    low_states = {(await store.get(r.id)).state for r in low}
    high_states = {(await store.get(r.id)).state for r in high}
    assert ItemState.DEAD_LETTERED in low_states
    assert high_states == {ItemState.SUCCEEDED}
    letters = await store.dead_letters(reason=DeadReason.SHED)
    assert letters
    assert {d.topic for d in letters} == {"low"}
    assert pipeline.statistics().shed == len(letters)
    # Shedding down to where critical is left (below 70 % of 20): 19 waiting -> 13.
    assert len(letters) == 6


async def test_critical_rejects_submissions_with_a_typed_error(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    policy = PressurePolicy(elevated=(), critical=(PressureAction.REJECT,))
    pipeline, release = await blocked_pipeline(store, config(pressure=policy))
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await store.enqueue_many([NewItem(topic="t", payload=b"x") for _ in range(6 + 19)])
        await trio.sleep(1)
        before = await store.depth()
        with pytest.raises(PressureRejected) as caught:
            await pipeline.submit(NewItem(topic="late", payload=b"x"))
        assert (caught.value.channel, caught.value.level) == ("queue", "critical")
        assert caught.value.depth == 19
        assert await store.depth() == before
        release.set()
        pipeline.stop()
    assert pipeline.statistics().rejected == 1


async def test_submit_never_passes_the_queue_capacity(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    policy = PressurePolicy(elevated=(), critical=())  # no reject action: only the hard bound
    pipeline, release = await blocked_pipeline(store, config(pressure=policy))
    accepted = rejected = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        for _ in range(60):
            try:
                await pipeline.submit(NewItem(topic="t", payload=b"x"))
                accepted += 1
            except PressureRejected:
                rejected += 1
        depth = await store.depth()
        assert depth["enqueued"] <= 20
        release.set()
        pipeline.stop()
    assert rejected > 0
    assert accepted <= 20 + 6


async def test_degraded_flag_reaches_handlers_and_throttle_paces_submissions(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    policy = PressurePolicy(
        elevated_high=0.1,
        elevated_low=0.05,
        elevated=(PressureAction.DEGRADE, PressureAction.THROTTLE),
        throttle_rate_per_s=10,
        throttle_burst=1,
    )
    seen: list[bool] = []
    release = trio.Event()

    async def handler(item: WorkItem, ctx: HandlerContext) -> None:
        seen.append(ctx.degraded)
        await release.wait()

    pipeline = Pipeline(store, handler, config=config(pressure=policy))
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        await store.enqueue_many([NewItem(topic="t", payload=b"x") for _ in range(10)])
        await trio.sleep(1)
        assert pipeline.degraded
        start = trio.current_time()
        for _ in range(10):
            await pipeline.submit(NewItem(topic="t", payload=b"y"))
        assert trio.current_time() - start >= 0.8  # 10 per second after a burst of 1
        release.set()
        await trio.sleep(10)
        pipeline.stop()
    assert any(seen)


async def test_a_saturated_intake_rejects_submissions_while_the_queue_is_calm(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    # Only the intake channel may reject here; the queue's levels never act.
    policy = PressurePolicy(elevated=(), critical=(PressureAction.REJECT,))
    cfg = config(pressure=PressurePolicy(elevated=(), critical=()), intake_pressure=policy)
    pipeline, release = await blocked_pipeline(store, cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        for _ in range(6):  # the pipeline's capacity: every one is leased and held
            await pipeline.submit(NewItem(topic="t", payload=b"x"))
        await trio.sleep(1)
        assert pipeline.intake_pressure.level is PressureLevel.CRITICAL
        assert pipeline.queue_pressure.level is PressureLevel.NORMAL
        with pytest.raises(PressureRejected) as caught:
            await pipeline.submit(NewItem(topic="t", payload=b"late"))
        assert (caught.value.channel, caught.value.level) == ("intake", "critical")
        release.set()
        await trio.sleep(5)
        assert pipeline.intake_pressure.level is PressureLevel.NORMAL
        await pipeline.submit(NewItem(topic="t", payload=b"accepted again"))
        await trio.sleep(5)
        pipeline.stop()
    stats = pipeline.statistics()
    assert (stats.submitted, stats.rejected, stats.succeeded) == (7, 1, 7)


def test_the_intake_never_sheds_leased_work() -> None:
    with pytest.raises(ValueError, match="cannot shed"):
        config(intake_pressure=PressurePolicy(critical=(PressureAction.SHED,)))
